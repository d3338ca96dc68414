# The decoder: wire bytes -> the structs of mxgateway.types.
#
# Every message is parsed *into* a C state ("merge into"), so a singular message field seen
# twice, or a oneof message arm repeated, merges exactly as protobuf does by continuing to
# parse into the same state. Strings are validated when read and kept as spans of the input;
# Python objects are made once, when the struct is built. Arrays and sparse arrays (rare) are
# accumulated in small Python objects kept alive by the context's store.

cdef struct TsState:
    int64_t sec
    int32_t nanos

cdef struct ValState:
    bint present
    int32_t data_type
    bint is_null
    int32_t raw_data_type
    int kind                  # slot of the set ``kind`` arm, 0 for none
    Span variant_type
    Span raw_diagnostic
    Span raw_value
    uint64_t u                # bool / int32 / int64 arms (raw varint)
    double d                  # float / double arms
    Span s                    # string arm
    TsState ts                # timestamp / elapsed arms
    PyObject* acc             # array / sparse arms: borrowed, owned by Ctx.store

cdef struct AlarmState:
    Span full_ref
    Span source_ref
    Span type_name
    int32_t transition_kind
    int32_t severity
    bint has_raise
    bint has_transition
    TsState raise_ts
    TsState transition_ts
    Span operator_user
    Span operator_comment
    Span category
    Span description
    ValState current
    ValState limit
    bint degraded
    int32_t current_state


cdef class _ArrayAcc:
    # The lists of one MxArray being decoded (several occurrences merge into it).
    cdef int32_t element_data_type
    cdef list dims, bools, int32s, int64s, floats, doubles, strings, timestamps, elapsed

    def __cinit__(self):
        self.element_data_type = 0
        self.dims = []
        self.bools = []
        self.int32s = []
        self.int64s = []
        self.floats = []
        self.doubles = []
        self.strings = []
        self.timestamps = []
        self.elapsed = []


cdef class _SparseAcc:
    cdef int32_t element_data_type
    cdef uint32_t total_length
    cdef list elements

    def __cinit__(self):
        self.element_data_type = 0
        self.total_length = 0
        self.elements = []


cdef class _PendingValue:
    # A parsed MxValue whose Python value is built only if it survives (a later oneof arm
    # may still discard it, and with it any range error its conversion would raise).
    cdef ValState v


cdef class _PendingSample:
    cdef ValState v
    cdef int32_t quality
    cdef bint has_ts
    cdef TsState ts


cdef inline void val_init(ValState* v) noexcept nogil:
    # What a fresh MxValue state must hold (the rest is written with ``kind``); a memset of
    # the whole state was a measured hot spot.
    v.present = False
    v.data_type = 0
    v.is_null = False
    v.raw_data_type = 0
    v.kind = 0
    v.variant_type.n = 0
    v.raw_diagnostic.n = 0
    v.raw_value.n = 0
    v.acc = NULL


cdef PyObject* keep(Ctx* c, object obj) except NULL:
    # Park ``obj`` in the context's store; the state holds a borrowed pointer to it.
    cdef list store
    if c.store == NULL:
        store = []
        Py_INCREF(store)
        c.store = <PyObject*>store
    (<list>c.store).append(obj)
    return <PyObject*>obj


# ---- small caches: identical values reuse one immutable object --------------------------

cdef str _sid_cache = ""             # last session_id, its UTF-8 kept as pointer + length
cdef const char* _sid_utf8 = ""
cdef Py_ssize_t _sid_len = 0
cdef list _str_cache = [None] * 64    # short strings (variant types, statuses, ...)
cdef const char* _str_utf8[64]
cdef Py_ssize_t _str_len[64]
cdef int64_t _ts_cache_ns = 0
cdef object _ts_cache_obj = 0


cdef inline bint is_ascii(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t i = 0
    cdef uint64_t word
    cdef uint8_t acc = 0
    while i + 8 <= n:
        memcpy(&word, s + i, 8)
        if word & MXG_HIGH_BITS:
            return False
        i += 8
    while i < n:
        acc |= s[i]
        i += 1
    return acc < 0x80


cdef inline str mkstr(Span s):
    # Validated UTF-8 (rstr) to str; ASCII (the usual case) is copied, not decoded again.
    cdef object out
    if s.n == 0:
        return ""
    if is_ascii(s.p, s.n):
        out = PyUnicode_New(s.n, 127)
        memcpy(PyUnicode_DATA(out), s.p, s.n)
        return <str>out
    return PyUnicode_DecodeUTF8(<const char*>s.p, s.n, NULL)


cdef inline bint same_bytes(const char* a, const uint8_t* b, Py_ssize_t n) noexcept nogil:
    # Short strings (session ids, variant types): an inline compare, 8 bytes at a time and
    # never past n. (libc's memcmp uses masked vector loads that were a measured hot spot.)
    cdef uint64_t x, y
    cdef Py_ssize_t i = 0
    while i + 8 <= n:
        memcpy(&x, a + i, 8)
        memcpy(&y, b + i, 8)
        if x != y:
            return False
        i += 8
    while i < n:
        if <uint8_t>a[i] != b[i]:
            return False
        i += 1
    return True


cdef inline bint same_utf8(str cached, Span s):
    cdef Py_ssize_t n
    cdef const char* u = PyUnicode_AsUTF8AndSize(cached, &n)
    return n == s.n and same_bytes(u, s.p, n)


cdef inline str session_str(Span s):
    # Consecutive events of a session share one str object.
    global _sid_cache, _sid_utf8, _sid_len
    if s.n == 0:
        return ""
    if s.n == _sid_len and same_bytes(_sid_utf8, s.p, s.n):
        return _sid_cache
    _sid_cache = mkstr(s)
    _sid_utf8 = PyUnicode_AsUTF8AndSize(_sid_cache, &_sid_len)
    return _sid_cache


cdef inline str cached_str(Span s):
    # Direct-mapped cache for short strings that repeat across events (VT_R8, VT_I4, ...);
    # the cached str objects live in _str_cache, so their UTF-8 pointers stay valid.
    cdef Py_ssize_t h
    cdef str made
    if s.n == 0:
        return ""
    if s.n > 32:
        return mkstr(s)
    h = (s.n * 31 + s.p[s.n - 1] * 7 + s.p[s.n >> 1]) & 63
    if _str_len[h] == s.n and same_bytes(_str_utf8[h], s.p, s.n):
        return <str>_str_cache[h]
    made = mkstr(s)
    _str_utf8[h] = PyUnicode_AsUTF8AndSize(made, &_str_len[h])
    _str_cache[h] = made
    return made


cdef inline bytes mkbytes(Span s):
    if s.n == 0:
        return b""
    return PyBytes_FromStringAndSize(<const char*>s.p, s.n)


cdef object ts_ns_slow(TsState* t):
    return <object>t.sec * 1_000_000_000 + t.nanos


cdef inline object ts_ns(TsState* t):
    # Integer nanoseconds, in C when |seconds| keeps it far inside int64.
    global _ts_cache_ns, _ts_cache_obj
    cdef int64_t ns
    if t.sec >= MXG_TS_SAFE_SECONDS or t.sec <= -MXG_TS_SAFE_SECONDS:
        return ts_ns_slow(t)
    ns = t.sec * 1_000_000_000 + t.nanos
    if ns != _ts_cache_ns:
        _ts_cache_ns = ns
        _ts_cache_obj = PyLong_FromLongLong(ns)
    return _ts_cache_obj


cdef inline object enum_of(tuple members, int32_t v):
    if 0 <= v < len(members):
        return members[v]
    return v


# ---- parsers -------------------------------------------------------------------------

cdef int parse_ts(Ctx* c, int msg, const uint8_t* p, const uint8_t* end,
                  TsState* ts) except -1:
    cdef const MsgTable* t = &TABLES[msg]
    cdef uint64_t tag, x
    cdef const uint8_t* start
    cdef int slot
    enter(c, msg, p)
    while p < end:
        start = p
        p = rtag(c, msg, p, end, &tag)
        slot = slot_for(t, tag)
        if slot != 0:
            p = rv(c, msg, p, end, &x)
            if slot == TS_SECONDS:
                ts.sec = <int64_t>x
            else:
                ts.nanos = <int32_t>x
        else:
            p = skip(c, msg, start, p, end, tag)
    c.depth -= 1
    return 0


# One-byte tags of Timestamp.seconds / .nanos (set by configure(); -1 when a tag takes more
# than one byte, which turns the fast path off).
cdef int _TS_SEC_TAG = -1
cdef int _TS_NANOS_TAG = -1


cdef inline bint ts_fast(Ctx* c, const uint8_t* p, const uint8_t* end, TsState* ts) noexcept nogil:
    # The usual Timestamp payload, read without a call: seconds then nanos, each optional,
    # nothing else. True when that was all; False leaves ``ts`` untouched, and parse_ts then
    # reads the payload with every rule (merging, unknown fields, errors).
    cdef uint64_t x
    cdef int64_t sec = ts.sec
    cdef int32_t nanos = ts.nanos
    if c.depth >= MAX_DEPTH:
        return False
    if p < end and p[0] == _TS_SEC_TAG:
        p = rdv_raw(p + 1, end, &x)
        if p == NULL:
            return False
        sec = <int64_t>x
    if p < end and p[0] == _TS_NANOS_TAG:
        p = rdv_raw(p + 1, end, &x)
        if p == NULL:
            return False
        nanos = <int32_t>x
    if p != end:
        return False
    ts.sec = sec
    ts.nanos = nanos
    return True


cdef int parse_array(Ctx* c, const uint8_t* p, const uint8_t* end, _ArrayAcc a) except -1:
    cdef const MsgTable* t = &TABLES[M_ARRAY]
    cdef uint64_t tag, x
    cdef uint32_t x32
    cdef float f
    cdef double d
    cdef const uint8_t* start
    cdef const uint8_t* pend
    cdef Py_ssize_t n
    cdef int slot, wt, ewt
    cdef TsState ts
    enter(c, M_ARRAY, p)
    while p < end:
        start = p
        p = rtag(c, M_ARRAY, p, end, &tag)
        slot = slot_of(t, tag >> 3)
        wt = tag & 7
        if slot == 0:
            p = skip(c, M_ARRAY, start, p, end, tag)
            continue
        ewt = t.wt[slot]
        if A_DIMENSIONS <= slot <= A_DOUBLE and wt == WT_LEN:
            # Packed: the elements, back to back, inside the length-delimited payload.
            p = rlen(c, M_ARRAY, p, end, &n)
            pend = p + n
            if (ewt == WT_I32 and n % 4) or (ewt == WT_I64 and n % 8):
                fail(c, M_ARRAY, p, f"packed {32 if ewt == WT_I32 else 64}-bit run of {n} bytes")
            while p < pend:
                if ewt == WT_VARINT:
                    p = rv(c, M_ARRAY, p, pend, &x)
                    append_varint(a, slot, x)
                elif ewt == WT_I32:
                    p = rfix32(c, M_ARRAY, p, pend, &x32)
                    memcpy(&f, &x32, 4)
                    a.floats.append(<double>f)
                else:
                    p = rfix64(c, M_ARRAY, p, pend, &x)
                    memcpy(&d, &x, 8)
                    a.doubles.append(d)
            continue
        if wt != ewt:
            p = skip(c, M_ARRAY, start, p, end, tag)
            continue
        if slot == A_ELEMENT_DATA_TYPE:
            p = rv(c, M_ARRAY, p, end, &x)
            a.element_data_type = <int32_t>x
        elif ewt == WT_VARINT:
            p = rv(c, M_ARRAY, p, end, &x)
            append_varint(a, slot, x)
        elif slot == A_FLOAT:
            p = rfix32(c, M_ARRAY, p, end, &x32)
            memcpy(&f, &x32, 4)
            a.floats.append(<double>f)
        elif slot == A_DOUBLE:
            p = rfix64(c, M_ARRAY, p, end, &x)
            memcpy(&d, &x, 8)
            a.doubles.append(d)
        elif slot == A_STRING:
            p = rlen(c, M_ARRAY, p, end, &n)
            if not utf8_valid(p, n):
                fail(c, M_ARRAY, p, "invalid UTF-8 in a string field")
            a.strings.append(PyUnicode_DecodeUTF8(<const char*>p, n, NULL))
            p += n
        else:  # A_TIMESTAMP, A_ELAPSED: one message per element
            p = rlen(c, M_ARRAY, p, end, &n)
            ts.sec = 0
            ts.nanos = 0
            parse_ts(c, M_TS if slot == A_TIMESTAMP else M_DUR, p, p + n, &ts)
            (a.timestamps if slot == A_TIMESTAMP else a.elapsed).append((ts.sec, ts.nanos))
            p += n
    c.depth -= 1
    return 0


cdef inline int append_varint(_ArrayAcc a, int slot, uint64_t x) except -1:
    if slot == A_DIMENSIONS:
        a.dims.append(<uint32_t>x)
    elif slot == A_BOOL:
        a.bools.append(x != 0)
    elif slot == A_INT32:
        a.int32s.append(<int32_t>x)
    else:
        a.int64s.append(<int64_t>x)
    return 0


cdef int parse_sparse(Ctx* c, const uint8_t* p, const uint8_t* end, _SparseAcc s) except -1:
    cdef const MsgTable* t = &TABLES[M_SPARSE]
    cdef uint64_t tag, x
    cdef const uint8_t* start
    cdef Py_ssize_t n
    cdef int slot
    enter(c, M_SPARSE, p)
    while p < end:
        start = p
        p = rtag(c, M_SPARSE, p, end, &tag)
        slot = slot_for(t, tag)
        if slot == 0:
            p = skip(c, M_SPARSE, start, p, end, tag)
        elif slot == SP_ELEMENT_DATA_TYPE:
            p = rv(c, M_SPARSE, p, end, &x)
            s.element_data_type = <int32_t>x
        elif slot == SP_TOTAL_LENGTH:
            p = rv(c, M_SPARSE, p, end, &x)
            s.total_length = <uint32_t>x
        else:
            p = rlen(c, M_SPARSE, p, end, &n)
            s.elements.append(parse_sparse_element(c, p, p + n))
            p += n
    c.depth -= 1
    return 0


cdef tuple parse_sparse_element(Ctx* c, const uint8_t* p, const uint8_t* end):
    cdef const MsgTable* t = &TABLES[M_SPARSE_EL]
    cdef uint64_t tag, x
    cdef const uint8_t* start
    cdef Py_ssize_t n
    cdef int slot
    cdef uint32_t index = 0
    cdef _PendingValue pending = _PendingValue.__new__(_PendingValue)
    val_init(&pending.v)
    enter(c, M_SPARSE_EL, p)
    while p < end:
        start = p
        p = rtag(c, M_SPARSE_EL, p, end, &tag)
        slot = slot_for(t, tag)
        if slot == 0:
            p = skip(c, M_SPARSE_EL, start, p, end, tag)
        elif slot == SE_INDEX:
            p = rv(c, M_SPARSE_EL, p, end, &x)
            index = <uint32_t>x
        else:
            p = rlen(c, M_SPARSE_EL, p, end, &n)
            parse_value(c, p, p + n, &pending.v)
            p += n
    c.depth -= 1
    return (index, pending)


cdef object sparse_native(Ctx* c, _SparseAcc s):
    cdef _PendingValue pending
    cdef list elements = []
    for index, pending in s.elements:
        elements.append((index, val_native(c, &pending.v) if pending.v.present else None))
    return _MxSparseArray(
        enum_of(_DATA_TYPES, s.element_data_type), s.total_length, tuple(elements)
    )


cdef int parse_value(Ctx* c, const uint8_t* p, const uint8_t* end, ValState* v) except -1:
    cdef const MsgTable* t = &TABLES[M_VALUE]
    cdef uint64_t tag, x
    cdef uint32_t x32
    cdef float f
    cdef const uint8_t* start
    cdef Py_ssize_t n
    cdef int slot
    cdef const TagBytes* tb = _TAGS[M_VALUE]
    cdef const uint8_t* q
    enter(c, M_VALUE, p)
    v.present = True
    # The usual leading fields in field-number order without dispatch (as parse_event_state);
    # the arm and anything else go through the loop.
    q = at_tag(p, end, &tb[V_DATA_TYPE])
    if q != NULL:
        p = rv(c, M_VALUE, q, end, &x)
        v.data_type = <int32_t>x
    q = at_tag(p, end, &tb[V_VARIANT_TYPE])
    if q != NULL:
        p = rstr(c, M_VALUE, q, end, &v.variant_type)
    q = at_tag(p, end, &tb[V_RAW_DATA_TYPE])
    if q != NULL:
        p = rv(c, M_VALUE, q, end, &x)
        v.raw_data_type = <int32_t>x
    while p < end:
        start = p
        p = rtag(c, M_VALUE, p, end, &tag)
        slot = slot_for(t, tag)
        if slot == 0:
            p = skip(c, M_VALUE, start, p, end, tag)
        elif slot == V_DATA_TYPE:
            p = rv(c, M_VALUE, p, end, &x)
            v.data_type = <int32_t>x
        elif slot == V_VARIANT_TYPE:
            p = rstr(c, M_VALUE, p, end, &v.variant_type)
        elif slot == V_IS_NULL:
            p = rv(c, M_VALUE, p, end, &x)
            v.is_null = x != 0
        elif slot == V_RAW_DIAGNOSTIC:
            p = rstr(c, M_VALUE, p, end, &v.raw_diagnostic)
        elif slot == V_RAW_DATA_TYPE:
            p = rv(c, M_VALUE, p, end, &x)
            v.raw_data_type = <int32_t>x
        elif slot == V_RAW_VALUE:
            p = rbytes(c, M_VALUE, p, end, &v.raw_value)
        elif slot == V_BOOL or slot == V_INT32 or slot == V_INT64:
            p = rv(c, M_VALUE, p, end, &v.u)
            v.kind = slot
        elif slot == V_DOUBLE:
            p = rfix64(c, M_VALUE, p, end, &x)
            memcpy(&v.d, &x, 8)
            v.kind = slot
        elif slot == V_FLOAT:
            p = rfix32(c, M_VALUE, p, end, &x32)
            memcpy(&f, &x32, 4)
            v.d = f
            v.kind = slot
        elif slot == V_STRING:
            p = rstr(c, M_VALUE, p, end, &v.s)
            v.kind = slot
        else:
            # A message arm: the same arm again merges, another arm starts afresh.
            p = rlen(c, M_VALUE, p, end, &n)
            if slot == V_TIMESTAMP or slot == V_ELAPSED:
                if v.kind != slot:
                    v.ts.sec = 0
                    v.ts.nanos = 0
                v.kind = slot
                parse_ts(c, M_TS if slot == V_TIMESTAMP else M_DUR, p, p + n, &v.ts)
            elif slot == V_ARRAY:
                if v.kind != slot:
                    v.acc = keep(c, _ArrayAcc())
                v.kind = slot
                parse_array(c, p, p + n, <_ArrayAcc>v.acc)
            else:
                if v.kind != slot:
                    v.acc = keep(c, _SparseAcc())
                v.kind = slot
                parse_sparse(c, p, p + n, <_SparseAcc>v.acc)
            p += n
    c.depth -= 1
    return 0


cdef int parse_status(Ctx* c, const uint8_t* p, const uint8_t* end, int32_t* vals,
                      Span* diag) except -1:
    # One MxStatusProxy into ``vals`` (indexed by slot) and its diagnostic text span.
    cdef const MsgTable* t = &TABLES[M_STATUS]
    cdef uint64_t tag, x
    cdef const uint8_t* start
    cdef int slot
    memset(vals, 0, 8 * sizeof(int32_t))
    diag.n = 0
    diag.p = NULL
    enter(c, M_STATUS, p)
    while p < end:
        start = p
        p = rtag(c, M_STATUS, p, end, &tag)
        slot = slot_for(t, tag)
        if slot == 0:
            p = skip(c, M_STATUS, start, p, end, tag)
        elif slot == ST_DIAGNOSTIC_TEXT:
            p = rstr(c, M_STATUS, p, end, diag)
        else:
            p = rv(c, M_STATUS, p, end, &x)
            vals[slot] = <int32_t>x
    c.depth -= 1
    return 0


cdef object status_struct(int32_t* vals, Span diag):
    # Statuses repeat (one OK status per event): reuse the previous struct when identical.
    cdef int i
    if (_status_cache is not None and diag.n == _status_diag_len
            and same_bytes(_status_diag_utf8, diag.p, diag.n)):
        for i in range(1, 7):
            if vals[i] != _status_vals[i]:
                break
        else:
            return _status_cache
    return new_status(vals, diag)


cdef int32_t _status_vals[8]
cdef object _status_cache = None
cdef str _status_diag = ""
cdef const char* _status_diag_utf8 = ""    # _status_diag's UTF-8 (kept alive by it)
cdef Py_ssize_t _status_diag_len = 0
cdef tuple _status_tuple = ()


cdef object new_status(int32_t* vals, Span diag):
    global _status_cache, _status_diag, _status_tuple, _status_diag_utf8, _status_diag_len
    diag_str = cached_str(diag)
    status = _MxStatus(
        vals[ST_SUCCESS],
        enum_of(_CATEGORIES, vals[ST_CATEGORY]),
        enum_of(_SOURCES, vals[ST_DETECTED_BY]),
        vals[ST_DETAIL],
        vals[ST_RAW_CATEGORY],
        vals[ST_RAW_DETECTED_BY],
        diag_str,
    )
    memcpy(_status_vals, vals, sizeof(_status_vals))
    _status_diag = diag_str
    _status_diag_utf8 = PyUnicode_AsUTF8AndSize(diag_str, &_status_diag_len)
    _status_cache = status
    _status_tuple = (status,)
    return status


cdef int parse_gap(Ctx* c, const uint8_t* p, const uint8_t* end, uint64_t* gap) except -1:
    cdef const MsgTable* t = &TABLES[M_GAP]
    cdef uint64_t tag, x
    cdef const uint8_t* start
    cdef int slot
    enter(c, M_GAP, p)
    while p < end:
        start = p
        p = rtag(c, M_GAP, p, end, &tag)
        slot = slot_for(t, tag)
        if slot == 0:
            p = skip(c, M_GAP, start, p, end, tag)
        else:
            p = rv(c, M_GAP, p, end, &x)
            gap[slot - 1] = x
    c.depth -= 1
    return 0


cdef object parse_sample(Ctx* c, const uint8_t* p, const uint8_t* end):
    cdef const MsgTable* t = &TABLES[M_SAMPLE]
    cdef uint64_t tag, x
    cdef const uint8_t* start
    cdef Py_ssize_t n
    cdef int slot
    cdef _PendingSample sample = _PendingSample.__new__(_PendingSample)
    val_init(&sample.v)
    sample.quality = 0
    sample.has_ts = False
    enter(c, M_SAMPLE, p)
    while p < end:
        start = p
        p = rtag(c, M_SAMPLE, p, end, &tag)
        slot = slot_for(t, tag)
        if slot == 0:
            p = skip(c, M_SAMPLE, start, p, end, tag)
        elif slot == SA_QUALITY:
            p = rv(c, M_SAMPLE, p, end, &x)
            sample.quality = <int32_t>x
        else:
            p = rlen(c, M_SAMPLE, p, end, &n)
            if slot == SA_VALUE:
                parse_value(c, p, p + n, &sample.v)
            else:
                if not sample.has_ts:
                    sample.has_ts = True
                    sample.ts.sec = 0
                    sample.ts.nanos = 0
                parse_ts(c, M_TS, p, p + n, &sample.ts)
            p += n
    c.depth -= 1
    return sample


cdef tuple samples_native(Ctx* c, list pending):
    cdef _PendingSample s
    cdef list out = []
    for s in pending:
        out.append(_BufferedSample(
            mxvalue_struct(c, &s.v) if s.v.present else None,
            s.quality,
            ts_ns(&s.ts) if s.has_ts else None,
        ))
    return tuple(out)


cdef int parse_buffered(Ctx* c, const uint8_t* p, const uint8_t* end, int32_t* data_type,
                        list samples) except -1:
    cdef const MsgTable* t = &TABLES[M_BUFFERED]
    cdef uint64_t tag, x
    cdef const uint8_t* start
    cdef Py_ssize_t n
    cdef int slot
    enter(c, M_BUFFERED, p)
    while p < end:
        start = p
        p = rtag(c, M_BUFFERED, p, end, &tag)
        slot = slot_for(t, tag)
        if slot == 0:
            p = skip(c, M_BUFFERED, start, p, end, tag)
        elif slot == BD_DATA_TYPE:
            p = rv(c, M_BUFFERED, p, end, &x)
            data_type[0] = <int32_t>x
        else:
            p = rlen(c, M_BUFFERED, p, end, &n)
            samples.append(parse_sample(c, p, p + n))
            p += n
    c.depth -= 1
    return 0


cdef int parse_alarm(Ctx* c, const uint8_t* p, const uint8_t* end, AlarmState* a) except -1:
    cdef const MsgTable* t = &TABLES[M_ALARM]
    cdef uint64_t tag, x
    cdef const uint8_t* start
    cdef Py_ssize_t n
    cdef int slot
    enter(c, M_ALARM, p)
    while p < end:
        start = p
        p = rtag(c, M_ALARM, p, end, &tag)
        slot = slot_for(t, tag)
        if slot == 0:
            p = skip(c, M_ALARM, start, p, end, tag)
        elif slot == AL_ALARM_FULL_REFERENCE:
            p = rstr(c, M_ALARM, p, end, &a.full_ref)
        elif slot == AL_SOURCE_OBJECT_REFERENCE:
            p = rstr(c, M_ALARM, p, end, &a.source_ref)
        elif slot == AL_ALARM_TYPE_NAME:
            p = rstr(c, M_ALARM, p, end, &a.type_name)
        elif slot == AL_OPERATOR_USER:
            p = rstr(c, M_ALARM, p, end, &a.operator_user)
        elif slot == AL_OPERATOR_COMMENT:
            p = rstr(c, M_ALARM, p, end, &a.operator_comment)
        elif slot == AL_CATEGORY:
            p = rstr(c, M_ALARM, p, end, &a.category)
        elif slot == AL_DESCRIPTION:
            p = rstr(c, M_ALARM, p, end, &a.description)
        elif slot == AL_TRANSITION_KIND:
            p = rv(c, M_ALARM, p, end, &x)
            a.transition_kind = <int32_t>x
        elif slot == AL_SEVERITY:
            p = rv(c, M_ALARM, p, end, &x)
            a.severity = <int32_t>x
        elif slot == AL_DEGRADED:
            p = rv(c, M_ALARM, p, end, &x)
            a.degraded = x != 0
        elif slot == AL_CURRENT_STATE:
            p = rv(c, M_ALARM, p, end, &x)
            a.current_state = <int32_t>x
        else:
            p = rlen(c, M_ALARM, p, end, &n)
            if slot == AL_ORIGINAL_RAISE_TS:
                if not a.has_raise:
                    a.has_raise = True
                    a.raise_ts.sec = 0
                    a.raise_ts.nanos = 0
                parse_ts(c, M_TS, p, p + n, &a.raise_ts)
            elif slot == AL_TRANSITION_TS:
                if not a.has_transition:
                    a.has_transition = True
                    a.transition_ts.sec = 0
                    a.transition_ts.nanos = 0
                parse_ts(c, M_TS, p, p + n, &a.transition_ts)
            elif slot == AL_CURRENT_VALUE:
                parse_value(c, p, p + n, &a.current)
            else:
                parse_value(c, p, p + n, &a.limit)
            p += n
    c.depth -= 1
    return 0


cdef object alarm_struct(Ctx* c, AlarmState* a):
    return _AlarmTransition(
        mkstr(a.full_ref),
        mkstr(a.source_ref),
        mkstr(a.type_name),
        enum_of(_TRANSITION_KINDS, a.transition_kind),
        a.severity,
        ts_ns(&a.raise_ts) if a.has_raise else None,
        ts_ns(&a.transition_ts) if a.has_transition else None,
        mkstr(a.operator_user),
        mkstr(a.operator_comment),
        mkstr(a.category),
        mkstr(a.description),
        mxvalue_struct(c, &a.current) if a.current.present else None,
        mxvalue_struct(c, &a.limit) if a.limit.present else None,
        a.degraded,
        enum_of(_CONDITION_STATES, a.current_state),
    )


# ---- native values ---------------------------------------------------------------------

cdef object to_datetime(object seconds, object nanos, str where):
    # D8: any OverflowError of the conversion is the range error.
    try:
        return _EPOCH + _timedelta(microseconds=(seconds * 1_000_000_000 + nanos) // 1000)
    except OverflowError:
        raise MxGatewayDecodeError(
            f"{where}: timestamp of {seconds} s {nanos} ns is outside datetime's range"
        ) from None


cdef object to_timedelta(object seconds, object nanos, str where):
    try:
        return _timedelta(microseconds=(seconds * 1_000_000_000 + nanos) // 1000)
    except OverflowError:
        raise MxGatewayDecodeError(
            f"{where}: duration of {seconds} s {nanos} ns is outside timedelta's range"
        ) from None


cdef list nest(list values, list dims):
    # D9: nested row-major only when the dimensions' product is the (non-zero) element
    # count; built iteratively, innermost dimension first.
    cdef Py_ssize_t count = len(values)
    product = 1
    for d in dims:
        product *= d
        if product == 0 or product > count:
            break
    if product == count and product != 0:
        for d in reversed(dims[1:]):
            values = [values[i:i + d] for i in range(0, len(values), d)]
    return values


cdef object array_native(Ctx* c, _ArrayAcc a):
    cdef int32_t et = a.element_data_type
    cdef list values
    if et == DT_BOOLEAN:
        values = a.bools
    elif et == DT_INTEGER:
        values = a.int32s if a.int32s else a.int64s
    elif et == DT_FLOAT:
        values = a.floats
    elif et == DT_DOUBLE:
        values = a.doubles
    elif (et == DT_STRING or et == DT_BIG_STRING or et == DT_INTERNATIONALIZED_STRING
            or et == DT_REFERENCE):
        values = a.strings
    elif et == DT_TIME:
        values = [to_datetime(x[0], x[1], "MxArray.timestamp_values") for x in a.timestamps]
    elif et == DT_ELAPSED_TIME:
        values = [to_timedelta(x[0], x[1], "MxArray.elapsed_values") for x in a.elapsed]
    elif a.bools:
        values = a.bools
    elif a.int32s:
        values = a.int32s
    elif a.int64s:
        values = a.int64s
    elif a.floats:
        values = a.floats
    elif a.doubles:
        values = a.doubles
    elif a.strings:
        values = a.strings
    elif a.timestamps:
        values = [to_datetime(x[0], x[1], "MxArray.timestamp_values") for x in a.timestamps]
    elif a.elapsed:
        values = [to_timedelta(x[0], x[1], "MxArray.elapsed_values") for x in a.elapsed]
    else:
        values = []
    if len(a.dims) >= 2:
        return nest(values, a.dims)
    return values


cdef object val_native(Ctx* c, ValState* v):
    cdef int k = v.kind
    if k == V_DOUBLE or k == V_FLOAT:
        return v.d
    if k == V_INT32:
        return <int32_t>v.u
    if k == V_BOOL:
        return v.u != 0
    if k == V_STRING:
        return mkstr(v.s)
    if k == V_INT64:
        return <int64_t>v.u
    if k == 0:
        return mkbytes(v.raw_value) if v.raw_value.n else None
    if k == V_TIMESTAMP:
        return to_datetime(v.ts.sec, v.ts.nanos, "MxValue.timestamp_value")
    if k == V_ELAPSED:
        return to_timedelta(v.ts.sec, v.ts.nanos, "MxValue.elapsed_value")
    if k == V_ARRAY:
        return array_native(c, <_ArrayAcc>v.acc)
    return sparse_native(c, <_SparseAcc>v.acc)


cdef object mxvalue_struct(Ctx* c, ValState* v):
    raw_value = mkbytes(v.raw_value)
    if v.kind == 0:
        value = raw_value if v.raw_value.n else None
    else:
        value = val_native(c, v)
    return _MxValue(
        value,
        enum_of(_DATA_TYPES, v.data_type),
        cached_str(v.variant_type),
        v.is_null,
        cached_str(v.raw_diagnostic),
        v.raw_data_type,
        raw_value,
    )


# ---- events ----------------------------------------------------------------------------
#
# An event is parsed into an EvState (C values and spans of the input, merged as protobuf
# merges); what is made of it is then the caller's choice: an MxEvent struct (event_struct),
# or a row of EventColumns (_columns.pxi), which needs no Python object at all.

cdef struct EvState:
    Span session
    Span raw_status
    int32_t family
    int32_t server_handle
    int32_t item_handle
    int32_t quality
    int32_t hresult
    int32_t buffered_data_type
    bint has_hresult
    bint has_src
    bint has_worker
    bint has_gateway
    bint has_gap
    int body                  # slot of the set ``body`` arm, 0 for none
    uint64_t sequence
    uint64_t gap[2]
    TsState src_ts
    TsState worker_ts
    TsState gateway_ts
    int nstatus               # statuses seen
    int32_t st1[8]            # the first one's fields (by slot) and text, in C
    Span st1_diag
    PyObject* statuses        # from the second one on: a list of MxStatus (kept by Ctx.store)
    PyObject* samples         # on_buffered_data_change: a list of _PendingSample (Ctx.store)
    ValState v
    AlarmState alarm          # initialised only when the alarm arm is set


cdef inline const uint8_t* ev_ts(Ctx* c, const uint8_t* p, const uint8_t* end, bint* has,
                                 TsState* ts) except NULL:
    # A Timestamp field (payload after its length): the first occurrence starts from zero,
    # later ones merge.
    cdef Py_ssize_t n
    p = rlen(c, M_EVENT, p, end, &n)
    if not has[0]:
        has[0] = True
        ts.sec = 0
        ts.nanos = 0
    if not ts_fast(c, p, p + n, ts):
        parse_ts(c, M_TS, p, p + n, ts)
    return p + n


cdef inline const uint8_t* ev_session(Ctx* c, const uint8_t* p, const uint8_t* end,
                                      EvState* e) except NULL:
    # Usually the session id of the previous event: those bytes were validated then.
    cdef Py_ssize_t n
    p = rlen(c, M_EVENT, p, end, &n)
    if not (n == _sid_len and same_bytes(_sid_utf8, p, n)) and not utf8_valid(p, n):
        fail(c, M_EVENT, p, "invalid UTF-8 in a string field")
    e.session.p = p
    e.session.n = n
    return p + n


cdef inline const uint8_t* ev_value(Ctx* c, const uint8_t* p, const uint8_t* end,
                                    EvState* e) except NULL:
    cdef Py_ssize_t n
    p = rlen(c, M_EVENT, p, end, &n)
    if not e.v.present:
        val_init(&e.v)
    parse_value(c, p, p + n, &e.v)
    return p + n


cdef inline const uint8_t* ev_status(Ctx* c, const uint8_t* p, const uint8_t* end,
                                     EvState* e) except NULL:
    cdef Py_ssize_t n
    cdef int32_t vals[8]
    cdef Span diag
    cdef list more
    p = rlen(c, M_EVENT, p, end, &n)
    if e.nstatus == 0:
        status_vals(c, p, p + n, e.st1, &e.st1_diag)
    else:
        status_vals(c, p, p + n, vals, &diag)
        if e.statuses == NULL:
            more = [status_struct(e.st1, e.st1_diag)]
            e.statuses = keep(c, more)
        (<list>e.statuses).append(status_struct(vals, diag))
    e.nstatus += 1
    return p + n


cdef inline int status_vals(Ctx* c, const uint8_t* p, const uint8_t* end, int32_t* vals,
                            Span* diag) except -1:
    # An event's status, remembered by its bytes for the call: events repeat the same status,
    # and the same bytes at the same depth parse to the same values.
    cdef Py_ssize_t n = end - p
    if (c.st_ok and n == c.st_n and c.depth == c.st_depth
            and same_bytes(<const char*>c.st_p, p, n)):
        memcpy(vals, c.st_vals, sizeof(c.st_vals))
        diag[0] = c.st_diag
        return 0
    parse_status(c, p, end, vals, diag)
    c.st_ok = True
    c.st_p = p
    c.st_n = n
    c.st_depth = c.depth
    memcpy(c.st_vals, vals, sizeof(c.st_vals))
    c.st_diag = diag[0]
    return 0


cdef const uint8_t* ev_field(Ctx* c, EvState* e, int slot, const uint8_t* p,
                            const uint8_t* end) except NULL:
    # One field of an MxEvent read with its own wire type (``p`` is after the tag).
    cdef uint64_t x
    cdef Py_ssize_t n
    if slot == EV_SESSION_ID:
        return ev_session(c, p, end, e)
    if slot == EV_FAMILY:
        p = rv(c, M_EVENT, p, end, &x)
        e.family = <int32_t>x
        return p
    if slot == EV_WORKER_SEQUENCE:
        return rv(c, M_EVENT, p, end, &e.sequence)
    if slot == EV_SERVER_HANDLE:
        p = rv(c, M_EVENT, p, end, &x)
        e.server_handle = <int32_t>x
        return p
    if slot == EV_ITEM_HANDLE:
        p = rv(c, M_EVENT, p, end, &x)
        e.item_handle = <int32_t>x
        return p
    if slot == EV_QUALITY:
        p = rv(c, M_EVENT, p, end, &x)
        e.quality = <int32_t>x
        return p
    if slot == EV_HRESULT:
        p = rv(c, M_EVENT, p, end, &x)
        e.hresult = <int32_t>x
        e.has_hresult = True
        return p
    if slot == EV_RAW_STATUS:
        return rstr(c, M_EVENT, p, end, &e.raw_status)
    if slot == EV_VALUE:
        return ev_value(c, p, end, e)
    if slot == EV_SOURCE_TS:
        return ev_ts(c, p, end, &e.has_src, &e.src_ts)
    if slot == EV_WORKER_TS:
        return ev_ts(c, p, end, &e.has_worker, &e.worker_ts)
    if slot == EV_GATEWAY_TS:
        return ev_ts(c, p, end, &e.has_gateway, &e.gateway_ts)
    if slot == EV_STATUSES:
        return ev_status(c, p, end, e)
    p = rlen(c, M_EVENT, p, end, &n)
    if slot == EV_REPLAY_GAP:
        if not e.has_gap:
            e.has_gap = True
            e.gap[0] = 0
            e.gap[1] = 0
        parse_gap(c, p, p + n, e.gap)
    elif slot == EV_ON_BUFFERED:
        if e.body != slot:
            e.body = slot
            e.buffered_data_type = 0
            e.samples = keep(c, [])
        parse_buffered(c, p, p + n, &e.buffered_data_type, <list>e.samples)
    elif slot == EV_ON_ALARM:
        if e.body != slot:
            e.body = slot
            memset(&e.alarm, 0, sizeof(AlarmState))
        parse_alarm(c, p, p + n, &e.alarm)
    else:  # the empty family markers (usually empty: nothing to parse but the depth)
        e.body = slot
        if n or c.depth >= MAX_DEPTH:
            parse_empty(c, M_ON_DATA_CHANGE + (slot - EV_ON_DATA_CHANGE), p, p + n)
    return p + n


cdef int parse_event_state(Ctx* c, const uint8_t* p, const uint8_t* end,
                           EvState* e) except -1:
    cdef const MsgTable* t = &TABLES[M_EVENT]
    cdef const TagBytes* tb = _TAGS[M_EVENT]
    cdef uint64_t tag, x
    cdef const uint8_t* start
    cdef const uint8_t* q
    cdef int slot
    e.session.n = 0
    e.session.p = NULL
    e.raw_status.n = 0
    e.raw_status.p = NULL
    e.family = 0
    e.server_handle = 0
    e.item_handle = 0
    e.quality = 0
    e.hresult = 0
    e.buffered_data_type = 0
    e.has_hresult = False
    e.has_src = False
    e.has_worker = False
    e.has_gateway = False
    e.has_gap = False
    e.body = 0
    e.sequence = 0
    e.nstatus = 0
    e.statuses = NULL
    e.samples = NULL
    val_init(&e.v)
    enter(c, M_EVENT, p)
    # The fields of a data change in field-number order, where protobuf writes them, each
    # read by its own code with no dispatch (an indirect jump per field was the parser's
    # largest cost); the loop below reads whatever remains, in any order, with the same
    # handlers, so the result is the same for any input.
    q = at_tag(p, end, &tb[EV_SESSION_ID])
    if q != NULL:
        p = ev_session(c, q, end, e)
    q = at_tag(p, end, &tb[EV_FAMILY])
    if q != NULL:
        p = rv(c, M_EVENT, q, end, &x)
        e.family = <int32_t>x
    q = at_tag(p, end, &tb[EV_WORKER_SEQUENCE])
    if q != NULL:
        p = rv(c, M_EVENT, q, end, &e.sequence)
    q = at_tag(p, end, &tb[EV_SERVER_HANDLE])
    if q != NULL:
        p = rv(c, M_EVENT, q, end, &x)
        e.server_handle = <int32_t>x
    q = at_tag(p, end, &tb[EV_ITEM_HANDLE])
    if q != NULL:
        p = rv(c, M_EVENT, q, end, &x)
        e.item_handle = <int32_t>x
    q = at_tag(p, end, &tb[EV_VALUE])
    if q != NULL:
        p = ev_value(c, q, end, e)
    q = at_tag(p, end, &tb[EV_QUALITY])
    if q != NULL:
        p = rv(c, M_EVENT, q, end, &x)
        e.quality = <int32_t>x
    q = at_tag(p, end, &tb[EV_SOURCE_TS])
    if q != NULL:
        p = ev_ts(c, q, end, &e.has_src, &e.src_ts)
    q = at_tag(p, end, &tb[EV_STATUSES])
    while q != NULL:
        p = ev_status(c, q, end, e)
        q = at_tag(p, end, &tb[EV_STATUSES])
    q = at_tag(p, end, &tb[EV_WORKER_TS])
    if q != NULL:
        p = ev_ts(c, q, end, &e.has_worker, &e.worker_ts)
    q = at_tag(p, end, &tb[EV_GATEWAY_TS])
    if q != NULL:
        p = ev_ts(c, q, end, &e.has_gateway, &e.gateway_ts)
    q = at_tag(p, end, &tb[EV_ON_DATA_CHANGE])
    if q != NULL:
        p = ev_field(c, e, EV_ON_DATA_CHANGE, q, end)
    while p < end:
        start = p
        p = rtag(c, M_EVENT, p, end, &tag)
        slot = slot_for(t, tag)
        if slot == 0:
            p = skip(c, M_EVENT, start, p, end, tag)
        else:
            p = ev_field(c, e, slot, p, end)
    c.depth -= 1
    return 0


# ---- building structs ------------------------------------------------------------------
#
# MxEvent has 27 fields. Calling the class with 27 arguments costs a reference-counted
# argument vector and msgspec's argument loop; instead the struct is allocated with its
# type's tp_alloc and its slots are filled directly, exactly as msgspec's own constructor
# does for a positional call (no __post_init__, no GC tracking: gc=False). struct_info()
# checks at import that the class is laid out so (member descriptors of object slots,
# no GC, no __post_init__); anything else falls back to calling the class.

cdef extern from *:
    """
    #include <structmember.h>
    /* A struct without the zeroing of PyType_GenericAlloc when every slot is written
       anyway (only for types using the default allocator and free, checked at import). */
    static PyObject* mxg_alloc(PyTypeObject* t, int plain) {
        PyObject* obj;
        if (!plain) return t->tp_alloc(t, 0);
        obj = (PyObject*)PyObject_Malloc(t->tp_basicsize);
        if (obj == NULL) return PyErr_NoMemory();
        return PyObject_Init(obj, t);
    }
    static int mxg_plain_alloc(PyTypeObject* t) {
        return t->tp_alloc == PyType_GenericAlloc && t->tp_free == PyObject_Free
            && t->tp_itemsize == 0 && t->tp_dictoffset == 0 && t->tp_weaklistoffset == 0;
    }
    static Py_ssize_t mxg_member_offset(PyObject* d) {
        PyMemberDef* m;
        if (Py_TYPE(d) != &PyMemberDescr_Type) return -1;
        m = ((PyMemberDescrObject*)d)->d_member;
        if (m->type != T_OBJECT_EX || (m->flags & READONLY)) return -1;
        return m->offset;
    }
    static inline void mxg_set_slot(PyObject* obj, Py_ssize_t off, PyObject* v) {
        Py_INCREF(v);
        *(PyObject**)((char*)obj + off) = v;
    }
    """
    object mxg_alloc(PyTypeObject* t, int plain)
    int mxg_plain_alloc(PyTypeObject* t)
    Py_ssize_t mxg_member_offset(PyObject* d)
    void mxg_set_slot(object obj, Py_ssize_t off, PyObject* v) noexcept
    const unsigned long Py_TPFLAGS_HAVE_GC

cdef enum:
    MAX_STRUCT_FIELDS = 32

cdef struct StructInfo:
    PyTypeObject* type        # borrowed: the module keeps the class alive
    int nfields
    bint fast
    int plain                 # fast, and every slot of the object is a field: no zeroing
    Py_ssize_t offsets[MAX_STRUCT_FIELDS]


cdef int struct_info(StructInfo* info, object cls, tuple fields) except -1:
    cdef Py_ssize_t off
    cdef int i
    if tuple(cls.__struct_fields__) != fields:
        raise ImportError(f"{cls.__name__} has other fields than the codec builds")
    info.type = <PyTypeObject*>cls
    info.nfields = len(fields)
    info.fast = (
        len(fields) <= MAX_STRUCT_FIELDS
        and not ((<PyTypeObject*>cls).tp_flags & Py_TPFLAGS_HAVE_GC)
        and getattr(cls, "__post_init__", None) is None
    )
    for i in range(info.nfields if info.fast else 0):
        off = mxg_member_offset(<PyObject*>cls.__dict__[fields[i]])
        if off < <Py_ssize_t>sizeof(PyObject) or off > cls.__basicsize__ - <Py_ssize_t>sizeof(PyObject*):
            info.fast = False
            break
        info.offsets[i] = off
    # Plain allocation leaves memory as it is: only when the fields cover the whole object.
    info.plain = info.fast and mxg_plain_alloc(info.type) and (
        cls.__basicsize__ == sizeof(PyObject) + info.nfields * sizeof(PyObject*)
    )
    return 0


cdef object make_struct(StructInfo* info, PyObject** vals):
    # ``vals``: borrowed references, one per field in field order.
    cdef int i
    cdef object obj
    cdef tuple args
    if info.fast:
        obj = mxg_alloc(info.type, info.plain)
        for i in range(info.nfields):
            mxg_set_slot(obj, info.offsets[i], vals[i])
        return obj
    args = tuple([<object>vals[i] for i in range(info.nfields)])
    return (<object>info.type)(*args)


cdef StructInfo EVENT_INFO
struct_info(&EVENT_INFO, _MxEvent, (
    "session_id", "family", "worker_sequence", "server_handle", "item_handle", "value",
    "data_type", "variant_type", "is_null", "raw_diagnostic", "raw_data_type", "raw_value",
    "has_value", "quality", "source_timestamp_ns", "statuses", "worker_timestamp_ns",
    "gateway_receive_timestamp_ns", "hresult", "raw_status", "replay_gap", "body",
    "buffered_data_type", "samples", "alarm_transition", "session_recovered", "tag",
))

cdef object _NONE = None
cdef object _FALSE = False
cdef object _TRUE = True
cdef object _EMPTY_BYTES = b""
cdef object _EMPTY_TUPLE = ()
cdef object _EMPTY_STR = ""


cdef object event_struct(Ctx* c, EvState* e):
    cdef PyObject* vals[27]
    cdef PyObject* name = NULL
    cdef bint looked
    cdef ValState* v = &e.v
    # Every value handed over is a Python object held by a local until the struct holds it.
    cdef object session, family, sequence, server, item, quality, statuses, value, data_type
    cdef object variant_type, raw_diagnostic, raw_data_type, raw_value, source_ts, worker_ts
    cdef object gateway_ts, hresult, raw_status, gap, body, buffered_data_type, samples, alarm
    session = session_str(e.session)
    family = enum_of(_FAMILIES, e.family)
    sequence = PyLong_FromUnsignedLongLong(e.sequence)
    server = <long>e.server_handle
    item = <long>e.item_handle
    quality = <long>e.quality
    if e.statuses != NULL:
        statuses = tuple(<list>e.statuses)
    elif e.nstatus:
        status_struct(e.st1, e.st1_diag)   # leaves it in _status_cache / _status_tuple
        statuses = _status_tuple
    else:
        statuses = _EMPTY_TUPLE
    vals[0] = <PyObject*>session
    vals[1] = <PyObject*>family
    vals[2] = <PyObject*>sequence
    vals[3] = <PyObject*>server
    vals[4] = <PyObject*>item
    if v.present:
        raw_value = mkbytes(v.raw_value)
        if v.kind == 0:
            value = raw_value if v.raw_value.n else None
        else:
            value = val_native(c, v)
        data_type = enum_of(_DATA_TYPES, v.data_type)
        variant_type = cached_str(v.variant_type)
        raw_diagnostic = cached_str(v.raw_diagnostic)
        raw_data_type = <long>v.raw_data_type
        vals[5] = <PyObject*>value
        vals[6] = <PyObject*>data_type
        vals[7] = <PyObject*>variant_type
        vals[8] = <PyObject*>(_TRUE if v.is_null else _FALSE)
        vals[9] = <PyObject*>raw_diagnostic
        vals[10] = <PyObject*>raw_data_type
        vals[11] = <PyObject*>raw_value
        vals[12] = <PyObject*>_TRUE
    else:
        vals[5] = <PyObject*>_NONE
        vals[6] = <PyObject*>_DT_UNSPECIFIED
        vals[7] = <PyObject*>_EMPTY_STR
        vals[8] = <PyObject*>_FALSE
        vals[9] = <PyObject*>_EMPTY_STR
        vals[10] = <PyObject*>_ZERO
        vals[11] = <PyObject*>_EMPTY_BYTES
        vals[12] = <PyObject*>_FALSE
    vals[13] = <PyObject*>quality
    if e.has_src:
        source_ts = ts_ns(&e.src_ts)
        vals[14] = <PyObject*>source_ts
    else:
        vals[14] = <PyObject*>_NONE
    vals[15] = <PyObject*>statuses
    if e.has_worker:
        worker_ts = ts_ns(&e.worker_ts)
        vals[16] = <PyObject*>worker_ts
    else:
        vals[16] = <PyObject*>_NONE
    if e.has_gateway:
        gateway_ts = ts_ns(&e.gateway_ts)
        vals[17] = <PyObject*>gateway_ts
    else:
        vals[17] = <PyObject*>_NONE
    if e.has_hresult:
        hresult = <long>e.hresult
        vals[18] = <PyObject*>hresult
    else:
        vals[18] = <PyObject*>_NONE
    raw_status = cached_str(e.raw_status)
    vals[19] = <PyObject*>raw_status
    if e.has_gap:
        gap = _ReplayGap(e.gap[0], e.gap[1])
        vals[20] = <PyObject*>gap
    else:
        vals[20] = <PyObject*>_NONE
    body = <str>_BODY_NAMES[e.body - EV_ON_DATA_CHANGE + 1] if e.body else _EMPTY_STR
    vals[21] = <PyObject*>body
    if e.body == EV_ON_BUFFERED:
        buffered_data_type = enum_of(_DATA_TYPES, e.buffered_data_type)
        samples = samples_native(c, <list>e.samples) if len(<list>e.samples) else _EMPTY_TUPLE
        vals[22] = <PyObject*>buffered_data_type
        vals[23] = <PyObject*>samples
    else:
        vals[22] = <PyObject*>_DT_UNSPECIFIED
        vals[23] = <PyObject*>_EMPTY_TUPLE
    if e.body == EV_ON_ALARM:
        alarm = alarm_struct(c, &e.alarm)
        vals[24] = <PyObject*>alarm
    else:
        vals[24] = <PyObject*>_NONE
    vals[25] = <PyObject*>_NONE
    if c.tags != NULL:
        name = tag_name(c, e.item_handle, &looked)
    vals[26] = name if name != NULL else <PyObject*>_NONE
    return make_struct(&EVENT_INFO, vals)


cdef object _ZERO = 0


cdef object parse_event(Ctx* c, const uint8_t* p, const uint8_t* end):
    cdef EvState e
    parse_event_state(c, p, end, &e)
    return event_struct(c, &e)


cdef list parse_batch(Ctx* c, const uint8_t* p, const uint8_t* end):
    cdef const MsgTable* t = &TABLES[M_BATCH]
    cdef uint64_t tag
    cdef const uint8_t* start
    cdef Py_ssize_t n
    cdef list events = []
    cdef EvState e
    enter(c, M_BATCH, p)
    while p < end:
        start = p
        p = rtag(c, M_BATCH, p, end, &tag)
        if slot_for(t, tag) == B_EVENTS:
            p = rlen(c, M_BATCH, p, end, &n)
            parse_event_state(c, p, p + n, &e)
            events.append(event_struct(c, &e))
            p += n
        else:
            p = skip(c, M_BATCH, start, p, end, tag)
    c.depth -= 1
    return events
