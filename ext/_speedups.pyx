# The compiled codec: wire bytes <-> msgspec structs, Python values <-> MxValue.
# Compiler directives live in setup.py (CYTHON_DIRECTIVES), nowhere else.
# Its pure-Python twin is src/mxgateway/_pycodec.py: same functions, same results, same errors.
# The specification is docs/codec.md.
#
# Layout: _wire.pxi (bounds-checked reads, errors, skipping), _tables.pxi (field numbers from
# the descriptors, configure()), _decode.pxi (parsers into C states, struct building),
# _encode.pxi (structs back to bytes), _values.pxi (to_mx_value and the rare MxValue arms,
# generated from the twin by gen_values.py), _flood.pxi (the simulator's flood batches).

from cpython.buffer cimport PyBUF_SIMPLE, PyBuffer_Release, PyObject_GetBuffer
from cpython.bytes cimport PyBytes_AS_STRING, PyBytes_CheckExact, PyBytes_FromStringAndSize
from cpython.bytes cimport PyBytes_GET_SIZE
from cpython.bytearray cimport PyByteArray_AS_STRING, PyByteArray_FromStringAndSize
from cpython.dict cimport PyDict_SetItem
from cpython.long cimport PyLong_AsLongLongAndOverflow, PyLong_AsUnsignedLongLong
from cpython.long cimport PyLong_FromLongLong, PyLong_FromUnsignedLongLong
from cpython.mem cimport PyMem_Free, PyMem_Malloc, PyMem_Realloc
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject, PyTypeObject
from cpython.ref cimport Py_INCREF, Py_XDECREF, Py_XINCREF
from libc.stdint cimport int16_t, int32_t, int64_t, uint8_t, uint32_t, uint64_t
from libc.float cimport FLT_MAX
from libc.math cimport INFINITY, fabs
from libc.string cimport memcpy, memmove, memset

cdef extern from "Python.h":
    object PyUnicode_DecodeUTF8(const char* s, Py_ssize_t size, const char* errors)
    object PyUnicode_New(Py_ssize_t size, Py_UCS4 maxchar)
    void* PyUnicode_DATA(object s)
    const char* PyUnicode_AsUTF8AndSize(object s, Py_ssize_t* size) except NULL

cdef extern from *:
    """
    #define MXG_TS_SAFE_SECONDS 9000000000LL  /* |seconds| below this: ns fits int64 */
    #define MXG_UINT32_MAX 0xFFFFFFFFULL
    #define MXG_INT32_MIN (-2147483648LL)
    #define MXG_INT32_MAX 2147483647LL
    #define MXG_HIGH_BITS 0x8080808080808080ULL
    #define MXG_TS_ABSENT INT64_MIN  /* an absent timestamp in a column (numpy's NaT) */
    #define MXG_FNV_OFFSET 0xCBF29CE484222325ULL
    #define MXG_FNV_PRIME 0x100000001B3ULL
    """
    const int64_t MXG_TS_SAFE_SECONDS
    const uint64_t MXG_UINT32_MAX
    const int64_t MXG_INT32_MIN
    const int64_t MXG_INT32_MAX
    const uint64_t MXG_HIGH_BITS
    const int64_t MXG_TS_ABSENT
    const uint64_t MXG_FNV_OFFSET
    const uint64_t MXG_FNV_PRIME

from datetime import UTC as _UTC
from datetime import datetime as _datetime
from datetime import timedelta as _timedelta

from mxgateway import types as _types
from mxgateway._errors import MxGatewayDecodeError

__all__ = [
    "configure",
    "decode_event",
    "decode_event_batch",
    "decode_event_columns",
    "decode_varint",
    "encode_event",
    "encode_event_batch",
    "encode_flood_batch",
    "from_mx_value",
    "to_mx_value",
]

cdef object _MxEvent = _types.MxEvent
cdef object _MxValue = _types.MxValue
cdef object _MxStatus = _types.MxStatus
cdef object _ReplayGap = _types.ReplayGap
cdef object _BufferedSample = _types.BufferedSample
cdef object _AlarmTransition = _types.AlarmTransition
cdef object _MxSparseArray = _types.MxSparseArray
cdef object _EPOCH = _datetime(1970, 1, 1, tzinfo=_UTC)


def _members(enum_class):
    # Members indexed by value; a value the enum does not name decodes to a plain int.
    top = max(int(m) for m in enum_class)
    return tuple(
        enum_class(i) if i in enum_class._value2member_map_ else i for i in range(top + 1)
    )


cdef tuple _FAMILIES = _members(_types.MxEventFamily)
cdef tuple _DATA_TYPES = _members(_types.MxDataType)
cdef tuple _CATEGORIES = _members(_types.MxStatusCategory)
cdef tuple _SOURCES = _members(_types.MxStatusSource)
cdef tuple _TRANSITION_KINDS = _members(_types.AlarmTransitionKind)
cdef tuple _CONDITION_STATES = _members(_types.AlarmConditionState)
cdef object _DT_UNSPECIFIED = _types.MxDataType.UNSPECIFIED
cdef tuple _BODY_NAMES = (
    "",
    "on_data_change",
    "on_write_complete",
    "operation_complete",
    "on_buffered_data_change",
    "on_alarm_transition",
)

# MxDataType values the codec branches on (checked against mxgateway.types at import).
cdef enum:
    DT_UNSPECIFIED = 0
    DT_NO_DATA = 1
    DT_BOOLEAN = 2
    DT_INTEGER = 3
    DT_FLOAT = 4
    DT_DOUBLE = 5
    DT_STRING = 6
    DT_TIME = 7
    DT_ELAPSED_TIME = 8
    DT_REFERENCE = 9
    DT_INTERNATIONALIZED_STRING = 16
    DT_BIG_STRING = 17

for _name, _value in (
    ("UNSPECIFIED", DT_UNSPECIFIED), ("NO_DATA", DT_NO_DATA), ("BOOLEAN", DT_BOOLEAN),
    ("INTEGER", DT_INTEGER), ("FLOAT", DT_FLOAT), ("DOUBLE", DT_DOUBLE),
    ("STRING", DT_STRING), ("TIME", DT_TIME), ("ELAPSED_TIME", DT_ELAPSED_TIME),
    ("REFERENCE", DT_REFERENCE), ("INTERNATIONALIZED_STRING", DT_INTERNATIONALIZED_STRING),
    ("BIG_STRING", DT_BIG_STRING),
):
    assert _types.MxDataType[_name] == _value, _name

include "_wire.pxi"
include "_tables.pxi"
include "_decode.pxi"
include "_columns.pxi"
include "_encode.pxi"
include "_values.pxi"
include "_flood.pxi"


# ---- buffer access -----------------------------------------------------------------------

cdef struct Input:
    const uint8_t* p
    Py_ssize_t n
    bint release
    Py_buffer view


cdef int open_input(object data, Input* inp) except -1:
    # bytes are read in place; anything else through the buffer protocol.
    if PyBytes_CheckExact(data):
        inp.p = <const uint8_t*>PyBytes_AS_STRING(data)
        inp.n = PyBytes_GET_SIZE(data)
        inp.release = False
        return 0
    PyObject_GetBuffer(data, &inp.view, PyBUF_SIMPLE)
    inp.p = <const uint8_t*>inp.view.buf
    inp.n = inp.view.len
    inp.release = True
    return 0


cdef inline void close_input(Input* inp, Ctx* c) noexcept:
    if inp.release:
        PyBuffer_Release(&inp.view)
    ctx_close(c)


# ---- public functions --------------------------------------------------------------------

cdef PyObject* tags_of(object tags) except? NULL:
    # An exact dict, read without a call per event (PyDict_GetItem); None for no names.
    if tags is None:
        return NULL
    if type(tags) is not dict:
        raise TypeError(f"tags must be a dict of item handle -> tag, not {type(tags).__name__}")
    return <PyObject*>tags


def decode_event(data, tags=None):
    """Decode one serialized ``mxaccess_gateway.v1.MxEvent`` into an MxEvent struct.

    ``tags`` (a dict item handle -> name) fills ``MxEvent.tag``."""
    cdef Input inp
    cdef Ctx c
    cdef PyObject* names = tags_of(tags)
    open_input(data, &inp)
    ctx_init(&c, inp.p, names)
    try:
        return parse_event(&c, inp.p, inp.p + inp.n)
    finally:
        close_input(&inp, &c)


def decode_event_batch(data, tags=None):
    """Decode one serialized ``MxEventBatch`` into a list of MxEvent structs (``tags`` as
    ``decode_event``)."""
    cdef Input inp
    cdef Ctx c
    cdef PyObject* names = tags_of(tags)
    open_input(data, &inp)
    ctx_init(&c, inp.p, names)
    try:
        return parse_batch(&c, inp.p, inp.p + inp.n)
    finally:
        close_input(&inp, &c)


def from_mx_value(data):
    """Decode one serialized ``MxValue`` (or a generated MxValue message) into an MxValue."""
    cdef Input inp
    cdef Ctx c
    cdef ValState v
    if _is_message(data):
        if data.DESCRIPTOR.full_name != "mxaccess_gateway.v1.MxValue":
            raise TypeError(
                f"from_mx_value needs an MxValue message, not {data.DESCRIPTOR.full_name}"
            )
        data = data.SerializeToString()
    open_input(data, &inp)
    ctx_init(&c, inp.p, NULL)
    memset(&v, 0, sizeof(v))
    try:
        parse_value(&c, inp.p, inp.p + inp.n, &v)
        return mxvalue_struct(&c, &v)
    finally:
        close_input(&inp, &c)


cdef object _PbMessage = None


cdef bint _is_message(object data) except -1:
    global _PbMessage
    if PyBytes_CheckExact(data):
        return False
    if _PbMessage is None:
        from google.protobuf.message import Message

        _PbMessage = Message
    return isinstance(data, _PbMessage)


cpdef tuple decode_varint(const unsigned char[::1] data, Py_ssize_t offset=0):
    """Decode one base-128 varint at ``offset``; return ``(value, next_offset)``.

    The value is the unsigned 64-bit integer the bytes encode; as in protobuf, bits past the
    64th in a tenth byte are dropped. A varint longer than ten bytes, or one cut off by the end
    of ``data``, raises MxGatewayDecodeError.
    """
    cdef Py_ssize_t end = data.shape[0]
    cdef Py_ssize_t pos = offset
    cdef unsigned long long result = 0
    cdef unsigned int shift = 0
    cdef unsigned char byte
    if offset < 0 or offset > end:
        raise MxGatewayDecodeError(f"offset {offset} outside a buffer of {end} bytes")
    while True:
        if pos >= end:
            raise MxGatewayDecodeError(f"truncated varint at offset {offset}")
        byte = data[pos]
        pos += 1
        result |= (<unsigned long long>(byte & 0x7F)) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise MxGatewayDecodeError(f"varint at offset {offset} is longer than 10 bytes")


configure()
