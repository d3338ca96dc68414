"""GalaxyRepositoryClient against the simulator: browse, paging, laziness, deploy watch."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC
from typing import Any

import grpc
import pytest

from mxgateway import GalaxyRepositoryClient, MxGatewayProtocolError
from mxgateway.generated import galaxy_repository_pb2 as gpb
from mxgateway.generated import galaxy_repository_pb2_grpc as gpb_grpc
from mxgateway.sim import SimulatedGateway


async def test_connection_and_last_deploy(galaxy: GalaxyRepositoryClient) -> None:
    assert await galaxy.test_connection() is True
    deployed = await galaxy.get_last_deploy_time()
    assert deployed is not None and deployed.tzinfo is UTC


async def test_discover_matches_iter_over_small_pages(galaxy: GalaxyRepositoryClient) -> None:
    everything = await galaxy.discover_hierarchy()
    paged = [obj async for obj in galaxy.iter_hierarchy(page_size=7)]
    assert [o.gobject_id for o in paged] == [o.gobject_id for o in everything]
    assert len({o.gobject_id for o in paged}) == len(paged) > 7


async def test_filters_reach_the_gateway(galaxy: GalaxyRepositoryClient) -> None:
    areas = await galaxy.discover_hierarchy(category_ids=[13], include_attributes=False)
    assert areas and all(o.is_area for o in areas)
    assert all(len(o.attributes) == 0 for o in areas)
    alarmed = await galaxy.discover_hierarchy(alarm_bearing_only=True)
    assert all(any(a.is_alarm for a in o.attributes) for o in alarmed)


async def test_browse_and_walk(galaxy: GalaxyRepositoryClient) -> None:
    roots = await galaxy.browse_children()
    assert roots
    walked = [node async for node in galaxy.walk()]
    everything = await galaxy.discover_hierarchy(include_attributes=False)
    assert {n.object.gobject_id for n in walked} == {o.gobject_id for o in everything}
    shallow = [node async for node in galaxy.walk(max_depth=0)]
    assert {n.object.gobject_id for n in shallow} == {r.gobject_id for r in roots}
    by_tag = await galaxy.browse_children(roots[0].tag_name)
    by_id = await galaxy.browse_children(roots[0].gobject_id)
    assert [c.gobject_id for c in by_tag] == [c.gobject_id for c in by_id]


async def test_unknown_root_is_typed(galaxy: GalaxyRepositoryClient) -> None:
    with pytest.raises(MxGatewayProtocolError) as info:
        await galaxy.discover_hierarchy(root="NoSuchTag_xyz")
    assert info.value.grpc_code == "NOT_FOUND"


async def test_watch_deploy_events(galaxy: GalaxyRepositoryClient, sim: SimulatedGateway) -> None:
    stream = galaxy.watch_deploy_events()
    bootstrap = await asyncio.wait_for(anext(stream), 10)
    assert isinstance(bootstrap, gpb.DeployEvent)
    sim.redeploy()
    after = await asyncio.wait_for(anext(stream), 10)
    assert after.sequence > bootstrap.sequence
    await stream.aclose()  # type: ignore[attr-defined]
    current = after.time_of_last_deploy.ToDatetime(tzinfo=UTC)
    suppressed = galaxy.watch_deploy_events(last_seen_deploy_time=current)
    sim.redeploy()
    first = await asyncio.wait_for(anext(suppressed), 10)
    assert first.sequence > after.sequence  # the bootstrap was suppressed
    await suppressed.aclose()  # type: ignore[attr-defined]


class _CountingGalaxy(gpb_grpc.GalaxyRepositoryServicer):
    """Three pages of two objects; counts the requests to prove laziness."""

    def __init__(self) -> None:
        self.requests: list[str] = []

    async def DiscoverHierarchy(
        self, request: gpb.DiscoverHierarchyRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> gpb.DiscoverHierarchyReply:
        self.requests.append(request.page_token)
        page = int(request.page_token or "0")
        objects = [gpb.GalaxyObject(gobject_id=page * 2 + i + 1) for i in range(2)]
        token = str(page + 1) if page < 2 else ""
        return gpb.DiscoverHierarchyReply(objects=objects, next_page_token=token)


async def test_iter_hierarchy_is_lazy() -> None:
    servicer = _CountingGalaxy()  # type: ignore[abstract]
    server = grpc.aio.server()
    gpb_grpc.add_GalaxyRepositoryServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with await GalaxyRepositoryClient.connect(
            endpoint=f"127.0.0.1:{port}", plaintext=True
        ) as galaxy:
            objects: AsyncIterator[gpb.GalaxyObject] = galaxy.iter_hierarchy()
            assert (await anext(objects)).gobject_id == 1
            assert (await anext(objects)).gobject_id == 2
            assert servicer.requests == [""]
            assert (await anext(objects)).gobject_id == 3
            assert servicer.requests == ["", "1"]
            await objects.aclose()  # type: ignore[attr-defined]
            assert servicer.requests == ["", "1"]
    finally:
        await server.stop(None)
