"""Genuine mode (``event_batches=False``): no StreamEventBatches, as on the real gateway."""

from __future__ import annotations

import grpc
import pytest

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim._events import flood_available
from tests.sim.helpers import Client, channel_options, take

MODES = [
    pytest.param(False, id="grpc-aio"),
    pytest.param(
        True,
        id="flood-front-door",
        marks=pytest.mark.skipif(not flood_available(), reason="no encode_flood_batch"),
    ),
]


@pytest.mark.parametrize("flood", MODES)
async def test_genuine_gateway_lacks_stream_event_batches(gateway_factory, flood: bool) -> None:
    async with (
        gateway_factory(event_batches=False, flood=flood) as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        reply = await client.open()
        assert "stream-event-batches" not in reply.capabilities
        assert "replay" in reply.capabilities
        assert ("flood" in reply.capabilities) == flood
        call = client.stream_batches()  # the generated stub, as a client would call it
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await call.read()
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert gw.registry.sessions[client.session_id].subscriber is None
        # StreamEvents is what there is.
        gw.emit_burst(client.session_id, 3)
        call = client.stream()
        events = await take(call, 3)
        assert [e.worker_sequence for e in events] == [1, 2, 3]
        call.cancel()


@pytest.mark.parametrize("flood", MODES)
async def test_default_offers_stream_event_batches(gateway_factory, flood: bool) -> None:
    async with (
        gateway_factory(flood=flood) as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        reply = await client.open()
        assert "stream-event-batches" in reply.capabilities
        gw.emit_burst(client.session_id, 3)
        call = client.stream_batches()
        (batch,) = await take(call, 1)
        assert [e.worker_sequence for e in batch.events] == [1, 2, 3]
        assert isinstance(batch, pb.MxEventBatch)
        call.cancel()
