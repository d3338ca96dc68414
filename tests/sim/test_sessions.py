"""Sessions: open, close (idempotent), unknown ids, leases, detach grace, the session limit."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimulatedGateway
from tests.sim.helpers import OK, Client, K, channel_options, take, wait_until


async def test_open_session_reply(gw: SimulatedGateway, client: Client) -> None:
    reply = await Client(client.stub).open("named")
    assert reply.protocol_status.code == OK
    assert reply.state == pb.SESSION_STATE_READY
    assert reply.session_id.startswith("sim-")
    assert reply.backend_name == "mxgateway-sim"
    assert reply.gateway_protocol_version >= 1 and reply.worker_protocol_version >= 1
    assert "stream-event-batches" in reply.capabilities
    assert set(gw.session_ids()) == {client.session_id, reply.session_id}


async def test_close_is_idempotent(gw: SimulatedGateway, client: Client) -> None:
    first = await client.close()
    assert first.protocol_status.code == OK
    assert first.final_state == pb.SESSION_STATE_CLOSED
    assert first.session_id == client.session_id
    second = await client.close()
    assert second.protocol_status.code == OK
    assert second.final_state == pb.SESSION_STATE_CLOSED
    assert gw.session_ids() == []


async def test_unknown_session_unary_is_a_protocol_status(
    stub: pb_grpc.MxAccessGatewayAsyncStub,
) -> None:
    ghost = Client(stub)
    ghost.session_id = "sim-nope"
    reply = await ghost.invoke(K.MX_COMMAND_KIND_REGISTER, register=pb.RegisterCommand())
    assert reply.protocol_status.code == pb.PROTOCOL_STATUS_CODE_SESSION_NOT_FOUND
    assert reply.session_id == "sim-nope"
    assert reply.kind == K.MX_COMMAND_KIND_REGISTER
    closed = await ghost.close()
    assert closed.protocol_status.code == pb.PROTOCOL_STATUS_CODE_SESSION_NOT_FOUND


@pytest.mark.parametrize("batches", [False, True])
async def test_unknown_session_stream_is_not_found(
    stub: pb_grpc.MxAccessGatewayAsyncStub, batches: bool
) -> None:
    ghost = Client(stub)
    ghost.session_id = "sim-nope"
    call = ghost.stream_batches() if batches else ghost.stream()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call.read()
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_closed_session_is_not_found_for_commands(client: Client) -> None:
    await client.close()
    reply = await client.invoke(K.MX_COMMAND_KIND_REGISTER, register=pb.RegisterCommand())
    assert reply.protocol_status.code == pb.PROTOCOL_STATUS_CODE_SESSION_NOT_FOUND


async def test_close_ends_the_attached_stream_normally(client: Client) -> None:
    call = client.stream()
    server = await client.register()
    item = await client.add_item(server, "Pump_001.Speed")
    await client.advise(server, item)
    await take(call, 1)
    await client.close()
    assert await call.read() is grpc.aio.EOF
    assert await call.code() == grpc.StatusCode.OK


async def test_lease_expires_without_calls(gateway_factory) -> None:
    async with gateway_factory() as gw, grpc.aio.insecure_channel(gw.endpoint) as channel:
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open(lease_seconds=1)
        keeper = Client(client.stub)
        await keeper.open()  # default lease: stays
        await wait_until(lambda: client.session_id not in gw.session_ids(), within=10)
        assert keeper.session_id in gw.session_ids()
        reply = await client.invoke(K.MX_COMMAND_KIND_REGISTER, register=pb.RegisterCommand())
        assert reply.protocol_status.code == pb.PROTOCOL_STATUS_CODE_SESSION_NOT_FOUND


async def test_unary_calls_refresh_the_lease(gateway_factory) -> None:
    async with gateway_factory() as gw, grpc.aio.insecure_channel(gw.endpoint) as channel:
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open(lease_seconds=2)
        for _ in range(9):  # ~2.7 s of activity, longer than the lease
            await client.register()
            await asyncio.sleep(0.3)
        assert client.session_id in gw.session_ids()


async def test_stream_holds_the_lease_then_detach_grace_closes(gateway_factory) -> None:
    async with (
        gateway_factory(detach_grace_s=0.4) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open(lease_seconds=1)
        call = client.stream()
        server = await client.register()
        await client.advise(server, await client.add_item(server, "Pump_001.Speed"))
        await take(call, 1)
        await asyncio.sleep(1.5)  # past the lease: the attached stream holds the session
        assert client.session_id in gw.session_ids()
        call.cancel()
        await wait_until(lambda: client.session_id not in gw.session_ids(), within=5)


async def test_reattach_within_the_grace_keeps_the_session(gateway_factory) -> None:
    async with (
        gateway_factory(detach_grace_s=1.0) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        server = await client.register()
        await client.advise(server, await client.add_item(server, "Pump_001.Speed"))
        call = client.stream()
        (first,) = await take(call, 1)
        call.cancel()
        await asyncio.sleep(0.3)
        again = client.stream(after=first.worker_sequence)
        gw.set_value("Pump_001.Speed", 42.0)
        (event,) = await take(again, 1)
        assert event.worker_sequence == first.worker_sequence + 1
        await asyncio.sleep(1.3)  # longer than the grace, but a stream is attached
        assert client.session_id in gw.session_ids()
        again.cancel()


async def test_session_limit(gateway_factory) -> None:
    async with (
        gateway_factory(max_sessions=2) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        stub = pb_grpc.MxAccessGatewayStub(channel)
        first, second = Client(stub), Client(stub)
        await first.open()
        await second.open()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await Client(stub).open()
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        await first.close()
        await Client(stub).open()  # a slot is free again
        assert len(gw.session_ids()) == 2


async def test_gateway_side_close_and_restart(gateway_factory) -> None:
    async with gateway_factory() as gw:
        port = gw.port
        async with grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel:
            client = Client(pb_grpc.MxAccessGatewayStub(channel))
            await client.open()
            gw.close_session(client.session_id)
            assert gw.session_state(client.session_id) == pb.SESSION_STATE_CLOSED
            await client.open()
            await gw.restart()
            assert gw.port == port
            assert gw.session_ids() == []
            reply = await client.invoke(K.MX_COMMAND_KIND_REGISTER, register=pb.RegisterCommand())
            assert reply.protocol_status.code == pb.PROTOCOL_STATUS_CODE_SESSION_NOT_FOUND
