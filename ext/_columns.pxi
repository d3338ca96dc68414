# The columns decoder: events -> the typed columns of mxgateway.columns.EventColumns.
#
# One pass over the events of one or more messages into columns allocated once (the events
# are counted first, from the messages' framing), in one bytearray that numpy views without a
# copy. Each event is parsed into the same EvState as the struct decoder; a row is written
# from it in C, with no Python object per event. What a row cannot hold exactly (see
# docs/codec.md, "decode_event_columns") is built as an MxEvent and kept in ``others`` with
# its row. The twin is src/mxgateway/_pycodec/_columns.py; the layout below is its LAYOUT.

cdef enum:
    # Value kinds (mxgateway.columns.ValueKind).
    K_ABSENT = 0      # no MxValue
    K_NONE = 1        # an MxValue without a kind arm (and without raw_value)
    K_BOOL = 2
    K_INT = 3         # int32 / int64 arm, in value_int
    K_FLOAT = 4       # float / double arm, in value_float
    K_STRING = 5      # string arm, in the string data
    K_TIME = 6        # timestamp arm, nanoseconds in value_int
    K_ELAPSED = 7     # elapsed arm, nanoseconds in value_int
    K_OTHER = 255     # the row's event is in ``others``

cdef enum:
    # Columns, in block order (each starts 8-byte aligned).
    CO_SEQUENCE = 0
    CO_SOURCE_TS
    CO_WORKER_TS
    CO_GATEWAY_TS
    CO_FLOAT
    CO_INT
    CO_SERVER
    CO_ITEM
    CO_FAMILY
    CO_QUALITY
    CO_DATA_TYPE
    CO_RAW_DATA_TYPE
    CO_STR_OFFSETS    # n + 1 entries
    CO_VARIANT
    CO_STATUS
    CO_KIND
    CO_BOOL
    CO_IS_NULL
    CO_BODY
    N_COLUMNS

cdef int _CO_ITEMSIZE[N_COLUMNS]
_CO_ITEMSIZE[:] = [8, 8, 8, 8, 8, 8, 4, 4, 4, 4, 4, 4, 4, 2, 2, 1, 1, 1, 1]

# (name, numpy dtype) per column: must equal the twin's LAYOUT (a test compares them).
_COLUMN_LAYOUT = (
    ("worker_sequence", "<u8"),
    ("source_timestamp_ns", "<i8"),
    ("worker_timestamp_ns", "<i8"),
    ("gateway_receive_timestamp_ns", "<i8"),
    ("value_float", "<f8"),
    ("value_int", "<i8"),
    ("server_handle", "<i4"),
    ("item_handle", "<i4"),
    ("family", "<i4"),
    ("quality", "<i4"),
    ("data_type", "<i4"),
    ("raw_data_type", "<i4"),
    ("value_offsets", "<i4"),
    ("variant_type_index", "<i2"),
    ("status_index", "<i2"),
    ("value_kind", "u1"),
    ("value_bool", "?"),
    ("is_null", "?"),
    ("body", "u1"),
)

cdef enum:
    DICT_CAP = 1024       # distinct values of a dictionary column per EventColumns
    DICT_SLOTS = 2048     # its open-addressing table (a power of two)



cdef struct DictTable:
    # Distinct values of a dictionary column: spans of the input (valid for the whole call)
    # plus, for statuses, their six integers; the Python values are in a list beside it.
    int count
    int last                          # the entry of the previous lookup (-1: none)
    int16_t slots[DICT_SLOTS]         # -1 empty, else an entry
    uint64_t hashes[DICT_CAP]
    const uint8_t* ptrs[DICT_CAP]
    Py_ssize_t lens[DICT_CAP]
    int32_t ints[DICT_CAP][6]


cdef struct Columns:
    Py_ssize_t n
    uint8_t* col[N_COLUMNS]
    uint8_t* sbuf                     # string data (PyMem), grown by doubling
    Py_ssize_t slen
    Py_ssize_t scap
    DictTable* variants
    DictTable* statuses
    int variant_by_type[33]           # data type -> its last variant entry (0: no value)
    const uint8_t* fast_st_p          # the last status payload fast_row() looked up, and
    Py_ssize_t fast_st_n              # its dictionary entry (-1: none yet)
    int fast_st_index
    const uint8_t* ts_p[3]            # per timestamp field (source, worker, gateway): the
    Py_ssize_t ts_n[3]                # payload fast_row() last read, and its nanoseconds
    int64_t ts_ns[3]                  # (-1 length: none yet)
    Span session                      # the columns' session id (the first event's)
    PyObject* variant_values          # list of str (owned by the caller's frame)
    PyObject* status_values           # list of MxStatus
    PyObject* others                  # list of (row, MxEvent)
    PyObject* tag_names               # dict item handle -> tag, or NULL without tags


cdef inline bint same_span(const uint8_t* a, const uint8_t* b, Py_ssize_t n) noexcept nogil:
    # same_bytes() for the compares of every row (session id, variant type, status payload):
    # whole words, the tail as one overlapping load instead of a byte loop; never past n.
    cdef uint64_t x, y
    cdef uint32_t u, v
    cdef Py_ssize_t i = 0
    if n >= 8:
        while i + 8 < n:
            memcpy(&x, a + i, 8)
            memcpy(&y, b + i, 8)
            if x != y:
                return False
            i += 8
        memcpy(&x, a + n - 8, 8)
        memcpy(&y, b + n - 8, 8)
        return x == y
    if n >= 4:
        memcpy(&u, a, 4)
        memcpy(&v, b, 4)
        if u != v:
            return False
        memcpy(&u, a + n - 4, 4)
        memcpy(&v, b + n - 4, 4)
        return u == v
    while i < n:
        if a[i] != b[i]:
            return False
        i += 1
    return True


cdef inline uint64_t span_hash(const uint8_t* p, Py_ssize_t n, const int32_t* ints) noexcept nogil:
    # FNV-1a over the integers (if any) and the bytes.
    cdef uint64_t h = MXG_FNV_OFFSET
    cdef Py_ssize_t i
    cdef const uint8_t* q
    if ints != NULL:
        q = <const uint8_t*>ints
        for i in range(24):
            h = (h ^ q[i]) * MXG_FNV_PRIME
    for i in range(n):
        h = (h ^ p[i]) * MXG_FNV_PRIME
    return h


cdef inline bint dict_same(DictTable* d, int k, const uint8_t* p, Py_ssize_t n,
                           const int32_t* ints) noexcept nogil:
    cdef int j
    if d.lens[k] != n or not same_span(d.ptrs[k], p, n):
        return False
    if ints != NULL:
        for j in range(6):
            if d.ints[k][j] != ints[j]:
                return False
    return True


cdef int dict_index(DictTable* d, const uint8_t* p, Py_ssize_t n, const int32_t* ints,
                    bint* added) noexcept nogil:
    # The entry of a value; ``added`` when it is new (the caller appends its Python value).
    # -1 when the table is full (the row then goes to ``others``).
    cdef uint64_t h
    cdef int s, k, j
    added[0] = False
    if d.last >= 0 and dict_same(d, d.last, p, n, ints):
        return d.last
    if d.count <= 8:   # a few distinct values (the usual case): compared, not hashed
        for k in range(d.count):
            if dict_same(d, k, p, n, ints):
                d.last = k
                return k
    h = span_hash(p, n, ints)
    s = <int>(h & (DICT_SLOTS - 1))
    while d.slots[s] >= 0:
        k = d.slots[s]
        if d.hashes[k] == h and dict_same(d, k, p, n, ints):
            d.last = k
            return k
        s = (s + 1) & (DICT_SLOTS - 1)
    if d.count >= DICT_CAP:
        return -1
    k = d.count
    d.count += 1
    d.slots[s] = <int16_t>k
    d.hashes[k] = h
    d.ptrs[k] = p
    d.lens[k] = n
    if ints != NULL:
        for j in range(6):
            d.ints[k][j] = ints[j]
    d.last = k
    added[0] = True
    return k


cdef int variant_of(Columns* o, ValState* v) except -2:
    # A data type nearly always comes with the same variant type: that one is tried first.
    cdef bint added
    cdef int k
    cdef int h = (v.data_type & 31) + 1 if v.present else 0
    k = o.variant_by_type[h]
    if k >= 0 and (dict_same(o.variants, k, v.variant_type.p, v.variant_type.n, NULL)
                   if v.present else o.variants.lens[k] == 0):
        return k
    if v.present:
        k = dict_index(o.variants, v.variant_type.p, v.variant_type.n, NULL, &added)
    else:
        k = dict_index(o.variants, <const uint8_t*>"", 0, NULL, &added)
    if added:
        (<list>o.variant_values).append(cached_str(v.variant_type) if v.present else "")
    o.variant_by_type[h] = k
    return k


cdef int status_of(Columns* o, EvState* e) except -2:
    cdef bint added
    cdef int k = dict_index(o.statuses, e.st1_diag.p, e.st1_diag.n, &e.st1[1], &added)
    if added:
        (<list>o.status_values).append(status_struct(e.st1, e.st1_diag))
    return k


cdef DictTable* dict_new() except NULL:
    cdef DictTable* d = <DictTable*>PyMem_Malloc(sizeof(DictTable))
    if d == NULL:
        raise MemoryError()
    d.count = 0
    d.last = -1
    memset(d.slots, 0xFF, sizeof(d.slots))
    return d


cdef inline int64_t ts_col(bint has, TsState* t, bint* fits) noexcept nogil:
    # Nanoseconds when they fit (|seconds| well inside int64 nanoseconds), else the sentinel;
    # a present timestamp that does not fit sends the row to ``others``.
    if not has:
        return MXG_TS_ABSENT
    if t.sec >= MXG_TS_SAFE_SECONDS or t.sec <= -MXG_TS_SAFE_SECONDS:
        fits[0] = False
        return MXG_TS_ABSENT
    return t.sec * 1_000_000_000 + t.nanos


cdef int str_append(Columns* o, const uint8_t* p, Py_ssize_t n) except -1:
    cdef Py_ssize_t cap
    cdef uint8_t* buf
    if o.slen + n > o.scap:
        cap = o.scap * 2 if o.scap else 4096
        while cap < o.slen + n:
            cap *= 2
        buf = <uint8_t*>PyMem_Realloc(o.sbuf, cap)
        if buf == NULL:
            raise MemoryError()
        o.sbuf = buf
        o.scap = cap
    memcpy(o.sbuf + o.slen, p, n)
    o.slen += n
    return 0


cdef inline int body_code_of(int body) noexcept nogil:
    # The body arm as its index in _BODY_NAMES ("" = 0).
    return body - EV_ON_DATA_CHANGE + 1 if body else 0


cdef int write_row(Ctx* c, EvState* e, Columns* o, Py_ssize_t i) except -1:
    cdef ValState* v = &e.v
    cdef bint fits = True
    cdef int kind = K_ABSENT
    cdef int k
    cdef double f = 0.0
    cdef int64_t x = 0
    cdef uint8_t b = 0
    cdef int32_t* offsets = <int32_t*>o.col[CO_STR_OFFSETS]
    cdef int32_t start = offsets[i]
    cdef int16_t variant = -1
    cdef int16_t status = -1
    (<uint64_t*>o.col[CO_SEQUENCE])[i] = e.sequence
    (<int32_t*>o.col[CO_SERVER])[i] = e.server_handle
    (<int32_t*>o.col[CO_ITEM])[i] = e.item_handle
    (<int32_t*>o.col[CO_FAMILY])[i] = e.family
    (<int32_t*>o.col[CO_QUALITY])[i] = e.quality
    o.col[CO_BODY][i] = <uint8_t>body_code_of(e.body)
    (<int64_t*>o.col[CO_SOURCE_TS])[i] = ts_col(e.has_src, &e.src_ts, &fits)
    (<int64_t*>o.col[CO_WORKER_TS])[i] = ts_col(e.has_worker, &e.worker_ts, &fits)
    (<int64_t*>o.col[CO_GATEWAY_TS])[i] = ts_col(e.has_gateway, &e.gateway_ts, &fits)
    if v.present:
        (<int32_t*>o.col[CO_DATA_TYPE])[i] = v.data_type
        (<int32_t*>o.col[CO_RAW_DATA_TYPE])[i] = v.raw_data_type
        o.col[CO_IS_NULL][i] = v.is_null
        k = v.kind
        if v.raw_value.n or v.raw_diagnostic.n:
            fits = False
        elif k == 0:
            kind = K_NONE
        elif k == V_DOUBLE or k == V_FLOAT:
            kind = K_FLOAT
            f = v.d
        elif k == V_INT32:
            kind = K_INT
            x = <int32_t>v.u
        elif k == V_BOOL:
            kind = K_BOOL
            b = v.u != 0
        elif k == V_STRING:
            if o.slen + v.s.n > 0x7FFFFFFF:
                fits = False
            else:
                kind = K_STRING
                str_append(o, v.s.p, v.s.n)
        elif k == V_INT64:
            kind = K_INT
            x = <int64_t>v.u
        elif k == V_TIMESTAMP or k == V_ELAPSED:
            if v.ts.sec >= MXG_TS_SAFE_SECONDS or v.ts.sec <= -MXG_TS_SAFE_SECONDS:
                fits = False
            else:
                kind = K_TIME if k == V_TIMESTAMP else K_ELAPSED
                x = v.ts.sec * 1_000_000_000 + v.ts.nanos
        else:
            fits = False   # arrays, sparse arrays
    else:
        (<int32_t*>o.col[CO_DATA_TYPE])[i] = 0
        (<int32_t*>o.col[CO_RAW_DATA_TYPE])[i] = 0
        o.col[CO_IS_NULL][i] = 0
    if (e.has_hresult or e.raw_status.n or e.nstatus > 1 or e.has_gap
            or e.body == EV_ON_BUFFERED or e.body == EV_ON_ALARM
            or not (e.session.n == o.session.n
                    and same_span(o.session.p, e.session.p, e.session.n))):
        fits = False
    if fits:
        # The usual hits are tested here; the lookups that may add a value are calls.
        k = o.variant_by_type[(v.data_type & 31) + 1 if v.present else 0]
        if v.present and k >= 0 and dict_same(o.variants, k, v.variant_type.p,
                                              v.variant_type.n, NULL):
            variant = <int16_t>k
        else:
            variant = <int16_t>variant_of(o, v)
        if variant < 0:
            fits = False
        elif e.nstatus:
            k = o.statuses.last
            if k >= 0 and dict_same(o.statuses, k, e.st1_diag.p, e.st1_diag.n, &e.st1[1]):
                status = <int16_t>k
            else:
                status = <int16_t>status_of(o, e)
            if status < 0:
                fits = False
    if o.tag_names != NULL:
        k = e.item_handle & (TAG_CACHE - 1)
        if not (c.tag_set[k] and c.tag_keys[k] == e.item_handle):
            note_tag(c, o, e.item_handle)
    if not fits:
        kind = K_OTHER
        f = 0.0
        x = 0
        b = 0
        variant = -1
        status = -1
        if o.slen != start:
            o.slen = start
        (<list>o.others).append((i, event_struct(c, e)))
    (<double*>o.col[CO_FLOAT])[i] = f
    (<int64_t*>o.col[CO_INT])[i] = x
    o.col[CO_BOOL][i] = b
    o.col[CO_KIND][i] = <uint8_t>kind
    (<int16_t*>o.col[CO_VARIANT])[i] = variant
    (<int16_t*>o.col[CO_STATUS])[i] = status
    offsets[i + 1] = <int32_t>o.slen
    return 0


cdef int note_tag(Ctx* c, Columns* o, int32_t item) except -1:
    # The columns keep the names of their rows' items, looked up once per item and call.
    cdef bint looked
    cdef PyObject* name = tag_name(c, item, &looked)
    if looked and name != NULL:
        (<dict>o.tag_names)[item] = <object>name
    return 0


cdef Py_ssize_t count_events(Ctx* c, const uint8_t* p, const uint8_t* end) except -1:
    # The events of one MxEventBatch, from its framing (the columns are allocated once).
    cdef const MsgTable* t = &TABLES[M_BATCH]
    cdef uint64_t tag
    cdef const uint8_t* start
    cdef Py_ssize_t n
    cdef Py_ssize_t count = 0
    cdef const TagBytes* te = &_TAGS[M_BATCH][B_EVENTS]
    cdef const uint8_t* q
    enter(c, M_BATCH, p)
    while p < end:
        # The usual framing: the events tag and a one- or two-byte length that fits.
        q = at_tag(p, end, te)
        if q != NULL:
            q = flen(q, end, &n)
            if q != NULL:
                p = q + n
                count += 1
                continue
        start = p
        p = rtag(c, M_BATCH, p, end, &tag)
        if slot_for(t, tag) == B_EVENTS:
            p = rlen(c, M_BATCH, p, end, &n)
            p += n
            count += 1
        else:
            p = skip(c, M_BATCH, start, p, end, tag)
    c.depth -= 1
    return count


# ---- the fast path --------------------------------------------------------------------
#
# A data change as a gateway writes it (fields in field-number order, each once, values and
# timestamps in their usual form) is read straight into its row, with no EvState and no call
# per field. Anything else, or anything the row could not hold, returns 0 *before any side
# effect* (no dictionary, string or name added), and the event is read by the general path
# (parse_event_state + write_row), which is the reference: the result is the same.

cdef inline const uint8_t* fvar(const uint8_t* p, const uint8_t* end, uint64_t* x) noexcept nogil:
    if p < end and p[0] < 0x80:
        x[0] = p[0]
        return p + 1
    return rdv_raw(p, end, x)


cdef inline const uint8_t* flen(const uint8_t* p, const uint8_t* end,
                                Py_ssize_t* n) noexcept nogil:
    # A one- or two-byte length whose payload fits (else NULL).
    cdef const uint8_t* q
    if p >= end:
        return NULL
    if p[0] < 0x80:
        n[0] = p[0]
        q = p + 1
    elif end - p >= 2 and p[1] < 0x80:
        n[0] = (p[0] & 0x7F) | (<Py_ssize_t>p[1] << 7)
        q = p + 2
    else:
        return NULL
    if n[0] > end - q:
        return NULL
    return q


cdef inline bint same_short(const uint8_t* a, const uint8_t* b, Py_ssize_t n) noexcept nogil:
    # Equal bytes; 8..16 bytes (a Timestamp's payload) as two overlapping 8-byte loads.
    cdef uint64_t x0, y0, x1, y1
    if 8 <= n <= 16:
        memcpy(&x0, a, 8)
        memcpy(&y0, b, 8)
        memcpy(&x1, a + n - 8, 8)
        memcpy(&y1, b + n - 8, 8)
        return x0 == y0 and x1 == y1
    return same_span(a, b, n)


cdef inline const uint8_t* fts(Columns* o, int slot, const uint8_t* p, const uint8_t* end,
                               int64_t* ns) noexcept nogil:
    # A Timestamp field's length and payload (seconds, nanos; each optional), as nanoseconds
    # inside the columns' range. A payload equal to the one this field had in the previous
    # row (a batch's events are mostly stamped alike) is not parsed again.
    cdef Py_ssize_t n
    cdef uint64_t x
    cdef int64_t sec = 0
    cdef int32_t nanos = 0
    cdef const uint8_t* q = flen(p, end, &n)
    cdef const uint8_t* stop
    if q == NULL:
        return NULL
    stop = q + n
    if n == o.ts_n[slot] and same_short(o.ts_p[slot], q, n):
        ns[0] = o.ts_ns[slot]
        return stop
    if q < stop and q[0] == _TS_SEC_TAG:
        q = fvar(q + 1, stop, &x)
        if q == NULL:
            return NULL
        sec = <int64_t>x
    if q < stop and q[0] == _TS_NANOS_TAG:
        q = fvar(q + 1, stop, &x)
        if q == NULL:
            return NULL
        nanos = <int32_t>x
    if q != stop or sec >= MXG_TS_SAFE_SECONDS or sec <= -MXG_TS_SAFE_SECONDS:
        return NULL
    ns[0] = sec * 1_000_000_000 + nanos
    # Remembered only once valid: a payload that fails is never taken from the cache.
    o.ts_p[slot] = stop - n
    o.ts_n[slot] = n
    o.ts_ns[slot] = ns[0]
    return stop


cdef inline const uint8_t* fts_same(Columns* o, int slot, const uint8_t* p, const uint8_t* end,
                                    int64_t* ns) noexcept nogil:
    # fts() for the usual case, small enough to be inlined: a one-byte length and a payload
    # of 8..16 bytes equal to this field's in the previous row.
    cdef Py_ssize_t n = o.ts_n[slot]
    cdef uint64_t x0, y0, x1, y1
    if 8 <= n <= 16 and end - p > n and p[0] == n:
        memcpy(&x0, p + 1, 8)
        memcpy(&y0, o.ts_p[slot], 8)
        memcpy(&x1, p + 1 + n - 8, 8)
        memcpy(&y1, o.ts_p[slot] + n - 8, 8)
        if x0 == y0 and x1 == y1:
            ns[0] = o.ts_ns[slot]
            return p + 1 + n
    return fts(o, slot, p, end, ns)


cdef inline const uint8_t* fstatus(const uint8_t* p, const uint8_t* end, int32_t* vals,
                                   Span* diag) noexcept nogil:
    # An MxStatusProxy payload, fields in order, each optional.
    cdef const TagBytes* ts = _TAGS[M_STATUS]
    cdef const uint8_t* q
    cdef uint64_t x
    cdef Py_ssize_t n
    cdef int slot
    memset(vals, 0, 8 * sizeof(int32_t))
    diag.p = p
    diag.n = 0
    for slot in range(ST_SUCCESS, ST_RAW_DETECTED_BY + 1):
        q = at_tag(p, end, &ts[slot])
        if q != NULL:
            p = fvar(q, end, &x)
            if p == NULL:
                return NULL
            vals[slot] = <int32_t>x
    q = at_tag(p, end, &ts[ST_DIAGNOSTIC_TEXT])
    if q != NULL:
        p = flen(q, end, &n)
        if p == NULL or not utf8_valid(p, n):
            return NULL
        diag.p = p
        diag.n = n
        p += n
    return p if p == end else NULL


cdef int fast_row(Ctx* c, Columns* o, const uint8_t* p, const uint8_t* end,
                  Py_ssize_t i) except -1:
    cdef const TagBytes* te = _TAGS[M_EVENT]
    cdef const TagBytes* tv = _TAGS[M_VALUE]
    cdef const uint8_t* q
    cdef const uint8_t* vend
    cdef uint64_t x = 0
    cdef uint64_t sequence = 0
    cdef Py_ssize_t n
    cdef int32_t family = 0, server = 0, item = 0, quality = 0, data_type = 0, raw_data_type = 0
    cdef int64_t src = MXG_TS_ABSENT, worker = MXG_TS_ABSENT, gateway = MXG_TS_ABSENT
    cdef int kind = K_ABSENT
    cdef int body = 0
    cdef int k
    cdef int variant_hit = -1
    cdef bint is_null = False, has_status = False, added
    cdef double f = 0.0
    cdef float f32
    cdef int64_t number = 0
    cdef uint8_t flag = 0
    cdef Span session, variant, text, status_payload, diag
    cdef int32_t vals[8]
    cdef int16_t variant_index, status_index = -1
    cdef int32_t* offsets = <int32_t*>o.col[CO_STR_OFFSETS]
    if c.depth + 2 > MAX_DEPTH:
        return 0
    session.p = p
    session.n = 0
    variant.p = p
    variant.n = 0
    text.p = p
    text.n = 0
    status_payload.p = p
    status_payload.n = 0
    q = at_tag(p, end, &te[EV_SESSION_ID])
    if q != NULL:
        p = flen(q, end, &session.n)
        if p == NULL:
            return 0
        session.p = p
        p += session.n
    q = at_tag(p, end, &te[EV_FAMILY])
    if q != NULL:
        p = fvar(q, end, &x)
        if p == NULL:
            return 0
        family = <int32_t>x
    q = at_tag(p, end, &te[EV_WORKER_SEQUENCE])
    if q != NULL:
        p = fvar(q, end, &sequence)
        if p == NULL:
            return 0
    q = at_tag(p, end, &te[EV_SERVER_HANDLE])
    if q != NULL:
        p = fvar(q, end, &x)
        if p == NULL:
            return 0
        server = <int32_t>x
    q = at_tag(p, end, &te[EV_ITEM_HANDLE])
    if q != NULL:
        p = fvar(q, end, &x)
        if p == NULL:
            return 0
        item = <int32_t>x
    q = at_tag(p, end, &te[EV_VALUE])
    if q != NULL:
        q = flen(q, end, &n)
        if q == NULL:
            return 0
        vend = q + n
        p = vend
        kind = K_NONE
        if at_tag(q, vend, &tv[V_DATA_TYPE]) != NULL:
            q = fvar(q + tv[V_DATA_TYPE].n, vend, &x)
            if q == NULL:
                return 0
            data_type = <int32_t>x
        if at_tag(q, vend, &tv[V_VARIANT_TYPE]) != NULL:
            q = flen(q + tv[V_VARIANT_TYPE].n, vend, &variant.n)
            if q == NULL:
                return 0
            variant.p = q
            # Bytes equal to the variant this data type had before were validated then.
            k = o.variant_by_type[(data_type & 31) + 1]
            if k >= 0 and dict_same(o.variants, k, variant.p, variant.n, NULL):
                variant_hit = k
            elif not utf8_valid(q, variant.n):
                return 0
            q += variant.n
        if at_tag(q, vend, &tv[V_IS_NULL]) != NULL:
            q = fvar(q + tv[V_IS_NULL].n, vend, &x)
            if q == NULL:
                return 0
            is_null = x != 0
        if at_tag(q, vend, &tv[V_RAW_DATA_TYPE]) != NULL:
            q = fvar(q + tv[V_RAW_DATA_TYPE].n, vend, &x)
            if q == NULL:
                return 0
            raw_data_type = <int32_t>x
        if q < vend:
            if at_tag(q, vend, &tv[V_DOUBLE]) != NULL:
                q += tv[V_DOUBLE].n
                if vend - q < 8:
                    return 0
                memcpy(&f, q, 8)
                q += 8
                kind = K_FLOAT
            elif at_tag(q, vend, &tv[V_INT32]) != NULL:
                q = fvar(q + tv[V_INT32].n, vend, &x)
                if q == NULL:
                    return 0
                number = <int32_t>x
                kind = K_INT
            elif at_tag(q, vend, &tv[V_BOOL]) != NULL:
                q = fvar(q + tv[V_BOOL].n, vend, &x)
                if q == NULL:
                    return 0
                flag = x != 0
                kind = K_BOOL
            elif at_tag(q, vend, &tv[V_STRING]) != NULL:
                q = flen(q + tv[V_STRING].n, vend, &text.n)
                if q == NULL or not utf8_valid(q, text.n) or o.slen + text.n > 0x7FFFFFFF:
                    return 0
                text.p = q
                q += text.n
                kind = K_STRING
            elif at_tag(q, vend, &tv[V_INT64]) != NULL:
                q = fvar(q + tv[V_INT64].n, vend, &x)
                if q == NULL:
                    return 0
                number = <int64_t>x
                kind = K_INT
            elif at_tag(q, vend, &tv[V_FLOAT]) != NULL:
                q += tv[V_FLOAT].n
                if vend - q < 4:
                    return 0
                memcpy(&f32, q, 4)
                f = f32
                q += 4
                kind = K_FLOAT
            else:
                return 0
        if q != vend:
            return 0
    q = at_tag(p, end, &te[EV_QUALITY])
    if q != NULL:
        p = fvar(q, end, &x)
        if p == NULL:
            return 0
        quality = <int32_t>x
    q = at_tag(p, end, &te[EV_SOURCE_TS])
    if q != NULL:
        p = fts_same(o, 0, q, end, &src)
        if p == NULL:
            return 0
    q = at_tag(p, end, &te[EV_STATUSES])
    if q != NULL:
        p = flen(q, end, &status_payload.n)
        if p == NULL:
            return 0
        status_payload.p = p
        p += status_payload.n
        has_status = True
    q = at_tag(p, end, &te[EV_WORKER_TS])
    if q != NULL:
        p = fts_same(o, 1, q, end, &worker)
        if p == NULL:
            return 0
    q = at_tag(p, end, &te[EV_GATEWAY_TS])
    if q != NULL:
        p = fts_same(o, 2, q, end, &gateway)
        if p == NULL:
            return 0
    q = at_tag(p, end, &te[EV_ON_DATA_CHANGE])
    if q != NULL:
        if q >= end or q[0] != 0:   # the empty marker
            return 0
        p = q + 1
        body = EV_ON_DATA_CHANGE
    if p != end:
        return 0
    # The session: the first row's sets the columns' (validated as rstr would); others equal it.
    if i == 0:
        if not (session.n == _sid_len and same_bytes(_sid_utf8, session.p, session.n)) \
                and not utf8_valid(session.p, session.n):
            return 0
    elif not (session.n == o.session.n
              and same_span(o.session.p, session.p, session.n)):
        return 0
    if has_status:
        if (o.fast_st_index >= 0 and status_payload.n == o.fast_st_n
                and same_span(o.fast_st_p, status_payload.p, status_payload.n)):
            status_index = <int16_t>o.fast_st_index
        elif fstatus(status_payload.p, status_payload.p + status_payload.n, vals,
                     &diag) == NULL:
            return 0
    # Committed: nothing below can send the event elsewhere but a full dictionary, and the
    # general path then makes the same additions before it gives up.
    k = o.variant_by_type[(data_type & 31) + 1 if kind != K_ABSENT else 0]
    if variant_hit >= 0:
        variant_index = <int16_t>variant_hit
    elif (kind != K_ABSENT and k >= 0
            and dict_same(o.variants, k, variant.p, variant.n, NULL)):
        variant_index = <int16_t>k
    else:
        k = dict_index(o.variants, variant.p, variant.n, NULL, &added)
        if added:
            (<list>o.variant_values).append(mkstr(variant) if variant.n else "")
        if k < 0:
            return 0
        o.variant_by_type[(data_type & 31) + 1 if kind != K_ABSENT else 0] = k
        variant_index = <int16_t>k
    if has_status and status_index < 0:
        k = dict_index(o.statuses, diag.p, diag.n, &vals[1], &added)
        if added:
            (<list>o.status_values).append(status_struct(vals, diag))
        if k < 0:
            return 0
        status_index = <int16_t>k
        o.fast_st_p = status_payload.p
        o.fast_st_n = status_payload.n
        o.fast_st_index = k
    if i == 0:
        o.session = session
    if kind == K_STRING:
        str_append(o, text.p, text.n)
    if o.tag_names != NULL:
        k = item & (TAG_CACHE - 1)
        if not (c.tag_set[k] and c.tag_keys[k] == item):
            note_tag(c, o, item)
    (<uint64_t*>o.col[CO_SEQUENCE])[i] = sequence
    (<int32_t*>o.col[CO_SERVER])[i] = server
    (<int32_t*>o.col[CO_ITEM])[i] = item
    (<int32_t*>o.col[CO_FAMILY])[i] = family
    (<int32_t*>o.col[CO_QUALITY])[i] = quality
    o.col[CO_BODY][i] = <uint8_t>body_code_of(body)
    (<int64_t*>o.col[CO_SOURCE_TS])[i] = src
    (<int64_t*>o.col[CO_WORKER_TS])[i] = worker
    (<int64_t*>o.col[CO_GATEWAY_TS])[i] = gateway
    (<int32_t*>o.col[CO_DATA_TYPE])[i] = data_type
    (<int32_t*>o.col[CO_RAW_DATA_TYPE])[i] = raw_data_type
    o.col[CO_IS_NULL][i] = is_null
    (<double*>o.col[CO_FLOAT])[i] = f
    (<int64_t*>o.col[CO_INT])[i] = number
    o.col[CO_BOOL][i] = flag
    o.col[CO_KIND][i] = <uint8_t>kind
    (<int16_t*>o.col[CO_VARIANT])[i] = variant_index
    (<int16_t*>o.col[CO_STATUS])[i] = status_index
    offsets[i + 1] = <int32_t>o.slen
    return 1


cdef int columns_event(Ctx* c, Columns* o, const uint8_t* p, const uint8_t* end,
                       Py_ssize_t* i) except -1:
    cdef EvState e
    if fast_row(c, o, p, end, i[0]):
        i[0] += 1
        return 0
    parse_event_state(c, p, end, &e)
    if i[0] == 0:
        o.session = e.session
    write_row(c, &e, o, i[0])
    i[0] += 1
    return 0


def _column_layout():
    """(name, numpy dtype) of each column, in block order (the twin has the same)."""
    return _COLUMN_LAYOUT


def _decode_columns(messages, tags, bint single):
    """The events of ``messages`` (serialized MxEventBatch messages, or MxEvent messages when
    ``single``) as the parts of an EventColumns: ``(n, block, offsets, strings,
    variant_types, statuses, others, session_id, tag_names)``. Internal to
    mxgateway.columns; docs/codec.md describes the columns."""
    cdef PyObject* names = tags_of(tags)
    cdef list msgs = list(messages)
    cdef Py_ssize_t m = len(msgs)
    cdef Py_ssize_t opened = 0
    cdef Py_ssize_t n = 0
    cdef Py_ssize_t i = 0
    cdef Py_ssize_t j, size, ln, pad_from
    cdef Input* inps = NULL
    cdef Ctx c
    cdef Columns o
    cdef uint64_t tag
    cdef const uint8_t* p
    cdef const uint8_t* end
    cdef const uint8_t* start
    cdef const MsgTable* t = &TABLES[M_BATCH]
    cdef const TagBytes* te = &_TAGS[M_BATCH][B_EVENTS]
    cdef const uint8_t* q
    cdef uint8_t* base
    cdef int k
    cdef list offsets = []
    cdef list variant_values = []
    cdef list status_values = []
    cdef list others = []
    cdef dict tag_names = {} if names != NULL else None
    cdef bytearray block
    ctx_init(&c, NULL, names)
    o.sbuf = NULL
    o.slen = 0
    o.scap = 0
    o.variants = NULL
    o.statuses = NULL
    o.session.p = NULL
    o.session.n = 0
    o.variant_values = <PyObject*>variant_values
    o.status_values = <PyObject*>status_values
    o.others = <PyObject*>others
    o.tag_names = <PyObject*>tag_names if names != NULL else NULL
    inps = <Input*>PyMem_Malloc((m if m else 1) * sizeof(Input))
    if inps == NULL:
        raise MemoryError()
    try:
        for j in range(m):
            open_input(msgs[j], &inps[j])
            opened += 1
        for j in range(m):
            if single:
                n += 1
            else:
                c.base = inps[j].p
                n += count_events(&c, inps[j].p, inps[j].p + inps[j].n)
        size = 0
        for k in range(N_COLUMNS):
            size = (size + 7) & ~7
            offsets.append(size)
            size += _CO_ITEMSIZE[k] * (n + 1 if k == CO_STR_OFFSETS else n)
        block = PyByteArray_FromStringAndSize(NULL, size)
        base = <uint8_t*>PyByteArray_AS_STRING(block)
        pad_from = 0
        for k in range(N_COLUMNS):
            # Columns are written row by row; only the alignment gaps are zeroed here.
            memset(base + pad_from, 0, <Py_ssize_t>offsets[k] - pad_from)
            o.col[k] = base + <Py_ssize_t>offsets[k]
            pad_from = <Py_ssize_t>offsets[k] + _CO_ITEMSIZE[k] * (
                n + 1 if k == CO_STR_OFFSETS else n)
        (<int32_t*>o.col[CO_STR_OFFSETS])[0] = 0
        o.n = n
        o.variants = dict_new()
        o.statuses = dict_new()
        o.fast_st_index = -1
        for k in range(3):
            o.ts_n[k] = -1
        for k in range(33):
            o.variant_by_type[k] = -1
        for j in range(m):
            p = inps[j].p
            end = p + inps[j].n
            c.base = p
            if single:
                columns_event(&c, &o, p, end, &i)
                continue
            enter(&c, M_BATCH, p)
            while p < end:
                q = at_tag(p, end, te)   # the usual framing, as in count_events
                if q != NULL:
                    q = flen(q, end, &ln)
                    if q != NULL:
                        columns_event(&c, &o, q, q + ln, &i)
                        p = q + ln
                        continue
                start = p
                p = rtag(&c, M_BATCH, p, end, &tag)
                if slot_for(t, tag) == B_EVENTS:
                    p = rlen(&c, M_BATCH, p, end, &ln)
                    columns_event(&c, &o, p, p + ln, &i)
                    p += ln
                else:
                    p = skip(&c, M_BATCH, start, p, end, tag)
            c.depth -= 1
        if i != n:
            raise AssertionError("event count changed between the two passes")
        strings = PyBytes_FromStringAndSize(<const char*>o.sbuf, o.slen)
        session_id = session_str(o.session) if n else ""
        return (n, block, tuple(offsets), strings, variant_values, status_values, others,
                session_id, tag_names)
    finally:
        PyMem_Free(o.variants)
        PyMem_Free(o.statuses)
        PyMem_Free(o.sbuf)
        for j in range(opened):
            if inps[j].release:
                PyBuffer_Release(&inps[j].view)
        PyMem_Free(inps)
        ctx_close(&c)


cdef object _from_parts = None


def decode_event_columns(data, tags=None):
    """Decode one serialized ``MxEventBatch`` into an ``mxgateway.columns.EventColumns``
    (numpy columns; ``tags`` as ``decode_event``). Needs numpy (``mxgateway[columns]``)."""
    global _from_parts
    parts = _decode_columns((data,), tags, False)
    if _from_parts is None:
        from mxgateway.columns import _from_parts as make

        _from_parts = make
    return _from_parts(parts)
