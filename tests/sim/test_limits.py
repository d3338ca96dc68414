"""Limits: pending commands, command timeout and deadlines, 16 MiB messages."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimulatedGateway
from tests.sim.helpers import OK, Client, K, MiB, channel_options, wait_until


async def test_pending_commands_beyond_the_limit_fail_at_once(gateway_factory) -> None:
    async with (
        gateway_factory(max_pending_commands=2, command_latency_s=1.0) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        first = asyncio.ensure_future(client.register())
        second = asyncio.ensure_future(client.register())
        session = gw.registry.sessions[client.session_id]
        await wait_until(lambda: session.pending_commands == 2)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.register()
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert not first.done()  # the extra one failed at once, before the others finished
        handles = sorted(await asyncio.gather(first, second))
        assert handles == [1, 2]  # commands of a session run in order
        assert await client.register() == 3  # free again


async def test_command_timeout_is_deadline_exceeded_and_completes(gateway_factory) -> None:
    async with (
        gateway_factory(command_timeout_s=0.2, command_latency_s=0.5) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.register()
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        session = gw.registry.sessions[client.session_id]
        await wait_until(lambda: session.pending_commands == 0)
        assert list(session.servers) == [1]  # the command still completed


async def test_client_deadline_and_the_command_still_completes(gateway_factory) -> None:
    async with (
        gateway_factory(command_latency_s=0.4) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.invoke(
                K.MX_COMMAND_KIND_REGISTER,
                register=pb.RegisterCommand(client_name="late"),
                deadline=0.1,
            )
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        session = gw.registry.sessions[client.session_id]
        await wait_until(lambda: session.pending_commands == 0)
        assert [s.client_name for s in session.servers.values()] == ["late"]


async def test_messages_up_to_16_mib_both_ways(gw: SimulatedGateway) -> None:
    async with grpc.aio.insecure_channel(gw.endpoint, options=channel_options(64 * MiB)) as ch:
        client = Client(pb_grpc.MxAccessGatewayStub(ch))
        await client.open()
        server = await client.register()
        big = "X" * (15 * MiB)
        reply = await client.invoke(
            K.MX_COMMAND_KIND_READ_BULK,
            read_bulk=pb.ReadBulkCommand(server_handle=server, tag_addresses=[big]),
        )  # the unknown tag is echoed back: ~15 MiB each way
        assert reply.protocol_status.code == OK
        assert reply.bulk_read.results[0].tag_address == big
        too_big = "X" * (17 * MiB)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.invoke(
                K.MX_COMMAND_KIND_READ_BULK,
                read_bulk=pb.ReadBulkCommand(server_handle=server, tag_addresses=[too_big]),
            )
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


async def test_batches_stay_under_the_message_limit(gateway_factory) -> None:
    async with (
        gateway_factory(max_message_bytes=64 * 1024) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        server = await client.register()
        await client.subscribe(server, ["Tank_001.BatchId"])
        for i in range(400):
            gw.set_value("Tank_001.BatchId", f"{i:04d}" + "y" * 400)
        call = client.stream_batches(max_batch=1000)
        total = 0
        batches = 0
        while total < 401:
            batch = await call.read()
            assert len(batch.SerializeToString()) <= 64 * 1024
            total += len(batch.events)
            batches += 1
        assert batches > 1
        call.cancel()
