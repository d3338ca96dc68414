"""Field numbers and the codec's enums (twin of ext/_tables.pxi and the constants of
ext/_speedups.pyx).

No field number is written here: ``configure()`` reads them by field *name* from the
descriptors into tag tables (``*_TAGS``, read by the parsers as ``_tables.X`` so that a
reconfiguration reaches them) and encoder keys (``_KEYS``, updated in place).
"""

from __future__ import annotations

from enum import IntEnum
from typing import Any, Final

from google.protobuf.descriptor import Descriptor, FieldDescriptor, FileDescriptor

from mxgateway._pycodec._wire import _FIXED32, _FIXED64, _LEN, _VARINT
from mxgateway.types import (
    AlarmConditionState,
    AlarmTransitionKind,
    EventBody,
    MxDataType,
    MxEventFamily,
    MxStatusCategory,
    MxStatusSource,
)

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
    global _TS_TAGS, _DUR_TAGS, _STATUS_TAGS, _VALUE_TAGS, _ARRAY_TAGS
    global _SPARSE_TAGS, _ELEMENT_TAGS, _EVENT_TAGS, _BUFFERED_TAGS, _SAMPLE_TAGS, _GAP_TAGS
    global _BATCH_TAGS, _ALARM_TAGS
    from mxgateway._pycodec._values import _uvarint

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
    # All checks passed: switch the tables in one go (_KEYS in place: the writers import it).
    _KEYS.clear()
    _KEYS.update(keys)
    _TS_TAGS, _DUR_TAGS, _STATUS_TAGS, _VALUE_TAGS = ts_tags, dur_tags, status_tags, value_tags
    _ARRAY_TAGS, _SPARSE_TAGS, _ELEMENT_TAGS = array_tags, sparse_tags, element_tags
    _EVENT_TAGS, _BUFFERED_TAGS, _SAMPLE_TAGS = event_tags, buffered_tags, sample_tags
    _GAP_TAGS, _BATCH_TAGS, _ALARM_TAGS = gap_tags, batch_tags, alarm_tags
