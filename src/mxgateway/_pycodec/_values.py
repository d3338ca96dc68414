"""Value encoding (twin of ext/_values.pxi, which ext/gen_values.py generates from this
module): the writers' primitives, MxValue assembly, ``to_mx_value`` for writes (strict) and
the MxValue arms of ``encode_event`` (permissive). docs/codec.md D13-D25.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any, Final, TypeAlias

from mxgateway._pycodec._tables import (
    _ARRAY_TYPES,
    _DATA_TYPES,
    _DT_BOOLEAN,
    _DT_DOUBLE,
    _DT_ELAPSED,
    _DT_FLOAT,
    _DT_INTEGER,
    _DT_NO_DATA,
    _DT_STRING,
    _DT_TIME,
    _KEYS,
    _STRING_TYPES,
)
from mxgateway._pycodec._wire import (
    _EPOCH,
    _I32_MAX,
    _I32_MIN,
    _I64_MAX,
    _I64_MIN,
    _M32,
    _M64,
    _MAX_DEPTH,
    _ONE_US,
    _pack_f32,
    _pack_f64,
    _unpack_f32,
)
from mxgateway.types import MxDataType, MxSparseArray

# ---- encoding primitives -------------------------------------------------------------------

_ONE_BYTE: Final = tuple(bytes((i,)) for i in range(128))


def _uvarint(value: int) -> bytes:
    if value < 0x80:
        return _ONE_BYTE[value]
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _svarint(value: int) -> bytes:
    """int32/int64/enum: negative values as their 64-bit two's complement (10 bytes)."""
    return _uvarint(value & _M64 if value < 0 else value)


def _check_int(value: Any, low: int, high: int, what: str) -> int:
    if not isinstance(value, int):
        raise TypeError(f"{what} must be an int, not {type(value).__name__}")
    if not low <= value <= high:
        raise ValueError(f"{what} {value!r} is out of range [{low}, {high}]")
    return value


def _check_str(value: Any, what: str) -> bytes:
    if not isinstance(value, str):
        raise TypeError(f"{what} must be a str, not {type(value).__name__}")
    try:
        return value.encode()
    except UnicodeEncodeError:
        raise ValueError(f"{what} {value!r} cannot be encoded as UTF-8") from None


_Parts: TypeAlias = list[tuple[int, bytes]]


def _first(item: tuple[int, bytes]) -> int:
    return item[0]


def _join(parts: _Parts) -> bytes:
    """Fields in field-number order (stable: repeated elements keep their order)."""
    parts.sort(key=_first)
    return b"".join([chunk for _, chunk in parts])


def _put_len(parts: _Parts, key: tuple[int, bytes], payload: bytes) -> None:
    parts.append((key[0], key[1] + _uvarint(len(payload)) + payload))


def _put_int32(parts: _Parts, key: tuple[int, bytes], value: Any, what: str) -> None:
    if _check_int(value, _I32_MIN, _I32_MAX, what):
        parts.append((key[0], key[1] + _svarint(value)))


def _put_uint32(parts: _Parts, key: tuple[int, bytes], value: Any, what: str) -> None:
    if _check_int(value, 0, _M32, what):
        parts.append((key[0], key[1] + _uvarint(value)))


def _put_bool(parts: _Parts, key: tuple[int, bytes], value: Any, what: str) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{what} must be a bool, not {type(value).__name__}")
    if value:
        parts.append((key[0], key[1] + b"\x01"))


def _put_str(parts: _Parts, key: tuple[int, bytes], value: Any, what: str) -> None:
    raw = _check_str(value, what)
    if raw:
        parts.append((key[0], key[1] + _uvarint(len(raw)) + raw))


def _put_bytes(parts: _Parts, key: tuple[int, bytes], value: Any, what: str) -> None:
    if not isinstance(value, bytes | bytearray):
        raise TypeError(f"{what} must be bytes, not {type(value).__name__}")
    if value:
        parts.append((key[0], key[1] + _uvarint(len(value)) + bytes(value)))


def _seconds_nanos_bytes(message: str, seconds: int, nanos: int) -> bytes:
    keys = _KEYS[message]
    parts: _Parts = []
    if seconds:
        parts.append((keys["seconds"][0], keys["seconds"][1] + _svarint(seconds)))
    if nanos:
        parts.append((keys["nanos"][0], keys["nanos"][1] + _svarint(nanos)))
    return _join(parts)


def _datetime_bytes(value: datetime) -> bytes:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{value!r} is a naive datetime; give it a timezone")
    delta = value - _EPOCH
    return _seconds_nanos_bytes(
        "Timestamp", delta.days * 86400 + delta.seconds, delta.microseconds * 1000
    )


def _timedelta_bytes(value: timedelta) -> bytes:
    total_us = value // _ONE_US
    seconds = abs(total_us) // 1_000_000
    nanos = (abs(total_us) % 1_000_000) * 1000
    if total_us < 0:
        seconds, nanos = -seconds, -nanos
    return _seconds_nanos_bytes("Duration", seconds, nanos)


def _f32_exact(value: float) -> bool:
    """True when ``value`` survives a float32 round trip (nan and infinities included)."""
    if value != value or value in (math.inf, -math.inf):
        return True
    try:
        return bool(_unpack_f32(_pack_f32(value))[0] == value)
    except OverflowError:
        return False


def _f32_bytes(value: float, what: Any) -> bytes:
    try:
        return _pack_f32(value)
    except OverflowError:
        raise ValueError(f"{what!r} overflows a 32-bit float (FLOAT)") from None


# ---- MxValue assembly ------------------------------------------------------------------------

# An MxValue ``kind`` arm ready to write: (field name, encoded payload without the key).
_Arm: TypeAlias = tuple[str, bytes] | None


def _value_bytes(
    data_type: Any,
    variant_type: Any,
    is_null: Any,
    raw_diagnostic: Any,
    raw_data_type: Any,
    raw_value: Any,
    arm: _Arm,
) -> bytes:
    keys = _KEYS["MxValue"]
    parts: _Parts = []
    _put_int32(parts, keys["data_type"], data_type, "MxValue.data_type")
    _put_str(parts, keys["variant_type"], variant_type, "MxValue.variant_type")
    _put_bool(parts, keys["is_null"], is_null, "MxValue.is_null")
    _put_str(parts, keys["raw_diagnostic"], raw_diagnostic, "MxValue.raw_diagnostic")
    _put_int32(parts, keys["raw_data_type"], raw_data_type, "MxValue.raw_data_type")
    _put_bytes(parts, keys["raw_value"], raw_value, "MxValue.raw_value")
    if arm is not None:
        name, payload = arm
        number, key = keys[name]
        parts.append((number, key + payload))
    return _join(parts)


def _len_prefixed(payload: bytes) -> bytes:
    return _uvarint(len(payload)) + payload


def _int_arm(value: int) -> tuple[str, bytes]:
    if _I32_MIN <= value <= _I32_MAX:
        return "int32_value", _svarint(value)
    if _I64_MIN <= value <= _I64_MAX:
        return "int64_value", _svarint(value)
    raise ValueError(f"{value!r} is outside the int64 range of an MxValue")


def _array_bytes(element_type: int, dims: list[int], field: str, payload: bytes) -> bytes:
    """An MxArray: ``field`` is the values field, ``payload`` its already keyed chunk(s)."""
    keys = _KEYS["MxArray"]
    parts: _Parts = []
    _put_int32(parts, keys["element_data_type"], element_type, "MxArray.element_data_type")
    packed = b"".join([_uvarint(d) for d in dims])
    if packed:
        _put_len(parts, keys["dimensions"], packed)
    if payload:
        parts.append((keys[field][0], payload))
    return _join(parts)


_LEAF_KINDS: Final = (bool, int, float, str, datetime, timedelta)


def _leaf_kind(leaf: Any) -> type:
    for kind in _LEAF_KINDS:
        if isinstance(leaf, kind):
            return kind
    if leaf is None or isinstance(leaf, bytes | bytearray | MxSparseArray):
        raise ValueError(f"{leaf!r} cannot be an array element")
    raise TypeError(f"unsupported array element type {type(leaf).__name__}: {leaf!r}")


def _flatten(value: list[Any] | tuple[Any, ...]) -> tuple[list[int], list[Any]]:
    """Shape (one length per nesting level) and row-major leaves of a rectangular list."""
    dims: list[int] = []
    probe: Any = value
    while isinstance(probe, list | tuple):
        if len(dims) == _MAX_DEPTH:
            raise ValueError(f"lists nested deeper than {_MAX_DEPTH} levels")
        dims.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    level: list[Any] = [value]
    last = len(dims) - 1
    for depth, length in enumerate(dims):
        following: list[Any] = []
        for node in level:
            if not isinstance(node, list | tuple) or len(node) != length:
                raise ValueError(f"ragged list: {value!r}")
            if depth < last:
                following.extend(node)
            else:
                for leaf in node:
                    if isinstance(leaf, list | tuple):
                        raise ValueError(f"ragged list: {value!r}")
                following.extend(node)
        level = following
    return dims, level


def _packed_chunk(key: tuple[int, bytes], payload: bytes) -> bytes:
    return key[1] + _uvarint(len(payload)) + payload


def _typed_array(element_type: int, dims: list[int], leaves: list[Any]) -> bytes:
    """An MxArray whose leaves are already converted to the Python type of ``element_type``."""
    keys = _KEYS["MxArray"]
    if not leaves:
        return _array_bytes(element_type, dims, "bool_values", b"")
    if element_type == _DT_BOOLEAN:
        field = "bool_values"
        chunk = _packed_chunk(keys[field], b"".join([b"\x01" if v else b"\x00" for v in leaves]))
    elif element_type == _DT_INTEGER:
        if all(_I32_MIN <= v <= _I32_MAX for v in leaves):
            field = "int32_values"
        else:
            for v in leaves:
                if not _I64_MIN <= v <= _I64_MAX:
                    raise ValueError(f"{v!r} is outside the int64 range of an MxValue")
            field = "int64_values"
        chunk = _packed_chunk(keys[field], b"".join([_svarint(v) for v in leaves]))
    elif element_type == _DT_FLOAT:
        field = "float_values"
        chunk = _packed_chunk(keys[field], b"".join([_f32_bytes(v, v) for v in leaves]))
    elif element_type == _DT_DOUBLE:
        field = "double_values"
        chunk = _packed_chunk(keys[field], b"".join([_pack_f64(v) for v in leaves]))
    elif element_type in _STRING_TYPES:
        field = "string_values"
        key = keys[field][1]
        chunk = b"".join([key + _len_prefixed(_check_str(v, "string element")) for v in leaves])
    elif element_type == _DT_TIME:
        field = "timestamp_values"
        key = keys[field][1]
        chunk = b"".join([key + _len_prefixed(_datetime_bytes(v)) for v in leaves])
    else:
        field = "elapsed_values"
        key = keys[field][1]
        chunk = b"".join([key + _len_prefixed(_timedelta_bytes(v)) for v in leaves])
    return _array_bytes(element_type, dims, field, chunk)


# ---- to_mx_value (strict: writes) --------------------------------------------------------------


def _type_name(data_type: int) -> str:
    member = _DATA_TYPES.get(data_type)
    return f"MxDataType.{member.name}" if member is not None else f"MxDataType {data_type}"


def _mismatch(value: Any, data_type: int) -> ValueError:
    return ValueError(f"{value!r} does not fit the requested data_type {_type_name(data_type)}")


def _check_finite(value: float) -> None:
    if value != value or value in (math.inf, -math.inf):
        raise ValueError(f"{value!r} cannot be written: nan and infinities are not allowed")


def _int_exact_float(value: int, data_type: int) -> float:
    try:
        as_float = float(value)
    except OverflowError:
        raise _mismatch(value, data_type) from None
    if int(as_float) != value:
        raise _mismatch(value, data_type)
    if data_type == _DT_FLOAT and not _f32_exact(as_float):
        raise _mismatch(value, data_type)
    return as_float


def _scalar_for(value: Any, data_type: int) -> Any:
    """Check a scalar (or array leaf) against ``data_type``; return it as that type's value."""
    if isinstance(value, bool):
        if data_type != _DT_BOOLEAN:
            raise _mismatch(value, data_type)
        return value
    if isinstance(value, int):
        if data_type == _DT_INTEGER:
            if not _I64_MIN <= value <= _I64_MAX:
                raise ValueError(f"{value!r} is outside the int64 range of an MxValue")
            return int(value)
        if data_type in (_DT_FLOAT, _DT_DOUBLE):
            return _int_exact_float(value, data_type)
        raise _mismatch(value, data_type)
    if isinstance(value, float):
        _check_finite(value)
        if data_type == _DT_DOUBLE:
            return float(value)
        if data_type == _DT_FLOAT:
            _f32_bytes(value, value)
            return float(value)
        if data_type == _DT_INTEGER:
            if not value.is_integer() or not _I64_MIN <= value <= _I64_MAX:
                raise _mismatch(value, data_type)
            as_int = int(value)
            if not _I64_MIN <= as_int <= _I64_MAX:
                raise _mismatch(value, data_type)
            return as_int
        raise _mismatch(value, data_type)
    if isinstance(value, str):
        if data_type not in _STRING_TYPES:
            raise _mismatch(value, data_type)
        return value
    if isinstance(value, datetime):
        if data_type != _DT_TIME:
            raise _mismatch(value, data_type)
        return value
    if isinstance(value, timedelta):
        if data_type != _DT_ELAPSED:
            raise _mismatch(value, data_type)
        return value
    raise TypeError(f"unsupported value type {type(value).__name__}: {value!r}")


_INFERRED: Final[dict[type, int]] = {
    bool: _DT_BOOLEAN,
    int: _DT_INTEGER,
    float: _DT_DOUBLE,
    str: _DT_STRING,
    datetime: _DT_TIME,
    timedelta: _DT_ELAPSED,
}


def _scalar_arm(value: Any, data_type: int) -> tuple[str, bytes]:
    """The ``kind`` arm for a checked scalar of ``data_type``."""
    if data_type == _DT_BOOLEAN:
        return "bool_value", b"\x01" if value else b"\x00"
    if data_type == _DT_INTEGER:
        return _int_arm(value)
    if data_type == _DT_FLOAT:
        return "float_value", _f32_bytes(value, value)
    if data_type == _DT_DOUBLE:
        return "double_value", _pack_f64(value)
    if data_type in _STRING_TYPES:
        return "string_value", _len_prefixed(_check_str(value, "string value"))
    if data_type == _DT_TIME:
        return "timestamp_value", _len_prefixed(_datetime_bytes(value))
    return "elapsed_value", _len_prefixed(_timedelta_bytes(value))


def _requested(data_type: Any) -> int | None:
    if data_type is None:
        return None
    if not isinstance(data_type, int) or isinstance(data_type, bool):
        raise TypeError(f"data_type must be an MxDataType or int, not {type(data_type).__name__}")
    if not _I32_MIN <= data_type <= _I32_MAX:
        raise ValueError(f"data_type {data_type!r} is outside the int32 range")
    return int(data_type) or None


def _sparse_bytes_for_write(value: MxSparseArray) -> bytes:
    keys = _KEYS["MxSparseArray"]
    element_keys = _KEYS["MxSparseElement"]
    element_type = _check_int(value.element_data_type, _I32_MIN, _I32_MAX, "element_data_type")
    parts: _Parts = []
    _put_int32(parts, keys["element_data_type"], element_type, "element_data_type")
    _put_uint32(parts, keys["total_length"], value.total_length, "total_length")
    for index, native in value.elements:
        element: _Parts = []
        _put_uint32(element, element_keys["index"], index, "sparse element index")
        _put_len(element, element_keys["value"], to_mx_value(native, element_type))
        _put_len(parts, keys["elements"], _join(element))
    return _join(parts)


def to_mx_value(value: Any, data_type: MxDataType | int | None = None) -> bytes:
    """Encode a Python value as a serialized ``MxValue`` for a write.

    Infers the MxDataType from the value (None, bool, int, float, str, bytes, aware datetime,
    timedelta, rectangular homogeneous lists/tuples, MxSparseArray), or checks the value
    against ``data_type`` when one is given. A value that does not fit the requested type,
    nan/inf, an out-of-range int, a naive datetime or a ragged/mixed/empty-untyped list
    raises ValueError; an unsupported Python type raises TypeError. The output is
    byte-identical to protobuf's ``SerializeToString()`` of the same message.
    """
    requested = _requested(data_type)
    if value is None:
        return _value_bytes(requested or _DT_NO_DATA, "VT_EMPTY", True, "", 0, b"", None)
    if isinstance(value, bytes | bytearray):
        return _value_bytes(requested or 0, "VT_RECORD", False, "", 0, bytes(value), None)
    if isinstance(value, MxSparseArray):
        if requested is not None and requested != value.element_data_type:
            raise _mismatch(value, requested)
        arm = ("sparse_array_value", _len_prefixed(_sparse_bytes_for_write(value)))
        return _value_bytes(value.element_data_type, "", False, "", 0, b"", arm)
    if isinstance(value, list | tuple):
        dims, leaves = _flatten(value)
        if requested is None:
            if not leaves:
                raise ValueError("an empty list needs a data_type")
            kind = _leaf_kind(leaves[0])
            for leaf in leaves:
                if _leaf_kind(leaf) is not kind:
                    raise ValueError(f"mixed element types in {value!r}")
            element_type = _INFERRED[kind]
        else:
            if requested not in _ARRAY_TYPES:
                raise _mismatch(value, requested)
            element_type = requested
            for leaf in leaves:
                _leaf_kind(leaf)
        converted = [_scalar_for(leaf, element_type) for leaf in leaves]
        arm = ("array_value", _len_prefixed(_typed_array(element_type, dims, converted)))
        return _value_bytes(element_type, "", False, "", 0, b"", arm)
    if requested is None:
        scalar_kind = next((k for k in _LEAF_KINDS if isinstance(value, k)), None)
        if scalar_kind is None:
            raise TypeError(f"unsupported value type {type(value).__name__}: {value!r}")
        requested = _INFERRED[scalar_kind]
    checked = _scalar_for(value, requested)
    return _value_bytes(requested, "", False, "", 0, b"", _scalar_arm(checked, requested))


# ---- encode_event (permissive: the inverse of decoding) -----------------------------------


def _event_arm(value: Any, data_type: Any, raw_value: Any) -> _Arm:
    """D23: the ``kind`` arm for a decoded native value."""
    if value is None:
        return None
    if isinstance(value, bytes | bytearray):
        if bytes(value) != raw_value:
            raise ValueError("a bytes value must equal raw_value (it is raw_value's mirror)")
        return None
    if isinstance(value, bool):
        return "bool_value", b"\x01" if value else b"\x00"
    if isinstance(value, int):
        return _int_arm(value)
    if isinstance(value, float):
        if data_type == _DT_FLOAT and _f32_exact(value):
            return "float_value", _pack_f32(value)
        return "double_value", _pack_f64(value)
    if isinstance(value, str):
        return "string_value", _len_prefixed(_check_str(value, "string value"))
    if isinstance(value, datetime):
        return "timestamp_value", _len_prefixed(_datetime_bytes(value))
    if isinstance(value, timedelta):
        return "elapsed_value", _len_prefixed(_timedelta_bytes(value))
    if isinstance(value, list | tuple):
        return "array_value", _len_prefixed(_event_array_bytes(value, data_type))
    if isinstance(value, MxSparseArray):
        return "sparse_array_value", _len_prefixed(_event_sparse_bytes(value))
    raise TypeError(f"unsupported value type {type(value).__name__}: {value!r}")


def _event_array_bytes(value: list[Any] | tuple[Any, ...], data_type: Any) -> bytes:
    dims, leaves = _flatten(value)
    if not leaves:
        return _typed_array(data_type, dims, leaves)
    kind = _leaf_kind(leaves[0])
    for leaf in leaves:
        if _leaf_kind(leaf) is not kind:
            raise ValueError(f"mixed element types in {value!r}")
    if kind is float:
        element_type = (
            _DT_FLOAT
            if data_type == _DT_FLOAT and all(_f32_exact(v) for v in leaves)
            else _DT_DOUBLE
        )
        # Written as they are: nan and infinities may come from the gateway.
        keys = _KEYS["MxArray"]
        if element_type == _DT_FLOAT:
            chunk = _packed_chunk(keys["float_values"], b"".join([_pack_f32(v) for v in leaves]))
            return _array_bytes(element_type, dims, "float_values", chunk)
        chunk = _packed_chunk(keys["double_values"], b"".join([_pack_f64(v) for v in leaves]))
        return _array_bytes(element_type, dims, "double_values", chunk)
    if kind is str:
        element_type = data_type if data_type in _STRING_TYPES else _DT_STRING
    else:
        element_type = _INFERRED[kind]
    return _typed_array(element_type, dims, leaves)


def _event_sparse_bytes(value: MxSparseArray) -> bytes:
    keys = _KEYS["MxSparseArray"]
    element_keys = _KEYS["MxSparseElement"]
    element_type = value.element_data_type
    parts: _Parts = []
    _put_int32(parts, keys["element_data_type"], element_type, "element_data_type")
    _put_uint32(parts, keys["total_length"], value.total_length, "total_length")
    for index, native in value.elements:
        element: _Parts = []
        _put_uint32(element, element_keys["index"], index, "sparse element index")
        if native is not None:
            raw = bytes(native) if isinstance(native, bytes | bytearray) else b""
            arm = _event_arm(native, element_type, raw)
            _put_len(element, element_keys["value"], _value_bytes(0, "", False, "", 0, raw, arm))
        _put_len(parts, keys["elements"], _join(element))
    return _join(parts)
