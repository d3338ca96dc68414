# The encoder: structs back to wire bytes, byte-identical to protobuf's SerializeToString()
# (fields in field-number order, proto3 defaults left out, present messages and oneof arms
# written even when empty).
#
# Messages are written in one pass: a nested message gets a one-byte length placeholder and
# is moved up when its length turns out to need more bytes (rare: payloads under 128 bytes).

cdef struct Writer:
    uint8_t* buf
    Py_ssize_t pos
    Py_ssize_t cap


cdef int w_init(Writer* w, Py_ssize_t cap) except -1:
    w.buf = <uint8_t*>PyMem_Malloc(cap)
    if w.buf == NULL:
        raise MemoryError()
    w.pos = 0
    w.cap = cap
    return 0


cdef int w_grow(Writer* w, Py_ssize_t need) except -1:
    cdef Py_ssize_t cap = w.cap * 2
    cdef uint8_t* buf
    while cap < w.pos + need:
        cap *= 2
    buf = <uint8_t*>PyMem_Realloc(w.buf, cap)
    if buf == NULL:
        raise MemoryError()
    w.buf = buf
    w.cap = cap
    return 0


cdef inline int w_reserve(Writer* w, Py_ssize_t n) except -1:
    if w.pos + n > w.cap:
        w_grow(w, n)
    return 0


cdef inline int varint_size(uint64_t v) noexcept nogil:
    cdef int n = 1
    while v >= 0x80:
        v >>= 7
        n += 1
    return n


cdef inline uint8_t* put_varint(uint8_t* p, uint64_t v) noexcept nogil:
    while v >= 0x80:
        p[0] = <uint8_t>(v | 0x80)
        v >>= 7
        p += 1
    p[0] = <uint8_t>v
    return p + 1


cdef inline int w_varint(Writer* w, uint64_t v) except -1:
    w_reserve(w, 10)
    w.pos = put_varint(w.buf + w.pos, v) - w.buf
    return 0


cdef inline int w_tag(Writer* w, int msg, int slot, int wt) except -1:
    return w_varint(w, tag_of(&TABLES[msg], slot, wt))


cdef inline int w_raw(Writer* w, const void* p, Py_ssize_t n) except -1:
    w_reserve(w, n)
    memcpy(w.buf + w.pos, p, n)
    w.pos += n
    return 0


# ---- checked conversions (D21: wrong Python type -> TypeError, out of range -> ValueError;
# the same wording as the twin) ------------------------------------------------------------

cdef int as_int(object v, int64_t lo, int64_t hi, str what, int64_t* out) except -1:
    cdef int overflow = 0
    cdef long long x
    if not isinstance(v, int):
        raise TypeError(f"{what} must be an int, not {type(v).__name__}")
    x = PyLong_AsLongLongAndOverflow(v, &overflow)
    if overflow != 0 or x < lo or x > hi:
        raise ValueError(f"{what} {v!r} is out of range [{lo}, {hi}]")
    out[0] = x
    return 0


cdef int as_uint64(object v, str what, uint64_t* out) except -1:
    if not isinstance(v, int):
        raise TypeError(f"{what} must be an int, not {type(v).__name__}")
    if v < 0 or v > 0xFFFFFFFFFFFFFFFF:
        raise ValueError(f"{what} {v!r} is out of range [0, {0xFFFFFFFFFFFFFFFF}]")
    out[0] = PyLong_AsUnsignedLongLong(v)
    return 0


cdef const char* as_utf8(object s, str what, Py_ssize_t* n) except NULL:
    if not isinstance(s, str):
        raise TypeError(f"{what} must be a str, not {type(s).__name__}")
    try:
        return PyUnicode_AsUTF8AndSize(s, n)
    except UnicodeEncodeError:
        raise ValueError(f"{what} {s!r} cannot be encoded as UTF-8") from None


cdef int w_int32_field(Writer* w, int msg, int slot, object v, str what) except -1:
    # int32 and enums: negative values are sign-extended to ten bytes, as protobuf does.
    cdef int64_t x
    as_int(v, MXG_INT32_MIN, MXG_INT32_MAX, what, &x)
    if x != 0:
        w_tag(w, msg, slot, WT_VARINT)
        w_varint(w, <uint64_t>x)
    return 0


cdef int w_uint64_field(Writer* w, int msg, int slot, object v, str what) except -1:
    cdef uint64_t x
    as_uint64(v, what, &x)
    if x != 0:
        w_tag(w, msg, slot, WT_VARINT)
        w_varint(w, x)
    return 0


cdef int w_bool_field(Writer* w, int msg, int slot, object v, str what) except -1:
    if not isinstance(v, bool):
        raise TypeError(f"{what} must be a bool, not {type(v).__name__}")
    if v is True:
        w_tag(w, msg, slot, WT_VARINT)
        w_varint(w, 1)
    return 0


cdef int w_str_field(Writer* w, int msg, int slot, object s, str what) except -1:
    cdef Py_ssize_t n
    cdef const char* u = as_utf8(s, what, &n)
    if n:
        w_tag(w, msg, slot, WT_LEN)
        w_varint(w, <uint64_t>n)
        w_raw(w, u, n)
    return 0


cdef int w_bytes_field(Writer* w, int msg, int slot, object b, str what) except -1:
    cdef const unsigned char[::1] view
    if PyBytes_CheckExact(b):
        if PyBytes_GET_SIZE(b):
            w_tag(w, msg, slot, WT_LEN)
            w_varint(w, <uint64_t>PyBytes_GET_SIZE(b))
            w_raw(w, PyBytes_AS_STRING(b), PyBytes_GET_SIZE(b))
        return 0
    if not isinstance(b, (bytes, bytearray)):
        raise TypeError(f"{what} must be bytes, not {type(b).__name__}")
    if len(b):
        view = bytes(b)
        w_tag(w, msg, slot, WT_LEN)
        w_varint(w, <uint64_t>view.shape[0])
        w_raw(w, &view[0], view.shape[0])
    return 0


cdef inline Py_ssize_t w_begin(Writer* w, int msg, int slot) except -1:
    # Tag and a one-byte length placeholder; returns where the payload starts.
    w_tag(w, msg, slot, WT_LEN)
    w_reserve(w, 1)
    w.pos += 1
    return w.pos


cdef inline int w_end(Writer* w, Py_ssize_t start) except -1:
    cdef Py_ssize_t n = w.pos - start
    cdef int size
    if n < 0x80:
        w.buf[start - 1] = <uint8_t>n
        return 0
    size = varint_size(<uint64_t>n)
    w_reserve(w, size - 1)
    memmove(w.buf + start + size - 1, w.buf + start, n)
    put_varint(w.buf + start - 1, <uint64_t>n)
    w.pos += size - 1
    return 0


cdef object w_bytes(Writer* w):
    return PyBytes_FromStringAndSize(<const char*>w.buf, w.pos)


# ---- messages --------------------------------------------------------------------------

cdef int w_ts(Writer* w, object ns, str what) except -1:
    # Integer nanoseconds -> Timestamp payload: seconds, nanos = divmod(ns, 10**9) (D20).
    cdef long long n
    cdef int overflow = 0
    cdef int64_t sec, nanos
    if not isinstance(ns, int):
        raise TypeError(f"{what} must be an int (nanoseconds), not {type(ns).__name__}")
    n = PyLong_AsLongLongAndOverflow(ns, &overflow)
    if overflow == 0:
        sec = n // 1_000_000_000
        nanos = n % 1_000_000_000
        if nanos < 0:   # C division truncates; protobuf wants floor
            nanos += 1_000_000_000
            sec -= 1
    else:
        sec_o, nanos_o = divmod(ns, 1_000_000_000)
        if not -0x8000000000000000 <= sec_o <= 0x7FFFFFFFFFFFFFFF:
            raise ValueError(f"{what} {ns!r} is outside the Timestamp range")
        sec = sec_o
        nanos = nanos_o
    if TABLES[M_TS].num[TS_NANOS] < TABLES[M_TS].num[TS_SECONDS]:   # field-number order
        if nanos != 0:
            w_tag(w, M_TS, TS_NANOS, WT_VARINT)
            w_varint(w, <uint64_t>nanos)
    if sec != 0:
        w_tag(w, M_TS, TS_SECONDS, WT_VARINT)
        w_varint(w, <uint64_t>sec)
    if TABLES[M_TS].num[TS_NANOS] > TABLES[M_TS].num[TS_SECONDS]:
        if nanos != 0:
            w_tag(w, M_TS, TS_NANOS, WT_VARINT)
            w_varint(w, <uint64_t>nanos)
    return 0


cdef int w_ts_field(Writer* w, int msg, int slot, object ns, str what) except -1:
    cdef Py_ssize_t start
    if ns is None:
        return 0
    start = w_begin(w, msg, slot)
    w_ts(w, ns, what)
    return w_end(w, start)


cdef int w_status(Writer* w, object s) except -1:
    cdef const MsgTable* t = &TABLES[M_STATUS]
    cdef int i, slot
    if not isinstance(s, _MxStatus):
        raise TypeError(f"statuses must hold MxStatus, not {type(s).__name__}")
    for i in range(t.nslots):
        slot = t.order[i]
        if slot == ST_SUCCESS:
            w_int32_field(w, M_STATUS, slot, s.success, "MxStatus.success")
        elif slot == ST_CATEGORY:
            w_int32_field(w, M_STATUS, slot, s.category, "MxStatus.category")
        elif slot == ST_DETECTED_BY:
            w_int32_field(w, M_STATUS, slot, s.detected_by, "MxStatus.detected_by")
        elif slot == ST_DETAIL:
            w_int32_field(w, M_STATUS, slot, s.detail, "MxStatus.detail")
        elif slot == ST_RAW_CATEGORY:
            w_int32_field(w, M_STATUS, slot, s.raw_category, "MxStatus.raw_category")
        elif slot == ST_RAW_DETECTED_BY:
            w_int32_field(w, M_STATUS, slot, s.raw_detected_by, "MxStatus.raw_detected_by")
        else:
            w_str_field(w, M_STATUS, slot, s.diagnostic_text, "MxStatus.diagnostic_text")
    return 0


cdef enum:
    ARM_RARE = 100   # datetime, timedelta, list/tuple, MxSparseArray: _event_arm builds it

cdef dict _ARM_SLOTS = {
    "timestamp_value": V_TIMESTAMP,
    "elapsed_value": V_ELAPSED,
    "array_value": V_ARRAY,
    "sparse_array_value": V_SPARSE,
}


cdef inline bint f32_exact(double d) noexcept nogil:
    # D23: the value survives a float32 round trip (nan and infinities included).
    if d != d or d == INFINITY or d == -INFINITY:
        return True
    return fabs(d) <= FLT_MAX and <double>(<float>d) == d


cdef int choose_arm(object value, object data_type, object raw_value) except -1:
    # D23: which ``kind`` arm a native value goes back to (0: none; ARM_RARE: the ported
    # rules of _values.pxi build it).
    cdef long long x
    cdef int overflow = 0
    if value is None:
        return 0
    if isinstance(value, (bytes, bytearray)):
        if bytes(value) != raw_value:
            raise ValueError("a bytes value must equal raw_value (it is raw_value's mirror)")
        return 0
    if isinstance(value, bool):
        return V_BOOL
    if isinstance(value, int):
        x = PyLong_AsLongLongAndOverflow(value, &overflow)
        if overflow != 0:
            raise ValueError(f"{value!r} is outside the int64 range of an MxValue")
        return V_INT32 if MXG_INT32_MIN <= x <= MXG_INT32_MAX else V_INT64
    if isinstance(value, float):
        if data_type == DT_FLOAT and f32_exact(<double>value):
            return V_FLOAT
        return V_DOUBLE
    if isinstance(value, str):
        return V_STRING
    return ARM_RARE


cdef int w_value_fields(Writer* w, object value, object data_type, object variant_type,
                        object is_null, object raw_diagnostic, object raw_data_type,
                        object raw_value) except -1:
    # The fields of one MxValue (without its tag and length); the arm is chosen first.
    cdef const MsgTable* t = &TABLES[M_VALUE]
    cdef int i, slot
    cdef int arm = choose_arm(value, data_type, raw_value)
    cdef double d
    cdef float f
    cdef Py_ssize_t n
    cdef const char* u
    cdef bytes payload = None
    if arm == ARM_RARE:
        name, payload = _event_arm(value, data_type, raw_value)
        arm = _ARM_SLOTS[name]
    for i in range(t.nslots):
        slot = t.order[i]
        if slot == V_DATA_TYPE:
            w_int32_field(w, M_VALUE, slot, data_type, "MxValue.data_type")
        elif slot == V_VARIANT_TYPE:
            w_str_field(w, M_VALUE, slot, variant_type, "MxValue.variant_type")
        elif slot == V_IS_NULL:
            w_bool_field(w, M_VALUE, slot, is_null, "MxValue.is_null")
        elif slot == V_RAW_DIAGNOSTIC:
            w_str_field(w, M_VALUE, slot, raw_diagnostic, "MxValue.raw_diagnostic")
        elif slot == V_RAW_DATA_TYPE:
            w_int32_field(w, M_VALUE, slot, raw_data_type, "MxValue.raw_data_type")
        elif slot == V_RAW_VALUE:
            w_bytes_field(w, M_VALUE, slot, raw_value, "MxValue.raw_value")
        elif slot != arm:
            continue
        elif slot == V_BOOL:
            w_tag(w, M_VALUE, slot, WT_VARINT)
            w_varint(w, 1 if value else 0)
        elif slot == V_INT32 or slot == V_INT64:
            w_tag(w, M_VALUE, slot, WT_VARINT)
            w_varint(w, <uint64_t>(<int64_t>value))
        elif slot == V_DOUBLE:
            d = value
            w_tag(w, M_VALUE, slot, WT_I64)
            w_raw(w, &d, 8)
        elif slot == V_FLOAT:
            f = <float>(<double>value)
            w_tag(w, M_VALUE, slot, WT_I32)
            w_raw(w, &f, 4)
        elif slot == V_STRING:
            u = as_utf8(value, "string value", &n)   # a oneof arm: written even when empty
            w_tag(w, M_VALUE, slot, WT_LEN)
            w_varint(w, <uint64_t>n)
            w_raw(w, u, n)
        else:   # payload carries its own length prefix
            w_tag(w, M_VALUE, slot, WT_LEN)
            w_raw(w, PyBytes_AS_STRING(payload), PyBytes_GET_SIZE(payload))
    return 0


cdef int w_mxvalue_field(Writer* w, int msg, int slot, object v) except -1:
    cdef Py_ssize_t start
    if v is None:
        return 0
    if not isinstance(v, _MxValue):
        raise TypeError(f"expected an MxValue, not {type(v).__name__}")
    start = w_begin(w, msg, slot)
    w_value_fields(w, v.value, v.data_type, v.variant_type, v.is_null, v.raw_diagnostic,
                   v.raw_data_type, v.raw_value)
    return w_end(w, start)


cdef int w_sample(Writer* w, object s) except -1:
    cdef const MsgTable* t = &TABLES[M_SAMPLE]
    cdef int i, slot
    if not isinstance(s, _BufferedSample):
        raise TypeError(f"samples must hold BufferedSample, not {type(s).__name__}")
    for i in range(t.nslots):
        slot = t.order[i]
        if slot == SA_VALUE:
            w_mxvalue_field(w, M_SAMPLE, slot, s.value)
        elif slot == SA_QUALITY:
            w_int32_field(w, M_SAMPLE, slot, s.quality, "BufferedSample.quality")
        else:
            w_ts_field(w, M_SAMPLE, slot, s.source_timestamp_ns, "source_timestamp_ns")
    return 0


cdef int w_alarm(Writer* w, object a) except -1:
    cdef const MsgTable* t = &TABLES[M_ALARM]
    cdef int i, slot
    if a is None:
        return 0
    if not isinstance(a, _AlarmTransition):
        raise TypeError(f"alarm_transition must be an AlarmTransition, not {type(a).__name__}")
    for i in range(t.nslots):
        slot = t.order[i]
        if slot == AL_ALARM_FULL_REFERENCE:
            w_str_field(w, M_ALARM, slot, a.alarm_full_reference, "alarm_full_reference")
        elif slot == AL_SOURCE_OBJECT_REFERENCE:
            w_str_field(w, M_ALARM, slot, a.source_object_reference, "source_object_reference")
        elif slot == AL_ALARM_TYPE_NAME:
            w_str_field(w, M_ALARM, slot, a.alarm_type_name, "alarm_type_name")
        elif slot == AL_TRANSITION_KIND:
            w_int32_field(w, M_ALARM, slot, a.transition_kind, "transition_kind")
        elif slot == AL_SEVERITY:
            w_int32_field(w, M_ALARM, slot, a.severity, "severity")
        elif slot == AL_ORIGINAL_RAISE_TS:
            w_ts_field(w, M_ALARM, slot, a.original_raise_timestamp_ns,
                       "original_raise_timestamp_ns")
        elif slot == AL_TRANSITION_TS:
            w_ts_field(w, M_ALARM, slot, a.transition_timestamp_ns, "transition_timestamp_ns")
        elif slot == AL_OPERATOR_USER:
            w_str_field(w, M_ALARM, slot, a.operator_user, "operator_user")
        elif slot == AL_OPERATOR_COMMENT:
            w_str_field(w, M_ALARM, slot, a.operator_comment, "operator_comment")
        elif slot == AL_CATEGORY:
            w_str_field(w, M_ALARM, slot, a.category, "category")
        elif slot == AL_DESCRIPTION:
            w_str_field(w, M_ALARM, slot, a.description, "description")
        elif slot == AL_CURRENT_VALUE:
            w_mxvalue_field(w, M_ALARM, slot, a.current_value)
        elif slot == AL_LIMIT_VALUE:
            w_mxvalue_field(w, M_ALARM, slot, a.limit_value)
        elif slot == AL_DEGRADED:
            w_bool_field(w, M_ALARM, slot, a.degraded, "degraded")
        else:
            w_int32_field(w, M_ALARM, slot, a.current_state, "current_state")
    return 0


cdef int w_buffered(Writer* w, object e) except -1:
    cdef const MsgTable* t = &TABLES[M_BUFFERED]
    cdef Py_ssize_t inner
    cdef int i, slot
    for i in range(t.nslots):
        slot = t.order[i]
        if slot == BD_DATA_TYPE:
            w_int32_field(w, M_BUFFERED, slot, e.buffered_data_type, "buffered_data_type")
        else:
            samples = e.samples
            if not isinstance(samples, (tuple, list)):
                raise TypeError("samples must be a tuple of BufferedSample")
            for s in samples:
                inner = w_begin(w, M_BUFFERED, slot)
                w_sample(w, s)
                w_end(w, inner)
    return 0


cdef int body_code(object body) except -1:
    # EV_ON_* slot of a body name, 0 for "", -2 for anything else (reported last).
    cdef int i
    if isinstance(body, str):
        for i in range(len(_BODY_NAMES)):
            if body == _BODY_NAMES[i]:
                return 0 if i == 0 else EV_ON_DATA_CHANGE + i - 1
    return -2


cdef int w_event(Writer* w, object e) except -1:
    cdef const MsgTable* t = &TABLES[M_EVENT]
    cdef int i, slot, body
    cdef Py_ssize_t start
    if not isinstance(e, _MxEvent):
        raise TypeError(f"expected an MxEvent, not {type(e).__name__}")
    body = body_code(e.body)
    for i in range(t.nslots):
        slot = t.order[i]
        if slot == EV_SESSION_ID:
            w_str_field(w, M_EVENT, slot, e.session_id, "session_id")
        elif slot == EV_FAMILY:
            w_int32_field(w, M_EVENT, slot, e.family, "family")
        elif slot == EV_WORKER_SEQUENCE:
            w_uint64_field(w, M_EVENT, slot, e.worker_sequence, "worker_sequence")
        elif slot == EV_SERVER_HANDLE:
            w_int32_field(w, M_EVENT, slot, e.server_handle, "server_handle")
        elif slot == EV_ITEM_HANDLE:
            w_int32_field(w, M_EVENT, slot, e.item_handle, "item_handle")
        elif slot == EV_VALUE:
            if e.has_value:
                start = w_begin(w, M_EVENT, slot)
                w_value_fields(w, e.value, e.data_type, e.variant_type, e.is_null,
                               e.raw_diagnostic, e.raw_data_type, e.raw_value)
                w_end(w, start)
        elif slot == EV_QUALITY:
            w_int32_field(w, M_EVENT, slot, e.quality, "quality")
        elif slot == EV_SOURCE_TS:
            w_ts_field(w, M_EVENT, slot, e.source_timestamp_ns, "source_timestamp_ns")
        elif slot == EV_STATUSES:
            statuses = e.statuses
            if not isinstance(statuses, (tuple, list)):
                raise TypeError("statuses must be a tuple of MxStatus")
            for s in statuses:
                start = w_begin(w, M_EVENT, slot)
                w_status(w, s)
                w_end(w, start)
        elif slot == EV_WORKER_TS:
            w_ts_field(w, M_EVENT, slot, e.worker_timestamp_ns, "worker_timestamp_ns")
        elif slot == EV_GATEWAY_TS:
            w_ts_field(w, M_EVENT, slot, e.gateway_receive_timestamp_ns,
                       "gateway_receive_timestamp_ns")
        elif slot == EV_HRESULT:
            hresult = e.hresult
            if hresult is not None:   # optional: written even when 0
                w_hresult(w, slot, hresult)
        elif slot == EV_RAW_STATUS:
            w_str_field(w, M_EVENT, slot, e.raw_status, "raw_status")
        elif slot == EV_REPLAY_GAP:
            gap = e.replay_gap
            if gap is not None:
                if not isinstance(gap, _ReplayGap):
                    raise TypeError(f"replay_gap must be a ReplayGap, not {type(gap).__name__}")
                start = w_begin(w, M_EVENT, slot)
                w_gap(w, gap)
                w_end(w, start)
        elif slot != body:
            continue
        elif slot == EV_ON_BUFFERED:
            start = w_begin(w, M_EVENT, slot)
            w_buffered(w, e)
            w_end(w, start)
        elif slot == EV_ON_ALARM:
            start = w_begin(w, M_EVENT, slot)
            w_alarm(w, e.alarm_transition)
            w_end(w, start)
        else:   # the empty family markers
            start = w_begin(w, M_EVENT, slot)
            w_end(w, start)
    if body == -2:   # checked last, as the twin does
        raise ValueError(f"unknown body arm {e.body!r}")
    return 0


cdef int w_hresult(Writer* w, int slot, object hresult) except -1:
    cdef int64_t x
    as_int(hresult, MXG_INT32_MIN, MXG_INT32_MAX, "hresult", &x)
    w_tag(w, M_EVENT, slot, WT_VARINT)
    return w_varint(w, <uint64_t>x)


cdef int w_gap(Writer* w, object gap) except -1:
    cdef const MsgTable* t = &TABLES[M_GAP]
    cdef int i, slot
    for i in range(t.nslots):
        slot = t.order[i]
        if slot == G_REQUESTED:
            w_uint64_field(w, M_GAP, slot, gap.requested_after_sequence,
                           "requested_after_sequence")
        else:
            w_uint64_field(w, M_GAP, slot, gap.oldest_available_sequence,
                           "oldest_available_sequence")
    return 0


def encode_event(event):
    """Encode an MxEvent struct to a serialized ``MxEvent`` (protobuf's bytes exactly)."""
    cdef Writer w
    w_init(&w, 256)
    try:
        w_event(&w, event)
        return w_bytes(&w)
    finally:
        PyMem_Free(w.buf)


def encode_event_batch(events):
    """Encode MxEvent structs to a serialized ``MxEventBatch``."""
    cdef Writer w
    cdef Py_ssize_t start
    w_init(&w, 4096)
    try:
        for e in events:
            start = w_begin(&w, M_BATCH, B_EVENTS)
            w_event(&w, e)
            w_end(&w, start)
        return w_bytes(&w)
    finally:
        PyMem_Free(w.buf)
