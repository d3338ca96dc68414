# Field-number tables, filled by configure() from the descriptors (read by field *name*).
# The code below switches on compile-time slot constants; only these tables know numbers.

cdef enum:
    SMALL_FIELDS = 128    # field numbers below this map to a slot by direct lookup
    MAX_SLOTS = 20        # slots are 1..nslots; 0 means "unknown field"

cdef struct MsgTable:
    uint8_t tag1[128]          # one-byte tag -> slot when its wire type is the field's, else 0
    uint8_t small[SMALL_FIELDS]
    uint32_t num[MAX_SLOTS]    # slot -> field number
    uint8_t wt[MAX_SLOTS]      # slot -> wire type of one element (packed also accepted)
    uint8_t order[MAX_SLOTS]   # slots in field-number order (the encoding order)
    uint8_t nslots

cdef MsgTable TABLES[N_MESSAGES]


cdef inline int slot_of(const MsgTable* t, uint64_t field) noexcept nogil:
    cdef int i
    if field < SMALL_FIELDS:
        return t.small[field]
    for i in range(1, t.nslots + 1):
        if t.num[i] == field:
            return i
    return 0


cdef inline int slot_for(const MsgTable* t, uint64_t tag) noexcept nogil:
    # The slot of a field read with its own wire type (0: unknown, or another wire type).
    # One-byte tags (nearly all) need one lookup.
    cdef int slot
    if tag < 128:
        return t.tag1[tag]
    slot = slot_of(t, tag >> 3)
    if slot != 0 and t.wt[slot] == (tag & 7):
        return slot
    return 0


cdef struct TagBytes:
    # A field's tag with its own wire type as it appears on the wire (one or two bytes; n = 0
    # when it takes more, which turns the in-order fast paths off for that field).
    int n
    uint8_t b0
    uint8_t b1


cdef TagBytes _TAGS[N_MESSAGES][MAX_SLOTS]


cdef inline const uint8_t* at_tag(const uint8_t* p, const uint8_t* end,
                                  const TagBytes* tb) noexcept nogil:
    # After the tag when the bytes at ``p`` are that tag, else NULL.
    if tb.n == 1:
        if p < end and p[0] == tb.b0:
            return p + 1
        return NULL
    if tb.n == 2 and end - p >= 2 and p[0] == tb.b0 and p[1] == tb.b1:
        return p + 2
    return NULL


cdef inline uint32_t tag_of(const MsgTable* t, int slot, int wt) noexcept nogil:
    return (t.num[slot] << 3) | wt


# Slots, in the order of SCHEMA's names below (slot = index + 1).
cdef enum:
    B_EVENTS = 1

cdef enum:
    EV_SESSION_ID = 1
    EV_FAMILY
    EV_WORKER_SEQUENCE
    EV_SERVER_HANDLE
    EV_ITEM_HANDLE
    EV_VALUE
    EV_QUALITY
    EV_SOURCE_TS
    EV_STATUSES
    EV_WORKER_TS
    EV_GATEWAY_TS
    EV_HRESULT
    EV_RAW_STATUS
    EV_REPLAY_GAP
    EV_ON_DATA_CHANGE
    EV_ON_WRITE_COMPLETE
    EV_OPERATION_COMPLETE
    EV_ON_BUFFERED
    EV_ON_ALARM

cdef enum:
    V_DATA_TYPE = 1
    V_VARIANT_TYPE
    V_IS_NULL
    V_RAW_DIAGNOSTIC
    V_RAW_DATA_TYPE
    V_RAW_VALUE
    V_BOOL
    V_INT32
    V_INT64
    V_FLOAT
    V_DOUBLE
    V_STRING
    V_TIMESTAMP
    V_ELAPSED
    V_ARRAY
    V_SPARSE

cdef enum:
    A_ELEMENT_DATA_TYPE = 1
    A_DIMENSIONS
    A_BOOL
    A_INT32
    A_INT64
    A_FLOAT
    A_DOUBLE
    A_STRING
    A_TIMESTAMP
    A_ELAPSED

cdef enum:
    SP_ELEMENT_DATA_TYPE = 1
    SP_TOTAL_LENGTH
    SP_ELEMENTS

cdef enum:
    SE_INDEX = 1
    SE_VALUE

cdef enum:
    ST_SUCCESS = 1
    ST_CATEGORY
    ST_DETECTED_BY
    ST_DETAIL
    ST_RAW_CATEGORY
    ST_RAW_DETECTED_BY
    ST_DIAGNOSTIC_TEXT

cdef enum:
    TS_SECONDS = 1
    TS_NANOS

cdef enum:
    G_REQUESTED = 1
    G_OLDEST

cdef enum:
    BD_DATA_TYPE = 1
    BD_SAMPLES

cdef enum:
    SA_VALUE = 1
    SA_QUALITY
    SA_SOURCE_TS

cdef enum:
    AL_ALARM_FULL_REFERENCE = 1
    AL_SOURCE_OBJECT_REFERENCE
    AL_ALARM_TYPE_NAME
    AL_TRANSITION_KIND
    AL_SEVERITY
    AL_ORIGINAL_RAISE_TS
    AL_TRANSITION_TS
    AL_OPERATOR_USER
    AL_OPERATOR_COMMENT
    AL_CATEGORY
    AL_DESCRIPTION
    AL_CURRENT_VALUE
    AL_LIMIT_VALUE
    AL_DEGRADED
    AL_CURRENT_STATE

# Field types as FieldDescriptor.TYPE_* (checked by configure, like the twin does).
cdef enum:
    T_DOUBLE = 1
    T_FLOAT = 2
    T_INT64 = 3
    T_UINT64 = 4
    T_INT32 = 5
    T_BOOL = 8
    T_STRING = 9
    T_MESSAGE = 11
    T_BYTES = 12
    T_UINT32 = 13
    T_ENUM = 14

_WIRE = {
    T_DOUBLE: WT_I64, T_FLOAT: WT_I32, T_INT64: WT_VARINT, T_UINT64: WT_VARINT,
    T_INT32: WT_VARINT, T_BOOL: WT_VARINT, T_STRING: WT_LEN, T_MESSAGE: WT_LEN,
    T_BYTES: WT_LEN, T_UINT32: WT_VARINT, T_ENUM: WT_VARINT,
}
_R = True   # repeated

# (message id, full name, ((field name, type, repeated), ...)) in slot order (slot = index+1).
_SCHEMA = (
    (M_BATCH, "MxEventBatch", (("events", T_MESSAGE, _R),)),
    (M_EVENT, "MxEvent", (
        ("session_id", T_STRING, False), ("family", T_ENUM, False),
        ("worker_sequence", T_UINT64, False), ("server_handle", T_INT32, False),
        ("item_handle", T_INT32, False), ("value", T_MESSAGE, False),
        ("quality", T_INT32, False), ("source_timestamp", T_MESSAGE, False),
        ("statuses", T_MESSAGE, _R), ("worker_timestamp", T_MESSAGE, False),
        ("gateway_receive_timestamp", T_MESSAGE, False), ("hresult", T_INT32, False),
        ("raw_status", T_STRING, False), ("replay_gap", T_MESSAGE, False),
        ("on_data_change", T_MESSAGE, False), ("on_write_complete", T_MESSAGE, False),
        ("operation_complete", T_MESSAGE, False), ("on_buffered_data_change", T_MESSAGE, False),
        ("on_alarm_transition", T_MESSAGE, False),
    )),
    (M_VALUE, "MxValue", (
        ("data_type", T_ENUM, False), ("variant_type", T_STRING, False),
        ("is_null", T_BOOL, False), ("raw_diagnostic", T_STRING, False),
        ("raw_data_type", T_INT32, False), ("raw_value", T_BYTES, False),
        ("bool_value", T_BOOL, False), ("int32_value", T_INT32, False),
        ("int64_value", T_INT64, False), ("float_value", T_FLOAT, False),
        ("double_value", T_DOUBLE, False), ("string_value", T_STRING, False),
        ("timestamp_value", T_MESSAGE, False), ("elapsed_value", T_MESSAGE, False),
        ("array_value", T_MESSAGE, False), ("sparse_array_value", T_MESSAGE, False),
    )),
    (M_ARRAY, "MxArray", (
        ("element_data_type", T_ENUM, False), ("dimensions", T_UINT32, _R),
        ("bool_values", T_BOOL, _R), ("int32_values", T_INT32, _R),
        ("int64_values", T_INT64, _R), ("float_values", T_FLOAT, _R),
        ("double_values", T_DOUBLE, _R), ("string_values", T_STRING, _R),
        ("timestamp_values", T_MESSAGE, _R), ("elapsed_values", T_MESSAGE, _R),
    )),
    (M_SPARSE, "MxSparseArray", (
        ("element_data_type", T_ENUM, False), ("total_length", T_UINT32, False),
        ("elements", T_MESSAGE, _R),
    )),
    (M_SPARSE_EL, "MxSparseElement", (("index", T_UINT32, False), ("value", T_MESSAGE, False))),
    (M_STATUS, "MxStatusProxy", (
        ("success", T_INT32, False), ("category", T_ENUM, False),
        ("detected_by", T_ENUM, False), ("detail", T_INT32, False),
        ("raw_category", T_INT32, False), ("raw_detected_by", T_INT32, False),
        ("diagnostic_text", T_STRING, False),
    )),
    (M_TS, "google.protobuf.Timestamp", (("seconds", T_INT64, False), ("nanos", T_INT32, False))),
    (M_DUR, "google.protobuf.Duration", (("seconds", T_INT64, False), ("nanos", T_INT32, False))),
    (M_GAP, "ReplayGap", (
        ("requested_after_sequence", T_UINT64, False),
        ("oldest_available_sequence", T_UINT64, False),
    )),
    (M_BUFFERED, "OnBufferedDataChangeEvent", (
        ("data_type", T_ENUM, False), ("samples", T_MESSAGE, _R),
    )),
    (M_SAMPLE, "BufferedSample", (
        ("value", T_MESSAGE, False), ("quality", T_INT32, False),
        ("source_timestamp", T_MESSAGE, False),
    )),
    (M_ALARM, "OnAlarmTransitionEvent", (
        ("alarm_full_reference", T_STRING, False), ("source_object_reference", T_STRING, False),
        ("alarm_type_name", T_STRING, False), ("transition_kind", T_ENUM, False),
        ("severity", T_INT32, False), ("original_raise_timestamp", T_MESSAGE, False),
        ("transition_timestamp", T_MESSAGE, False), ("operator_user", T_STRING, False),
        ("operator_comment", T_STRING, False), ("category", T_STRING, False),
        ("description", T_STRING, False), ("current_value", T_MESSAGE, False),
        ("limit_value", T_MESSAGE, False), ("degraded", T_BOOL, False),
        ("current_state", T_ENUM, False),
    )),
    (M_ON_DATA_CHANGE, "OnDataChangeEvent", ()),
    (M_ON_WRITE_COMPLETE, "OnWriteCompleteEvent", ()),
    (M_OPERATION_COMPLETE, "OperationCompleteEvent", ()),
)


def _find_message(file_descriptor, str full_name):
    if full_name.startswith("google.protobuf."):
        for dep in file_descriptor.dependencies:
            found = dep.message_types_by_name.get(full_name.rsplit(".", 1)[1])
            if found is not None and found.full_name == full_name:
                return found
        raise ValueError(f"{file_descriptor.name} does not import {full_name}")
    found = file_descriptor.message_types_by_name.get(full_name)
    if found is None:
        raise ValueError(
            f"{file_descriptor.name} has no message {file_descriptor.package}.{full_name}"
        )
    return found


def configure(file_descriptor=None):
    """(Re)build the field-number tables from a FileDescriptor of mxaccess_gateway.proto.

    Numbers are read by field name; Timestamp and Duration come from the file's dependencies.
    Without an argument the generated descriptor is used (this runs once at import). A
    missing message or field, or a field of another type than the codec decodes, raises
    ValueError and leaves the tables unchanged.
    """
    global _KEYS
    cdef MsgTable fresh[N_MESSAGES]
    cdef MsgTable* t
    cdef int mid, slot, i, j, k, wire
    cdef uint32_t number
    if file_descriptor is None:
        from mxgateway.generated import mxaccess_gateway_pb2

        file_descriptor = mxaccess_gateway_pb2.DESCRIPTOR
    memset(fresh, 0, sizeof(fresh))
    keys = {}
    for mid, name, fields in _SCHEMA:
        descriptor = _find_message(file_descriptor, name)
        t = &fresh[mid]
        t.nslots = len(fields)
        message_keys = {}
        for i in range(len(fields)):
            field_name, field_type, repeated = fields[i]
            field = descriptor.fields_by_name.get(field_name)
            if field is None:
                raise ValueError(f"{descriptor.full_name} has no field {field_name!r}")
            if field.type != field_type or bool(field.is_repeated) != repeated:
                raise ValueError(
                    f"{descriptor.full_name}.{field_name} is not of the type the codec decodes"
                )
            number = field.number
            slot = i + 1
            wire = _WIRE[field_type]
            t.num[slot] = number
            t.wt[slot] = wire    # packed runs are recognised by the parsers themselves
            if number < SMALL_FIELDS:
                t.small[number] = slot
            if (number << 3 | wire) < 128:
                t.tag1[number << 3 | wire] = slot
            if repeated:
                wire = WT_LEN    # the encoder writes repeated numbers packed
            message_keys[field_name] = (number, _uvarint((number << 3) | wire))
        keys[name.rpartition(".")[2]] = message_keys
        # Insertion sort of the slots by field number: protobuf writes fields in that order.
        for i in range(t.nslots):
            t.order[i] = i + 1
        for i in range(1, t.nslots):
            k = t.order[i]
            j = i - 1
            while j >= 0 and t.num[t.order[j]] > t.num[k]:
                t.order[j + 1] = t.order[j]
                j -= 1
            t.order[j + 1] = k
    # All checks passed: switch the tables in one go.
    memcpy(TABLES, fresh, sizeof(fresh))
    _KEYS = keys
    for mid in range(N_MESSAGES):
        for slot in range(1, TABLES[mid].nslots + 1):
            number = tag_of(&TABLES[mid], slot, TABLES[mid].wt[slot])
            _TAGS[mid][slot].n = 0
            if number < 0x80:
                _TAGS[mid][slot].n = 1
                _TAGS[mid][slot].b0 = <uint8_t>number
            elif number < 0x4000:
                _TAGS[mid][slot].n = 2
                _TAGS[mid][slot].b0 = <uint8_t>((number & 0x7F) | 0x80)
                _TAGS[mid][slot].b1 = <uint8_t>(number >> 7)
    global _TS_SEC_TAG, _TS_NANOS_TAG
    tag = tag_of(&TABLES[M_TS], TS_SECONDS, WT_VARINT)
    _TS_SEC_TAG = tag if tag < 0x80 else -1
    tag = tag_of(&TABLES[M_TS], TS_NANOS, WT_VARINT)
    _TS_NANOS_TAG = tag if tag < 0x80 else -1
