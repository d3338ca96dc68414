"""StreamStats: counted by the stream core on every path, readable from the session."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from mxgateway import GatewayClient, MxEvent, StreamStats
from mxgateway._stats import LATENCY_BUCKETS_S
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.client._helpers import take
from tests.streams import MODES, StreamMode, connect, event_lists


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedGateway]:
    async with SimulatedGateway(SimConfig(rate=100.0, galaxy_size=60, replay_capacity=8)) as gw:
        yield gw


@pytest.mark.parametrize("mode", MODES)
async def test_counters_move_with_the_stream(sim: SimulatedGateway, mode: StreamMode) -> None:
    async with await connect(mode, sim.endpoint) as client:
        session = await client.open_session()
        server = await session.register("stats")
        await session.subscribe_bulk(server, sim.sample_references(5))
        seen: list[MxEvent] = []
        async for events in event_lists(session, mode):
            seen.extend(events)
            if len(seen) >= 200:
                break
        stats = session.stats
        assert isinstance(stats, StreamStats)
        assert stats.events == len(seen)
        assert stats.messages >= (1 if mode.name == "batches" else len(seen))
        assert stats.bytes > 0
        assert stats.last_sequence == seen[-1].worker_sequence
        assert sum(stats.latency_counts) == len(seen)  # every event in one bucket
        assert len(stats.latency_counts) == len(LATENCY_BUCKETS_S) + 1
        assert stats.latency_quantile(0.5) is not None
        assert stats.lag_s is not None and stats.lag_s >= 0
        assert stats.path == ("batches" if mode.name == "batches" else "single")
        assert stats.receiver == ("aio" if mode.name != "single-thread" else "thread")
        assert stats.as_dict()["events"] == len(seen)


async def test_cuts_count_reconnects_and_resumes(sim: SimulatedGateway) -> None:
    async with await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True) as client:
        session = await client.open_session()
        server = await session.register("stats")
        await session.subscribe_bulk(server, sim.sample_references(5))
        seen: list[MxEvent] = []

        async def consume() -> None:
            async for events in session.stream_event_batches(retry_budget_s=10):
                seen.extend(events)

        task = asyncio.create_task(consume())
        for _ in range(3):
            await _grown(seen, 20)
            sim.drop_streams()
        await _grown(seen, 20)
        stats = session.stats
        assert stats is not None
        assert stats.reconnects >= 3 and stats.resumes >= 3
        assert stats.replay_gaps == 0  # the ring covered every cut
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def _grown(seen: list[MxEvent], by: int) -> None:
    mark = len(seen) + by
    async with asyncio.timeout(10):
        while len(seen) < mark:  # noqa: ASYNC110 - the list grows in another task
            await asyncio.sleep(0.01)


async def test_a_replay_gap_counts_the_events_it_lost(sim: SimulatedGateway) -> None:
    async with await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True) as client:
        session = await client.open_session()
        server = await session.register("stats")
        await session.subscribe_bulk(server, sim.sample_references(2))
        first = await take(session.stream_events(), 1)
        sim.step_values(20)  # far more than the ring of 8 keeps
        await asyncio.sleep(0.2)
        events = await take(
            session.stream_events(after_worker_sequence=first[0].worker_sequence), 1
        )
        gap = events[0].replay_gap
        assert gap is not None
        stats = session.stats
        assert stats is not None and stats.replay_gaps == 1
        assert stats.replay_gap_events == (
            gap.oldest_available_sequence - gap.requested_after_sequence - 1
        )


def test_the_library_logs_under_mxgateway_with_a_null_handler() -> None:
    root = logging.getLogger("mxgateway")
    assert any(isinstance(h, logging.NullHandler) for h in root.handlers)
    from mxgateway import _session, _stream_core

    assert _stream_core.logger.name == "mxgateway._stream_core"
    assert _session.logger.name.startswith("mxgateway.")
