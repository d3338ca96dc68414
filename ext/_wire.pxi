# Wire-level primitives shared by the decoder: the decode context, error reporting, varints,
# lengths, fixed-width reads, UTF-8 validation and unknown-field skipping.
# Every read checks against ``end`` itself (the directives turn Cython's checks off).


cdef struct Span:
    const uint8_t* p
    Py_ssize_t n


cdef enum:
    TAG_CACHE = 1024      # item handle -> tag name lookups remembered during one call


cdef struct Ctx:
    const uint8_t* base   # start of the caller's buffer: offsets in errors are relative to it
    int depth             # messages currently open (the top-level one included)
    PyObject* store       # owned list keeping array/sparse accumulators alive, or NULL
    PyObject* tags        # borrowed dict item handle -> tag name (the caller's), or NULL
    # A direct-mapped cache of tags lookups (owned references; NULL: the dict has no name).
    uint8_t tag_set[TAG_CACHE]
    int32_t tag_keys[TAG_CACHE]
    PyObject* tag_names[TAG_CACHE]
    # The last event status parsed: its bytes (in an input of this call), depth and values.
    bint st_ok
    const uint8_t* st_p
    Py_ssize_t st_n
    int st_depth
    int32_t st_vals[8]
    Span st_diag


cdef inline void ctx_init(Ctx* c, const uint8_t* base, PyObject* tags) noexcept:
    c.base = base
    c.depth = 0
    c.store = NULL
    c.tags = tags
    c.st_ok = False
    if tags != NULL:
        memset(c.tag_set, 0, sizeof(c.tag_set))


cdef inline void ctx_close(Ctx* c) noexcept:
    cdef int i
    Py_XDECREF(c.store)
    c.store = NULL
    if c.tags != NULL:
        for i in range(TAG_CACHE):
            if c.tag_set[i]:
                Py_XDECREF(c.tag_names[i])
        c.tags = NULL


cdef inline PyObject* tag_name(Ctx* c, int32_t item, bint* looked) except? NULL:
    # The tag of an item handle (borrowed; NULL when the dict has none), one dict lookup per
    # handle and call (a session's events cycle through its items); ``looked`` when this
    # call did the lookup.
    cdef int h = item & (TAG_CACHE - 1)
    cdef PyObject* name
    if c.tag_set[h] and c.tag_keys[h] == item:
        looked[0] = False
        return c.tag_names[h]
    name = PyDict_GetItem(<object>c.tags, <object>item)
    if c.tag_set[h]:
        Py_XDECREF(c.tag_names[h])
    Py_XINCREF(name)
    c.tag_set[h] = 1
    c.tag_keys[h] = item
    c.tag_names[h] = name
    looked[0] = True
    return name


# Message ids, used for the names in error messages and to index TABLES.
cdef enum:
    M_BATCH = 0
    M_EVENT = 1
    M_VALUE = 2
    M_ARRAY = 3
    M_SPARSE = 4
    M_SPARSE_EL = 5
    M_STATUS = 6
    M_TS = 7
    M_DUR = 8
    M_GAP = 9
    M_BUFFERED = 10
    M_SAMPLE = 11
    M_ALARM = 12
    M_ON_DATA_CHANGE = 13
    M_ON_WRITE_COMPLETE = 14
    M_OPERATION_COMPLETE = 15
    N_MESSAGES = 16

cdef enum:
    WT_VARINT = 0
    WT_I64 = 1
    WT_LEN = 2
    WT_SGROUP = 3
    WT_EGROUP = 4
    WT_I32 = 5

cdef enum:
    MAX_DEPTH = 64   # nesting levels: the top-level message is 1, each message or group +1

_MESSAGE_NAME_LIST = (
    "MxEventBatch",
    "MxEvent",
    "MxValue",
    "MxArray",
    "MxSparseArray",
    "MxSparseElement",
    "MxStatusProxy",
    "Timestamp",
    "Duration",
    "ReplayGap",
    "OnBufferedDataChangeEvent",
    "BufferedSample",
    "OnAlarmTransitionEvent",
    "OnDataChangeEvent",
    "OnWriteCompleteEvent",
    "OperationCompleteEvent",
)
cdef tuple _MESSAGE_NAMES = _MESSAGE_NAME_LIST


cdef int fail(Ctx* c, int msg, const uint8_t* at, str what) except -1:
    # The one place decode errors are worded: message, what was wrong, offset.
    raise MxGatewayDecodeError(
        f"{_MESSAGE_NAMES[msg]}: {what} at offset {<Py_ssize_t>(at - c.base)}"
    )


cdef int depth_fail(Ctx* c, int msg, const uint8_t* at) except -1:
    return fail(c, msg, at, f"messages nested deeper than {MAX_DEPTH} levels")


cdef inline int enter(Ctx* c, int msg, const uint8_t* at) except -1:
    c.depth += 1
    if c.depth > MAX_DEPTH:
        depth_fail(c, msg, at)
    return 0


cdef int varint_fail(Ctx* c, int msg, const uint8_t* p, const uint8_t* end) except -1:
    # Slow path: say why the varint at p could not be read.
    cdef const uint8_t* q = p
    cdef int i = 0
    while i < 10:
        if q >= end:
            return fail(c, msg, p, "truncated varint")
        if q[0] < 0x80:
            break
        q += 1
        i += 1
    return fail(c, msg, p, "varint longer than 10 bytes")


cdef inline const uint8_t* rdv_raw(const uint8_t* p, const uint8_t* end,
                                   uint64_t* out) noexcept nogil:
    # One varint, or NULL (truncated or longer than 10 bytes). Bits past the 64th drop.
    cdef uint64_t r = 0
    cdef uint64_t b
    cdef unsigned int shift = 0
    while p < end:
        b = p[0]
        p += 1
        r |= (b & 0x7F) << shift
        if b < 0x80:
            out[0] = r
            return p
        shift += 7
        if shift > 63:
            return NULL
    return NULL


cdef inline const uint8_t* rdv_unrolled(const uint8_t* p, uint64_t* out) noexcept nogil:
    # At least 10 readable bytes at p: no end checks. NULL when longer than 10 bytes.
    cdef uint64_t r = p[0] & 0x7F
    cdef uint64_t b
    cdef int i
    for i in range(1, 10):
        b = p[i]
        r |= (b & 0x7F) << (7 * i)
        if b < 0x80:
            out[0] = r
            return p + i + 1
    return NULL


cdef inline const uint8_t* rv(Ctx* c, int msg, const uint8_t* p, const uint8_t* end,
                              uint64_t* out) except NULL:
    cdef const uint8_t* q
    if p < end and p[0] < 0x80:
        out[0] = p[0]
        return p + 1
    if end - p >= 10:
        q = rdv_unrolled(p, out)
    else:
        q = rdv_raw(p, end, out)
    if q == NULL:
        varint_fail(c, msg, p, end)
    return q


cdef const uint8_t* rv32_slow(Ctx* c, int msg, const uint8_t* p, const uint8_t* end,
                             uint64_t* out, str what) except NULL:
    # Tags and lengths are 32-bit varints, as protobuf reads them: at most 5 bytes (D3).
    cdef uint64_t r = 0
    cdef uint64_t b
    cdef int i
    for i in range(5):
        if p + i >= end:
            fail(c, msg, p, f"truncated {what}")
        b = p[i]
        r |= (b & 0x7F) << (7 * i)
        if b < 0x80:
            if r > MXG_UINT32_MAX:
                fail(c, msg, p, f"{what} does not fit in 32 bits")
            out[0] = r
            return p + i + 1
    fail(c, msg, p, f"{what} longer than 5 bytes")
    return NULL


cdef inline const uint8_t* rlen(Ctx* c, int msg, const uint8_t* p, const uint8_t* end,
                                Py_ssize_t* out) except NULL:
    # A length prefix; the payload must fit in what remains.
    cdef uint64_t n = 0
    cdef const uint8_t* q
    if p < end and p[0] < 0x80:
        n = p[0]
        q = p + 1
    elif end - p >= 2 and p[1] < 0x80:   # 128..16383: an event, a batch's events
        n = (p[0] & 0x7F) | (<uint64_t>p[1] << 7)
        q = p + 2
    else:
        q = rv32_slow(c, msg, p, end, &n, "length")
    if n > <uint64_t>(end - q):
        len_fail(c, msg, p, n)
    out[0] = <Py_ssize_t>n
    return q


cdef int len_fail(Ctx* c, int msg, const uint8_t* p, uint64_t n) except -1:
    # Out of line: the formatting kept rlen from being inlined.
    return fail(c, msg, p, f"length {n} runs past the end")


cdef inline const uint8_t* rfix64(Ctx* c, int msg, const uint8_t* p, const uint8_t* end,
                                  uint64_t* out) except NULL:
    if end - p < 8:
        fail(c, msg, p, "truncated 64-bit field")
    memcpy(out, p, 8)   # the wire is little-endian, like every target we build for
    return p + 8


cdef inline const uint8_t* rfix32(Ctx* c, int msg, const uint8_t* p, const uint8_t* end,
                                  uint32_t* out) except NULL:
    if end - p < 4:
        fail(c, msg, p, "truncated 32-bit field")
    memcpy(out, p, 4)
    return p + 4


cdef inline bint utf8_valid(const uint8_t* s, Py_ssize_t n) noexcept nogil:
    # Strict UTF-8, exactly what bytes.decode("utf-8") accepts (no surrogates, no overlongs).
    cdef Py_ssize_t i = 0
    cdef uint8_t ch, c1
    cdef uint64_t word
    while i + 8 <= n:   # ASCII, eight bytes at a time
        memcpy(&word, s + i, 8)
        if word & MXG_HIGH_BITS:
            break
        i += 8
    while i < n:
        ch = s[i]
        if ch < 0x80:
            i += 1
            continue
        if ch < 0xC2:
            return False
        if ch < 0xE0:
            if i + 1 >= n or (s[i + 1] & 0xC0) != 0x80:
                return False
            i += 2
        elif ch < 0xF0:
            if i + 2 >= n:
                return False
            c1 = s[i + 1]
            if (c1 & 0xC0) != 0x80 or (s[i + 2] & 0xC0) != 0x80:
                return False
            if (ch == 0xE0 and c1 < 0xA0) or (ch == 0xED and c1 >= 0xA0):
                return False
            i += 3
        elif ch < 0xF5:
            if i + 3 >= n:
                return False
            c1 = s[i + 1]
            if ((c1 & 0xC0) != 0x80 or (s[i + 2] & 0xC0) != 0x80
                    or (s[i + 3] & 0xC0) != 0x80):
                return False
            if (ch == 0xF0 and c1 < 0x90) or (ch == 0xF4 and c1 >= 0x90):
                return False
            i += 4
        else:
            return False
    return True


cdef inline const uint8_t* rstr(Ctx* c, int msg, const uint8_t* p, const uint8_t* end,
                                Span* out) except NULL:
    # A string field: validated now (protobuf fails on the first bad occurrence even if a
    # later one would win), turned into a str only when the struct is built.
    cdef Py_ssize_t n
    cdef const uint8_t* q = rlen(c, msg, p, end, &n)
    if not utf8_valid(q, n):
        fail(c, msg, q, "invalid UTF-8 in a string field")
    out.p = q
    out.n = n
    return q + n


cdef inline const uint8_t* rbytes(Ctx* c, int msg, const uint8_t* p, const uint8_t* end,
                                  Span* out) except NULL:
    cdef Py_ssize_t n
    cdef const uint8_t* q = rlen(c, msg, p, end, &n)
    out.p = q
    out.n = n
    return q + n


cdef inline const uint8_t* rtag(Ctx* c, int msg, const uint8_t* p, const uint8_t* end,
                                uint64_t* tag) except NULL:
    # One- and two-byte tags inline. Field number 0 and wire types 4, 6, 7 never match a
    # known field, so skip() is where they are rejected.
    cdef uint8_t b = p[0]   # callers only call with p < end
    if b < 0x80:
        tag[0] = b
        return p + 1
    if end - p >= 2 and p[1] < 0x80:
        tag[0] = (b & 0x7F) | (<uint64_t>p[1] << 7)
        return p + 2
    return rv32_slow(c, msg, p, end, tag, "tag")


cdef const uint8_t* skip(Ctx* c, int msg, const uint8_t* start, const uint8_t* p,
                         const uint8_t* end, uint64_t tag) except NULL:
    # Skip one unknown (or wrongly typed) field whose tag has been read; ``p`` is after it.
    cdef int wt = tag & 7
    cdef uint64_t x
    cdef Py_ssize_t n
    if tag < 8:
        fail(c, msg, p, "field number 0")
    if wt == WT_VARINT:
        return rv(c, msg, p, end, &x)
    if wt == WT_LEN:
        p = rlen(c, msg, p, end, &n)
        return p + n
    if wt == WT_I64:
        if end - p < 8:
            fail(c, msg, p, "truncated 64-bit field")
        return p + 8
    if wt == WT_I32:
        if end - p < 4:
            fail(c, msg, p, "truncated 32-bit field")
        return p + 4
    if wt == WT_SGROUP:
        return skip_group(c, msg, p, end, tag >> 3)
    if wt == WT_EGROUP:
        fail(c, msg, p, "end-group without a start-group")
    fail(c, msg, p, f"invalid wire type {wt}")
    return NULL


cdef const uint8_t* skip_group(Ctx* c, int msg, const uint8_t* p, const uint8_t* end,
                               uint64_t field) except NULL:
    # Skip a group whose start tag has just been read (``p`` is after it): nested groups are
    # matched, and each opens one more nesting level on top of the enclosing message (D4/D5).
    cdef uint64_t stack[MAX_DEPTH + 1]
    cdef int depth = 0
    cdef uint64_t tag
    cdef const uint8_t* q
    if c.depth + 1 > MAX_DEPTH:
        fail(c, msg, p, f"groups nested deeper than {MAX_DEPTH} levels")
    stack[0] = field
    while p < end:
        p = rtag(c, msg, p, end, &tag)
        if (tag & 7) == WT_EGROUP:
            if (tag >> 3) != stack[depth]:
                fail(c, msg, p, "end-group does not match its start-group")
            if depth == 0:
                return p
            depth -= 1
        elif (tag & 7) == WT_SGROUP and tag >= 8:
            if c.depth + depth + 2 > MAX_DEPTH:
                fail(c, msg, p, f"groups nested deeper than {MAX_DEPTH} levels")
            depth += 1
            stack[depth] = tag >> 3
        else:
            p = skip(c, msg, p, p, end, tag)
    fail(c, msg, p, "group not terminated")
    return NULL


cdef const uint8_t* parse_empty(Ctx* c, int msg, const uint8_t* p,
                                const uint8_t* end) except NULL:
    # A known message without fields: still parsed, unknown fields skipped.
    cdef uint64_t tag
    cdef const uint8_t* start
    enter(c, msg, p)
    while p < end:
        start = p
        p = rtag(c, msg, p, end, &tag)
        p = skip(c, msg, start, p, end, tag)
    c.depth -= 1
    return p
