"""Fixtures for the simulator tests: a running SimulatedGateway and raw generated stubs."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import grpc
import pytest

from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.sim.helpers import FAST, Client, channel_options

GatewayFactory = Callable[..., AbstractAsyncContextManager[SimulatedGateway]]


@pytest.fixture
def gateway_factory() -> GatewayFactory:
    """``async with gateway_factory(**config_overrides) as gw`` (fast defaults)."""

    @asynccontextmanager
    async def factory(**overrides: Any) -> AsyncIterator[SimulatedGateway]:
        config = SimConfig(**{**FAST, **overrides})
        async with SimulatedGateway(config) as gw:
            yield gw

    return factory


@pytest.fixture
async def gw(gateway_factory: GatewayFactory) -> AsyncIterator[SimulatedGateway]:
    """A plaintext simulator without auth, values still (rate 0)."""
    async with gateway_factory() as gateway:
        yield gateway


@pytest.fixture
async def channel(gw: SimulatedGateway) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.aio.Channel) -> pb_grpc.MxAccessGatewayAsyncStub:
    return pb_grpc.MxAccessGatewayStub(channel)


@pytest.fixture
async def client(stub: pb_grpc.MxAccessGatewayAsyncStub) -> Client:
    """An open session."""
    c = Client(stub)
    await c.open()
    return c
