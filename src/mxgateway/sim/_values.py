"""Simulated values: generators per attribute, and conversion to and from MxValue.

A value is held as a plain Python object chosen by the attribute's MxDataType: bool, int,
float, str, int nanoseconds (TIME since the epoch, ELAPSED_TIME as a duration), bytes
(QUALIFIED_STRUCT) or None (NO_DATA, UNKNOWN); arrays are lists of those.
"""

from __future__ import annotations

import math
import random
import struct
import zlib
from typing import Final, cast

from google.protobuf import timestamp_pb2

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim._status import (
    DISP_E_BADINDEX,
    E_INVALIDARG,
    E_OVERFLOW,
    E_TYPEMISMATCH,
    MxFailure,
)

__all__ = [
    "Generator",
    "check_value_limits",
    "default_value",
    "from_mx_value",
    "timestamp",
    "to_mx_value",
    "value_elements",
]

_T = pb.MxDataType
_INT_TYPES: Final = frozenset(
    {
        _T.MX_DATA_TYPE_INTEGER,
        _T.MX_DATA_TYPE_STATUS,
        _T.MX_DATA_TYPE_DATA_TYPE_ENUM,
        _T.MX_DATA_TYPE_SECURITY_CLASSIFICATION_ENUM,
        _T.MX_DATA_TYPE_DATA_QUALITY,
        _T.MX_DATA_TYPE_QUALIFIED_ENUM,
    }
)
_STRING_TYPES: Final = frozenset(
    {
        _T.MX_DATA_TYPE_STRING,
        _T.MX_DATA_TYPE_BIG_STRING,
        _T.MX_DATA_TYPE_INTERNATIONALIZED_STRING,
        _T.MX_DATA_TYPE_REFERENCE,
    }
)
_FLOAT_TYPES: Final = frozenset({_T.MX_DATA_TYPE_FLOAT, _T.MX_DATA_TYPE_DOUBLE})
_NULL_TYPES: Final = frozenset({_T.MX_DATA_TYPE_NO_DATA, _T.MX_DATA_TYPE_UNKNOWN, 0})

_VARIANT: Final[dict[int, str]] = {
    _T.MX_DATA_TYPE_BOOLEAN: "VT_BOOL",
    _T.MX_DATA_TYPE_INTEGER: "VT_I4",
    _T.MX_DATA_TYPE_FLOAT: "VT_R4",
    _T.MX_DATA_TYPE_DOUBLE: "VT_R8",
    _T.MX_DATA_TYPE_TIME: "VT_DATE",
    _T.MX_DATA_TYPE_ELAPSED_TIME: "VT_I8",
    _T.MX_DATA_TYPE_QUALIFIED_STRUCT: "VT_RECORD",
}
_ARRAY_LISTS: Final = (
    "bool_values",
    "int32_values",
    "int64_values",
    "float_values",
    "double_values",
    "string_values",
    "timestamp_values",
    "elapsed_values",
)
_CONFIGURATION: Final = pb.MX_STATUS_CATEGORY_CONFIGURATION_ERROR
_STATES: Final = ("Stopped", "Starting", "Running", "Stopping")
_NS: Final = 1_000_000_000
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def _variant(data_type: int) -> str:
    if data_type in _VARIANT:
        return _VARIANT[data_type]
    if data_type in _INT_TYPES:
        return "VT_I4"
    if data_type in _STRING_TYPES:
        return "VT_BSTR"
    return "VT_EMPTY"


def _float32(x: float) -> float:
    return cast(float, struct.unpack("<f", struct.pack("<f", x))[0])


def timestamp(ns: int) -> timestamp_pb2.Timestamp:
    """Integer nanoseconds since the epoch to a protobuf Timestamp."""
    seconds, nanos = divmod(ns, _NS)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def default_value(data_type: int) -> object:
    """The value an element or attribute of ``data_type`` resets to."""
    if data_type == _T.MX_DATA_TYPE_BOOLEAN:
        return False
    if data_type in _INT_TYPES or data_type in (_T.MX_DATA_TYPE_TIME, _T.MX_DATA_TYPE_ELAPSED_TIME):
        return 0
    if data_type in _FLOAT_TYPES:
        return 0.0
    if data_type in _STRING_TYPES:
        return ""
    if data_type == _T.MX_DATA_TYPE_QUALIFIED_STRUCT:
        return b""
    return None


def _scalar(x: float, step: int, data_type: int, toggle: bool, now_ns: int) -> object:
    """Map a generator output ``x`` (0..100) at ``step`` to a value of ``data_type``."""
    if data_type == _T.MX_DATA_TYPE_BOOLEAN:
        return step % 2 == 1 if toggle else x > 50.0
    if data_type in _INT_TYPES:
        return step % 2 if toggle else round(x)
    if data_type == _T.MX_DATA_TYPE_FLOAT:
        return _float32(x)
    if data_type == _T.MX_DATA_TYPE_DOUBLE:
        return x
    if data_type in _STRING_TYPES:
        return ("Off", "On")[step % 2] if toggle else _STATES[step % len(_STATES)]
    if data_type == _T.MX_DATA_TYPE_TIME:
        return now_ns
    if data_type == _T.MX_DATA_TYPE_ELAPSED_TIME:
        return step * _NS
    if data_type == _T.MX_DATA_TYPE_QUALIFIED_STRUCT:
        return step.to_bytes(4, "little")
    return None


class Generator:
    """Deterministic value source of one attribute: ramp, sine, random walk, toggle or cycle.

    Numeric outputs stay within ``low..high`` (the Galaxy puts alarm limits inside it).
    ``step()`` advances and returns the next value; the seed and reference fix the sequence.
    """

    __slots__ = ("_array_length", "_data_type", "_high", "_kind", "_low", "_rng", "_step", "_walk")

    def __init__(
        self,
        reference: str,
        kind: str,
        data_type: int,
        array_length: int,
        seed: int,
        *,
        low: float = 0.0,
        high: float = 100.0,
    ) -> None:
        mix = zlib.crc32(reference.encode()) ^ (seed * 0x9E3779B1)
        self._rng = random.Random(mix)
        self._kind = kind
        self._data_type = data_type
        self._array_length = array_length
        self._step = mix % 60
        self._walk = float(mix % 100)
        self._low = low
        self._high = high

    def _x(self) -> float:
        step = self._step
        if self._kind == "sine":
            return 50.0 + 50.0 * math.sin(step * 2.0 * math.pi / 60.0)
        if self._kind == "random_walk":
            self._walk = min(100.0, max(0.0, self._walk + self._rng.uniform(-2.0, 2.0)))
            return self._walk
        if self._kind in ("toggle", "cycle"):
            return float((step * 25) % 100)
        return (step * 0.5) % 100.0  # ramp

    def initial(self, now_ns: int) -> object:
        """The value before the first step."""
        return self._value(self._x(), now_ns)

    def _value(self, x: float, now_ns: int) -> object:
        toggle = self._kind == "toggle"
        if (self._low, self._high) != (0.0, 100.0):
            x = self._low + (self._high - self._low) * x / 100.0
        if self._array_length > 0:
            return [
                _scalar((x + i) % 100.0, self._step + i, self._data_type, toggle, now_ns)
                for i in range(self._array_length)
            ]
        return _scalar(x, self._step, self._data_type, toggle, now_ns)

    def step(self, now_ns: int) -> object:
        """Advance one step and return the new value."""
        self._step += 1
        return self._value(self._x(), now_ns)


def _fill_scalar(msg: pb.MxValue, value: object, data_type: int) -> None:
    if value is None or data_type in _NULL_TYPES:
        msg.is_null = True
        msg.variant_type = "VT_EMPTY"
        return
    if data_type == _T.MX_DATA_TYPE_BOOLEAN:
        msg.bool_value = bool(value)
    elif data_type in _INT_TYPES:
        number = cast(int, value)
        if _INT32_MIN <= number <= _INT32_MAX:
            msg.int32_value = number
        else:
            msg.int64_value = number
    elif data_type == _T.MX_DATA_TYPE_FLOAT:
        msg.float_value = cast(float, value)
    elif data_type == _T.MX_DATA_TYPE_DOUBLE:
        msg.double_value = cast(float, value)
    elif data_type in _STRING_TYPES:
        msg.string_value = cast(str, value)
    elif data_type == _T.MX_DATA_TYPE_TIME:
        msg.timestamp_value.CopyFrom(timestamp(cast(int, value)))
    elif data_type == _T.MX_DATA_TYPE_ELAPSED_TIME:
        seconds, nanos = divmod(cast(int, value), _NS)
        if seconds < 0 and nanos:
            seconds, nanos = seconds + 1, nanos - _NS
        msg.elapsed_value.seconds = seconds
        msg.elapsed_value.nanos = nanos
    elif data_type == _T.MX_DATA_TYPE_QUALIFIED_STRUCT:
        msg.raw_value = cast(bytes, value)
    msg.variant_type = _variant(data_type)


def to_mx_value(value: object, data_type: int) -> pb.MxValue:
    """A simulated value (scalar or list for arrays) of ``data_type`` to an MxValue."""
    msg = pb.MxValue()
    msg.data_type = cast(pb.MxDataType, data_type)
    msg.raw_data_type = data_type - 1 if data_type else -1
    if not isinstance(value, list):
        _fill_scalar(msg, value, data_type)
        return msg
    array = msg.array_value
    array.element_data_type = cast(pb.MxDataType, data_type)
    array.dimensions.append(len(value))
    msg.variant_type = "VT_ARRAY|" + _variant(data_type)
    if data_type == _T.MX_DATA_TYPE_BOOLEAN:
        array.bool_values.extend(bool(v) for v in value)
    elif data_type in _INT_TYPES:
        if all(_INT32_MIN <= cast(int, v) <= _INT32_MAX for v in value):
            array.int32_values.extend(cast(list[int], value))
        else:
            array.int64_values.extend(cast(list[int], value))
    elif data_type == _T.MX_DATA_TYPE_FLOAT:
        array.float_values.extend(cast(list[float], value))
    elif data_type == _T.MX_DATA_TYPE_DOUBLE:
        array.double_values.extend(cast(list[float], value))
    elif data_type in _STRING_TYPES:
        array.string_values.extend(cast(list[str], value))
    elif data_type == _T.MX_DATA_TYPE_TIME:
        array.timestamp_values.extend(timestamp(cast(int, v)) for v in value)
    elif data_type == _T.MX_DATA_TYPE_ELAPSED_TIME:
        for v in value:
            seconds, nanos = divmod(cast(int, v), _NS)
            array.elapsed_values.add(seconds=seconds, nanos=nanos)
    return msg


def _overflow(data_type: int, value: object) -> MxFailure:
    name = pb.MxDataType.Name(cast(pb.MxDataType, data_type))
    return MxFailure(
        E_OVERFLOW,
        pb.MX_STATUS_CATEGORY_CONFIGURATION_ERROR,
        f"overflow: {value!r} does not fit an attribute of type {name}",
    )


def _mismatch(data_type: int, what: str) -> MxFailure:
    name = pb.MxDataType.Name(cast(pb.MxDataType, data_type)) if data_type else "UNSPECIFIED"
    return MxFailure(
        E_TYPEMISMATCH,
        pb.MX_STATUS_CATEGORY_CONFIGURATION_ERROR,
        f"type mismatch: cannot write {what} to an attribute of type {name}",
    )


def _scalar_from_arm(msg: pb.MxValue) -> tuple[str | None, object]:
    arm = msg.WhichOneof("kind")
    if arm is None:
        if msg.raw_value:
            return "raw_value", msg.raw_value
        return None, None
    if arm == "timestamp_value":
        ts = msg.timestamp_value
        return arm, ts.seconds * _NS + ts.nanos
    if arm == "elapsed_value":
        d = msg.elapsed_value
        return arm, d.seconds * _NS + d.nanos
    return arm, getattr(msg, arm)


def _coerce(arm: str | None, raw: object, data_type: int) -> object:
    """One written scalar to the attribute's representation, or a type-mismatch failure."""
    if arm is None:
        raise _mismatch(data_type, "a null value")
    numeric = arm in ("int32_value", "int64_value", "float_value", "double_value")
    if data_type == _T.MX_DATA_TYPE_BOOLEAN:
        if arm == "bool_value":
            return bool(raw)
        if arm in ("int32_value", "int64_value"):
            return raw != 0
    elif data_type in _INT_TYPES:
        number: int | None = None
        if arm in ("int32_value", "int64_value", "bool_value"):
            number = int(cast(int, raw))
        elif numeric and float(cast(float, raw)).is_integer():
            number = int(cast(float, raw))
        if number is not None:
            # MXAccess integers are 32-bit (VT_I4): a wider value is refused, never stored.
            if not _INT32_MIN <= number <= _INT32_MAX:
                raise _overflow(data_type, number)
            return number
    elif data_type in _FLOAT_TYPES:
        if numeric or arm == "bool_value":
            x = float(cast(float, raw))
            if not math.isfinite(x):
                raise _mismatch(data_type, "a non-finite number")
            if data_type != _T.MX_DATA_TYPE_FLOAT:
                return x
            try:
                return _float32(x)
            except OverflowError:
                raise _overflow(data_type, x) from None
    elif data_type in _STRING_TYPES:
        if arm == "string_value":
            return raw
    elif data_type == _T.MX_DATA_TYPE_TIME:
        if arm == "timestamp_value":
            return raw
    elif data_type == _T.MX_DATA_TYPE_ELAPSED_TIME:
        if arm == "elapsed_value":
            return raw
        if arm in ("int32_value", "int64_value"):
            return cast(int, raw) * 1_000_000  # milliseconds, as MXAccess
    elif data_type == _T.MX_DATA_TYPE_QUALIFIED_STRUCT and arm == "raw_value":
        return raw
    raise _mismatch(data_type, arm.replace("_value", ""))


def _array_elements(msg: pb.MxArray) -> list[tuple[str, object]]:
    for name, arm in (
        ("bool_values", "bool_value"),
        ("int32_values", "int32_value"),
        ("int64_values", "int64_value"),
        ("float_values", "float_value"),
        ("double_values", "double_value"),
        ("string_values", "string_value"),
    ):
        values = getattr(msg, name)
        if len(values):
            return [(arm, v) for v in values]
    if len(msg.timestamp_values):
        return [("timestamp_value", t.seconds * _NS + t.nanos) for t in msg.timestamp_values]
    if len(msg.elapsed_values):
        return [("elapsed_value", d.seconds * _NS + d.nanos) for d in msg.elapsed_values]
    return []


def value_elements(msg: pb.MxValue) -> int:
    """How many array (every list counted) or sparse elements ``msg`` carries; 0 for a scalar.

    Only lengths are read: nothing is copied or converted.
    """
    arm = msg.WhichOneof("kind")
    if arm == "array_value":
        array = msg.array_value
        return sum(len(getattr(array, name)) for name in _ARRAY_LISTS)
    if arm == "sparse_array_value":
        return len(msg.sparse_array_value.elements)
    return 0


def check_value_limits(msg: pb.MxValue, max_elements: int, max_bytes: int) -> None:
    """The gateway's door for a written value: at most ``max_elements`` elements and
    ``max_bytes`` encoded bytes, checked before anything is converted or stored.

    Raises MxFailure (E_INVALIDARG, refusal ``value_elements`` / ``value_bytes``).
    """
    count = value_elements(msg)
    if count > max_elements:
        raise MxFailure(
            E_INVALIDARG,
            _CONFIGURATION,
            f"the value has {count} elements, more than the gateway accepts ({max_elements})",
            refusal="value_elements",
        )
    size = msg.ByteSize()
    if size > max_bytes:
        raise MxFailure(
            E_INVALIDARG,
            _CONFIGURATION,
            f"the value is {size} bytes encoded, more than the gateway accepts ({max_bytes})",
            refusal="value_bytes",
        )


def _array_of_length(msg: pb.MxArray, count: int, array_length: int) -> None:
    # A whole-array write must have the attribute's declared shape: one dimension, its length.
    dimensions = msg.dimensions
    if len(dimensions) > 1:
        raise MxFailure(
            E_INVALIDARG,
            _CONFIGURATION,
            f"a {len(dimensions)}-dimensional array cannot be written to a one-dimensional "
            f"attribute of length {array_length}",
            refusal="array_length",
        )
    if dimensions and dimensions[0] != count:
        raise MxFailure(
            E_INVALIDARG,
            _CONFIGURATION,
            f"array dimensions say {dimensions[0]} elements, the value has {count}",
            refusal="array_length",
        )
    if count != array_length:
        raise MxFailure(
            E_INVALIDARG,
            _CONFIGURATION,
            f"array length {count} does not match the attribute's declared length {array_length}",
            refusal="array_length",
        )


def from_mx_value(msg: pb.MxValue, data_type: int, array_length: int | None) -> object:
    """A written MxValue to the attribute's representation (``array_length`` None = scalar).

    An array must have exactly the declared ``array_length`` elements; a sparse array expands
    to the declared length (``total_length`` 0 or that length; indices 0-based, below it), so
    nothing is ever allocated in proportion to a number the client chose. Raises MxFailure
    (type mismatch, E_INVALIDARG for a length, DISP_E_BADINDEX for an index) when the value
    cannot be stored in the attribute.
    """
    arm = msg.WhichOneof("kind")
    if array_length is None:
        if arm in ("array_value", "sparse_array_value"):
            raise _mismatch(data_type, "an array")
        return _coerce(*_scalar_from_arm(msg), data_type)
    if arm == "array_value":
        _array_of_length(msg.array_value, value_elements(msg), array_length)
        elements = _array_elements(msg.array_value)
        if len(elements) != array_length:  # the elements were spread over several lists
            raise _mismatch(data_type, "an array mixing element types")
        return [_coerce(a, v, data_type) for a, v in elements]
    if arm == "sparse_array_value":
        sparse = msg.sparse_array_value
        total = sparse.total_length
        if total not in (0, array_length):
            raise MxFailure(
                E_INVALIDARG,
                _CONFIGURATION,
                f"sparse array total_length {total} does not match the attribute's declared "
                f"length {array_length}",
                refusal="sparse_total_length",
            )
        out = [default_value(data_type)] * array_length
        for element in sparse.elements:
            if element.index >= array_length:
                raise MxFailure(
                    DISP_E_BADINDEX,
                    _CONFIGURATION,
                    f"sparse array index {element.index} is past the declared length "
                    f"{array_length}",
                    refusal="array_index",
                )
            out[element.index] = _coerce(*_scalar_from_arm(element.value), data_type)
        return out
    raise _mismatch(data_type, "a scalar to an array")
