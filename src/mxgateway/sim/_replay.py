"""The per-session replay ring: the last N events (and no older than T seconds), as bytes.

Ordinary events are stored encoded. Flood batches are stored as ranges (first sequence, count,
timestamp, items) and re-encoded on a resume, since the flood encoder is deterministic; so a
flood stream can be resumed like any other, without keeping millions of events.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from mxgateway.sim._events import FloodSpec, encode_flood, split_batch

__all__ = ["ReplayRing"]


@dataclass(slots=True)
class _Segment:
    first: int
    count: int
    timestamp_ns: int
    payload: bytes | FloodSpec


class ReplayRing:
    """At most ``capacity`` events no older than ``max_age_ns``, oldest first."""

    def __init__(self, session_id: str, capacity: int, max_age_ns: int) -> None:
        self._session_id = session_id
        self._capacity = capacity
        self._max_age_ns = max_age_ns
        self._segments: deque[_Segment] = deque()
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, sequence: int, timestamp_ns: int, data: bytes) -> None:
        """Record one encoded event."""
        self._segments.append(_Segment(sequence, 1, timestamp_ns, data))
        self._count += 1
        self._trim_count()

    def add_flood(self, first: int, count: int, timestamp_ns: int, spec: FloodSpec) -> None:
        """Record a flood batch of ``count`` events from ``first``."""
        self._segments.append(_Segment(first, count, timestamp_ns, spec))
        self._count += count
        self._trim_count()

    def _trim_count(self) -> None:
        excess = self._count - self._capacity
        while excess > 0:
            head = self._segments[0]
            if head.count <= excess:
                self._segments.popleft()
                self._count -= head.count
                excess -= head.count
            else:
                # Only flood ranges hold more than one event: drop their oldest part.
                head.first += excess
                head.count -= excess
                self._count -= excess
                excess = 0

    def _trim_age(self, now_ns: int) -> None:
        horizon = now_ns - self._max_age_ns
        while self._segments and self._segments[0].timestamp_ns < horizon:
            self._count -= self._segments.popleft().count

    def oldest(self, now_ns: int) -> int | None:
        """The oldest sequence still held (None when empty)."""
        self._trim_age(now_ns)
        return self._segments[0].first if self._segments else None

    def after(self, sequence: int, now_ns: int) -> list[tuple[int, bytes]]:
        """Every held event with a sequence greater than ``sequence``, oldest first."""
        self._trim_age(now_ns)
        out: list[tuple[int, bytes]] = []
        for seg in self._segments:
            last = seg.first + seg.count - 1
            if last <= sequence:
                continue
            if isinstance(seg.payload, bytes):
                out.append((seg.first, seg.payload))
                continue
            start = max(seg.first, sequence + 1)
            batch = encode_flood(
                self._session_id, seg.payload, start, last - start + 1, seg.timestamp_ns
            )
            out.extend(enumerate(split_batch(batch), start=start))
        return out
