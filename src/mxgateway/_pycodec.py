"""The pure-Python twin of the compiled codec (ext/_speedups.pyx).

Same functions, same results, same errors: tests run every codec test against both, and a
differential test compares them. Used when the extension is missing or when
``MXGATEWAY_NO_EXTENSIONS=1`` is set.
"""

from __future__ import annotations

from mxgateway._errors import MxGatewayDecodeError

__all__ = ["decode_varint"]


def decode_varint(data: bytes | bytearray | memoryview, offset: int = 0) -> tuple[int, int]:
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
