# The simulator's flood mode: ``count`` ON_DATA_CHANGE events straight into one bytes object.
#
# Everything that is the same for every event of a call (session, server handle, quality,
# timestamps, status, body marker, and the per-type MxValue fields around the value arm) is
# encoded once, with the ordinary writer, into templates; the loop then only copies template
# segments and writes the sequence, the item handle and the value arm. Sizes are computed in
# C first, so the output is allocated once at its exact size and filled in place.

cdef enum:
    FL_CONST = 0
    FL_SEQUENCE = 1
    FL_ITEM = 2
    FL_VALUE = 3
    FL_MAX_SEGMENTS = 24


cdef struct FloodValue:
    # One of the four value kinds: the MxValue payload is pre + arm + post.
    Py_ssize_t pre_off
    Py_ssize_t pre_len
    Py_ssize_t post_off
    Py_ssize_t post_len
    uint8_t arm_tag[5]
    int arm_tag_len


cdef struct FloodPlan:
    int nseg
    uint8_t seg_kind[FL_MAX_SEGMENTS]
    Py_ssize_t seg_off[FL_MAX_SEGMENTS]
    Py_ssize_t seg_len[FL_MAX_SEGMENTS]
    Py_ssize_t const_len            # bytes of all FL_CONST segments
    uint8_t seq_tag[5]
    int seq_tag_len
    uint8_t item_tag[5]
    int item_tag_len
    uint8_t value_tag[5]
    int value_tag_len
    uint8_t event_tag[5]
    int event_tag_len
    FloodValue kinds[4]


cdef int tag_bytes(uint8_t* out, int msg, int slot, int wt) noexcept:
    return <int>(put_varint(out, tag_of(&TABLES[msg], slot, wt)) - out)


# Per value kind (item handle % 4): data type, variant type, native data type, arm.
cdef int _FLOOD_TYPES[4]
cdef int _FLOOD_ARMS[4]
_FLOOD_TYPES[:] = [DT_DOUBLE, DT_INTEGER, DT_BOOLEAN, DT_STRING]
_FLOOD_ARMS[:] = [V_DOUBLE, V_INT32, V_BOOL, V_STRING]
_FLOOD_VARIANTS = ("VT_R8", "VT_I4", "VT_BOOL", "VT_BSTR")


cdef int flood_plan(Writer* tw, FloodPlan* plan, object session_id, object server_handle,
                    object timestamp_ns) except -1:
    cdef const MsgTable* t = &TABLES[M_EVENT]
    cdef const MsgTable* vt = &TABLES[M_VALUE]
    cdef int i, j, slot, k
    cdef Py_ssize_t start, mark
    cdef FloodValue* fv
    plan.nseg = 0
    plan.const_len = 0
    plan.seq_tag_len = tag_bytes(plan.seq_tag, M_EVENT, EV_WORKER_SEQUENCE, WT_VARINT)
    plan.item_tag_len = tag_bytes(plan.item_tag, M_EVENT, EV_ITEM_HANDLE, WT_VARINT)
    plan.value_tag_len = tag_bytes(plan.value_tag, M_EVENT, EV_VALUE, WT_LEN)
    plan.event_tag_len = tag_bytes(plan.event_tag, M_BATCH, B_EVENTS, WT_LEN)

    # The event's fields in field-number order: runs of constant bytes between the variables.
    mark = tw.pos
    for i in range(t.nslots):
        slot = t.order[i]
        if slot == EV_WORKER_SEQUENCE or slot == EV_ITEM_HANDLE or slot == EV_VALUE:
            flood_segment(plan, FL_CONST, mark, tw.pos - mark)
            flood_segment(plan, FL_SEQUENCE if slot == EV_WORKER_SEQUENCE
                          else FL_ITEM if slot == EV_ITEM_HANDLE else FL_VALUE, 0, 0)
            mark = tw.pos
        elif slot == EV_SESSION_ID:
            w_str_field(tw, M_EVENT, slot, session_id, "session_id")
        elif slot == EV_FAMILY:
            w_int32_field(tw, M_EVENT, slot, _FAMILIES[1], "family")   # ON_DATA_CHANGE
        elif slot == EV_SERVER_HANDLE:
            w_int32_field(tw, M_EVENT, slot, server_handle, "server_handle")
        elif slot == EV_QUALITY:
            w_int32_field(tw, M_EVENT, slot, 192, "quality")
        elif slot == EV_SOURCE_TS or slot == EV_WORKER_TS or slot == EV_GATEWAY_TS:
            w_ts_field(tw, M_EVENT, slot, timestamp_ns, "timestamp_ns")
        elif slot == EV_STATUSES:
            start = w_begin(tw, M_EVENT, slot)
            w_flood_status(tw)
            w_end(tw, start)
        elif slot == EV_ON_DATA_CHANGE:
            start = w_begin(tw, M_EVENT, slot)
            w_end(tw, start)
    flood_segment(plan, FL_CONST, mark, tw.pos - mark)

    # The four MxValue payloads around their arms.
    for k in range(4):
        fv = &plan.kinds[k]
        fv.arm_tag_len = tag_bytes(
            fv.arm_tag, M_VALUE, _FLOOD_ARMS[k],
            WT_I64 if _FLOOD_ARMS[k] == V_DOUBLE else
            WT_LEN if _FLOOD_ARMS[k] == V_STRING else WT_VARINT)
        fv.pre_off = tw.pos
        fv.pre_len = -1
        for j in range(vt.nslots):
            slot = vt.order[j]
            if slot == _FLOOD_ARMS[k]:
                fv.pre_len = tw.pos - fv.pre_off
                fv.post_off = tw.pos
            elif slot == V_DATA_TYPE:
                w_int32_field(tw, M_VALUE, slot, _FLOOD_TYPES[k], "data_type")
            elif slot == V_VARIANT_TYPE:
                w_str_field(tw, M_VALUE, slot, _FLOOD_VARIANTS[k], "variant_type")
            elif slot == V_RAW_DATA_TYPE:
                w_int32_field(tw, M_VALUE, slot, _FLOOD_TYPES[k] - 1, "raw_data_type")
        fv.post_len = tw.pos - fv.post_off
    return 0


cdef int w_flood_status(Writer* w) except -1:
    # One OK status: success 1, category OK, detected by the responding LMX.
    cdef const MsgTable* t = &TABLES[M_STATUS]
    cdef int i, slot
    for i in range(t.nslots):
        slot = t.order[i]
        if slot == ST_SUCCESS:
            w_int32_field(w, M_STATUS, slot, 1, "success")
        elif slot == ST_CATEGORY:
            w_int32_field(w, M_STATUS, slot, _CATEGORIES[1], "category")    # OK
        elif slot == ST_DETECTED_BY:
            w_int32_field(w, M_STATUS, slot, _SOURCES[2], "detected_by")  # RESPONDING_LMX
    return 0


cdef void flood_segment(FloodPlan* plan, int kind, Py_ssize_t off, Py_ssize_t n) noexcept:
    if kind == FL_CONST:
        if n == 0:
            return
        plan.const_len += n
    plan.seg_kind[plan.nseg] = kind
    plan.seg_off[plan.nseg] = off
    plan.seg_len[plan.nseg] = n
    plan.nseg += 1


cdef inline int flood_kind(int32_t h) noexcept nogil:
    # Python's h % 4 (never negative).
    return ((h % 4) + 4) % 4


cdef inline int decimal(char* out, uint32_t v) noexcept nogil:
    # v < 1000 as decimal digits, no leading zeros.
    if v >= 100:
        out[0] = <char>(48 + v // 100)
        out[1] = <char>(48 + (v // 10) % 10)
        out[2] = <char>(48 + v % 10)
        return 3
    if v >= 10:
        out[0] = <char>(48 + v // 10)
        out[1] = <char>(48 + v % 10)
        return 2
    out[0] = <char>(48 + v)
    return 1


cdef inline Py_ssize_t arm_payload_len(int k, uint64_t seq) noexcept nogil:
    if k == 0:
        return 8
    if k == 1:
        return varint_size(seq % 100000)
    if k == 2:
        return 1
    return 1 + 1 + (3 if seq % 1000 >= 100 else 2 if seq % 1000 >= 10 else 1)


cdef inline Py_ssize_t flood_event_len(const FloodPlan* plan, uint64_t seq,
                                       int32_t h) noexcept nogil:
    cdef int k = flood_kind(h)
    cdef const FloodValue* fv = &plan.kinds[k]
    cdef Py_ssize_t value_len = fv.pre_len + fv.arm_tag_len + arm_payload_len(k, seq) + fv.post_len
    cdef Py_ssize_t n = plan.const_len + plan.value_tag_len + varint_size(value_len) + value_len
    if seq != 0:
        n += plan.seq_tag_len + varint_size(seq)
    if h != 0:
        n += plan.item_tag_len + varint_size(<uint64_t><int64_t>h)
    return n


cdef inline uint8_t* flood_event(uint8_t* p, const FloodPlan* plan, const uint8_t* tb,
                                 uint64_t seq, int32_t h) noexcept nogil:
    cdef int k = flood_kind(h)
    cdef const FloodValue* fv = &plan.kinds[k]
    cdef int s
    cdef double d
    cdef char digits[4]
    cdef int nd
    for s in range(plan.nseg):
        if plan.seg_kind[s] == FL_CONST:
            memcpy(p, tb + plan.seg_off[s], plan.seg_len[s])
            p += plan.seg_len[s]
        elif plan.seg_kind[s] == FL_SEQUENCE:
            if seq != 0:
                memcpy(p, plan.seq_tag, plan.seq_tag_len)
                p = put_varint(p + plan.seq_tag_len, seq)
        elif plan.seg_kind[s] == FL_ITEM:
            if h != 0:
                memcpy(p, plan.item_tag, plan.item_tag_len)
                p = put_varint(p + plan.item_tag_len, <uint64_t><int64_t>h)
        else:
            memcpy(p, plan.value_tag, plan.value_tag_len)
            p = put_varint(p + plan.value_tag_len,
                           fv.pre_len + fv.arm_tag_len + arm_payload_len(k, seq) + fv.post_len)
            memcpy(p, tb + fv.pre_off, fv.pre_len)
            p += fv.pre_len
            memcpy(p, fv.arm_tag, fv.arm_tag_len)
            p += fv.arm_tag_len
            if k == 0:
                d = <double>h + <double>seq * 0.5
                memcpy(p, &d, 8)
                p += 8
            elif k == 1:
                p = put_varint(p, seq % 100000)
            elif k == 2:
                p[0] = 1 if seq % 2 == 1 else 0
                p += 1
            else:
                nd = decimal(digits, <uint32_t>(seq % 1000))
                p[0] = <uint8_t>(nd + 1)
                p[1] = 118   # "v"
                memcpy(p + 2, digits, nd)
                p += 2 + nd
            memcpy(p, tb + fv.post_off, fv.post_len)
            p += fv.post_len
    return p


def encode_flood_batch(session_id, server_handle, item_handles, first_sequence, count,
                       timestamp_ns):
    """The simulator's flood mode: a serialized MxEventBatch of ``count`` ON_DATA_CHANGE events.

    Event i has sequence ``first_sequence + i`` and item handle
    ``item_handles[(first_sequence + i) % len(item_handles)]``; see docs/codec.md.
    """
    cdef Writer tw
    cdef FloodPlan plan
    cdef Py_ssize_t n_items, n, i, total, ev_len
    cdef uint64_t first, last, seq
    cdef int64_t x
    cdef int32_t h
    cdef int32_t* handles = NULL
    cdef uint8_t* p
    cdef uint8_t* out_end
    cdef bytes out
    cdef Py_ssize_t unused
    # D26, checked in the twin's order.
    as_utf8(session_id, "session_id", &unused)
    as_int(server_handle, MXG_INT32_MIN, MXG_INT32_MAX, "server_handle", &x)
    checked = []
    for item in item_handles:
        as_int(item, MXG_INT32_MIN, MXG_INT32_MAX, "item handle", &x)
        checked.append(x)
    if not checked:
        raise ValueError("item_handles must not be empty")
    as_uint64(first_sequence, "first_sequence", &first)
    as_uint64(count, "count", &last)
    if count and first_sequence + count - 1 > 0xFFFFFFFFFFFFFFFF:
        raise ValueError("first_sequence + count - 1 exceeds the uint64 range")
    w_init(&tw, 512)
    try:
        w_ts(&tw, timestamp_ns, "timestamp_ns")   # the range check (the bytes are unused)
    finally:
        PyMem_Free(tw.buf)
    if count == 0:
        return b""
    n = count   # a batch that cannot fit in memory fails here
    n_items = len(checked)
    w_init(&tw, 512)
    handles = <int32_t*>PyMem_Malloc(n_items * sizeof(int32_t))
    try:
        if handles == NULL:
            raise MemoryError()
        for i in range(n_items):
            handles[i] = <int32_t>(<int64_t>checked[i])
        flood_plan(&tw, &plan, session_id, server_handle, timestamp_ns)
        total = 0
        for i in range(n):
            seq = first + <uint64_t>i
            ev_len = flood_event_len(&plan, seq, handles[seq % <uint64_t>n_items])
            total += plan.event_tag_len + varint_size(<uint64_t>ev_len) + ev_len
        out = PyBytes_FromStringAndSize(NULL, total)
        p = <uint8_t*>PyBytes_AS_STRING(out)
        out_end = p + total
        with nogil:
            for i in range(n):
                seq = first + <uint64_t>i
                h = handles[seq % <uint64_t>n_items]
                ev_len = flood_event_len(&plan, seq, h)
                memcpy(p, plan.event_tag, plan.event_tag_len)
                p = put_varint(p + plan.event_tag_len, <uint64_t>ev_len)
                p = flood_event(p, &plan, tw.buf, seq, h)
        if p != out_end:
            raise AssertionError("flood batch size miscomputed")
        return out
    finally:
        PyMem_Free(handles)
        PyMem_Free(tw.buf)
