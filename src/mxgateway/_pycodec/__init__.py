"""The pure-Python twin of the compiled codec (ext/_speedups.pyx).

Same functions, same results, same errors: tests run every codec test against both, and a
differential test compares them with protobuf. Used when the extension is missing or when
``MXGATEWAY_NO_EXTENSIONS=1`` is set. docs/codec.md is the specification (with its
"Decisions"); this package follows it to the letter.

Its modules mirror ext/ file for file, so that each pair can be read side by side
(docs/codec.md, "The two implementations"):

- ``__init__`` (this module) - ext/_speedups.pyx: the public functions;
- ``_wire`` - ext/_wire.pxi: varints, lengths, fixed-width fields, UTF-8, skipping, input;
- ``_tables`` - ext/_tables.pxi: field numbers from the descriptors (``configure``), enums;
- ``_decode`` - ext/_decode.pxi: the message parsers and the structs built from them;
- ``_columns`` - ext/_columns.pxi: events into the columns of ``EventColumns``;
- ``_encode`` - ext/_encode.pxi: structs back to bytes;
- ``_values`` - ext/_values.pxi (generated from it by ext/gen_values.py): values to bytes.

The simulator's flood encoder (ext/_flood.pxi) has its twin beside the simulator,
``mxgateway.sim._flood``; ``encode_flood_batch`` is still importable from here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from google.protobuf.message import Message

from mxgateway._pycodec import _tables as _t
from mxgateway._pycodec._columns import _decode_columns
from mxgateway._pycodec._decode import (
    _event,
    _tags_of,
    _value,
    _value_fields,
)
from mxgateway._pycodec._encode import encode_event, encode_event_batch
from mxgateway._pycodec._tables import configure
from mxgateway._pycodec._values import to_mx_value
from mxgateway._pycodec._wire import (
    Buffer,
    _as_bytes,
    _error,
    _ld,
    _skip,
    _varint32,
    _Wire,
    decode_varint,
)
from mxgateway.types import MxEvent, MxValue

if TYPE_CHECKING:
    from mxgateway.columns import EventColumns
    from mxgateway.sim._flood import encode_flood_batch

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


def decode_event(data: Buffer, tags: dict[int, str] | None = None) -> MxEvent:
    """Decode one serialized ``mxaccess_gateway.v1.MxEvent`` into an :class:`MxEvent`.

    ``data`` is any bytes-like object. Malformed or truncated bytes raise
    MxGatewayDecodeError (and nothing else). ``tags`` (a dict item handle -> name) fills
    ``MxEvent.tag``.
    """
    tags = _tags_of(tags)
    buf = _as_bytes(data)
    return _event(buf, 0, len(buf), 1, tags)


def decode_event_batch(data: Buffer, tags: dict[int, str] | None = None) -> list[MxEvent]:
    """Decode one serialized ``MxEventBatch`` into a list of :class:`MxEvent` in wire order
    (``tags`` as ``decode_event``)."""
    tags = _tags_of(tags)
    buf = _as_bytes(data)
    (t_events,) = _t._BATCH_TAGS
    pos = 0
    end = len(buf)
    events: list[MxEvent] = []
    append = events.append
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_events:
                start, pos = _ld(buf, pos, end)
                append(_event(buf, start, pos, 2, tags))
            else:
                pos = _skip(buf, tag, pos, end, 1)
    except _Wire as exc:
        raise _error("MxEventBatch", exc) from None
    return events


def decode_event_columns(data: Buffer, tags: dict[int, str] | None = None) -> EventColumns:
    """Decode one serialized ``MxEventBatch`` into an ``mxgateway.columns.EventColumns``
    (numpy columns; ``tags`` as ``decode_event``). Needs numpy (``mxgateway[columns]``)."""
    parts = _decode_columns((data,), tags, False)
    from mxgateway.columns import _from_parts

    return _from_parts(parts)


def from_mx_value(data: Buffer | Message) -> MxValue:
    """Decode one serialized ``MxValue`` (or a generated MxValue message) into an MxValue."""
    if isinstance(data, Message):
        if data.DESCRIPTOR.full_name != "mxaccess_gateway.v1.MxValue":
            raise TypeError(
                f"from_mx_value needs an MxValue message, not {data.DESCRIPTOR.full_name}"
            )
        data = data.SerializeToString()
    buf = _as_bytes(data)
    return MxValue(*_value_fields(_value(buf, 0, len(buf), 1, None)))


def __getattr__(name: str) -> Any:
    # The flood encoder lives beside the simulator; importing it here would import the
    # simulator with every client, so it is looked up on first use.
    if name == "encode_flood_batch":
        from mxgateway.sim._flood import encode_flood_batch

        return encode_flood_batch
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


configure()
