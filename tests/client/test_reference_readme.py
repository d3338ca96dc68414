"""Every library example of the original client's README, run as written against the
simulator (only the endpoint and the key placeholder are filled in)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from mxgateway.sim import SimulatedGateway
from tests.client.conftest import API_KEY


async def test_library_usage_example(sim: SimulatedGateway) -> None:
    from mxgateway import GatewayClient

    item = sim.sample_references(1)[0]
    async with await GatewayClient.connect(
        endpoint=sim.endpoint,
        api_key=API_KEY,
        plaintext=True,
    ) as client:
        session = await client.open_session(client_session_name="python-client")
        try:
            server_handle = await session.register("python-client")
            item_handle = await session.add_item(server_handle, item)
            await session.advise(server_handle, item_handle)
        finally:
            await session.close()
    assert session.closed


async def test_galaxy_browse_example(sim: SimulatedGateway) -> None:
    from mxgateway import GalaxyRepositoryClient

    printed: list[str] = []
    async with await GalaxyRepositoryClient.connect(
        endpoint=sim.endpoint,
        api_key=API_KEY,
        plaintext=True,
    ) as galaxy:
        if not await galaxy.test_connection():
            raise RuntimeError("gateway cannot reach the Galaxy Repository DB")
        last_deploy = await galaxy.get_last_deploy_time()
        printed.append(f"last deploy: {last_deploy}")
        for obj in await galaxy.discover_hierarchy():
            printed.append(f"{obj.tag_name} {obj.contained_name}")
            for attr in obj.attributes:
                printed.append(f"  {attr.attribute_name} -> {attr.full_tag_reference}")
    assert any("->" in line for line in printed)


async def test_iter_hierarchy_example(sim: SimulatedGateway) -> None:
    from mxgateway import GalaxyRepositoryClient

    names = []
    async with await GalaxyRepositoryClient.connect(
        endpoint=sim.endpoint,
        api_key=API_KEY,
        plaintext=True,
    ) as galaxy:
        async for obj in galaxy.iter_hierarchy():
            names.append((obj.tag_name, obj.contained_name))
    assert names


async def test_watch_deploy_events_example(sim: SimulatedGateway) -> None:
    from mxgateway import DeployEvent, GalaxyRepositoryClient

    lines: list[str] = []

    async def watch() -> None:
        async with await GalaxyRepositoryClient.connect(
            endpoint=sim.endpoint,
            api_key=API_KEY,
            plaintext=True,
        ) as galaxy:
            last_seen: datetime | None = None
            async for event in galaxy.watch_deploy_events(last_seen_deploy_time=last_seen):
                assert isinstance(event, DeployEvent)
                lines.append(
                    f"#{event.sequence} deploy={event.time_of_last_deploy.ToDatetime(tzinfo=UTC)} "
                    f"objects={event.object_count} attributes={event.attribute_count}"
                )
                if event.time_of_last_deploy_present:
                    last_seen = event.time_of_last_deploy.ToDatetime(tzinfo=UTC)
                if len(lines) == 2:
                    break

    task = asyncio.create_task(watch())
    await asyncio.sleep(0.3)
    sim.redeploy()
    await asyncio.wait_for(task, 10)
    assert len(lines) == 2 and lines[0].startswith("#")
