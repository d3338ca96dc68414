"""Helpers for client tests: find attributes of the simulated Galaxy through the client."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import grpc

from mxgateway import GalaxyRepositoryClient, MxDataType
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc

T = TypeVar("T")


async def find_attribute(
    galaxy: GalaxyRepositoryClient,
    *,
    data_type: MxDataType,
    security: tuple[int, ...] = (0, 1),
    alarm: bool | None = None,
) -> str:
    """The full reference of the first scalar attribute of ``data_type`` and security class."""
    native = int(data_type) - 1
    async for obj in galaxy.iter_hierarchy():
        for attr in obj.attributes:
            if (
                attr.mx_data_type == native
                and not attr.is_array
                and attr.security_classification in security
                and (alarm is None or attr.is_alarm == alarm)
            ):
                return attr.full_tag_reference
    raise LookupError(f"no {data_type.name} attribute with security {security}")


async def take(iterator: AsyncIterator[T], count: int, timeout: float = 10.0) -> list[T]:
    """The next ``count`` items of ``iterator`` (then close it), within ``timeout`` seconds."""

    async def collect() -> list[T]:
        items: list[T] = []
        async for item in iterator:
            items.append(item)
            if len(items) >= count:
                break
        return items

    try:
        return await asyncio.wait_for(collect(), timeout)
    finally:
        await iterator.aclose()  # type: ignore[attr-defined]


async def first_matching(
    iterator: AsyncIterator[T], predicate: Callable[[T], bool], timeout: float = 10.0
) -> T:
    """The first item of ``iterator`` matching ``predicate`` (then close it)."""

    async def search() -> T:
        async for item in iterator:
            if predicate(item):
                return item
        raise LookupError("stream ended before a matching item")

    try:
        return await asyncio.wait_for(search(), timeout)
    finally:
        await iterator.aclose()  # type: ignore[attr-defined]


async def serve_gateway(servicer: Any, test: Callable[[str], Awaitable[None]]) -> None:
    """Run ``test(endpoint)`` against a hand-written MxAccessGateway ``servicer`` (a gateway
    that misbehaves on purpose) on a loopback port, and stop it after."""
    server = grpc.aio.server()
    pb_grpc.add_MxAccessGatewayServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        await test(f"127.0.0.1:{port}")
    finally:
        await server.stop(None)
