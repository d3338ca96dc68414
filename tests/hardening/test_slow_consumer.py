"""Slow consumers: the gateway's queue overflows, the client raises the typed overflow error
(both policies, both stream paths), and the client's memory stays bounded meanwhile."""

from __future__ import annotations

import asyncio
import gc
import tracemalloc
from collections.abc import AsyncIterator

import pytest

from mxgateway import (
    GatewayClient,
    MxEvent,
    MxGatewayEventQueueOverflowError,
    MxGatewayProtocolError,
    ProtocolStatusCode,
    SessionState,
)
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim import SimConfig, SimulatedGateway
from mxgateway.sim._galaxy import Galaxy
from tests.hardening.proxy import TcpProxy
from tests.hardening.simproc import SimProcess
from tests.streams import MODES, StreamMode, connect, event_lists

ITEMS = 100
RATE = 400.0  # steps per second per item: about 40,000 events/s
CAPACITY = 1000
PAUSE_S = 0.5  # at least; then until the gateway's queue has overflowed
# The client's traced allocations while the consumer sleeps and the gateway produces tens of
# thousands of events: what gRPC's flow-control window lets through, never the whole backlog.
MAX_TRACED_BYTES = 16 * 1024 * 1024


async def _count(stream: AsyncIterator[object], batches: bool) -> int:
    count = 0
    async for item in stream:
        count += len(item) if batches else 1  # type: ignore[arg-type]
    return count


@pytest.mark.parametrize("policy", ["fail_fast", "disconnect_subscriber"])
@pytest.mark.parametrize("mode", MODES)
async def test_paused_consumer_overflows_with_a_typed_error_and_bounded_memory(
    policy: str, mode: StreamMode
) -> None:
    references = Galaxy(60, 1).sample_references(ITEMS)
    async with (
        SimProcess(rate=RATE, galaxy_size=60, queue_capacity=CAPACITY, queue_policy=policy) as sim,
        await connect(mode, sim.endpoint) as client,
    ):
        session = await client.open_session()
        server = await session.register("slow")
        stream: AsyncIterator[object] = event_lists(session, mode)
        # The client's memory is traced under one policy (it does not depend on the policy,
        # and tracing slows the pure-Python codec run several times over).
        measure = policy == "fail_fast"
        gc.collect()
        if measure:
            tracemalloc.start()
        try:
            base = tracemalloc.get_traced_memory()[0]
            # Attached first, so the overflow is the slow consumer's (not a queue nobody read).
            first = asyncio.ensure_future(anext(stream))
            await asyncio.sleep(0.2)
            subscribed = await session.subscribe_bulk(server, references)
            await first
            # The consumer is busy elsewhere until the gateway's queue has overflowed (it drops
            # the subscriber under either policy).
            await asyncio.sleep(PAUSE_S)
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while await sim.call("subscribed", session.session_id):
                assert loop.time() < deadline, "the queue never overflowed"
                await asyncio.sleep(0.1)
            with pytest.raises(MxGatewayEventQueueOverflowError) as info:
                await asyncio.wait_for(_count(stream, True), 30)
            peak = tracemalloc.get_traced_memory()[1] - base
        finally:
            tracemalloc.stop()
        assert info.value.grpc_code == "RESOURCE_EXHAUSTED"
        if measure:
            assert peak < MAX_TRACED_BYTES, f"client peak {peak / 1e6:.1f} MB"
        state = await sim.call("session_state", session.session_id)
        if policy == "fail_fast":
            assert state == SessionState.FAULTED
            with pytest.raises(MxGatewayProtocolError) as refused:
                await session.register("after")
            assert refused.value.protocol_status == int(ProtocolStatusCode.SESSION_NOT_READY)
        else:
            assert state == SessionState.READY
            await session.register("after")  # the session carries on; a new stream works
            # Stop production first: a queue nobody reads keeps filling and overflowing (the
            # contract's "keep a reader attached"), so a reader attaching to a nearly full queue
            # could overflow at once. Attach, then produce at a rate any consumer keeps up with.
            await session.unsubscribe_bulk(server, [r.item_handle for r in subscribed])
            fresh = asyncio.ensure_future(
                asyncio.wait_for(_first_new_item(session.stream_events(), subscribed), 30)
            )
            await asyncio.sleep(0.2)
            (again,) = await session.subscribe_bulk(server, references[:1])
            assert (await fresh) == again.item_handle
        await session.close()


async def _first_new_item(stream: AsyncIterator[MxEvent], old: list[pb.SubscribeResult]) -> int:
    """Read ``stream`` (the old items' stale events first) up to an event of a new item."""
    stale = {r.item_handle for r in old}
    async for event in stream:
        if event.item_handle and event.item_handle not in stale:
            await stream.aclose()  # type: ignore[attr-defined]
            return event.item_handle
    raise AssertionError("the stream ended")


async def test_overflow_while_reconnecting_is_the_typed_overflow_error() -> None:
    # fail_fast, and the queue overflows while the client is cut off: the resume finds the
    # session faulted. That is still the overflow, not a generic protocol error.
    config = SimConfig(rate=0.0, galaxy_size=60, queue_capacity=50)
    async with (
        SimulatedGateway(config) as sim,
        TcpProxy(sim.endpoint) as proxy,
        await GatewayClient.connect(endpoint=proxy.endpoint, plaintext=True) as client,
    ):
        session = await client.open_session()
        server = await session.register("r")
        await session.subscribe_bulk(server, sim.sample_references(2))
        stream = session.stream_event_batches(retry_budget_s=20)
        await anext(stream)
        proxy.refuse()
        sim.emit_burst(session.session_id, 200)  # nobody attached: the session faults
        assert sim.session_state(session.session_id) == SessionState.FAULTED
        proxy.accept()
        with pytest.raises(MxGatewayEventQueueOverflowError):
            await asyncio.wait_for(anext(stream), 20)
