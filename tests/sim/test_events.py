"""Event streams: one sequence for both rpcs, replay and resume, ReplayGap, overflow, cuts."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimulatedGateway
from tests.sim.helpers import Client, K, channel_options, take, wait_until

REF = "Pump_001.SpeedSP"


async def advise(client: Client, *refs: str) -> int:
    server = await client.register()
    await client.subscribe(server, list(refs or [REF]))
    return server


def push(gw: SimulatedGateway, count: int, start: float = 0.0) -> None:
    for i in range(count):
        gw.set_value(REF, start + i)


async def test_streams_share_one_contiguous_sequence(gw: SimulatedGateway, client: Client) -> None:
    await advise(client)
    events = client.stream()
    got = await take(events, 1)
    push(gw, 3, 10.0)
    got += await take(events, 3)
    events.cancel()
    await wait_until(lambda: gw.registry.sessions[client.session_id].subscriber is None)
    batches = client.stream_batches(after=got[-1].worker_sequence)
    push(gw, 4, 20.0)
    seen: list[pb.MxEvent] = []
    while len(seen) < 4:
        (batch,) = await take(batches, 1)
        seen += batch.events
    sequences = [e.worker_sequence for e in got + seen]
    assert sequences == list(range(1, 9))
    assert [e.value.double_value for e in seen] == [20.0, 21.0, 22.0, 23.0]
    batches.cancel()


async def test_batches_honour_max_batch_events(gw: SimulatedGateway, client: Client) -> None:
    await advise(client)
    push(gw, 9)
    call = client.stream_batches(max_batch=4)
    sizes = []
    total = 0
    while total < 10:
        (batch,) = await take(call, 1)
        sizes.append(len(batch.events))
        total += len(batch.events)
    assert sizes == [4, 4, 2]
    call.cancel()


async def test_resume_replays_without_gap_or_duplicate(
    gw: SimulatedGateway, client: Client
) -> None:
    await advise(client)
    call = client.stream()
    first = await take(call, 1)
    push(gw, 5)
    first += await take(call, 2)  # read up to sequence 3, then the connection is cut
    assert gw.drop_streams() == 1
    with pytest.raises(grpc.aio.AioRpcError) as info:
        while True:
            await take(call, 1)
    assert info.value.code() == grpc.StatusCode.UNAVAILABLE
    push(gw, 3, 100.0)  # while detached
    resumed = client.stream(after=first[-1].worker_sequence)
    push(gw, 2, 200.0)  # racing with the replay hand-off: live events
    rest = await take(resumed, 8)
    sequences = [e.worker_sequence for e in first + rest]
    assert sequences == list(range(1, 12))
    resumed.cancel()


async def test_resume_in_batches_after_a_cut(gw: SimulatedGateway, client: Client) -> None:
    await advise(client)
    push(gw, 10)
    call = client.stream_batches(max_batch=3)
    (batch,) = await take(call, 1)
    last = batch.events[-1].worker_sequence
    gw.drop_streams()
    resumed = client.stream_batches(after=last)
    events: list[pb.MxEvent] = []
    while len(events) < 11 - last:
        (more,) = await take(resumed, 1)
        events += more.events
    assert [e.worker_sequence for e in events] == list(range(last + 1, 12))
    resumed.cancel()


async def test_replay_gap_when_too_old(gateway_factory) -> None:
    async with (
        gateway_factory(replay_capacity=5) as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        await advise(client)  # event 1
        push(gw, 11)  # events 2..12; the ring keeps 8..12
        await client.drain()
        call = client.stream(after=2)
        gap, *replayed = await take(call, 6)
        assert gap.family == pb.MX_EVENT_FAMILY_UNSPECIFIED
        assert gap.HasField("replay_gap")
        assert gap.replay_gap.requested_after_sequence == 2
        assert gap.replay_gap.oldest_available_sequence == 8
        assert [e.worker_sequence for e in replayed] == [8, 9, 10, 11, 12]
        assert not any(e.HasField("replay_gap") for e in replayed)
        call.cancel()
        await wait_until(lambda: gw.registry.sessions[client.session_id].subscriber is None)
        batches = client.stream_batches(after=1)
        (batch,) = await take(batches, 1)
        assert batch.events[0].HasField("replay_gap")
        batches.cancel()


async def test_replay_ring_expires_by_age(gateway_factory) -> None:
    async with (
        gateway_factory(replay_seconds=1.0) as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        await advise(client)
        push(gw, 3)
        await client.drain()
        await asyncio.sleep(1.2)
        push(gw, 1, 50.0)  # event 5, fresh
        await client.drain()
        call = client.stream(after=1)
        gap, fresh = await take(call, 2)
        assert gap.replay_gap.oldest_available_sequence == 5
        assert fresh.worker_sequence == 5
        call.cancel()


async def test_resume_with_nothing_missed_has_no_gap(gw: SimulatedGateway, client: Client) -> None:
    await advise(client)
    (event,) = await client.drain()
    call = client.stream(after=event.worker_sequence)
    push(gw, 1, 5.0)
    (nxt,) = await take(call, 1)
    assert nxt.worker_sequence == event.worker_sequence + 1
    assert not nxt.HasField("replay_gap")
    call.cancel()


async def test_queued_events_reach_the_first_subscriber(
    gw: SimulatedGateway, client: Client
) -> None:
    await advise(client)
    push(gw, 2)
    call = client.stream()
    got = await take(call, 3)
    assert [e.worker_sequence for e in got] == [1, 2, 3]
    call.cancel()


@pytest.mark.parametrize("batches", [False, True])
async def test_overflow_fail_fast_faults_the_session(gateway_factory, batches: bool) -> None:
    async with (
        gateway_factory(queue_capacity=20, queue_policy="fail_fast") as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        await advise(client)
        call = client.stream_batches() if batches else client.stream()
        await take(call, 1)
        gw.emit_burst(client.session_id, 50)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            while True:
                await take(call, 1)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert info.value.details() == "EventQueueOverflow"
        assert gw.session_state(client.session_id) == pb.SESSION_STATE_FAULTED
        reply = await client.invoke(K.MX_COMMAND_KIND_REGISTER, register=pb.RegisterCommand())
        assert reply.protocol_status.code == pb.PROTOCOL_STATUS_CODE_SESSION_NOT_READY
        again = client.stream()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await again.read()
        assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        closed = await client.close()
        assert closed.protocol_status.code == pb.PROTOCOL_STATUS_CODE_OK


async def test_overflow_without_a_reader_faults_too(gateway_factory) -> None:
    async with (
        gateway_factory(queue_capacity=10) as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        await advise(client)
        push(gw, 20)  # nobody reads
        assert gw.session_state(client.session_id) == pb.SESSION_STATE_FAULTED


async def test_overflow_disconnect_subscriber_keeps_the_session(gateway_factory) -> None:
    async with (
        gateway_factory(queue_capacity=20, queue_policy="disconnect_subscriber") as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        await advise(client)
        call = client.stream()
        (first,) = await take(call, 1)
        gw.emit_burst(client.session_id, 50)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            while True:
                await take(call, 1)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert info.value.details() == "EventQueueOverflow"
        assert gw.session_state(client.session_id) == pb.SESSION_STATE_READY
        reply = await client.invoke(K.MX_COMMAND_KIND_REGISTER, register=pb.RegisterCommand())
        assert reply.protocol_status.code == pb.PROTOCOL_STATUS_CODE_OK
        resumed = client.stream(after=first.worker_sequence)
        gap, *rest = await take(resumed, 1 + 20)  # the ring (1024) still has them
        assert not gap.HasField("replay_gap")
        assert [e.worker_sequence for e in [gap, *rest]] == list(range(2, 23))
        resumed.cancel()


async def test_generators_produce_at_the_rate(gateway_factory) -> None:
    async with (
        gateway_factory(rate=50.0) as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        refs = ["Pump_001.Speed", "Motor_001.Current", "Pump_001.Running", "Pump_001.Mode"]
        await advise(client, *refs)
        call = client.stream()
        events = await take(call, 40)
        assert [e.worker_sequence for e in events] == list(range(1, 41))
        by_item: dict[int, list[pb.MxEvent]] = {}
        for e in events:
            by_item.setdefault(e.item_handle, []).append(e)
        assert len(by_item) == 4
        for item_events in by_item.values():
            values = [e.value.WhichOneof("kind") for e in item_events]
            assert len(set(values)) == 1
        toggles = [e.value.bool_value for e in by_item[3]]
        assert toggles[1:] == [not v for v in toggles[:-1]]
        call.cancel()


async def test_redeploy_keeps_serving(gw: SimulatedGateway, client: Client) -> None:
    deploy = gw.galaxy.deploy_sequence
    gw.redeploy()
    assert gw.galaxy.deploy_sequence == deploy + 1
    server = await client.register()
    assert await client.add_item(server, REF) > 0
