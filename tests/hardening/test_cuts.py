"""Connection cuts through a TCP proxy (asyncpg-style adversity): resuming streams lose and
double nothing; a cut during a unary call is a typed error and never a second write."""

from __future__ import annotations

import asyncio
from typing import Any, Literal, cast

import pytest

from mxgateway import (
    GatewayClient,
    MxDataType,
    MxEvent,
    MxEventFamily,
    MxGatewayTransportError,
    Session,
)
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.hardening.conftest import (
    advised_session,
    assert_contiguous,
    assert_no_new_tasks,
    find_reference,
    sequences,
)
from tests.hardening.proxy import TcpProxy
from tests.streams import MODES, StreamMode, connect, event_lists

CUTS = 10


async def _wait_for(predicate: object, within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


async def _consume(session: Session, mode: StreamMode, seen: list[MxEvent]) -> None:
    async for batch in event_lists(session, mode, retry_budget_s=20):
        seen.extend(batch)


@pytest.mark.parametrize("mode", MODES)
async def test_repeated_cuts_lose_and_double_nothing(
    sim: SimulatedGateway, proxy: TcpProxy, mode: StreamMode
) -> None:
    before = asyncio.all_tasks()
    client = await connect(mode, proxy.endpoint)
    session = await advised_session(client, sim, items=20)  # about 1,000 events/s
    seen: list[MxEvent] = []
    consumer = asyncio.create_task(_consume(session, mode, seen))
    for _ in range(CUTS):
        # Each cut hits a live stream: new events arrived since the last one.
        mark = len(seen) + 100
        await _wait_for(lambda m=mark: len(seen) >= m)
        assert proxy.cut() >= 1
    mark = len(seen) + 200
    await _wait_for(lambda: len(seen) >= mark)  # resumed after the last cut
    consumer.cancel()
    with pytest.raises(asyncio.CancelledError):
        await consumer
    assert proxy.cuts >= CUTS
    assert proxy.connections >= CUTS + 1  # one reconnect per cut
    assert all(e.replay_gap is None for e in seen)
    seqs = sequences(seen)
    assert_contiguous(seqs)
    assert len(seqs) > 1000
    await session.close()
    await client.close()
    await assert_no_new_tasks(before)  # the consumer, its calls, the proxy's relays: all gone


@pytest.mark.parametrize("mode", MODES)
async def test_cuts_beyond_the_replay_ring_are_reported_never_silent(mode: StreamMode) -> None:
    # The gateway's default ring (1,024 events) and a high rate: what was in flight at a cut
    # may be older than the ring. Then a ReplayGap arrives, and every sequence is either
    # received once or inside a reported gap.
    config = SimConfig(rate=100.0, galaxy_size=60, replay_capacity=64)
    async with (
        SimulatedGateway(config) as sim,
        TcpProxy(sim.endpoint) as proxy,
        await connect(mode, proxy.endpoint) as client,
    ):
        session = await advised_session(client, sim, items=50)  # about 5,000 events/s
        seen: list[MxEvent] = []
        consumer = asyncio.create_task(_consume(session, mode, seen))
        for _ in range(5):
            mark = len(seen) + 500
            await _wait_for(lambda m=mark: len(seen) >= m)
            proxy.cut()
            sim.step_values(5)  # 250 events while the client reconnects: past the ring
        mark = len(seen) + 500
        await _wait_for(lambda: len(seen) >= mark)
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        await session.close()
    accounted: list[int] = []
    gaps = 0
    for event in seen:
        gap = event.replay_gap
        if gap is not None:
            gaps += 1
            assert accounted[-1] == gap.requested_after_sequence
            accounted.extend(range(gap.requested_after_sequence + 1, gap.oldest_available_sequence))
        else:
            accounted.append(event.worker_sequence)
    assert gaps >= 1
    assert_contiguous(accounted)


async def _write_session(
    client: GatewayClient, sim: SimulatedGateway
) -> tuple[Session, int, int, str]:
    reference = find_reference(sim, MxDataType.DOUBLE)
    session = await client.open_session()
    server = await session.register("writer")
    item = await session.add_item(server, reference)
    await session.advise(server, item)
    return session, server, item, reference


def _write_completes(events: list[MxEvent], item: int) -> int:
    return sum(
        1 for e in events if e.family == MxEventFamily.ON_WRITE_COMPLETE and e.item_handle == item
    )


@pytest.mark.parametrize("kind", ["write", "write_bulk"])
async def test_cut_during_a_write_is_typed_and_writes_at_most_once(
    kind: Literal["write", "write_bulk"],
) -> None:
    # rate 0: only the writes make events; every command takes 0.2 s in the "worker".
    config = SimConfig(rate=0.0, galaxy_size=60, command_latency_s=0.2)
    async with (
        SimulatedGateway(config) as sim,
        TcpProxy(sim.endpoint) as proxy,
        await GatewayClient.connect(endpoint=proxy.endpoint, plaintext=True) as client,
    ):
        session, server, item, reference = await _write_session(client, sim)
        worker = sim.registry.sessions[session.session_id]
        call: asyncio.Future[Any]
        if kind == "write":
            call = asyncio.ensure_future(session.write(server, item, 42.5))
        else:
            call = asyncio.ensure_future(session.write_bulk(server, [(item, 42.5)]))
        await _wait_for(lambda: worker.pending_commands == 1)  # it reached the worker
        assert proxy.cut() >= 1
        with pytest.raises(MxGatewayTransportError) as info:
            await call
        assert info.value.grpc_code == "UNAVAILABLE"
        # The worker finishes the command; nothing sends it again.
        await _wait_for(lambda: worker.pending_commands == 0)
        drained = await session.drain_events()  # the channel reconnects for the next call
        assert _write_completes(drained, item) == 1
        state = sim.attribute(reference)
        assert state is not None and state.value == 42.5
        await asyncio.sleep(0.4)  # no late duplicate either
        assert _write_completes(await session.drain_events(), item) == 0
        await session.close()


async def test_write_while_the_gateway_is_unreachable_is_typed_and_not_applied() -> None:
    config = SimConfig(rate=0.0, galaxy_size=60)
    async with (
        SimulatedGateway(config) as sim,
        TcpProxy(sim.endpoint) as proxy,
        await GatewayClient.connect(endpoint=proxy.endpoint, plaintext=True, timeout=5.0) as client,
    ):
        session, server, item, reference = await _write_session(client, sim)
        state = sim.attribute(reference)
        assert state is not None
        before = float(cast(float, state.value))
        proxy.refuse()
        with pytest.raises(MxGatewayTransportError):
            await session.write(server, item, before + 1.0)
        proxy.accept()
        await client.wait_ready(10)  # calls fail fast until the channel has reconnected
        drained = await session.drain_events()
        assert _write_completes(drained, item) == 0
        assert state.value == before
        await session.write(server, item, before + 2.0)  # the session survived the outage
        assert _write_completes(await session.drain_events(), item) == 1
        await session.close()
