"""StreamStats: what a session's event streams have done, counted on the way, readable any time.

The stream core updates it once per list of events (never per event): counts, bytes, the last
sequence, and one latency sample per list (gateway receive time of its first event to the
moment it was handed on), kept in a fixed histogram. Reading it (``session.stats``, or the
exporters) takes no lock: the core runs on the event loop, and so do its readers.
"""

from __future__ import annotations

import bisect
import time
from typing import Any

__all__ = ["LATENCY_BUCKETS_S", "StreamStats"]

# Upper bounds of the latency histogram, in seconds (the last bucket is everything above).
LATENCY_BUCKETS_S: tuple[float, ...] = (
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)
_BUCKETS_NS = tuple(int(bound * 1e9) for bound in LATENCY_BUCKETS_S)


class StreamStats:
    """Counters of a session's event streams (``Session.stats``; counted over every stream the
    session object ran, so they only grow, as monitoring counters should).

    ``events`` and ``messages`` (gRPC messages) and ``bytes`` (their serialized size) received;
    ``decode_errors``; ``reconnects`` (attempts after a failure) and ``resumes`` (of them, the
    ones that attached again); ``replay_gaps`` and ``replay_gap_events`` (the events they say
    were lost); ``overflows`` (the gateway's queue overflowed); ``recoveries`` (the session was
    recovered); ``last_sequence``; ``lag_s`` (now minus the gateway receive time of the last
    event); ``latency_counts`` (a histogram over ``LATENCY_BUCKETS_S``, one sample a list,
    weighted by its events); ``path`` (``"batches"`` or ``"single"``) and ``receiver``.
    """

    __slots__ = (
        "bytes",
        "decode_errors",
        "events",
        "last_gateway_ns",
        "last_sequence",
        "latency_counts",
        "latency_sum_s",
        "messages",
        "overflows",
        "path",
        "receiver",
        "reconnects",
        "recoveries",
        "replay_gap_events",
        "replay_gaps",
        "resumes",
        "session_id",
        "started_ns",
    )

    def __init__(self, session_id: str) -> None:
        self.session_id = session_id
        self.started_ns = time.time_ns()
        self.events = 0
        self.messages = 0
        self.bytes = 0
        self.decode_errors = 0
        self.reconnects = 0
        self.resumes = 0
        self.replay_gaps = 0
        self.replay_gap_events = 0
        self.overflows = 0
        self.recoveries = 0
        self.last_sequence = 0
        self.last_gateway_ns: int | None = None
        self.latency_counts = [0] * (len(_BUCKETS_NS) + 1)
        self.latency_sum_s = 0.0
        self.path = ""
        self.receiver = ""

    def arrived(self, raws: list[bytes]) -> None:
        """Messages read from the call (before decoding)."""
        self.messages += len(raws)
        self.bytes += sum(map(len, raws))

    def handed(self, events: list[Any]) -> None:
        """A list handed on: count it, and take one latency sample (weighted by its size)."""
        self.handed_unit(
            len(events),
            events[-1].worker_sequence,
            events[0].gateway_receive_timestamp_ns,
            events[-1].gateway_receive_timestamp_ns,
        )

    def handed_unit(
        self, count: int, last_sequence: int, first_stamp: int | None, last_stamp: int | None
    ) -> None:
        """Events handed on (a list, or columns), by what the counters need of them: how many,
        the last one's sequence, the gateway receive time of the first and of the last."""
        self.events += count
        if last_sequence:
            self.last_sequence = last_sequence
        if first_stamp is not None:
            latency = time.time_ns() - first_stamp
            self.latency_counts[bisect.bisect_left(_BUCKETS_NS, latency)] += count
            self.latency_sum_s += latency * count / 1e9
            self.last_gateway_ns = last_stamp or first_stamp

    def gap(self, requested_after: int, oldest_available: int) -> None:
        """A ReplayGap: the events between were lost."""
        self.replay_gaps += 1
        self.replay_gap_events += max(0, oldest_available - requested_after - 1)

    @property
    def lag_s(self) -> float | None:
        """Seconds since the gateway received the last event handed on (None before any)."""
        if self.last_gateway_ns is None:
            return None
        return max(0.0, (time.time_ns() - self.last_gateway_ns) / 1e9)

    def latency_quantile(self, q: float) -> float | None:
        """The upper bound (s) of the histogram bucket holding quantile ``q`` (None before
        any sample; ``inf`` for the overflow bucket)."""
        total = sum(self.latency_counts)
        if not total:
            return None
        rank = q * total
        seen = 0
        for index, count in enumerate(self.latency_counts):
            seen += count
            if seen >= rank and count:
                return LATENCY_BUCKETS_S[index] if index < len(_BUCKETS_NS) else float("inf")
        return float("inf")

    def as_dict(self) -> dict[str, Any]:
        """The counters as plain JSON-able values (camelCase, sorted by the JSON encoder)."""
        return {
            "bytes": self.bytes,
            "decodeErrors": self.decode_errors,
            "events": self.events,
            "lagSeconds": None if self.lag_s is None else round(self.lag_s, 6),
            "lastSequence": self.last_sequence,
            "latencyBucketsSeconds": list(LATENCY_BUCKETS_S),
            "latencyCounts": list(self.latency_counts),
            "latencyP50Seconds": self.latency_quantile(0.5),
            "latencyP99Seconds": self.latency_quantile(0.99),
            "messages": self.messages,
            "overflows": self.overflows,
            "path": self.path,
            "receiver": self.receiver,
            "reconnects": self.reconnects,
            "recoveries": self.recoveries,
            "replayGapEvents": self.replay_gap_events,
            "replayGaps": self.replay_gaps,
            "resumes": self.resumes,
            "sessionId": self.session_id,
        }

    def __repr__(self) -> str:
        return (
            f"<StreamStats {self.session_id} events={self.events} messages={self.messages} "
            f"reconnects={self.reconnects} gaps={self.replay_gaps}>"
        )
