"""The check every bridge test ends with: the stream, read back in full, holds every
worker_sequence of each session exactly once, in order, contiguous, with holes only where a
gap record says so; session changes only where a session record says so.

Two readings must agree: the message headers (``Mx-First``/``Mx-Last`` per message, which is
what a restarted bridge trusts) and the events decoded from the payloads (what consumers get).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from mxgateway.bridge import decode_message, item_names

__all__ = ["StreamCheck", "check_stream", "read_all"]


async def read_all(nc: NATS, stream: str) -> list[Msg]:
    """Every message of ``stream``, in stream order."""
    js = nc.jetstream()
    info = await js.stream_info(stream)
    last = info.state.last_seq
    if not info.state.messages:
        return []
    config = ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, inactive_threshold=30.0
    )
    sub = await js.pull_subscribe("", stream=stream, config=config)
    out: list[Msg] = []
    try:
        while not out or out[-1].metadata.sequence.stream < last:
            out.extend(await sub.fetch(1000, timeout=5))
    finally:
        await sub.unsubscribe()
    return out


@dataclass
class StreamCheck:
    """What the stream holds, per session."""

    messages: int = 0
    sessions: list[str] = field(default_factory=list)
    sequences: dict[str, list[int]] = field(default_factory=dict)
    gaps: list[tuple[str, int, int]] = field(default_factory=list)
    recovered: list[Any] = field(default_factory=list)
    kinds: dict[str, int] = field(default_factory=dict)
    subjects: set[str] = field(default_factory=set)
    tags: set[str] = field(default_factory=set)

    @property
    def events(self) -> int:
        return sum(len(s) for s in self.sequences.values())

    def last(self, session: str) -> int:
        seqs = self.sequences.get(session) or [0]
        return seqs[-1]


async def check_stream(
    nc: NATS, stream: str, prefix: str, *, first_from_one: bool = True
) -> StreamCheck:
    """Read ``stream`` and assert the exactly-once invariants (module docstring)."""
    check = StreamCheck()
    expected: dict[str, int] = {}  # session -> the next worker_sequence the stream must hold
    current: str | None = None
    names_of: dict[str, dict[int, str]] = {}
    for msg in await read_all(nc, stream):
        check.messages += 1
        headers = msg.headers or {}
        layout = headers.get("Mx-Layout", "")
        kind = layout.split("/")[0]
        check.kinds[kind] = check.kinds.get(kind, 0) + 1
        check.subjects.add(msg.subject)
        session = headers.get("Mx-Session", "")
        assert headers.get("Nats-Msg-Id"), f"message {msg.subject} has no Nats-Msg-Id"
        names = None
        if kind == "batch":
            if session not in names_of:
                names_of[session] = await item_names(nc, session, headers["Mx-Bridge"])
            names = names_of[session]
        events = decode_message(msg, prefix, names)
        if kind == "recovered":
            (marker,) = events
            recovered = marker.session_recovered
            assert recovered is not None
            assert recovered.new_session_id == session
            if current is not None:
                assert recovered.old_session_id == current, (recovered, current)
            check.recovered.append(recovered)
            current = session
            assert session not in expected, f"session {session} came back after a change"
            expected[session] = 1
            check.sessions.append(session)
            continue
        if current is None:
            current = session
            check.sessions.append(session)
        assert session == current, f"session changed to {session} without a record"
        if kind == "gap":
            first, last = int(headers["Mx-First"]), int(headers["Mx-Last"])
            (sentinel,) = events
            assert sentinel.replay_gap is not None
            assert sentinel.replay_gap.requested_after_sequence == first - 1
            assert sentinel.replay_gap.oldest_available_sequence == last + 1
            want = expected.get(session, first if not first_from_one else 1)
            assert first == want, f"gap record from {first}, the stream is at {want}"
            check.gaps.append((session, first, last))
            expected[session] = last + 1
            continue
        if kind not in ("batch", "item"):
            continue  # alarm and deploy records
        first, last = int(headers["Mx-First"]), int(headers["Mx-Last"])
        seqs = [e.worker_sequence for e in events]
        assert seqs, f"an empty {kind} message"
        assert {e.session_id for e in events} == {session}
        assert seqs[0] == first and seqs[-1] == last, (seqs[0], seqs[-1], first, last)
        known = expected.get(session)
        want = known if known is not None else (1 if first_from_one else first)
        assert first == want, (
            f"session {session}: message {msg.metadata.sequence.stream} starts at {first}, "
            f"the stream is at {want} (a {'duplicate' if first < want else 'hole'})"
        )
        assert seqs == list(range(first, last + 1)), f"not contiguous inside {msg.subject}"
        expected[session] = last + 1
        check.sequences.setdefault(session, []).extend(seqs)
        for event in events:
            if event.tag is not None:
                check.tags.add(event.tag)
    return check
