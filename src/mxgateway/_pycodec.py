"""The pure-Python twin of the compiled codec (ext/_speedups.pyx).

Same functions, same results, same errors: tests run every codec test against both, and a
differential test compares them with protobuf. Used when the extension is missing or when
``MXGATEWAY_NO_EXTENSIONS=1`` is set. docs/codec.md is the specification (with its
"Decisions"); this module follows it to the letter.

How decoding works
------------------
Each message has a parser ``_<message>(buf, pos, end, depth, ...)`` that walks the fields of
``buf[pos:end]`` and compares each *tag* (field number and wire type together) with the tags
of the fields it knows. A known field with the wrong wire type therefore simply fails every
comparison and is skipped like an unknown field. The tags come from tables that
``configure()`` builds from the descriptors; no field number is written in this file.

protobuf merges a singular message field seen twice, and a oneof arm repeated without another
arm in between, exactly as if the occurrences' payloads were concatenated. The parsers get
that for free: a message whose state can be merged is parsed into a plain tuple, and a
second occurrence is parsed *continuing from* the first one's state. Conversions that can
fail on values protobuf accepts (timestamps to datetime, durations to timedelta) run only on
the final state (the ``_finish``/``_native`` functions), so a replaced oneof arm never
raises, while malformed bytes anywhere always do.

Errors: low-level readers raise the internal ``_Wire`` (what, offset); each message parser
turns it into ``MxGatewayDecodeError("<Message>: <what> at offset <n>")``.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any, Final, TypeAlias

from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor
from google.protobuf.message import Message

from mxgateway._errors import MxGatewayDecodeError
from mxgateway.types import (
    AlarmConditionState,
    AlarmTransition,
    AlarmTransitionKind,
    BufferedSample,
    EventBody,
    MxDataType,
    MxEvent,
    MxEventFamily,
    MxSparseArray,
    MxStatus,
    MxStatusCategory,
    MxStatusSource,
    MxValue,
    ReplayGap,
)

__all__ = [
    "configure",
    "decode_event",
    "decode_event_batch",
    "decode_varint",
    "encode_event",
    "encode_event_batch",
    "encode_flood_batch",
    "from_mx_value",
    "to_mx_value",
]

Buffer: TypeAlias = bytes | bytearray | memoryview

_MAX_DEPTH: Final = 64
_M32: Final = 0xFFFFFFFF
_M64: Final = 0xFFFFFFFFFFFFFFFF
_I32_MIN: Final = -(2**31)
_I32_MAX: Final = 2**31 - 1
_I64_MIN: Final = -(2**63)
_I64_MAX: Final = 2**63 - 1
_NS: Final = 1_000_000_000
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US: Final = timedelta(microseconds=1)

# Wire types (the protobuf encoding, not the schema).
_VARINT: Final = 0
_FIXED64: Final = 1
_LEN: Final = 2
_FIXED32: Final = 5

_unpack_f32 = struct.Struct("<f").unpack_from
_unpack_f64 = struct.Struct("<d").unpack_from
_pack_f32 = struct.Struct("<f").pack
_pack_f64 = struct.Struct("<d").pack


# ---- enums ---------------------------------------------------------------------------------


def _members(cls: type[IntEnum]) -> dict[int, Any]:
    return {int(m): m for m in cls}


_DATA_TYPES: Final = _members(MxDataType)
_FAMILIES: Final = _members(MxEventFamily)
_CATEGORIES: Final = _members(MxStatusCategory)
_SOURCES: Final = _members(MxStatusSource)
_TRANSITION_KINDS: Final = _members(AlarmTransitionKind)
_CONDITION_STATES: Final = _members(AlarmConditionState)

_DT_UNSPECIFIED: Final = MxDataType.UNSPECIFIED
_DT_NO_DATA: Final = int(MxDataType.NO_DATA)
_DT_BOOLEAN: Final = int(MxDataType.BOOLEAN)
_DT_INTEGER: Final = int(MxDataType.INTEGER)
_DT_FLOAT: Final = int(MxDataType.FLOAT)
_DT_DOUBLE: Final = int(MxDataType.DOUBLE)
_DT_STRING: Final = int(MxDataType.STRING)
_DT_TIME: Final = int(MxDataType.TIME)
_DT_ELAPSED: Final = int(MxDataType.ELAPSED_TIME)
_STRING_TYPES: Final = frozenset(
    {
        int(MxDataType.STRING),
        int(MxDataType.BIG_STRING),
        int(MxDataType.INTERNATIONALIZED_STRING),
        int(MxDataType.REFERENCE),
    }
)
_ARRAY_TYPES: Final = _STRING_TYPES | {
    _DT_BOOLEAN,
    _DT_INTEGER,
    _DT_FLOAT,
    _DT_DOUBLE,
    _DT_TIME,
    _DT_ELAPSED,
}

# The MxValue ``kind`` arms and the MxEvent ``body`` arms, as small codes in the parse state.
_A_NONE, _A_BOOL, _A_I32, _A_I64, _A_F32, _A_F64, _A_STR = 0, 1, 2, 3, 4, 5, 6
_A_TS, _A_DUR, _A_ARRAY, _A_SPARSE = 7, 8, 9, 10
_B_NONE, _B_DATA, _B_WRITE, _B_OPERATION, _B_BUFFERED, _B_ALARM = 0, 1, 2, 3, 4, 5
_BODY_NAMES: Final[tuple[EventBody, ...]] = (
    "",
    "on_data_change",
    "on_write_complete",
    "operation_complete",
    "on_buffered_data_change",
    "on_alarm_transition",
)
_BODY_CODES: Final = {name: code for code, name in enumerate(_BODY_NAMES)}

# ---- the schema the codec expects (names and types; numbers come from the descriptors) ----

_T = FieldDescriptor
_LAYOUT: Final[dict[str, tuple[tuple[str, int, bool], ...]]] = {
    "google.protobuf.Timestamp": (
        ("seconds", _T.TYPE_INT64, False),
        ("nanos", _T.TYPE_INT32, False),
    ),
    "google.protobuf.Duration": (
        ("seconds", _T.TYPE_INT64, False),
        ("nanos", _T.TYPE_INT32, False),
    ),
    "MxStatusProxy": (
        ("success", _T.TYPE_INT32, False),
        ("category", _T.TYPE_ENUM, False),
        ("detected_by", _T.TYPE_ENUM, False),
        ("detail", _T.TYPE_INT32, False),
        ("raw_category", _T.TYPE_INT32, False),
        ("raw_detected_by", _T.TYPE_INT32, False),
        ("diagnostic_text", _T.TYPE_STRING, False),
    ),
    "MxValue": (
        ("data_type", _T.TYPE_ENUM, False),
        ("variant_type", _T.TYPE_STRING, False),
        ("is_null", _T.TYPE_BOOL, False),
        ("raw_diagnostic", _T.TYPE_STRING, False),
        ("raw_data_type", _T.TYPE_INT32, False),
        ("raw_value", _T.TYPE_BYTES, False),
        ("bool_value", _T.TYPE_BOOL, False),
        ("int32_value", _T.TYPE_INT32, False),
        ("int64_value", _T.TYPE_INT64, False),
        ("float_value", _T.TYPE_FLOAT, False),
        ("double_value", _T.TYPE_DOUBLE, False),
        ("string_value", _T.TYPE_STRING, False),
        ("timestamp_value", _T.TYPE_MESSAGE, False),
        ("elapsed_value", _T.TYPE_MESSAGE, False),
        ("array_value", _T.TYPE_MESSAGE, False),
        ("sparse_array_value", _T.TYPE_MESSAGE, False),
    ),
    "MxArray": (
        ("element_data_type", _T.TYPE_ENUM, False),
        ("dimensions", _T.TYPE_UINT32, True),
        ("bool_values", _T.TYPE_BOOL, True),
        ("int32_values", _T.TYPE_INT32, True),
        ("int64_values", _T.TYPE_INT64, True),
        ("float_values", _T.TYPE_FLOAT, True),
        ("double_values", _T.TYPE_DOUBLE, True),
        ("string_values", _T.TYPE_STRING, True),
        ("timestamp_values", _T.TYPE_MESSAGE, True),
        ("elapsed_values", _T.TYPE_MESSAGE, True),
    ),
    "MxSparseArray": (
        ("element_data_type", _T.TYPE_ENUM, False),
        ("total_length", _T.TYPE_UINT32, False),
        ("elements", _T.TYPE_MESSAGE, True),
    ),
    "MxSparseElement": (("index", _T.TYPE_UINT32, False), ("value", _T.TYPE_MESSAGE, False)),
    "MxEvent": (
        ("session_id", _T.TYPE_STRING, False),
        ("family", _T.TYPE_ENUM, False),
        ("worker_sequence", _T.TYPE_UINT64, False),
        ("server_handle", _T.TYPE_INT32, False),
        ("item_handle", _T.TYPE_INT32, False),
        ("value", _T.TYPE_MESSAGE, False),
        ("quality", _T.TYPE_INT32, False),
        ("source_timestamp", _T.TYPE_MESSAGE, False),
        ("statuses", _T.TYPE_MESSAGE, True),
        ("worker_timestamp", _T.TYPE_MESSAGE, False),
        ("gateway_receive_timestamp", _T.TYPE_MESSAGE, False),
        ("hresult", _T.TYPE_INT32, False),
        ("raw_status", _T.TYPE_STRING, False),
        ("replay_gap", _T.TYPE_MESSAGE, False),
        ("on_data_change", _T.TYPE_MESSAGE, False),
        ("on_write_complete", _T.TYPE_MESSAGE, False),
        ("operation_complete", _T.TYPE_MESSAGE, False),
        ("on_buffered_data_change", _T.TYPE_MESSAGE, False),
        ("on_alarm_transition", _T.TYPE_MESSAGE, False),
    ),
    "OnBufferedDataChangeEvent": (
        ("data_type", _T.TYPE_ENUM, False),
        ("samples", _T.TYPE_MESSAGE, True),
    ),
    "BufferedSample": (
        ("value", _T.TYPE_MESSAGE, False),
        ("quality", _T.TYPE_INT32, False),
        ("source_timestamp", _T.TYPE_MESSAGE, False),
    ),
    "ReplayGap": (
        ("requested_after_sequence", _T.TYPE_UINT64, False),
        ("oldest_available_sequence", _T.TYPE_UINT64, False),
    ),
    "MxEventBatch": (("events", _T.TYPE_MESSAGE, True),),
    "OnAlarmTransitionEvent": (
        ("alarm_full_reference", _T.TYPE_STRING, False),
        ("source_object_reference", _T.TYPE_STRING, False),
        ("alarm_type_name", _T.TYPE_STRING, False),
        ("transition_kind", _T.TYPE_ENUM, False),
        ("severity", _T.TYPE_INT32, False),
        ("original_raise_timestamp", _T.TYPE_MESSAGE, False),
        ("transition_timestamp", _T.TYPE_MESSAGE, False),
        ("operator_user", _T.TYPE_STRING, False),
        ("operator_comment", _T.TYPE_STRING, False),
        ("category", _T.TYPE_STRING, False),
        ("description", _T.TYPE_STRING, False),
        ("current_value", _T.TYPE_MESSAGE, False),
        ("limit_value", _T.TYPE_MESSAGE, False),
        ("degraded", _T.TYPE_BOOL, False),
        ("current_state", _T.TYPE_ENUM, False),
    ),
    # Family markers: no fields today, parsed (and their unknown fields skipped) all the same.
    "OnDataChangeEvent": (),
    "OnWriteCompleteEvent": (),
    "OperationCompleteEvent": (),
}

_WIRE_OF_TYPE: Final = {
    _T.TYPE_INT32: _VARINT,
    _T.TYPE_INT64: _VARINT,
    _T.TYPE_UINT32: _VARINT,
    _T.TYPE_UINT64: _VARINT,
    _T.TYPE_BOOL: _VARINT,
    _T.TYPE_ENUM: _VARINT,
    _T.TYPE_FLOAT: _FIXED32,
    _T.TYPE_DOUBLE: _FIXED64,
    _T.TYPE_STRING: _LEN,
    _T.TYPE_BYTES: _LEN,
    _T.TYPE_MESSAGE: _LEN,
}

# Encoder keys: per message, field name -> (number, tag bytes).
_KEYS: dict[str, dict[str, tuple[int, bytes]]] = {}

# Decoder tag tables (tuples unpacked into locals by each parser), filled by configure().
_TS_TAGS: tuple[int, ...] = ()
_DUR_TAGS: tuple[int, ...] = ()
_STATUS_TAGS: tuple[int, ...] = ()
_VALUE_TAGS: tuple[int, ...] = ()
_ARRAY_TAGS: tuple[int, ...] = ()
_SPARSE_TAGS: tuple[int, ...] = ()
_ELEMENT_TAGS: tuple[int, ...] = ()
_EVENT_TAGS: tuple[int, ...] = ()
_BUFFERED_TAGS: tuple[int, ...] = ()
_SAMPLE_TAGS: tuple[int, ...] = ()
_GAP_TAGS: tuple[int, ...] = ()
_BATCH_TAGS: tuple[int, ...] = ()
_ALARM_TAGS: tuple[int, ...] = ()


def _find_message(file_descriptor: FileDescriptor, full_name: str) -> Descriptor:
    package = file_descriptor.package
    if full_name.startswith("google.protobuf."):
        for dependency in file_descriptor.dependencies:
            found = dependency.message_types_by_name.get(full_name.rsplit(".", 1)[1])
            if found is not None and found.full_name == full_name:
                return found
        raise ValueError(f"{file_descriptor.name} does not import {full_name}")
    found = file_descriptor.message_types_by_name.get(full_name)
    if found is None:
        raise ValueError(f"{file_descriptor.name} has no message {package}.{full_name}")
    return found


def configure(file_descriptor: FileDescriptor | None = None) -> None:
    """(Re)build the field-number tables from ``file_descriptor`` (default: the generated one).

    Field numbers are read by field *name* from the ``mxaccess_gateway.v1`` messages of the
    given ``mxaccess_gateway.proto`` descriptor, and those of ``google.protobuf.Timestamp`` /
    ``Duration`` from its dependencies. A missing message or field, or a field whose type is
    not the one the codec decodes, raises ValueError and leaves the tables unchanged.
    Called once at import; tests call it with a renumbered copy, then ``configure()``.
    """
    global _KEYS, _TS_TAGS, _DUR_TAGS, _STATUS_TAGS, _VALUE_TAGS, _ARRAY_TAGS
    global _SPARSE_TAGS, _ELEMENT_TAGS, _EVENT_TAGS, _BUFFERED_TAGS, _SAMPLE_TAGS, _GAP_TAGS
    global _BATCH_TAGS, _ALARM_TAGS
    if file_descriptor is None:
        from mxgateway.generated import mxaccess_gateway_pb2

        file_descriptor = mxaccess_gateway_pb2.DESCRIPTOR
    fields: dict[str, dict[str, tuple[int, int]]] = {}
    for message_name, layout in _LAYOUT.items():
        descriptor = _find_message(file_descriptor, message_name)
        table: dict[str, tuple[int, int]] = {}
        for field_name, field_type, repeated in layout:
            field = descriptor.fields_by_name.get(field_name)
            if field is None:
                raise ValueError(f"{descriptor.full_name} has no field {field_name!r}")
            if field.type != field_type or bool(field.is_repeated) != repeated:
                raise ValueError(
                    f"{descriptor.full_name}.{field_name} is not of the type the codec decodes"
                )
            wire = _WIRE_OF_TYPE[field_type]
            if repeated and wire != _LEN:
                wire = _LEN  # repeated numeric fields are written packed
            table[field_name] = (field.number, wire)
        fields[message_name] = table

    def tag(message: str, field: str, wire: int | None = None) -> int:
        number, packed_or_natural = fields[message][field]
        if wire is None:
            wire = packed_or_natural
        return (number << 3) | wire

    def tags(message: str) -> tuple[int, ...]:
        out: list[int] = []
        for field_name, field_type, repeated in _LAYOUT[message]:
            natural = _WIRE_OF_TYPE[field_type]
            out.append(tag(message, field_name, natural))
            if repeated and natural != _LEN:
                out.append(tag(message, field_name, _LEN))
        return tuple(out)

    keys = {
        message.rsplit(".", 1)[-1]: {
            name: (number, _uvarint((number << 3) | wire)) for name, (number, wire) in t.items()
        }
        for message, t in fields.items()
    }
    ts_tags = tags("google.protobuf.Timestamp")
    dur_tags = tags("google.protobuf.Duration")
    status_tags = tags("MxStatusProxy")
    value_tags = tags("MxValue")
    array_tags = tags("MxArray")
    sparse_tags = tags("MxSparseArray")
    element_tags = tags("MxSparseElement")
    event_tags = tags("MxEvent")
    buffered_tags = tags("OnBufferedDataChangeEvent")
    sample_tags = tags("BufferedSample")
    gap_tags = tags("ReplayGap")
    batch_tags = tags("MxEventBatch")
    alarm_tags = tags("OnAlarmTransitionEvent")
    # All checks passed: switch the tables in one go.
    _KEYS = keys
    _TS_TAGS, _DUR_TAGS, _STATUS_TAGS, _VALUE_TAGS = ts_tags, dur_tags, status_tags, value_tags
    _ARRAY_TAGS, _SPARSE_TAGS, _ELEMENT_TAGS = array_tags, sparse_tags, element_tags
    _EVENT_TAGS, _BUFFERED_TAGS, _SAMPLE_TAGS = event_tags, buffered_tags, sample_tags
    _GAP_TAGS, _BATCH_TAGS, _ALARM_TAGS = gap_tags, batch_tags, alarm_tags


# ---- low-level readers ---------------------------------------------------------------------


class _Wire(Exception):
    """A wire-level problem at an offset; the message parser adds its name."""

    def __init__(self, what: str, offset: int) -> None:
        super().__init__(what, offset)
        self.what = what
        self.offset = offset


def _error(message: str, exc: _Wire) -> MxGatewayDecodeError:
    return MxGatewayDecodeError(f"{message}: {exc.what} at offset {exc.offset}")


def _too_deep(message: str, pos: int) -> MxGatewayDecodeError:
    return MxGatewayDecodeError(
        f"{message}: messages nested deeper than {_MAX_DEPTH} levels at offset {pos}"
    )


def _as_bytes(data: Any) -> bytes:
    if type(data) is bytes:
        return data
    view = memoryview(data)  # TypeError for objects without the buffer protocol
    if not view.c_contiguous:
        raise BufferError("the codec needs a C-contiguous buffer")
    return view.tobytes()


def decode_varint(data: Buffer, offset: int = 0) -> tuple[int, int]:
    """Decode one base-128 varint at ``offset``; return ``(value, next_offset)``.

    The value is the unsigned 64-bit integer the bytes encode; as in protobuf, bits past the
    64th in a tenth byte are dropped. A varint longer than ten bytes, or one cut off by the end
    of ``data``, raises MxGatewayDecodeError.
    """
    view = memoryview(data).cast("B") if not isinstance(data, bytes) else data
    end = len(view)
    if offset < 0 or offset > end:
        raise MxGatewayDecodeError(f"offset {offset} outside a buffer of {end} bytes")
    pos = offset
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise MxGatewayDecodeError(f"truncated varint at offset {offset}")
        byte = view[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & 0xFFFFFFFFFFFFFFFF, pos
        shift += 7
        if shift > 63:
            raise MxGatewayDecodeError(f"varint at offset {offset} is longer than 10 bytes")


def _varint(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """A varint as unsigned 64 bits (bits past the 64th dropped); at most 10 bytes."""
    if pos + 10 > end:
        return _varint_near_end(buf, pos, end)
    # Ten bytes are inside [pos, end): unrolled, no bounds checks (the common case).
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    r = b & 0x7F
    b = buf[pos + 1]
    if b < 0x80:
        return r | b << 7, pos + 2
    r |= (b & 0x7F) << 7
    b = buf[pos + 2]
    if b < 0x80:
        return r | b << 14, pos + 3
    r |= (b & 0x7F) << 14
    b = buf[pos + 3]
    if b < 0x80:
        return r | b << 21, pos + 4
    r |= (b & 0x7F) << 21
    b = buf[pos + 4]
    if b < 0x80:
        return r | b << 28, pos + 5
    r |= (b & 0x7F) << 28
    b = buf[pos + 5]
    if b < 0x80:
        return r | b << 35, pos + 6
    r |= (b & 0x7F) << 35
    b = buf[pos + 6]
    if b < 0x80:
        return r | b << 42, pos + 7
    r |= (b & 0x7F) << 42
    b = buf[pos + 7]
    if b < 0x80:
        return r | b << 49, pos + 8
    r |= (b & 0x7F) << 49
    b = buf[pos + 8]
    if b < 0x80:
        return r | b << 56, pos + 9
    r |= (b & 0x7F) << 56
    b = buf[pos + 9]
    if b < 0x80:
        return (r | b << 63) & _M64, pos + 10
    raise _Wire("varint longer than 10 bytes", pos)


def _varint_near_end(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    start = pos
    result = 0
    shift = 0
    while pos < end:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result & _M64, pos
        shift += 7
        if shift == 70:
            raise _Wire("varint longer than 10 bytes", start)
    raise _Wire("truncated varint", start)


def _varint32(buf: bytes, pos: int, end: int, what: str) -> tuple[int, int]:
    """A tag or a length: at most 5 bytes, value below 2**32 (as upb requires)."""
    start = pos
    result = 0
    shift = 0
    while pos < end:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            if result > _M32:
                raise _Wire(f"{what} does not fit in 32 bits", start)
            return result, pos
        shift += 7
        if shift == 35:
            raise _Wire(f"{what} longer than 5 bytes", start)
    raise _Wire(f"truncated {what}", start)


def _int32(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value, pos = _varint(buf, pos, end)
    value &= _M32
    return (value - 0x100000000 if value > _I32_MAX else value), pos


def _uint32(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value, pos = _varint(buf, pos, end)
    return value & _M32, pos


def _int64(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    value, pos = _varint(buf, pos, end)
    return (value - 0x10000000000000000 if value > _I64_MAX else value), pos


def _ld(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """A length-delimited payload: return its ``(start, stop)``."""
    if pos < end:
        n = buf[pos]
        if n < 0x80:
            stop = pos + 1 + n
            if stop > end:
                raise _Wire(f"length {n} runs past the end", pos)
            return pos + 1, stop
    n, start = _varint32(buf, pos, end, "length")
    stop = start + n
    if stop > end:
        raise _Wire(f"length {n} runs past the end", pos)
    return start, stop


def _utf8(buf: bytes, start: int, stop: int) -> str:
    try:
        return buf[start:stop].decode()
    except UnicodeDecodeError:
        raise _Wire("invalid UTF-8 in a string field", start) from None


def _skip(buf: bytes, tag: int, pos: int, end: int, depth: int) -> int:
    """Skip the value of an unknown field whose tag was just read; return the next offset."""
    wire = tag & 7
    if tag < 8:
        raise _Wire("field number 0", pos)
    if wire == _VARINT:
        return _varint(buf, pos, end)[1]
    if wire == _LEN:
        return _ld(buf, pos, end)[1]
    if wire == _FIXED64:
        if pos + 8 > end:
            raise _Wire("truncated 64-bit field", pos)
        return pos + 8
    if wire == _FIXED32:
        if pos + 4 > end:
            raise _Wire("truncated 32-bit field", pos)
        return pos + 4
    if wire == 3:
        return _skip_group(buf, tag >> 3, pos, end, depth + 1)
    if wire == 4:
        raise _Wire("end-group without a start-group", pos)
    raise _Wire(f"invalid wire type {wire}", pos)


def _skip_group(buf: bytes, number: int, pos: int, end: int, depth: int) -> int:
    if depth > _MAX_DEPTH:
        raise _Wire(f"groups nested deeper than {_MAX_DEPTH} levels", pos)
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _varint32(buf, pos, end, "tag")
        if tag & 7 == 4:
            if tag >> 3 == number:
                return pos
            raise _Wire("end-group does not match its start-group", pos)
        pos = _skip(buf, tag, pos, end, depth)
    raise _Wire("group not terminated", pos)


def _packed_varints(buf: bytes, pos: int, stop: int) -> list[int]:
    out: list[int] = []
    append = out.append
    while pos < stop:
        byte = buf[pos]
        if byte < 0x80:
            append(byte)
            pos += 1
        else:
            value, pos = _varint(buf, pos, stop)
            append(value)
    return out


def _packed_fixed(buf: bytes, pos: int, stop: int, size: int, code: str) -> tuple[float, ...]:
    count, rest = divmod(stop - pos, size)
    if rest:
        raise _Wire(f"packed {size * 8}-bit run of {stop - pos} bytes", pos)
    return struct.unpack_from(f"<{count}{code}", buf, pos)


def _to_int32(value: int) -> int:
    value &= _M32
    return value - 0x100000000 if value > _I32_MAX else value


def _to_int64(value: int) -> int:
    return value - 0x10000000000000000 if value > _I64_MAX else value


# ---- message parsers -----------------------------------------------------------------------
#
# Parse states (merged by parsing a later occurrence on top of an earlier one):
#   Timestamp / Duration   (seconds, nanos)
#   MxValue                (data_type, variant_type, is_null, raw_diagnostic, raw_data_type,
#                           raw_value, arm, payload)   payload: the arm's native scalar, a
#                           (seconds, nanos) pair, an array state or a sparse state
#   MxArray                (element_data_type, dimensions, bools, int32s, int64s, floats,
#                           doubles, strings, timestamps, durations)   lists, appended to
#   MxSparseArray          (element_data_type, total_length, [(index, value state | None)])
#   ReplayGap              (requested_after_sequence, oldest_available_sequence)
#   OnBufferedDataChange   (data_type, [sample state])
#   BufferedSample         (value state | None, quality, (seconds, nanos) | None)
#   OnAlarmTransitionEvent a 15-tuple in field order (values and timestamps as states)

_Pair: TypeAlias = tuple[int, int]
_ValueState: TypeAlias = tuple[int, str, bool, str, int, bytes, int, Any]
_EMPTY_VALUE: Final[_ValueState] = (0, "", False, "", 0, b"", _A_NONE, None)
_ZERO_PAIR: Final[_Pair] = (0, 0)


def _seconds_nanos(
    buf: bytes, pos: int, end: int, depth: int, state: _Pair, tags: tuple[int, ...], name: str
) -> _Pair:
    if depth > _MAX_DEPTH:
        raise _too_deep(name, pos)
    t_seconds, t_nanos = tags
    seconds, nanos = state
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_seconds:
                seconds, pos = _int64(buf, pos, end)
            elif tag == t_nanos:
                nanos, pos = _int32(buf, pos, end)
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error(name, exc) from None
    return seconds, nanos


def _timestamp(buf: bytes, pos: int, end: int, depth: int, state: _Pair | None) -> _Pair:
    # _seconds_nanos for Timestamp, written out: three of these per event.
    if depth > _MAX_DEPTH:
        raise _too_deep("Timestamp", pos)
    t_seconds, t_nanos = _TS_TAGS
    seconds, nanos = state or _ZERO_PAIR
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_seconds:
                seconds, pos = _varint(buf, pos, end)
                if seconds > _I64_MAX:
                    seconds -= 0x10000000000000000
            elif tag == t_nanos:
                nanos, pos = _varint(buf, pos, end)
                nanos &= _M32
                if nanos > _I32_MAX:
                    nanos -= 0x100000000
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("Timestamp", exc) from None
    return seconds, nanos


def _duration(buf: bytes, pos: int, end: int, depth: int, state: _Pair | None) -> _Pair:
    return _seconds_nanos(buf, pos, end, depth, state or _ZERO_PAIR, _DUR_TAGS, "Duration")


def _empty(buf: bytes, pos: int, end: int, depth: int, name: str) -> None:
    """A message with no known fields (the family markers): validate and skip its content."""
    if depth > _MAX_DEPTH:
        raise _too_deep(name, pos)
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error(name, exc) from None


def _status(buf: bytes, pos: int, end: int, depth: int) -> MxStatus:
    if depth > _MAX_DEPTH:
        raise _too_deep("MxStatusProxy", pos)
    t_success, t_category, t_detected, t_detail, t_raw_cat, t_raw_det, t_text = _STATUS_TAGS
    success = category = detected_by = detail = raw_category = raw_detected_by = 0
    text = ""
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_success:
                if pos < end and buf[pos] < 0x80:
                    success = buf[pos]
                    pos += 1
                else:
                    success, pos = _int32(buf, pos, end)
            elif tag == t_category:
                if pos < end and buf[pos] < 0x80:
                    category = buf[pos]
                    pos += 1
                else:
                    category, pos = _int32(buf, pos, end)
            elif tag == t_detected:
                if pos < end and buf[pos] < 0x80:
                    detected_by = buf[pos]
                    pos += 1
                else:
                    detected_by, pos = _int32(buf, pos, end)
            elif tag == t_detail:
                detail, pos = _int32(buf, pos, end)
            elif tag == t_raw_cat:
                raw_category, pos = _int32(buf, pos, end)
            elif tag == t_raw_det:
                raw_detected_by, pos = _int32(buf, pos, end)
            elif tag == t_text:
                start, pos = _ld(buf, pos, end)
                text = _utf8(buf, start, pos)
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("MxStatusProxy", exc) from None
    return MxStatus(
        success,
        _CATEGORIES.get(category, category),
        _SOURCES.get(detected_by, detected_by),
        detail,
        raw_category,
        raw_detected_by,
        text,
    )


def _value(buf: bytes, pos: int, end: int, depth: int, state: _ValueState | None) -> _ValueState:
    if depth > _MAX_DEPTH:
        raise _too_deep("MxValue", pos)
    (
        t_data_type,
        t_variant,
        t_is_null,
        t_raw_diag,
        t_raw_dt,
        t_raw_value,
        t_bool,
        t_int32,
        t_int64,
        t_float,
        t_double,
        t_string,
        t_timestamp,
        t_elapsed,
        t_array,
        t_sparse,
    ) = _VALUE_TAGS
    data_type, variant, is_null, raw_diag, raw_dt, raw_value, arm, payload = state or _EMPTY_VALUE
    inner = depth + 1
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_data_type:
                if pos < end and buf[pos] < 0x80:
                    data_type = buf[pos]
                    pos += 1
                else:
                    data_type, pos = _int32(buf, pos, end)
            elif tag == t_variant:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                variant = _utf8(buf, start, pos)
            elif tag == t_is_null:
                raw, pos = _varint(buf, pos, end)
                is_null = raw != 0
            elif tag == t_raw_diag:
                start, pos = _ld(buf, pos, end)
                raw_diag = _utf8(buf, start, pos)
            elif tag == t_raw_dt:
                if pos < end and buf[pos] < 0x80:
                    raw_dt = buf[pos]
                    pos += 1
                else:
                    raw_dt, pos = _int32(buf, pos, end)
            elif tag == t_raw_value:
                start, pos = _ld(buf, pos, end)
                raw_value = buf[start:pos]
            elif tag == t_bool:
                if pos < end and buf[pos] < 0x80:
                    raw = buf[pos]
                    pos += 1
                else:
                    raw, pos = _varint(buf, pos, end)
                arm = _A_BOOL
                payload = raw != 0
            elif tag == t_int32:
                arm = _A_I32
                if pos < end and buf[pos] < 0x80:
                    payload = buf[pos]
                    pos += 1
                else:
                    payload, pos = _int32(buf, pos, end)
            elif tag == t_int64:
                arm = _A_I64
                payload, pos = _int64(buf, pos, end)
            elif tag == t_float:
                if pos + 4 > end:
                    raise _Wire("truncated 32-bit field", pos)
                arm = _A_F32
                payload = _unpack_f32(buf, pos)[0]
                pos += 4
            elif tag == t_double:
                if pos + 8 > end:
                    raise _Wire("truncated 64-bit field", pos)
                arm = _A_F64
                payload = _unpack_f64(buf, pos)[0]
                pos += 8
            elif tag == t_string:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                payload = _utf8(buf, start, pos)
                arm = _A_STR
            elif tag == t_timestamp:
                start, pos = _ld(buf, pos, end)
                payload = _timestamp(buf, start, pos, inner, payload if arm == _A_TS else None)
                arm = _A_TS
            elif tag == t_elapsed:
                start, pos = _ld(buf, pos, end)
                payload = _duration(buf, start, pos, inner, payload if arm == _A_DUR else None)
                arm = _A_DUR
            elif tag == t_array:
                start, pos = _ld(buf, pos, end)
                payload = _array(buf, start, pos, inner, payload if arm == _A_ARRAY else None)
                arm = _A_ARRAY
            elif tag == t_sparse:
                start, pos = _ld(buf, pos, end)
                payload = _sparse(buf, start, pos, inner, payload if arm == _A_SPARSE else None)
                arm = _A_SPARSE
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("MxValue", exc) from None
    return data_type, variant, is_null, raw_diag, raw_dt, raw_value, arm, payload


_ArrayState: TypeAlias = tuple[
    int,
    list[int],
    list[bool],
    list[int],
    list[int],
    list[float],
    list[float],
    list[str],
    list[_Pair],
    list[_Pair],
]


def _array(buf: bytes, pos: int, end: int, depth: int, state: _ArrayState | None) -> _ArrayState:
    if depth > _MAX_DEPTH:
        raise _too_deep("MxArray", pos)
    (
        t_element_type,
        t_dims,
        t_dims_packed,
        t_bools,
        t_bools_packed,
        t_int32s,
        t_int32s_packed,
        t_int64s,
        t_int64s_packed,
        t_floats,
        t_floats_packed,
        t_doubles,
        t_doubles_packed,
        t_strings,
        t_timestamps,
        t_durations,
    ) = _ARRAY_TAGS
    if state is None:
        element_type = 0
        dims: list[int] = []
        bools: list[bool] = []
        int32s: list[int] = []
        int64s: list[int] = []
        floats: list[float] = []
        doubles: list[float] = []
        strings: list[str] = []
        timestamps: list[_Pair] = []
        durations: list[_Pair] = []
    else:
        (
            element_type,
            dims,
            bools,
            int32s,
            int64s,
            floats,
            doubles,
            strings,
            timestamps,
            durations,
        ) = state
    inner = depth + 1
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_element_type:
                element_type, pos = _int32(buf, pos, end)
            elif tag == t_dims:
                raw, pos = _varint(buf, pos, end)
                dims.append(raw & _M32)
            elif tag == t_dims_packed:
                start, pos = _ld(buf, pos, end)
                dims.extend([v & _M32 for v in _packed_varints(buf, start, pos)])
            elif tag == t_bools:
                raw, pos = _varint(buf, pos, end)
                bools.append(raw != 0)
            elif tag == t_bools_packed:
                start, pos = _ld(buf, pos, end)
                bools.extend([v != 0 for v in _packed_varints(buf, start, pos)])
            elif tag == t_int32s:
                raw, pos = _int32(buf, pos, end)
                int32s.append(raw)
            elif tag == t_int32s_packed:
                start, pos = _ld(buf, pos, end)
                int32s.extend([_to_int32(v) for v in _packed_varints(buf, start, pos)])
            elif tag == t_int64s:
                raw, pos = _int64(buf, pos, end)
                int64s.append(raw)
            elif tag == t_int64s_packed:
                start, pos = _ld(buf, pos, end)
                int64s.extend([_to_int64(v) for v in _packed_varints(buf, start, pos)])
            elif tag == t_floats:
                if pos + 4 > end:
                    raise _Wire("truncated 32-bit field", pos)
                floats.append(_unpack_f32(buf, pos)[0])
                pos += 4
            elif tag == t_floats_packed:
                start, pos = _ld(buf, pos, end)
                floats.extend(_packed_fixed(buf, start, pos, 4, "f"))
            elif tag == t_doubles:
                if pos + 8 > end:
                    raise _Wire("truncated 64-bit field", pos)
                doubles.append(_unpack_f64(buf, pos)[0])
                pos += 8
            elif tag == t_doubles_packed:
                start, pos = _ld(buf, pos, end)
                doubles.extend(_packed_fixed(buf, start, pos, 8, "d"))
            elif tag == t_strings:
                start, pos = _ld(buf, pos, end)
                strings.append(_utf8(buf, start, pos))
            elif tag == t_timestamps:
                start, pos = _ld(buf, pos, end)
                timestamps.append(_timestamp(buf, start, pos, inner, None))
            elif tag == t_durations:
                start, pos = _ld(buf, pos, end)
                durations.append(_duration(buf, start, pos, inner, None))
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("MxArray", exc) from None
    return (
        element_type,
        dims,
        bools,
        int32s,
        int64s,
        floats,
        doubles,
        strings,
        timestamps,
        durations,
    )


_SparseState: TypeAlias = tuple[int, int, list[tuple[int, _ValueState | None]]]


def _sparse(buf: bytes, pos: int, end: int, depth: int, state: _SparseState | None) -> _SparseState:
    if depth > _MAX_DEPTH:
        raise _too_deep("MxSparseArray", pos)
    t_element_type, t_total, t_elements = _SPARSE_TAGS
    if state is None:
        element_type = total = 0
        elements: list[tuple[int, _ValueState | None]] = []
    else:
        element_type, total, elements = state
    inner = depth + 1
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_element_type:
                element_type, pos = _int32(buf, pos, end)
            elif tag == t_total:
                total, pos = _uint32(buf, pos, end)
            elif tag == t_elements:
                start, pos = _ld(buf, pos, end)
                elements.append(_sparse_element(buf, start, pos, inner))
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("MxSparseArray", exc) from None
    return element_type, total, elements


def _sparse_element(buf: bytes, pos: int, end: int, depth: int) -> tuple[int, _ValueState | None]:
    if depth > _MAX_DEPTH:
        raise _too_deep("MxSparseElement", pos)
    t_index, t_value = _ELEMENT_TAGS
    index = 0
    value: _ValueState | None = None
    inner = depth + 1
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_index:
                index, pos = _uint32(buf, pos, end)
            elif tag == t_value:
                start, pos = _ld(buf, pos, end)
                value = _value(buf, start, pos, inner, value)
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("MxSparseElement", exc) from None
    return index, value


def _replay_gap(buf: bytes, pos: int, end: int, depth: int, state: _Pair | None) -> _Pair:
    if depth > _MAX_DEPTH:
        raise _too_deep("ReplayGap", pos)
    t_requested, t_oldest = _GAP_TAGS
    requested, oldest = state or _ZERO_PAIR
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_requested:
                requested, pos = _varint(buf, pos, end)
            elif tag == t_oldest:
                oldest, pos = _varint(buf, pos, end)
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("ReplayGap", exc) from None
    return requested, oldest


_SampleState: TypeAlias = tuple[_ValueState | None, int, _Pair | None]
_BufferedState: TypeAlias = tuple[int, list[_SampleState]]


def _buffered(
    buf: bytes, pos: int, end: int, depth: int, state: _BufferedState | None
) -> _BufferedState:
    if depth > _MAX_DEPTH:
        raise _too_deep("OnBufferedDataChangeEvent", pos)
    t_data_type, t_samples = _BUFFERED_TAGS
    if state is None:
        data_type = 0
        samples: list[_SampleState] = []
    else:
        data_type, samples = state
    inner = depth + 1
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_data_type:
                data_type, pos = _int32(buf, pos, end)
            elif tag == t_samples:
                start, pos = _ld(buf, pos, end)
                samples.append(_sample(buf, start, pos, inner))
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("OnBufferedDataChangeEvent", exc) from None
    return data_type, samples


def _sample(buf: bytes, pos: int, end: int, depth: int) -> _SampleState:
    if depth > _MAX_DEPTH:
        raise _too_deep("BufferedSample", pos)
    t_value, t_quality, t_timestamp = _SAMPLE_TAGS
    value: _ValueState | None = None
    quality = 0
    timestamp: _Pair | None = None
    inner = depth + 1
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_value:
                start, pos = _ld(buf, pos, end)
                value = _value(buf, start, pos, inner, value)
            elif tag == t_quality:
                quality, pos = _int32(buf, pos, end)
            elif tag == t_timestamp:
                start, pos = _ld(buf, pos, end)
                timestamp = _timestamp(buf, start, pos, inner, timestamp)
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("BufferedSample", exc) from None
    return value, quality, timestamp


_AlarmState: TypeAlias = tuple[Any, ...]
_EMPTY_ALARM: Final[_AlarmState] = (
    "",
    "",
    "",
    0,
    0,
    None,
    None,
    "",
    "",
    "",
    "",
    None,
    None,
    False,
    0,
)


def _alarm(buf: bytes, pos: int, end: int, depth: int, state: _AlarmState | None) -> _AlarmState:
    if depth > _MAX_DEPTH:
        raise _too_deep("OnAlarmTransitionEvent", pos)
    (
        t_reference,
        t_source,
        t_type_name,
        t_kind,
        t_severity,
        t_raised,
        t_transition,
        t_user,
        t_comment,
        t_category,
        t_description,
        t_current,
        t_limit,
        t_degraded,
        t_state,
    ) = _ALARM_TAGS
    (
        reference,
        source,
        type_name,
        kind,
        severity,
        raised,
        transition,
        user,
        comment,
        category,
        description,
        current,
        limit,
        degraded,
        condition,
    ) = state or _EMPTY_ALARM
    inner = depth + 1
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_reference:
                start, pos = _ld(buf, pos, end)
                reference = _utf8(buf, start, pos)
            elif tag == t_source:
                start, pos = _ld(buf, pos, end)
                source = _utf8(buf, start, pos)
            elif tag == t_type_name:
                start, pos = _ld(buf, pos, end)
                type_name = _utf8(buf, start, pos)
            elif tag == t_kind:
                kind, pos = _int32(buf, pos, end)
            elif tag == t_severity:
                severity, pos = _int32(buf, pos, end)
            elif tag == t_raised:
                start, pos = _ld(buf, pos, end)
                raised = _timestamp(buf, start, pos, inner, raised)
            elif tag == t_transition:
                start, pos = _ld(buf, pos, end)
                transition = _timestamp(buf, start, pos, inner, transition)
            elif tag == t_user:
                start, pos = _ld(buf, pos, end)
                user = _utf8(buf, start, pos)
            elif tag == t_comment:
                start, pos = _ld(buf, pos, end)
                comment = _utf8(buf, start, pos)
            elif tag == t_category:
                start, pos = _ld(buf, pos, end)
                category = _utf8(buf, start, pos)
            elif tag == t_description:
                start, pos = _ld(buf, pos, end)
                description = _utf8(buf, start, pos)
            elif tag == t_current:
                start, pos = _ld(buf, pos, end)
                current = _value(buf, start, pos, inner, current)
            elif tag == t_limit:
                start, pos = _ld(buf, pos, end)
                limit = _value(buf, start, pos, inner, limit)
            elif tag == t_degraded:
                raw, pos = _varint(buf, pos, end)
                degraded = raw != 0
            elif tag == t_state:
                condition, pos = _int32(buf, pos, end)
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("OnAlarmTransitionEvent", exc) from None
    return (
        reference,
        source,
        type_name,
        kind,
        severity,
        raised,
        transition,
        user,
        comment,
        category,
        description,
        current,
        limit,
        degraded,
        condition,
    )


def _event(
    buf: bytes, pos: int, end: int, depth: int, tags: dict[int, str] | None = None
) -> MxEvent:
    # The hot path: one-byte lengths and varints (the common case) are read inline, anything
    # longer goes through _ld / _varint / _int32, which do the same with every check.
    if depth > _MAX_DEPTH:
        raise _too_deep("MxEvent", pos)
    (
        t_session,
        t_family,
        t_sequence,
        t_server,
        t_item,
        t_value,
        t_quality,
        t_source_ts,
        t_statuses,
        t_worker_ts,
        t_gateway_ts,
        t_hresult,
        t_raw_status,
        t_gap,
        t_on_data,
        t_on_write,
        t_operation,
        t_on_buffered,
        t_on_alarm,
    ) = _EVENT_TAGS
    session = raw_status = ""
    family = sequence = server = item = quality = 0
    hresult: int | None = None
    value: _ValueState | None = None
    source_ts: _Pair | None = None
    worker_ts: _Pair | None = None
    gateway_ts: _Pair | None = None
    gap: _Pair | None = None
    statuses: list[MxStatus] = []
    body = _B_NONE
    body_state: Any = None
    inner = depth + 1
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_session:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                session = _utf8(buf, start, pos)
            elif tag == t_family:
                if pos < end and buf[pos] < 0x80:
                    family = buf[pos]
                    pos += 1
                else:
                    family, pos = _int32(buf, pos, end)
            elif tag == t_sequence:
                if pos < end and buf[pos] < 0x80:
                    sequence = buf[pos]
                    pos += 1
                else:
                    sequence, pos = _varint(buf, pos, end)
            elif tag == t_server:
                if pos < end and buf[pos] < 0x80:
                    server = buf[pos]
                    pos += 1
                else:
                    server, pos = _int32(buf, pos, end)
            elif tag == t_item:
                if pos < end and buf[pos] < 0x80:
                    item = buf[pos]
                    pos += 1
                else:
                    item, pos = _int32(buf, pos, end)
            elif tag == t_value:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                value = _value(buf, start, pos, inner, value)
            elif tag == t_quality:
                if pos < end and buf[pos] < 0x80:
                    quality = buf[pos]
                    pos += 1
                else:
                    quality, pos = _int32(buf, pos, end)
            elif tag == t_source_ts:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                source_ts = _timestamp(buf, start, pos, inner, source_ts)
            elif tag == t_statuses:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                statuses.append(_status(buf, start, pos, inner))
            elif tag == t_worker_ts:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                worker_ts = _timestamp(buf, start, pos, inner, worker_ts)
            elif tag == t_gateway_ts:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                gateway_ts = _timestamp(buf, start, pos, inner, gateway_ts)
            elif tag == t_hresult:
                hresult, pos = _int32(buf, pos, end)
            elif tag == t_raw_status:
                start, pos = _ld(buf, pos, end)
                raw_status = _utf8(buf, start, pos)
            elif tag == t_gap:
                start, pos = _ld(buf, pos, end)
                gap = _replay_gap(buf, start, pos, inner, gap)
            elif tag == t_on_data:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                if start != pos or inner > _MAX_DEPTH:
                    _empty(buf, start, pos, inner, "OnDataChangeEvent")
                body = _B_DATA
                body_state = None
            elif tag == t_on_write:
                start, pos = _ld(buf, pos, end)
                _empty(buf, start, pos, inner, "OnWriteCompleteEvent")
                body = _B_WRITE
                body_state = None
            elif tag == t_operation:
                start, pos = _ld(buf, pos, end)
                _empty(buf, start, pos, inner, "OperationCompleteEvent")
                body = _B_OPERATION
                body_state = None
            elif tag == t_on_buffered:
                start, pos = _ld(buf, pos, end)
                body_state = _buffered(
                    buf, start, pos, inner, body_state if body == _B_BUFFERED else None
                )
                body = _B_BUFFERED
            elif tag == t_on_alarm:
                start, pos = _ld(buf, pos, end)
                body_state = _alarm(
                    buf, start, pos, inner, body_state if body == _B_ALARM else None
                )
                body = _B_ALARM
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("MxEvent", exc) from None

    if value is None:
        native: Any = None
        data_type: Any = _DT_UNSPECIFIED
        variant, is_null, raw_diag, raw_dt, raw_value = "", False, "", 0, b""
    else:
        native, data_type, variant, is_null, raw_diag, raw_dt, raw_value = _value_fields(value)
    if body == _B_BUFFERED:
        buffered_type = _DATA_TYPES.get(body_state[0], body_state[0])
        samples = tuple([_finish_sample(s) for s in body_state[1]])
    else:
        buffered_type = _DT_UNSPECIFIED
        samples = ()
    return MxEvent(
        session,
        _FAMILIES.get(family, family),
        sequence,
        server,
        item,
        native,
        data_type,
        variant,
        is_null,
        raw_diag,
        raw_dt,
        raw_value,
        value is not None,
        quality,
        None if source_ts is None else source_ts[0] * _NS + source_ts[1],
        tuple(statuses),
        None if worker_ts is None else worker_ts[0] * _NS + worker_ts[1],
        None if gateway_ts is None else gateway_ts[0] * _NS + gateway_ts[1],
        hresult,
        raw_status,
        None if gap is None else ReplayGap(gap[0], gap[1]),
        _BODY_NAMES[body],
        buffered_type,
        samples,
        _finish_alarm(body_state) if body == _B_ALARM else None,
        None,
        None if tags is None else tags.get(item),
    )


# ---- final states to structs and native values --------------------------------------------


def _to_datetime(state: _Pair, where: str) -> datetime:
    seconds, nanos = state
    try:
        return _EPOCH + timedelta(microseconds=(seconds * _NS + nanos) // 1000)
    except OverflowError:
        raise MxGatewayDecodeError(
            f"{where}: timestamp of {seconds} s {nanos} ns is outside datetime's range"
        ) from None


def _to_timedelta(state: _Pair, where: str) -> timedelta:
    seconds, nanos = state
    try:
        return timedelta(microseconds=(seconds * _NS + nanos) // 1000)
    except OverflowError:
        raise MxGatewayDecodeError(
            f"{where}: duration of {seconds} s {nanos} ns is outside timedelta's range"
        ) from None


def _native(state: _ValueState) -> Any:
    arm = state[6]
    if arm == _A_NONE:
        raw_value = state[5]
        return raw_value if raw_value else None
    if arm <= _A_STR:
        return state[7]
    if arm == _A_TS:
        return _to_datetime(state[7], "MxValue.timestamp_value")
    if arm == _A_DUR:
        return _to_timedelta(state[7], "MxValue.elapsed_value")
    if arm == _A_ARRAY:
        return _array_native(state[7])
    element_type, total, elements = state[7]
    return MxSparseArray(
        _DATA_TYPES.get(element_type, element_type),
        total,
        tuple([(index, None if v is None else _native(v)) for index, v in elements]),
    )


def _array_native(state: _ArrayState) -> list[Any]:
    element_type, dims, bools, int32s, int64s, floats, doubles, strings, stamps, durs = state
    values: list[Any]
    if element_type == _DT_BOOLEAN:
        values = bools
    elif element_type == _DT_INTEGER:
        values = int32s if int32s else int64s
    elif element_type == _DT_FLOAT:
        values = floats
    elif element_type == _DT_DOUBLE:
        values = doubles
    elif element_type in _STRING_TYPES:
        values = strings
    elif element_type == _DT_TIME:
        values = [_to_datetime(s, "MxArray.timestamp_values") for s in stamps]
    elif element_type == _DT_ELAPSED:
        values = [_to_timedelta(s, "MxArray.elapsed_values") for s in durs]
    elif bools:
        values = bools
    elif int32s:
        values = int32s
    elif int64s:
        values = int64s
    elif floats:
        values = floats
    elif doubles:
        values = doubles
    elif strings:
        values = strings
    elif stamps:
        values = [_to_datetime(s, "MxArray.timestamp_values") for s in stamps]
    elif durs:
        values = [_to_timedelta(s, "MxArray.elapsed_values") for s in durs]
    else:
        values = []
    if len(dims) >= 2:
        count = len(values)
        product = 1
        for d in dims:
            product *= d
            if product == 0 or product > count:
                break
        if product == count and product != 0:
            for d in reversed(dims[1:]):
                values = [values[i : i + d] for i in range(0, len(values), d)]
    return values


def _value_fields(state: _ValueState) -> tuple[Any, Any, str, bool, str, int, bytes]:
    data_type = state[0]
    return (
        _native(state),
        _DATA_TYPES.get(data_type, data_type),
        state[1],
        state[2],
        state[3],
        state[4],
        state[5],
    )


def _finish_value(state: _ValueState | None) -> MxValue | None:
    if state is None:
        return None
    return MxValue(*_value_fields(state))


def _finish_sample(state: _SampleState) -> BufferedSample:
    value, quality, stamp = state
    return BufferedSample(
        _finish_value(value), quality, None if stamp is None else stamp[0] * _NS + stamp[1]
    )


def _finish_alarm(state: _AlarmState) -> AlarmTransition:
    (
        reference,
        source,
        type_name,
        kind,
        severity,
        raised,
        transition,
        user,
        comment,
        category,
        description,
        current,
        limit,
        degraded,
        condition,
    ) = state
    transition_kind: Any = _TRANSITION_KINDS.get(kind, kind)
    condition_state: Any = _CONDITION_STATES.get(condition, condition)
    return AlarmTransition(
        reference,
        source,
        type_name,
        transition_kind,
        severity,
        None if raised is None else raised[0] * _NS + raised[1],
        None if transition is None else transition[0] * _NS + transition[1],
        user,
        comment,
        category,
        description,
        _finish_value(current),
        _finish_value(limit),
        degraded,
        condition_state,
    )


# ---- public decoders -----------------------------------------------------------------------


def _tags_of(tags: object) -> dict[int, str] | None:
    if tags is not None and type(tags) is not dict:
        raise TypeError(f"tags must be a dict of item handle -> tag, not {type(tags).__name__}")
    return tags


def decode_event(data: Buffer, tags: dict[int, str] | None = None) -> MxEvent:
    """Decode one serialized ``mxaccess_gateway.v1.MxEvent`` into an :class:`MxEvent`.

    ``data`` is any bytes-like object. Malformed or truncated bytes raise
    MxGatewayDecodeError (and nothing else). ``tags`` (a dict item handle -> name) fills
    ``MxEvent.tag``.
    """
    tags = _tags_of(tags)
    buf = _as_bytes(data)
    return _event(buf, 0, len(buf), 1, tags)


def decode_event_batch(data: Buffer, tags: dict[int, str] | None = None) -> list[MxEvent]:
    """Decode one serialized ``MxEventBatch`` into a list of :class:`MxEvent` in wire order
    (``tags`` as ``decode_event``)."""
    tags = _tags_of(tags)
    buf = _as_bytes(data)
    (t_events,) = _BATCH_TAGS
    pos = 0
    end = len(buf)
    events: list[MxEvent] = []
    append = events.append
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_events:
                start, pos = _ld(buf, pos, end)
                append(_event(buf, start, pos, 2, tags))
            else:
                pos = _skip(buf, tag, pos, end, 1)
    except _Wire as exc:
        raise _error("MxEventBatch", exc) from None
    return events


def from_mx_value(data: Buffer | Message) -> MxValue:
    """Decode one serialized ``MxValue`` (or a generated MxValue message) into an MxValue."""
    if isinstance(data, Message):
        if data.DESCRIPTOR.full_name != "mxaccess_gateway.v1.MxValue":
            raise TypeError(
                f"from_mx_value needs an MxValue message, not {data.DESCRIPTOR.full_name}"
            )
        data = data.SerializeToString()
    buf = _as_bytes(data)
    return MxValue(*_value_fields(_value(buf, 0, len(buf), 1, None)))


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


def _put_uint64(parts: _Parts, key: tuple[int, bytes], value: Any, what: str) -> None:
    if _check_int(value, 0, _M64, what):
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


def _timestamp_ns_bytes(ns: Any, what: str) -> bytes:
    if not isinstance(ns, int):
        raise TypeError(f"{what} must be an int (nanoseconds), not {type(ns).__name__}")
    seconds, nanos = divmod(ns, _NS)
    if not _I64_MIN <= seconds <= _I64_MAX:
        raise ValueError(f"{what} {ns!r} is outside the Timestamp range")
    return _seconds_nanos_bytes("Timestamp", seconds, nanos)


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


def _mx_value_struct_bytes(value: MxValue) -> bytes:
    if not isinstance(value, MxValue):
        raise TypeError(f"expected an MxValue, not {type(value).__name__}")
    return _value_bytes(
        value.data_type,
        value.variant_type,
        value.is_null,
        value.raw_diagnostic,
        value.raw_data_type,
        value.raw_value,
        _event_arm(value.value, value.data_type, value.raw_value),
    )


def _status_bytes(status: MxStatus) -> bytes:
    if not isinstance(status, MxStatus):
        raise TypeError(f"statuses must hold MxStatus, not {type(status).__name__}")
    keys = _KEYS["MxStatusProxy"]
    parts: _Parts = []
    _put_int32(parts, keys["success"], status.success, "MxStatus.success")
    _put_int32(parts, keys["category"], status.category, "MxStatus.category")
    _put_int32(parts, keys["detected_by"], status.detected_by, "MxStatus.detected_by")
    _put_int32(parts, keys["detail"], status.detail, "MxStatus.detail")
    _put_int32(parts, keys["raw_category"], status.raw_category, "MxStatus.raw_category")
    _put_int32(parts, keys["raw_detected_by"], status.raw_detected_by, "MxStatus.raw_detected_by")
    _put_str(parts, keys["diagnostic_text"], status.diagnostic_text, "MxStatus.diagnostic_text")
    return _join(parts)


def _sample_bytes(sample: BufferedSample) -> bytes:
    if not isinstance(sample, BufferedSample):
        raise TypeError(f"samples must hold BufferedSample, not {type(sample).__name__}")
    keys = _KEYS["BufferedSample"]
    parts: _Parts = []
    if sample.value is not None:
        _put_len(parts, keys["value"], _mx_value_struct_bytes(sample.value))
    _put_int32(parts, keys["quality"], sample.quality, "BufferedSample.quality")
    if sample.source_timestamp_ns is not None:
        _put_len(
            parts,
            keys["source_timestamp"],
            _timestamp_ns_bytes(sample.source_timestamp_ns, "source_timestamp_ns"),
        )
    return _join(parts)


def _alarm_bytes(alarm: AlarmTransition | None) -> bytes:
    if alarm is None:
        return b""
    if not isinstance(alarm, AlarmTransition):
        raise TypeError(f"alarm_transition must be an AlarmTransition, not {type(alarm).__name__}")
    keys = _KEYS["OnAlarmTransitionEvent"]
    parts: _Parts = []
    a = alarm
    _put_str(parts, keys["alarm_full_reference"], a.alarm_full_reference, "alarm_full_reference")
    _put_str(
        parts, keys["source_object_reference"], a.source_object_reference, "source_object_reference"
    )
    _put_str(parts, keys["alarm_type_name"], a.alarm_type_name, "alarm_type_name")
    _put_int32(parts, keys["transition_kind"], a.transition_kind, "transition_kind")
    _put_int32(parts, keys["severity"], a.severity, "severity")
    if a.original_raise_timestamp_ns is not None:
        _put_len(
            parts,
            keys["original_raise_timestamp"],
            _timestamp_ns_bytes(a.original_raise_timestamp_ns, "original_raise_timestamp_ns"),
        )
    if a.transition_timestamp_ns is not None:
        _put_len(
            parts,
            keys["transition_timestamp"],
            _timestamp_ns_bytes(a.transition_timestamp_ns, "transition_timestamp_ns"),
        )
    _put_str(parts, keys["operator_user"], a.operator_user, "operator_user")
    _put_str(parts, keys["operator_comment"], a.operator_comment, "operator_comment")
    _put_str(parts, keys["category"], a.category, "category")
    _put_str(parts, keys["description"], a.description, "description")
    if a.current_value is not None:
        _put_len(parts, keys["current_value"], _mx_value_struct_bytes(a.current_value))
    if a.limit_value is not None:
        _put_len(parts, keys["limit_value"], _mx_value_struct_bytes(a.limit_value))
    _put_bool(parts, keys["degraded"], a.degraded, "degraded")
    _put_int32(parts, keys["current_state"], a.current_state, "current_state")
    return _join(parts)


def _event_bytes(event: MxEvent) -> bytes:
    if not isinstance(event, MxEvent):
        raise TypeError(f"expected an MxEvent, not {type(event).__name__}")
    keys = _KEYS["MxEvent"]
    parts: _Parts = []
    e = event
    _put_str(parts, keys["session_id"], e.session_id, "session_id")
    _put_int32(parts, keys["family"], e.family, "family")
    _put_uint64(parts, keys["worker_sequence"], e.worker_sequence, "worker_sequence")
    _put_int32(parts, keys["server_handle"], e.server_handle, "server_handle")
    _put_int32(parts, keys["item_handle"], e.item_handle, "item_handle")
    if e.has_value:
        payload = _value_bytes(
            e.data_type,
            e.variant_type,
            e.is_null,
            e.raw_diagnostic,
            e.raw_data_type,
            e.raw_value,
            _event_arm(e.value, e.data_type, e.raw_value),
        )
        _put_len(parts, keys["value"], payload)
    _put_int32(parts, keys["quality"], e.quality, "quality")
    if e.source_timestamp_ns is not None:
        _put_len(
            parts,
            keys["source_timestamp"],
            _timestamp_ns_bytes(e.source_timestamp_ns, "source_timestamp_ns"),
        )
    if not isinstance(e.statuses, tuple | list):
        raise TypeError("statuses must be a tuple of MxStatus")
    for status in e.statuses:
        _put_len(parts, keys["statuses"], _status_bytes(status))
    if e.worker_timestamp_ns is not None:
        _put_len(
            parts,
            keys["worker_timestamp"],
            _timestamp_ns_bytes(e.worker_timestamp_ns, "worker_timestamp_ns"),
        )
    if e.gateway_receive_timestamp_ns is not None:
        _put_len(
            parts,
            keys["gateway_receive_timestamp"],
            _timestamp_ns_bytes(e.gateway_receive_timestamp_ns, "gateway_receive_timestamp_ns"),
        )
    if e.hresult is not None:
        number, key = keys["hresult"]
        parts.append((number, key + _svarint(_check_int(e.hresult, _I32_MIN, _I32_MAX, "hresult"))))
    _put_str(parts, keys["raw_status"], e.raw_status, "raw_status")
    if e.replay_gap is not None:
        gap = e.replay_gap
        if not isinstance(gap, ReplayGap):
            raise TypeError(f"replay_gap must be a ReplayGap, not {type(gap).__name__}")
        gap_keys = _KEYS["ReplayGap"]
        gap_parts: _Parts = []
        _put_uint64(
            gap_parts,
            gap_keys["requested_after_sequence"],
            gap.requested_after_sequence,
            "requested_after_sequence",
        )
        _put_uint64(
            gap_parts,
            gap_keys["oldest_available_sequence"],
            gap.oldest_available_sequence,
            "oldest_available_sequence",
        )
        _put_len(parts, keys["replay_gap"], _join(gap_parts))
    body = _BODY_CODES.get(e.body) if isinstance(e.body, str) else None
    if body is None:
        raise ValueError(f"unknown body arm {e.body!r}")
    if body == _B_BUFFERED:
        buffered_keys = _KEYS["OnBufferedDataChangeEvent"]
        buffered: _Parts = []
        _put_int32(buffered, buffered_keys["data_type"], e.buffered_data_type, "buffered_data_type")
        if not isinstance(e.samples, tuple | list):
            raise TypeError("samples must be a tuple of BufferedSample")
        for sample in e.samples:
            _put_len(buffered, buffered_keys["samples"], _sample_bytes(sample))
        _put_len(parts, keys["on_buffered_data_change"], _join(buffered))
    elif body == _B_ALARM:
        _put_len(parts, keys["on_alarm_transition"], _alarm_bytes(e.alarm_transition))
    elif body != _B_NONE:
        _put_len(parts, keys[_BODY_NAMES[body]], b"")
    return _join(parts)


def encode_event(event: MxEvent) -> bytes:
    """Serialize an :class:`MxEvent` back to ``mxaccess_gateway.v1.MxEvent`` bytes.

    The inverse of :func:`decode_event` (``decode_event(encode_event(e)) == e`` for decoded
    events whose native values are encodable) and byte-identical to protobuf's
    ``SerializeToString()`` of the equivalent message. Wrong field types raise TypeError,
    out-of-range integers ValueError.
    """
    return _event_bytes(event)


def encode_event_batch(events: Sequence[MxEvent]) -> bytes:
    """Serialize events to one ``MxEventBatch`` (byte-identical to protobuf)."""
    key = _KEYS["MxEventBatch"]["events"][1]
    return b"".join([key + _len_prefixed(_event_bytes(event)) for event in events])


# ---- the simulator's flood -------------------------------------------------------------------

_FLOOD_VALUES: Final = (
    # h % 4 -> data type, variant type
    (_DT_DOUBLE, "VT_R8"),
    (_DT_INTEGER, "VT_I4"),
    (_DT_BOOLEAN, "VT_BOOL"),
    (_DT_STRING, "VT_BSTR"),
)


def encode_flood_batch(
    session_id: str,
    server_handle: int,
    item_handles: Sequence[int],
    first_sequence: int,
    count: int,
    timestamp_ns: int,
) -> bytes:
    """The simulator's flood mode: a serialized ``MxEventBatch`` of ``count`` data changes.

    Sequences ``first_sequence`` .. ``first_sequence + count - 1``; event i uses
    ``item_handles[(first_sequence + i) % len(item_handles)]``; the value depends on the
    handle (``h % 4``: DOUBLE, INTEGER, BOOLEAN, STRING). See docs/codec.md (and its
    decisions D26-D28) for every field. The same arguments give the same bytes in both
    implementations.
    """
    session_bytes = _check_str(session_id, "session_id")
    _check_int(server_handle, _I32_MIN, _I32_MAX, "server_handle")
    handles = [_check_int(h, _I32_MIN, _I32_MAX, "item handle") for h in item_handles]
    if not handles:
        raise ValueError("item_handles must not be empty")
    _check_int(first_sequence, 0, _M64, "first_sequence")
    _check_int(count, 0, _M64, "count")
    if count and first_sequence + count - 1 > _M64:
        raise ValueError("first_sequence + count - 1 exceeds the uint64 range")
    stamp = _timestamp_ns_bytes(timestamp_ns, "timestamp_ns")
    keys = _KEYS["MxEvent"]
    value_keys = _KEYS["MxValue"]

    def const(name: str, chunk: bytes) -> tuple[int, bytes | int]:
        return keys[name][0], chunk

    status_payload = _status_bytes(
        MxStatus(1, MxStatusCategory.OK, MxStatusSource.RESPONDING_LMX, 0, 0, 0, "")
    )
    pieces: list[tuple[int, bytes | int]] = [
        const("family", keys["family"][1] + _svarint(int(MxEventFamily.ON_DATA_CHANGE))),
        (keys["worker_sequence"][0], 0),
        (keys["item_handle"][0], 1),
        (keys["value"][0], 2),
        const("quality", keys["quality"][1] + _svarint(192)),
        const("source_timestamp", keys["source_timestamp"][1] + _len_prefixed(stamp)),
        const("statuses", keys["statuses"][1] + _len_prefixed(status_payload)),
        const("worker_timestamp", keys["worker_timestamp"][1] + _len_prefixed(stamp)),
        const(
            "gateway_receive_timestamp",
            keys["gateway_receive_timestamp"][1] + _len_prefixed(stamp),
        ),
        const("on_data_change", keys["on_data_change"][1] + b"\x00"),
    ]
    if session_bytes:
        pieces.append(const("session_id", keys["session_id"][1] + _len_prefixed(session_bytes)))
    if server_handle:
        pieces.append(const("server_handle", keys["server_handle"][1] + _svarint(server_handle)))
    pieces.sort(key=lambda piece: piece[0])
    template = [chunk for _, chunk in pieces]
    # The value's fixed fields per h % 4: data_type, variant_type, raw_data_type (native).
    value_heads: list[list[tuple[int, bytes]]] = []
    for data_type, variant in _FLOOD_VALUES:
        head: _Parts = []
        _put_int32(head, value_keys["data_type"], data_type, "data_type")
        _put_str(head, value_keys["variant_type"], variant, "variant_type")
        _put_int32(head, value_keys["raw_data_type"], data_type - 1, "raw_data_type")
        value_heads.append(head)
    seq_key = keys["worker_sequence"][1]
    item_key = keys["item_handle"][1]
    value_key = keys["value"][1]
    events_key = _KEYS["MxEventBatch"]["events"][1]
    n = len(handles)
    out: list[bytes] = []
    for i in range(count):
        sequence = first_sequence + i
        h = handles[sequence % n]
        mode = h % 4
        if mode == 0:
            arm = (
                value_keys["double_value"][0],
                value_keys["double_value"][1] + _pack_f64(float(h) + float(sequence) * 0.5),
            )
        elif mode == 1:
            arm = (
                value_keys["int32_value"][0],
                value_keys["int32_value"][1] + _svarint(sequence % 100000),
            )
        elif mode == 2:
            arm = (
                value_keys["bool_value"][0],
                value_keys["bool_value"][1] + (b"\x01" if sequence % 2 == 1 else b"\x00"),
            )
        else:
            text = f"v{sequence % 1000}".encode()
            arm = value_keys["string_value"][0], value_keys["string_value"][1] + _len_prefixed(text)
        value_payload = _join([*value_heads[mode], arm])
        variable = (
            (seq_key + _uvarint(sequence)) if sequence else b"",
            (item_key + _svarint(h)) if h else b"",
            value_key + _len_prefixed(value_payload),
        )
        event = b"".join([c if isinstance(c, bytes) else variable[c] for c in template])
        out.append(events_key + _len_prefixed(event))
    return b"".join(out)


configure()
