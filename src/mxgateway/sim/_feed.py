"""What one attached event stream sends next: the one place that knows the order.

The ReplayGap sentinel first, then the session's queued events in order, then flood events
(flood mode, paced by ``flood_rate`` when it is set). Both servers use it: the grpc.aio
handlers yield its messages one by one, the flood front door frames many per DATA frame.
It also counts what is sent, per rpc path (``SimulatedGateway.stats()``).
"""

from __future__ import annotations

import asyncio

import grpc

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim._events import FloodSpec, batch_frame, encode_flood, frame_event
from mxgateway.sim._session import PACE_GRID_S, Session, Subscriber

__all__ = [
    "BATCHES_PATH",
    "EVENTS_PATH",
    "EventFeed",
    "StreamStats",
    "flood_cap",
]

_SERVICE = pb.DESCRIPTOR.services_by_name["MxAccessGateway"].full_name
EVENTS_PATH = f"/{_SERVICE}/StreamEvents"
BATCHES_PATH = f"/{_SERVICE}/StreamEventBatches"
_FRAME_OVERHEAD = 16
_OK = (grpc.StatusCode.OK, "")
_flood_caps: dict[int, int] = {}


def flood_cap(max_message_bytes: int) -> int:
    """Flood events per MxEventBatch so that a batch stays within half the message limit."""
    cap = _flood_caps.get(max_message_bytes)
    if cap is None:
        big = (1 << 31) - 1
        session_id = "sim-" + "0" * 24  # the registry's id shape
        sample = encode_flood(session_id, FloodSpec(big, (big,)), 1 << 62, 1, 0)
        per_event = len(sample) + len(session_id) + _FRAME_OVERHEAD
        cap = _flood_caps[max_message_bytes] = max(1, (max_message_bytes // 2) // per_event)
    return cap


class StreamStats:
    """Messages and events handed to the transport, per event rpc path."""

    def __init__(self) -> None:
        self._paths: dict[str, list[int]] = {}

    def counter(self, path: str) -> list[int]:
        """The ``[messages, events]`` counter of ``path`` (created at zero)."""
        return self._paths.setdefault(path, [0, 0])

    def snapshot(self) -> dict[str, dict[str, int]]:
        """``{path: {"messages": m, "events": e}}``, sorted by path."""
        return {
            path: {"messages": counts[0], "events": counts[1]}
            for path, counts in sorted(self._paths.items())
        }


class EventFeed:
    """The messages of one attached stream: StreamEvents (``batch`` None) or StreamEventBatches
    (at most ``batch`` events per MxEventBatch).

    Everything but ``wait`` runs without awaiting, so what it takes is atomic with respect to
    the session (no gap, no duplicate on a resume).
    """

    __slots__ = ("_budget", "_counter", "_flood", "_flood_cap", "batch", "session", "sub")

    def __init__(
        self, session: Session, sub: Subscriber, batch: int | None, counter: list[int]
    ) -> None:
        config = session.config
        self.session = session
        self.sub = sub
        self.batch = batch
        self._counter = counter
        self._budget = config.max_message_bytes - 1024
        self._flood = config.flood
        self._flood_cap = flood_cap(config.max_message_bytes) if config.flood else 0

    def ended(self) -> tuple[grpc.StatusCode, str] | None:
        """None while the stream goes on; else its status (OK when the session closed)."""
        sub = self.sub
        if sub.error is not None:
            return sub.error
        if sub.finished:
            return _OK
        return None

    def close(self) -> None:
        """The stream is over: detach (the session's detach grace starts)."""
        self.session.detach(self.sub)

    def take_prefix(self) -> bytes | None:
        """The ReplayGap sentinel as this rpc's message, once (None when there is none)."""
        prefix = self.sub.prefix
        if prefix is None:
            return None
        self.sub.prefix = None
        self._count(1, 1)
        return prefix if self.batch is None else frame_event(prefix)

    def has_pending(self) -> bool:
        """True when the session's queue holds events."""
        return bool(self.session.pending)

    def take_pending(self, max_messages: int) -> list[bytes]:
        """Up to ``max_messages`` messages from the session's queue, in order."""
        pending = self.session.pending
        if self.batch is None:
            n = min(max_messages, len(pending))
            self._count(n, n)
            return [pending.popleft()[1] for _ in range(n)]
        out: list[bytes] = []
        events = 0
        budget = self._budget
        while pending and len(out) < max_messages:
            frames: list[bytes] = []
            size = 0
            while pending and len(frames) < self.batch:
                data = pending[0][1]
                if frames and size + len(data) + _FRAME_OVERHEAD > budget:
                    break
                pending.popleft()
                frames.append(data)
                size += len(data) + _FRAME_OVERHEAD
            out.append(batch_frame(frames))
            events += len(frames)
        self._count(len(out), events)
        return out

    def take_flood(self, max_events: int) -> tuple[bytes, int] | None:
        """Flood events due now, at most ``max_events`` (and one batch's worth): a serialized
        MxEventBatch and its event count. For StreamEvents each of its events is one message;
        for StreamEventBatches it is one message. None when none is due."""
        if not self._flood:
            return None
        session = self.session
        count = max_events if self.batch is None else min(max_events, self.batch, self._flood_cap)
        count = min(count, session.flood_due())
        if count <= 0:
            return None
        data = session.flood_batch(count)
        if data is None:
            return None
        self._count(count if self.batch is None else 1, count)
        return data, count

    def _count(self, messages: int, events: int) -> None:
        counter = self._counter
        counter[0] += messages
        counter[1] += events

    async def wait(self) -> None:
        """Until something may be available: an event emitted, the stream ended, or (paced
        flood) the next flood event due."""
        sub = self.sub
        sub.wake.clear()
        due = self.session.flood_next_due() if self._flood else None
        if due is None:
            await sub.wake.wait()
            return
        loop = asyncio.get_running_loop()
        # At least half a grid step: a timer that fires a little early (uvloop's run on a
        # millisecond clock) must not turn into a busy loop until the grid point.
        delay = max(due - self.session.monotonic(), PACE_GRID_S / 2)
        handle = loop.call_later(delay, sub.wake.set)
        try:
            await sub.wake.wait()
        finally:
            handle.cancel()
