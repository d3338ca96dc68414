"""The check every bridge test ends with: the stream, read back in full, holds every
worker_sequence of each session exactly once, in order, contiguous, with holes only where a
gap record says so; session changes only where a session record says so.

Two readings must agree: the message headers (``Mx-First``/``Mx-Last`` per message, which is
what a restarted bridge trusts) and the events decoded from the payloads (what consumers get).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from mxgateway.bridge import consume, consume_columns, decode_message, item_names
from mxgateway.columns import EventColumns
from mxgateway.types import MxEvent

__all__ = ["StreamCheck", "check_stream", "read_all"]


# Bytes one fetch may ask for: far under nats-server's per-connection max_pending (64 MB by
# default). A fetch of 1,000 batch messages (~116 KB each under flood) once pushed more than
# that at the reader, the server cut it as a slow consumer, and the messages in flight were
# gone: a "hole" that was the reader's, not the stream's.
_FETCH_BYTES = 8 * 1024 * 1024


async def read_all(nc: NATS, stream: str) -> list[Msg]:
    """Every message of ``stream``, in stream order, each stream sequence once.

    Fetches are bounded in bytes; a lost delivery (the consumer sequence jumps: a cut
    connection) restarts the reading after the last message read, like an ordered consumer,
    and the result is asserted to be every sequence from the stream's first to its last."""
    js = nc.jetstream()
    info = await js.stream_info(stream)
    state = info.state
    if not state.messages:
        return []
    size = max(1, state.bytes // state.messages)
    batch = max(1, min(1000, _FETCH_BYTES // size))
    out: list[Msg] = []
    restarts = 0
    while not out or out[-1].metadata.sequence.stream < state.last_seq:
        start = out[-1].metadata.sequence.stream + 1 if out else state.first_seq
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start,
            ack_policy=AckPolicy.NONE,
            inactive_threshold=30.0,
        )
        sub = await js.pull_subscribe("", stream=stream, config=config)
        delivered = 0
        try:
            while not out or out[-1].metadata.sequence.stream < state.last_seq:
                msgs = await sub.fetch(batch, timeout=5)
                lost = False
                for msg in msgs:
                    if msg.metadata.sequence.consumer != delivered + 1:
                        lost = True  # deliveries lost in flight: read again from here
                        break
                    delivered += 1
                    out.append(msg)
                if lost:
                    break
        finally:
            await sub.unsubscribe()
        if out and out[-1].metadata.sequence.stream < state.last_seq:
            restarts += 1
            assert restarts < 20, f"reading stream {stream} keeps losing deliveries"
    got = [m.metadata.sequence.stream for m in out]
    deleted = set(state.deleted or ())
    want = [q for q in range(state.first_seq, state.last_seq + 1) if q not in deleted]
    if not state.deleted and state.num_deleted:
        want = got  # deleted sequences not listed: at least the count must agree
    assert got == want, f"read {len(got)} messages of stream {stream}, it has {state.messages}"
    assert len(got) == state.messages, (len(got), state.messages)
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


# -- the consumers' readings -----------------------------------------------------------------


async def read_columns(
    nc: object, stream: str, events: int, **kwargs: object
) -> list[EventColumns]:
    """EventColumns from the stream's start until they hold ``events`` rows."""
    units: list[EventColumns] = []
    rows = 0
    async with asyncio.timeout(30):
        async for unit in consume_columns(nc, stream, from_start=True, **kwargs):  # type: ignore[arg-type]
            assert isinstance(unit, EventColumns) and len(unit)
            units.append(unit)
            rows += len(unit)
            if rows >= events:
                break
    assert rows == events
    return units


async def read_events(nc: object, stream: str, events: int) -> list[MxEvent]:
    out: list[MxEvent] = []
    async with asyncio.timeout(30):
        async for event in consume(nc, stream, from_start=True):  # type: ignore[arg-type]
            out.append(event)
            if len(out) == events:
                break
    return out


async def columns_agree(nc: NATS, stream: str, count: int) -> list[EventColumns]:
    """``consume_columns`` and ``consume`` read the first ``count`` items of ``stream`` (events
    and markers) alike, row for row; the EventColumns read."""
    events = await read_events(nc, stream, count)
    units = await read_columns(nc, stream, count)
    assert [event for unit in units for event in unit.to_events()] == events
    return units
