"""Flood mode: events as fast as the client reads, from the codec's encode_flood_batch."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimulatedGateway
from mxgateway.sim._events import flood_available
from tests.sim.helpers import OK, Client, channel_options, mx_double, take, wait_until

pytestmark = pytest.mark.skipif(not flood_available(), reason="codec has no encode_flood_batch")

REFS = ["Pump_001.Speed", "Pump_001.SpeedSP", "Motor_001.Current"]


@pytest.fixture
async def flood(gateway_factory) -> AsyncIterator[tuple[SimulatedGateway, Client]]:
    async with (
        gateway_factory(flood=True, max_batch_events=50) as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        reply = await client.open()
        assert "flood" in reply.capabilities
        yield gw, client


async def subscribed(client: Client) -> tuple[int, list[int]]:
    server = await client.register()
    return server, await client.subscribe(server, REFS)


async def read_events(call: Any, n: int) -> list[pb.MxEvent]:
    events: list[pb.MxEvent] = []
    while len(events) < n:
        (batch,) = await take(call, 1)
        events += batch.events
    return events


async def test_flood_batches(flood: tuple[SimulatedGateway, Client]) -> None:
    _, client = flood
    server, items = await subscribed(client)
    call = client.stream_batches()  # 0 = the configured default (50)
    advise_events = await read_events(call, 3)
    assert [e.quality for e in advise_events] == [192, 192, 192]
    (batch,) = await take(call, 1)
    assert len(batch.events) == 50
    events = list(batch.events) + await read_events(call, 100)
    sequences = [e.worker_sequence for e in advise_events + events]
    assert sequences == list(range(1, len(sequences) + 1))
    for e in events:
        assert e.family == pb.MX_EVENT_FAMILY_ON_DATA_CHANGE
        assert e.session_id == client.session_id
        assert e.server_handle == server
        assert e.item_handle == items[e.worker_sequence % len(items)]
        assert e.quality == 192
    call.cancel()


async def test_flood_respects_max_batch_events(flood: tuple[SimulatedGateway, Client]) -> None:
    _, client = flood
    await subscribed(client)
    call = client.stream_batches(max_batch=7)
    await read_events(call, 3)
    sizes = [len((await take(call, 1))[0].events) for _ in range(5)]
    assert sizes == [7] * 5
    call.cancel()


async def test_flood_stream_events_sends_single_events(
    flood: tuple[SimulatedGateway, Client],
) -> None:
    _, client = flood
    await subscribed(client)
    call = client.stream()
    events = await take(call, 600)
    assert [e.worker_sequence for e in events] == list(range(1, 601))
    assert {e.family for e in events[3:]} == {pb.MX_EVENT_FAMILY_ON_DATA_CHANGE}
    call.cancel()


async def test_flood_interleaves_ordinary_events(flood: tuple[SimulatedGateway, Client]) -> None:
    _, client = flood
    server, items = await subscribed(client)
    call = client.stream_batches()
    await read_events(call, 200)
    reply = await client.write(server, items[1], mx_double(5.5))
    assert reply.protocol_status.code == OK
    # Flood events already in flight come first: read until the write's events arrive.
    families: list[int] = []
    last = 0
    while pb.MX_EVENT_FAMILY_ON_WRITE_COMPLETE not in families:
        (batch,) = await take(call, 1)
        for e in batch.events:
            assert last == 0 or e.worker_sequence == last + 1
            last = e.worker_sequence
            families.append(e.family)
    assert families.count(pb.MX_EVENT_FAMILY_ON_WRITE_COMPLETE) == 1
    call.cancel()


async def test_flood_resume_replays_regenerated_events(gateway_factory) -> None:
    # Flood events in flight (HTTP/2 windows) outrun the default ring: keep a large one.
    async with (
        gateway_factory(flood=True, max_batch_events=50, replay_capacity=5_000_000) as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        await _resume(gw, client)


async def _resume(gw: SimulatedGateway, client: Client) -> None:
    await subscribed(client)
    call = client.stream_batches()
    seen = await read_events(call, 300)
    call.cancel()
    await _detached(gw, client)
    after = seen[200].worker_sequence
    resumed = client.stream_batches(after=after)
    replayed = await read_events(resumed, 150)
    by_seq = {e.worker_sequence: e for e in seen}
    for e in replayed:
        assert e.worker_sequence > after
        if e.worker_sequence in by_seq:
            assert e == by_seq[e.worker_sequence]  # byte-for-byte the same events
    sequences = [e.worker_sequence for e in replayed]
    assert sequences == list(range(after + 1, after + 1 + len(sequences)))
    resumed.cancel()


async def test_flood_needs_advised_items(flood: tuple[SimulatedGateway, Client]) -> None:
    gw, client = flood
    call = client.stream()
    server = await client.register()
    item = await client.add_item(server, REFS[0])
    gw.set_value(REFS[0], 1.0)  # not advised: nothing
    await client.advise(server, item)
    events = await take(call, 5)
    assert [e.worker_sequence for e in events] == [1, 2, 3, 4, 5]
    call.cancel()


async def _detached(gw: SimulatedGateway, client: Client) -> None:
    await wait_until(lambda: gw.registry.sessions[client.session_id].subscriber is None)
