"""Encoded events: building MxEvents, framing them into MxEventBatch bytes, flood batches.

Events are encoded once when they happen (protobuf SerializeToString) and travel as bytes from
then on: into the replay ring, the subscriber queue, and out through an identity serializer.
Field numbers come from the generated descriptors, never from literals.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Final, cast

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim import _flood as _codec
from mxgateway.sim._status import ok_status
from mxgateway.sim._values import timestamp

__all__ = [
    "FloodSpec",
    "batch_frame",
    "encode_flood",
    "flood_available",
    "frame_event",
    "gap_event",
    "split_batch",
    "stamp",
    "write_complete_event",
]

_BATCH_EVENTS = pb.MxEventBatch.DESCRIPTOR.fields_by_name["events"].number


def _varint(value: int) -> bytes:
    out = bytearray()
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


_EVENT_TAG: Final = _varint(_BATCH_EVENTS << 3 | 2)


def frame_event(data: bytes) -> bytes:
    """One encoded MxEvent as an ``events`` entry of an MxEventBatch (tag, length, bytes)."""
    return _EVENT_TAG + _varint(len(data)) + data


def batch_frame(events: Iterable[bytes]) -> bytes:
    """Encoded MxEvents to one serialized MxEventBatch."""
    return b"".join(frame_event(e) for e in events)


def split_batch(batch: bytes) -> list[bytes]:
    """A serialized MxEventBatch (only ``events`` entries) back to the encoded events."""
    out: list[bytes] = []
    tag = _EVENT_TAG
    tag_len = len(tag)
    pos, end = 0, len(batch)
    while pos < end:
        if batch[pos : pos + tag_len] != tag:
            raise ValueError(f"unexpected field at offset {pos} of a flood batch")
        pos += tag_len
        length = 0
        shift = 0
        while True:
            byte = batch[pos]
            pos += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        out.append(batch[pos : pos + length])
        pos += length
    return out


def gap_event(session_id: str, requested_after: int, oldest_available: int, now_ns: int) -> bytes:
    """The ReplayGap sentinel (family UNSPECIFIED, sent first when a resume is too old)."""
    event = pb.MxEvent(
        session_id=session_id,
        family=pb.MX_EVENT_FAMILY_UNSPECIFIED,
        worker_timestamp=timestamp(now_ns),
        gateway_receive_timestamp=timestamp(now_ns),
        replay_gap=pb.ReplayGap(
            requested_after_sequence=requested_after,
            oldest_available_sequence=oldest_available,
        ),
    )
    return event.SerializeToString()


def stamp(event: pb.MxEvent, now_ns: int) -> None:
    """Set the worker and gateway timestamps of ``event``."""
    ts = timestamp(now_ns)
    event.worker_timestamp.CopyFrom(ts)
    event.gateway_receive_timestamp.CopyFrom(ts)


def write_complete_event(server_handle: int, item_handle: int) -> pb.MxEvent:
    """ON_WRITE_COMPLETE for an accepted write (a success status, hresult 0)."""
    event = pb.MxEvent(
        family=pb.MX_EVENT_FAMILY_ON_WRITE_COMPLETE,
        server_handle=server_handle,
        item_handle=item_handle,
        statuses=[ok_status()],
        hresult=0,
        on_write_complete=pb.OnWriteCompleteEvent(),
    )
    return event


@dataclass(frozen=True, slots=True)
class FloodSpec:
    """Which items a flood batch cycles through (one server handle, its advised items)."""

    server_handle: int
    item_handles: tuple[int, ...]


FloodEncoder = Callable[[str, int, Sequence[int], int, int, int], bytes]


def flood_available() -> bool:
    """True when the active codec provides ``encode_flood_batch``."""
    return callable(getattr(_codec.impl, "encode_flood_batch", None))


def encode_flood(session_id: str, spec: FloodSpec, first: int, count: int, now_ns: int) -> bytes:
    """A serialized MxEventBatch of ``count`` flood events from the active codec."""
    encoder = cast(FloodEncoder, _codec.impl.encode_flood_batch)
    return encoder(session_id, spec.server_handle, spec.item_handles, first, count, now_ns)
