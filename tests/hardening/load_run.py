"""One load run, shared by test_load.py and bench/hardening/load.py: N sessions, each with the
same advised items, streaming StreamEventBatches at once from a simulator process; each
session's 128 pending commands checked first; every sequence of every session accounted for.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass

from mxgateway import GatewayClient, MxEvent, MxGatewayProtocolError, Session
from tests.hardening.simproc import SimProcess

__all__ = ["PENDING", "LoadResult", "Tally", "load_run", "pending_commands_honoured"]

PENDING = 128  # the gateway's pending-command limit per session
# Sessions whose pending commands are checked together: 8 x 129 calls in flight on the
# client's one HTTP/2 connection (gRPC resets streams beyond about 2,600 concurrent calls on
# one connection; see docs/reliability.md).
PENDING_GROUP = 8


class Tally:
    """Sequences of one session's stream, checked as they arrive (constant memory)."""

    __slots__ = ("bad", "count", "first", "last")

    def __init__(self) -> None:
        self.first = 0
        self.last = 0
        self.count = 0
        self.bad: list[tuple[int, int]] = []

    def add(self, batch: Sequence[MxEvent]) -> None:
        for event in batch:
            sequence = event.worker_sequence
            if self.count == 0:
                self.first = sequence
            elif sequence != self.last + 1:
                self.bad.append((self.last, sequence))
            self.last = sequence
            self.count += 1

    @property
    def complete(self) -> bool:
        """Every sequence from 1 to the last, each once and in order."""
        return self.first == 1 and not self.bad and self.count == self.last


@dataclass(frozen=True)
class LoadResult:
    """What one run saw."""

    sessions: int
    events: int
    incomplete_sessions: int
    stream_seconds: float
    setup_seconds: float
    pending_seconds: float
    min_events_per_session: int


async def _setup(session: Session, references: list[str]) -> None:
    server = await session.register("load")
    results = await session.subscribe_bulk(server, references)
    assert len(results) == len(references) and all(r.was_successful for r in results)


async def pending_commands_honoured(sim: SimProcess, sessions: list[Session]) -> None:
    """Every session's worker is made busy; 128 commands each wait in the gateway, the 129th
    fails at once with the simulator's documented RESOURCE_EXHAUSTED, as a typed error
    (MxGatewayProtocolError); once the workers are free, each of the 128 ran exactly once."""
    assert await sim.call("hold_commands", [s.session_id for s in sessions]) == len(sessions)
    calls = [
        asyncio.ensure_future(session.register(f"pending-{i}"))
        for session in sessions
        for i in range(PENDING)
    ]
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while True:
            pending = await sim.call("pending_commands")
            if all(pending[s.session_id] == PENDING for s in sessions):
                break
            assert loop.time() < deadline, f"commands never all pending: {pending}"
            await asyncio.sleep(0.05)
        for session in sessions:
            try:
                await asyncio.wait_for(session.register("one-too-many"), 10)
            except MxGatewayProtocolError as error:
                assert error.grpc_code == "RESOURCE_EXHAUSTED", error
                assert "pending commands" in str(error), error
            else:
                raise AssertionError("the 129th pending command was accepted")
            assert not any(call.done() for call in calls)
    finally:
        await sim.call("release_commands")
        results = await asyncio.gather(*calls, return_exceptions=True)
    handles = [h for h in results if isinstance(h, int)]
    assert len(handles) == len(calls), [r for r in results if not isinstance(r, int)][:3]
    for index in range(len(sessions)):
        mine = sorted(handles[index * PENDING : (index + 1) * PENDING])
        assert mine == list(range(2, PENDING + 2))  # each ran once (handle 1 is "load")


async def load_run(
    client: GatewayClient,
    sim: SimProcess,
    references: list[str],
    *,
    sessions: int,
    stream_seconds: float,
    live_events: int,
    limit_seconds: float = 120.0,
) -> LoadResult:
    """Open ``sessions`` sessions advising ``references``, check their pending commands,
    stream them all at once for ``stream_seconds`` and until each had ``live_events`` events
    beyond its advise values, then close them."""
    started = time.monotonic()
    opened = list(
        await asyncio.gather(
            *(client.open_session(client_session_name=f"load-{i}") for i in range(sessions))
        )
    )
    await asyncio.gather(*(_setup(session, references) for session in opened))
    advised = time.monotonic()
    for group in range(0, sessions, PENDING_GROUP):
        await pending_commands_honoured(sim, opened[group : group + PENDING_GROUP])
    checked = time.monotonic()
    tallies = [Tally() for _ in opened]

    async def consume(session: Session, tally: Tally) -> None:
        async for batch in session.stream_event_batches(max_batch_events=500):
            tally.add(batch)

    consumers = [
        asyncio.create_task(consume(session, tally))
        for session, tally in zip(opened, tallies, strict=True)
    ]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_seconds
    await asyncio.sleep(stream_seconds)
    wanted = len(references) + live_events
    while not all(tally.count >= wanted for tally in tallies):
        assert loop.time() < deadline, sorted(tally.count for tally in tallies)[:4]
        await asyncio.sleep(0.05)
    streamed = time.monotonic()
    for consumer in consumers:
        consumer.cancel()
    done = await asyncio.gather(*consumers, return_exceptions=True)
    assert all(isinstance(result, asyncio.CancelledError) for result in done), done
    await asyncio.gather(*(session.close() for session in opened))
    return LoadResult(
        sessions=sessions,
        events=sum(t.count for t in tallies),
        incomplete_sessions=sum(not t.complete for t in tallies),
        stream_seconds=streamed - checked,
        setup_seconds=advised - started,
        pending_seconds=checked - advised,
        min_events_per_session=min(t.count for t in tallies),
    )
