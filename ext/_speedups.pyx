# The compiled codec: wire bytes <-> msgspec structs, Python values <-> MxValue.
# Compiler directives live in setup.py (CYTHON_DIRECTIVES), nowhere else.
# Its pure-Python twin is src/mxgateway/_pycodec.py: same functions, same results, same errors.

from mxgateway._errors import MxGatewayDecodeError


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
