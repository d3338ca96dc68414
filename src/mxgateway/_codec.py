"""The codec selector: the compiled module unless disabled or missing, else the twin.

``MXGATEWAY_NO_EXTENSIONS=1`` at run time forces the pure-Python twin (as aiokafka, yarl and
multidict do), silently: it is a deliberate choice. Otherwise the compiled module is expected,
and when it cannot be used (not built because the install had no C compiler, built for another
Python, or out of date) the twin takes over and the ``mxgateway`` logger says so once, at
import, with the reason and the cost: the twin decodes events about a hundred times slower.
``MXGATEWAY_REQUIRE_EXTENSIONS=1`` turns that fallback into an ImportError (wheel tests,
deployments that must not run slow). ``codec_implementation()`` tells which one is active and
``codec_fallback_reason()`` why it is the twin.

``encode_flood_batch`` (the simulator's) is looked up on first use from ``mxgateway.sim._flood``,
where the simulator's encoder is chosen by the same rule.
"""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

__all__ = [
    "codec_fallback_reason",
    "codec_implementation",
    "configure",
    "decode_event",
    "decode_event_batch",
    "decode_event_columns",
    "decode_varint",
    "encode_event",
    "encode_event_batch",
    "encode_flood_batch",
    "from_mx_value",
    "impl",
    "to_mx_value",
]

# Every function both implementations provide (docs/codec.md, "Functions"), and the internal
# one behind EventColumns.
_FUNCTIONS = (
    "configure",
    "decode_event",
    "decode_event_batch",
    "decode_event_columns",
    "decode_varint",
    "encode_event",
    "encode_event_batch",
    "from_mx_value",
    "to_mx_value",
    "_decode_columns",
)

NO_EXTENSIONS_ENV = "MXGATEWAY_NO_EXTENSIONS"
REQUIRE_EXTENSIONS_ENV = "MXGATEWAY_REQUIRE_EXTENSIONS"
DELIBERATE = f"{NO_EXTENSIONS_ENV}=1"
"""The fallback reason when the twin was asked for."""

# Measured with mxgw-py bench-stream-events: 1.53 M events/s compiled, 11.8 k with the twin.
COST = "event decoding runs about 100x slower on it"
REMEDY = (
    "reinstall mxgateway from a wheel for this platform or with a C compiler present "
    f"(set {NO_EXTENSIONS_ENV}=1 to choose the pure-Python codec and silence this)"
)


def _load_compiled() -> tuple[ModuleType | None, str | None]:
    """The compiled module, or None and why it cannot be used."""
    try:
        # import_module, not "from mxgateway import _speedups": inside the package's own
        # __init__ that form reports a missing module as a circular import.
        _speedups = importlib.import_module("mxgateway._speedups")
    except ImportError as exc:
        if isinstance(exc, ModuleNotFoundError) and exc.name == "mxgateway._speedups":
            return None, (
                "mxgateway._speedups is not installed (the install could not build it: "
                "no C compiler, or Cython and the generated C both missing)"
            )
        return None, f"mxgateway._speedups failed to load ({exc})"
    missing = [name for name in _FUNCTIONS if not hasattr(_speedups, name)]
    if missing:
        return None, (f"mxgateway._speedups is out of date (missing {', '.join(missing)})")
    return _speedups, None


def _select() -> tuple[ModuleType, Literal["cython", "python"], str | None]:
    if os.environ.get(NO_EXTENSIONS_ENV, "") == "1":
        from mxgateway import _pycodec

        return _pycodec, "python", DELIBERATE
    compiled, reason = _load_compiled()
    if compiled is not None:
        return compiled, "cython", None
    assert reason is not None
    if os.environ.get(REQUIRE_EXTENSIONS_ENV, "") == "1":
        raise ImportError(f"{reason}; {REQUIRE_EXTENSIONS_ENV}=1 forbids the pure-Python codec")
    # Logged before mxgateway/__init__ adds its NullHandler, so an application that set up no
    # logging still sees it on stderr (logging's last-resort handler).
    logging.getLogger("mxgateway").warning(
        "%s: mxgateway falls back to its pure-Python codec, and %s. To fix: %s.",
        reason,
        COST,
        REMEDY,
    )
    from mxgateway import _pycodec

    return _pycodec, "python", reason


impl, _IMPLEMENTATION, _FALLBACK_REASON = _select()

if TYPE_CHECKING:
    # Both implementations have exactly the twin's signatures (_speedups.pyi mirrors them).
    from mxgateway._pycodec import (
        configure,
        decode_event,
        decode_event_batch,
        decode_event_columns,
        decode_varint,
        encode_event,
        encode_event_batch,
        from_mx_value,
        to_mx_value,
    )
    from mxgateway.sim._flood import encode_flood_batch
else:
    configure = impl.configure
    decode_event = impl.decode_event
    decode_event_batch = impl.decode_event_batch
    decode_event_columns = impl.decode_event_columns
    decode_varint = impl.decode_varint
    encode_event = impl.encode_event
    encode_event_batch = impl.encode_event_batch
    from_mx_value = impl.from_mx_value
    to_mx_value = impl.to_mx_value

    def __getattr__(name: str) -> Any:
        if name == "encode_flood_batch":
            from mxgateway.sim import _flood

            return _flood.impl.encode_flood_batch
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def codec_implementation() -> Literal["cython", "python"]:
    """Return ``"cython"`` when the compiled codec is in use, else ``"python"``."""
    return _IMPLEMENTATION


def codec_fallback_reason() -> str | None:
    """Why the pure-Python codec is in use (``"MXGATEWAY_NO_EXTENSIONS=1"`` when asked for),
    or None when the compiled codec is."""
    return _FALLBACK_REASON
