"""Paced flood (``flood_rate``): flood events produced when due, stamped when produced."""

from __future__ import annotations

import asyncio
import itertools
import statistics

import grpc
import pytest

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimConfig
from mxgateway.sim._events import flood_available
from tests.sim.helpers import Client, channel_options, take

pytestmark = pytest.mark.skipif(not flood_available(), reason="codec has no encode_flood_batch")

REFS = ["Pump_001.Speed", "Pump_001.SpeedSP", "Motor_001.Current"]


async def _flooding(client: Client) -> None:
    await client.open()
    server = await client.register()
    await client.subscribe(server, REFS)


@pytest.mark.parametrize("batches", [False, True])
async def test_flood_comes_at_the_rate(gateway_factory, batches: bool) -> None:
    rate = 2000.0
    async with (
        gateway_factory(flood=True, flood_rate=rate) as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await _flooding(client)
        call = client.stream_batches() if batches else client.stream()
        loop = asyncio.get_running_loop()
        started = loop.time()
        events: list[pb.MxEvent] = []
        while len(events) < len(REFS) + 1000:
            (message,) = await take(call, 1)
            events += list(message.events) if batches else [message]
        took = loop.time() - started
        call.cancel()
    flood = events[len(REFS) :]
    assert [e.worker_sequence for e in events] == list(range(1, len(events) + 1))
    # Not as fast as the reader reads: 1000 events at 2000/s take half a second.
    assert took >= 0.45
    stamps = [e.worker_timestamp.ToNanoseconds() for e in flood]
    span_s = (stamps[-1] - stamps[0]) / 1e9
    assert 0.8 <= span_s * rate / (len(stamps) - 1) <= 1.25
    # Produced when due, about every millisecond (2 events), not in large lumps.
    lumps = [len(list(group)) for _, group in itertools.groupby(stamps)]
    assert statistics.median(lumps) <= 0.004 * rate


async def test_a_reader_slower_than_the_rate_overflows(gateway_factory) -> None:
    # The backlog of due events is bounded like the queue: past queue_capacity, overflow.
    async with (
        gateway_factory(flood=True, flood_rate=200_000.0, queue_capacity=1000) as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await _flooding(client)
        call = client.stream()
        await take(call, 10)
        await asyncio.sleep(0.5)  # not reading: flow control holds the stream
        with pytest.raises(grpc.aio.AioRpcError) as info:
            while True:
                await take(call, 1000)
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert info.value.details() == "EventQueueOverflow"
        session = gw.registry.sessions[client.session_id]
        assert session.subscriber is None


@pytest.mark.parametrize(
    "overrides",
    [
        {"flood_rate": -1.0},
        {"flood_rate": float("nan")},
        {"flood_rate": float("inf")},
        {"flood_rate": 1e9},
        {"flood_rate": True},
        {"flood_rate": 100.0, "flood": False},
    ],
)
def test_flood_rate_is_validated(overrides: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="flood_rate"):
        SimConfig(**{"flood": True, **overrides})  # type: ignore[arg-type]
