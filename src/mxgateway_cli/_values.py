"""Strict parsing of ``--type`` / ``--value`` for the write commands.

Types: ``bool``, ``int32``, ``int64``, ``float``, ``double``, ``string``, ``time`` (ISO 8601
with an offset), ``elapsed`` (seconds). With ``--array`` the value is a JSON array (nested for
rank 2 and more) of elements of that type. Anything that does not parse exactly, nan and
infinities included, is a UsageError (exit 2) before anything is sent; the library's own
conversion (``to_mx_value``) then checks ranges and shapes the same way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from mxgateway import MxDataType, to_mx_value_bytes
from mxgateway_cli._exit_codes import UsageError

__all__ = ["TYPE_NAMES", "data_type_of", "infer_type", "parse_time", "parse_value"]

_DATA_TYPES: dict[str, MxDataType] = {
    "bool": MxDataType.BOOLEAN,
    "int32": MxDataType.INTEGER,
    "int64": MxDataType.INTEGER,
    "float": MxDataType.FLOAT,
    "double": MxDataType.DOUBLE,
    "string": MxDataType.STRING,
    "time": MxDataType.TIME,
    "elapsed": MxDataType.ELAPSED_TIME,
}
TYPE_NAMES: tuple[str, ...] = tuple(_DATA_TYPES)
"""The ``--type`` choices."""

_INTEGER = re.compile(r"[+-]?[0-9]+")
_DECIMAL = re.compile(r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")
_RANGES = {"int32": (-(2**31), 2**31 - 1), "int64": (-(2**63), 2**63 - 1)}
_BOOLS = {"true": True, "false": False, "1": True, "0": False}


def _finite(number: float, text: str) -> float:
    if not math.isfinite(number):
        raise UsageError(f"{text!r} is not a finite number (nan and infinities are not allowed)")
    return number


def _integer(type_name: str, value: int, text: str) -> int:
    low, high = _RANGES[type_name]
    if not low <= value <= high:
        raise UsageError(f"{text} is outside the {type_name} range {low}..{high}")
    return value


def _time(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
        if when.tzinfo is not None:
            when.astimezone(UTC)  # out of range once in UTC (e.g. 9999-12-31T23:00-05:00)
    except (ValueError, OverflowError):
        raise UsageError(
            f"{text!r} is not an ISO 8601 time (e.g. 2024-05-01T12:00:00+00:00)"
        ) from None
    if when.tzinfo is None:
        raise UsageError(f"{text!r} has no UTC offset (add Z or +HH:MM)")
    return when


def parse_time(text: str, flag: str) -> datetime:
    """An ISO 8601 time with an offset, for ``flag`` (UsageError otherwise)."""
    try:
        return _time(text.strip())
    except UsageError as exc:
        raise UsageError(f"{flag}: {exc}") from None


def _elapsed(seconds: float, text: str) -> timedelta:
    try:
        return timedelta(seconds=_finite(seconds, text))
    except OverflowError:
        raise UsageError(f"{text!r} seconds is out of range") from None


def _scalar(type_name: str, text: str) -> Any:
    """One value from its command-line text."""
    if type_name == "string":
        return text
    stripped = text.strip()
    if type_name == "bool":
        if stripped.lower() not in _BOOLS:
            raise UsageError(f"{text!r} is not a bool (true, false, 1 or 0)")
        return _BOOLS[stripped.lower()]
    if type_name in _RANGES:
        if not _INTEGER.fullmatch(stripped):
            raise UsageError(f"{text!r} is not a decimal {type_name}")
        return _integer(type_name, int(stripped), stripped)
    if type_name in ("float", "double", "elapsed"):
        if not _DECIMAL.fullmatch(stripped):
            raise UsageError(
                f"{text!r} is not a decimal number (nan and infinities are not allowed)"
            )
        number = _finite(float(stripped), text)
        return _elapsed(number, text) if type_name == "elapsed" else number
    return _time(stripped)


def _reject_constant(name: str) -> Any:
    raise UsageError(f"{name} is not allowed (only finite numbers)")


def _element(type_name: str, item: Any) -> Any:
    """One JSON array element, checked against the element type."""
    if isinstance(item, list):
        return [_element(type_name, inner) for inner in item]
    what = json.dumps(item)
    if type_name == "bool":
        if not isinstance(item, bool):
            raise UsageError(f"array element {what} is not a JSON bool")
        return item
    if type_name in _RANGES:
        if isinstance(item, bool) or not isinstance(item, int):
            raise UsageError(f"array element {what} is not a JSON integer")
        return _integer(type_name, item, what)
    if type_name in ("float", "double", "elapsed"):
        if isinstance(item, bool) or not isinstance(item, int | float):
            raise UsageError(f"array element {what} is not a JSON number")
        number = _finite(float(item), what)
        return _elapsed(number, what) if type_name == "elapsed" else number
    if not isinstance(item, str):
        raise UsageError(f"array element {what} is not a JSON string")
    return _time(item) if type_name == "time" else item


def _array(type_name: str, text: str) -> list[Any]:
    constant: Callable[[str], Any] = _reject_constant
    try:
        data = json.loads(text, parse_constant=constant)
    except json.JSONDecodeError as exc:
        raise UsageError(f"--value is not valid JSON: {exc.msg} at column {exc.colno}") from None
    if not isinstance(data, list):
        raise UsageError("with --array, --value must be a JSON array")
    return [_element(type_name, item) for item in data]


def _infer_scalar(text: str) -> str:
    stripped = text.strip()
    if stripped.lower() in ("true", "false"):
        return "bool"
    if _INTEGER.fullmatch(stripped):
        low, high = _RANGES["int32"]
        return "int32" if low <= int(stripped) <= high else "int64"
    if _DECIMAL.fullmatch(stripped):
        return "double"
    return "string"


def _infer_element(item: Any) -> str:
    if isinstance(item, list):
        kinds = {_infer_element(inner) for inner in item}
        return kinds.pop() if len(kinds) == 1 else _widest(kinds)
    if isinstance(item, bool):
        return "bool"
    if isinstance(item, int):
        low, high = _RANGES["int32"]
        return "int32" if low <= item <= high else "int64"
    if isinstance(item, float):
        return "double"
    return "string"


def _widest(kinds: set[str]) -> str:
    # Integers and decimals mixed are decimals; anything else mixed is left to the checks.
    if kinds <= {"int32", "int64", "double"}:
        return "double" if "double" in kinds else "int64"
    return sorted(kinds)[0] if kinds else "string"


def infer_type(text: str, *, array: bool = False) -> str:
    """The ``--type`` a ``--value`` reads as when none is given: ``true``/``false`` bool, an
    integer int32 (int64 beyond int32), a decimal number double, anything else string; for a
    JSON array, the type of its elements. Times and elapsed times need ``--type``."""
    if not array:
        return _infer_scalar(text)
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return "string"  # _array reports the JSON error
    if not isinstance(data, list) or not data:
        return "string" if not isinstance(data, list) else "double"
    return _infer_element(data)


def data_type_of(type_name: str) -> MxDataType:
    """The MxDataType a ``--type`` name writes."""
    if type_name not in _DATA_TYPES:
        raise UsageError(f"unknown --type {type_name!r}: one of {', '.join(TYPE_NAMES)}")
    return _DATA_TYPES[type_name]


# Deeper than any MXAccess array (rank ≤ 3 in practice): refused before it costs recursion.
MAX_ARRAY_DEPTH = 16


def parse_value(type_name: str, text: str, *, array: bool = False) -> tuple[Any, MxDataType]:
    """The Python value and MxDataType for ``--type type_name --value text`` (UsageError,
    naming --value, when the text does not parse strictly, nests too deep, is not valid text,
    or the library would refuse the value)."""
    data_type = data_type_of(type_name)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError("--value: not valid text (an unpaired surrogate)") from None
    if array and _depth(text) > MAX_ARRAY_DEPTH:
        raise UsageError(f"--value: arrays nest deeper than {MAX_ARRAY_DEPTH} levels")
    try:
        value = _array(type_name, text) if array else _scalar(type_name, text)
        to_mx_value_bytes(value, data_type)  # the library's own checks: ranges, float32, shapes
    except UsageError as exc:
        message = str(exc)
        raise UsageError(message if message.startswith("--") else f"--value: {message}") from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise UsageError(f"--value: {exc}") from None
    return value, data_type


def _depth(text: str) -> int:
    """How deep the brackets of ``text`` nest (outside strings), without parsing it."""
    depth = deepest = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch == "[":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == "]":
            depth -= 1
    return deepest
