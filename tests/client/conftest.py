"""Fixtures for client-library tests: a simulated gateway on loopback and clients of it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mxgateway import GalaxyRepositoryClient, GatewayClient
from mxgateway.sim import SimConfig, SimulatedGateway

API_KEY = "mxgw_clienttest_Sup3rSecretValue"
READ_ONLY_KEY = "mxgw_readonly_An0therSecret"


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedGateway]:
    """A plaintext simulator with one all-scopes key and one key without write scopes."""
    config = SimConfig(
        api_keys={
            API_KEY: None,
            READ_ONLY_KEY: frozenset(
                {"session:open", "session:close", "invoke:read", "events:read", "metadata:read"}
            ),
        },
        galaxy_size=60,
        rate=20.0,
        detach_grace_s=5.0,
    )
    async with SimulatedGateway(config) as gateway:
        yield gateway


@pytest.fixture
async def client(sim: SimulatedGateway) -> AsyncIterator[GatewayClient]:
    """A GatewayClient of the simulator with the all-scopes key."""
    async with await GatewayClient.connect(
        endpoint=sim.endpoint, api_key=API_KEY, plaintext=True
    ) as gateway_client:
        yield gateway_client


@pytest.fixture
async def galaxy(sim: SimulatedGateway) -> AsyncIterator[GalaxyRepositoryClient]:
    """A GalaxyRepositoryClient of the simulator."""
    async with await GalaxyRepositoryClient.connect(
        endpoint=sim.endpoint, api_key=API_KEY, plaintext=True
    ) as galaxy_client:
        yield galaxy_client
