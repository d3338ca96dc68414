"""Wire-level reading (twin of ext/_wire.pxi): the constants, bounds-checked varints, lengths
and fixed-width fields, UTF-8, skipping unknown fields and groups, and the input buffer.

Low-level readers raise the internal ``_Wire`` (what, offset); each message parser turns it
into ``MxGatewayDecodeError("<Message>: <what> at offset <n>")``.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from typing import Any, Final, TypeAlias

from mxgateway._errors import MxGatewayDecodeError

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
