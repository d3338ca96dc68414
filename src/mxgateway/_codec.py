"""The codec selector: the compiled module unless disabled or missing, else the twin.

``MXGATEWAY_NO_EXTENSIONS=1`` at run time forces the pure-Python twin (as aiokafka, yarl and
multidict do); an ImportError of the compiled module (no compiler at install time) falls back
to it silently. A compiled module left over from an older build that lacks one of the codec's
functions is not used either (with a RuntimeWarning): the twin is complete by definition.
``codec_implementation()`` tells which one is active.

``encode_flood_batch`` (the simulator's) is looked up on first use from ``mxgateway.sim._flood``,
where the simulator's encoder is chosen by the same rule.
"""

from __future__ import annotations

import os
import warnings
from types import ModuleType
from typing import TYPE_CHECKING, Any, Literal

__all__ = [
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


def _select() -> tuple[ModuleType, Literal["cython", "python"]]:
    if os.environ.get("MXGATEWAY_NO_EXTENSIONS", "") != "1":
        try:
            from mxgateway import _speedups
        except ImportError:
            pass
        else:
            missing = [name for name in _FUNCTIONS if not hasattr(_speedups, name)]
            if not missing:
                return _speedups, "cython"
            warnings.warn(
                f"mxgateway._speedups is out of date (missing {', '.join(missing)}); "
                "using the pure-Python codec. Rebuild with `pip install -e .`.",
                RuntimeWarning,
                stacklevel=2,
            )
    from mxgateway import _pycodec

    return _pycodec, "python"


impl, _IMPLEMENTATION = _select()

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
