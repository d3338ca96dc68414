"""Authentication, scopes and error translation through the client."""

from __future__ import annotations

import asyncio
import logging

import pytest

from mxgateway import (
    GalaxyRepositoryClient,
    GatewayClient,
    MxGatewayAuthenticationError,
    MxGatewayError,
    MxGatewayPermissionError,
    MxGatewayTransportError,
)
from mxgateway.sim import SimulatedGateway
from tests.client.conftest import API_KEY, READ_ONLY_KEY


async def test_unknown_key_is_authentication_error(sim: SimulatedGateway) -> None:
    bad = "mxgw_nobody_NotAValidSecret"
    async with await GatewayClient.connect(
        endpoint=sim.endpoint, api_key=bad, plaintext=True
    ) as client:
        with pytest.raises(MxGatewayAuthenticationError) as info:
            await client.open_session()
    assert "NotAValidSecret" not in str(info.value)


async def test_missing_key_is_authentication_error(sim: SimulatedGateway) -> None:
    async with await GalaxyRepositoryClient.connect(endpoint=sim.endpoint, plaintext=True) as g:
        with pytest.raises(MxGatewayAuthenticationError):
            await g.test_connection()


async def test_missing_scope_is_permission_error(sim: SimulatedGateway) -> None:
    async with await GatewayClient.connect(
        endpoint=sim.endpoint, api_key=READ_ONLY_KEY, plaintext=True
    ) as client:
        session = await client.open_session()
        server = await session.register("ro")
        item = await session.add_item(server, sim.sample_references(1)[0])
        await session.advise(server, item)
        with pytest.raises(MxGatewayPermissionError):
            await session.write(server, item, 1.0)
        with pytest.raises(MxGatewayPermissionError):
            await client.acknowledge_alarm("Some.Alarm")
        await session.close()


async def test_unreachable_gateway_is_transport_error() -> None:
    async with await GatewayClient.connect(
        endpoint="127.0.0.1:1", plaintext=True, timeout=2.0
    ) as client:
        with pytest.raises((MxGatewayTransportError, MxGatewayError)):
            await client.open_session()


async def test_cancellation_passes_through(client: GatewayClient) -> None:
    session = await client.open_session()

    async def wait_forever() -> None:
        async for _ in session.stream_events():
            pass

    task = asyncio.create_task(wait_forever())
    await asyncio.sleep(0.2)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await session.close()


async def test_key_never_logged(sim: SimulatedGateway, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with await GatewayClient.connect(
        endpoint=sim.endpoint, api_key=API_KEY, plaintext=True
    ) as client:
        session = await client.open_session()
        await session.register("log")
        await session.close()
    secret = API_KEY.split("_", 2)[2]
    assert all(secret not in record.getMessage() for record in caplog.records)
