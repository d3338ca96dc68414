"""Gateway outages, silent partitions, restarts and loss: a surviving session resumes without
gap or duplicate; a lost one ends with a typed error within a bounded time; no task is left."""

from __future__ import annotations

import asyncio

import pytest

from mxgateway import (
    ClientOptions,
    GatewayClient,
    MxEvent,
    MxGatewaySessionNotFoundError,
    MxGatewayStreamLostError,
    MxGatewayTransportError,
    Session,
)
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.hardening.conftest import (
    advised_session,
    assert_contiguous,
    assert_no_new_tasks,
    sequences,
)
from tests.hardening.proxy import TcpProxy
from tests.streams import BATCHES, MODES, SINGLE_THREAD, StreamMode, connect, event_lists


async def _wait_for(predicate: object, within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def _consume(session: Session, mode: StreamMode, seen: list[MxEvent], budget: float) -> None:
    async for batch in event_lists(session, mode, retry_budget_s=budget):
        seen.extend(batch)


@pytest.mark.parametrize("mode", MODES)
async def test_outage_with_a_surviving_session_resumes(
    sim: SimulatedGateway, proxy: TcpProxy, mode: StreamMode
) -> None:
    before = asyncio.all_tasks()
    async with await connect(mode, proxy.endpoint) as client:
        session = await advised_session(client, sim, items=10)
        seen: list[MxEvent] = []
        consumer = asyncio.create_task(_consume(session, mode, seen, budget=20))
        await _wait_for(lambda: len(seen) >= 100)
        proxy.refuse()  # the gateway is unreachable; the session lives on (queue, ring)
        await asyncio.sleep(1.5)
        assert not consumer.done()
        outage_end = len(seen)
        proxy.accept()
        await _wait_for(lambda: len(seen) >= outage_end + 1000)  # the backlog and live events
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        assert all(e.replay_gap is None for e in seen)
        assert_contiguous(sequences(seen))
        # StreamEvents on the thread receiver came back on a connection of its own; the
        # commands' channel may still be backing off (unary calls fail fast meanwhile).
        await client.wait_ready(10)
        await session.close()
    await assert_no_new_tasks(before)


@pytest.mark.once  # keepalive detection (grpc-core)
@pytest.mark.parametrize("mode", MODES)
async def test_silent_partition_is_detected_and_the_stream_resumes(mode: StreamMode) -> None:
    # The proxy stops relaying without closing anything: neither side hears a thing. The client
    # notices by its keepalive/ping timeout; the gateway keeps the dead stream as the session's
    # subscriber until it notices too (here: the proxy closes the stalled upstream later), and
    # the client keeps re-attaching within its retry budget meanwhile.
    config = SimConfig(rate=20.0, galaxy_size=60, replay_capacity=100_000)
    before = asyncio.all_tasks()
    async with SimulatedGateway(config) as sim, TcpProxy(sim.endpoint) as proxy:
        options = ClientOptions(
            endpoint=proxy.endpoint,
            plaintext=True,
            keepalive_seconds=1.0,
            event_receiver=mode.receiver,
        )
        async with GatewayClient(options) as client:
            session = await advised_session(client, sim, items=5)  # 100 events/s
            seen: list[MxEvent] = []
            consumer = asyncio.create_task(_consume(session, mode, seen, budget=60))
            await _wait_for(lambda: len(seen) >= 50)
            loop = asyncio.get_running_loop()
            # The commands' connection, and the thread receiver's own one when it reads.
            assert proxy.stall() >= 1
            opened = proxy.connections
            stalled_at = loop.time()
            await _wait_for(lambda: proxy.connections > opened, within=30)  # the client noticed
            detected = loop.time() - stalled_at
            assert detected < 25  # keepalive 1 s + the 10 s ping timeout, with slack
            await asyncio.sleep(0.5)
            assert not consumer.done()  # refused as a second subscriber, still trying
            mark = len(seen)
            assert proxy.cut(stalled_only=True) >= 1  # now the gateway sees the old stream end
            await _wait_for(lambda: len(seen) >= mark + 200)
            consumer.cancel()
            with pytest.raises(asyncio.CancelledError):
                await consumer
            assert all(e.replay_gap is None for e in seen)
            assert_contiguous(sequences(seen))
            await session.close()
    await assert_no_new_tasks(before)


@pytest.mark.parametrize("mode", MODES)
async def test_restart_that_loses_the_session_ends_with_session_not_found(
    mode: StreamMode,
) -> None:
    before = asyncio.all_tasks()
    async with (
        SimulatedGateway(SimConfig(rate=20.0, galaxy_size=60)) as sim,
        await connect(mode, sim.endpoint) as client,
    ):
        session = await advised_session(client, sim, items=5)
        seen: list[MxEvent] = []
        consumer = asyncio.create_task(_consume(session, mode, seen, budget=30))
        await _wait_for(lambda: len(seen) >= 20)
        await sim.restart()  # same port; sessions are gone, as after a real restart
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(MxGatewaySessionNotFoundError):
            await asyncio.wait_for(consumer, 20)
        assert loop.time() - started < 20
        assert_contiguous(sequences(seen))
        # The commands' channel may still be backing off from the restart (unary calls fail
        # fast meanwhile, by design): wait for it as a caller would.
        await client.wait_ready(10)
        with pytest.raises(MxGatewaySessionNotFoundError):
            await session.register("after-restart")
        fresh = await advised_session(client, sim, items=1)  # the client itself carries on
        await fresh.close()
    await assert_no_new_tasks(before)


async def test_gateway_gone_ends_streams_and_calls_with_typed_errors_and_no_task_left() -> None:
    before = asyncio.all_tasks()
    sim = SimulatedGateway(SimConfig(rate=20.0, galaxy_size=60))
    await sim.start()
    try:
        async with await GatewayClient.connect(
            endpoint=sim.endpoint, plaintext=True, timeout=5.0
        ) as client:
            first = await advised_session(client, sim, items=5)
            second = await advised_session(client, sim, items=5)
            seen: list[MxEvent] = []
            streams = [
                asyncio.create_task(_consume(first, BATCHES, seen, budget=1.5)),
                asyncio.create_task(_consume(second, SINGLE_THREAD, [], budget=1.5)),
            ]
            await _wait_for(lambda: len(seen) >= 20)
            await sim.stop()  # for good: nothing listens on the port any more
            loop = asyncio.get_running_loop()
            started = loop.time()
            with pytest.raises(MxGatewayTransportError):
                await first.register("gone")
            results = await asyncio.wait_for(asyncio.gather(*streams, return_exceptions=True), 30)
            elapsed = loop.time() - started
            for result in results:
                assert isinstance(result, MxGatewayStreamLostError), repr(result)
            assert elapsed < 1.5 + 15
    finally:
        await sim.stop()
    await assert_no_new_tasks(before)
