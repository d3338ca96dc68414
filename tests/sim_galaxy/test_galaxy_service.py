"""The GalaxyRepository service over loopback gRPC, through the generated stubs."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2, wrappers_pb2
from grpc import aio

from mxgateway.generated import galaxy_repository_pb2 as gpb
from mxgateway.sim._galaxy import Galaxy
from tests.sim_galaxy._harness import Sim, eventually, read, serve

Obj = gpb.GalaxyObject


# The simulated Galaxy and alarm model: no event decoding, nothing loop-specific.
pytestmark = pytest.mark.once


async def _discover_all(sim: Sim, **fields: Any) -> tuple[list[Obj], list[int]]:
    """Every object of a DiscoverHierarchy query, page by page, and each page's total."""
    objects: list[Obj] = []
    totals: list[int] = []
    token = ""
    for _ in range(10_000):
        reply = await sim.repo.DiscoverHierarchy(
            gpb.DiscoverHierarchyRequest(page_token=token, **fields)
        )
        objects.extend(reply.objects)
        totals.append(reply.total_object_count)
        token = reply.next_page_token
        if not token:
            return objects, totals
    raise AssertionError("paging never ended")


async def _browse_all(sim: Sim, **fields: Any) -> tuple[list[Obj], list[bool]]:
    children: list[Obj] = []
    has_children: list[bool] = []
    token = ""
    for _ in range(10_000):
        reply = await sim.repo.BrowseChildren(gpb.BrowseChildrenRequest(page_token=token, **fields))
        assert len(reply.children) == len(reply.child_has_children)
        children.extend(reply.children)
        has_children.extend(reply.child_has_children)
        token = reply.next_page_token
        if not token:
            return children, has_children
    raise AssertionError("paging never ended")


def _ids(objects: list[Obj]) -> list[int]:
    return [o.gobject_id for o in objects]


async def _code(awaitable: Any) -> grpc.StatusCode:
    with pytest.raises(aio.AioRpcError) as caught:
        await awaitable
    code: grpc.StatusCode = caught.value.code()
    return code


# ----- auth, TestConnection, GetLastDeployTime -----


async def test_every_rpc_checks_metadata_read(sim: Sim) -> None:
    await sim.repo.TestConnection(gpb.TestConnectionRequest())
    await sim.repo.GetLastDeployTime(gpb.GetLastDeployTimeRequest())
    await sim.repo.DiscoverHierarchy(gpb.DiscoverHierarchyRequest(page_size=1))
    await sim.repo.BrowseChildren(gpb.BrowseChildrenRequest(page_size=1))
    call = sim.repo.WatchDeployEvents(gpb.WatchDeployEventsRequest())
    await read(call)
    call.cancel()
    assert sim.auth.scopes == ["metadata:read"] * 5


@pytest.mark.parametrize(
    "code", [grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED]
)
async def test_auth_check_can_refuse_every_rpc(sim: Sim, code: grpc.StatusCode) -> None:
    sim.auth.deny = code
    assert await _code(sim.repo.TestConnection(gpb.TestConnectionRequest())) == code
    assert await _code(sim.repo.GetLastDeployTime(gpb.GetLastDeployTimeRequest())) == code
    assert await _code(sim.repo.DiscoverHierarchy(gpb.DiscoverHierarchyRequest())) == code
    assert await _code(sim.repo.BrowseChildren(gpb.BrowseChildrenRequest())) == code
    call = sim.repo.WatchDeployEvents(gpb.WatchDeployEventsRequest())
    assert await _code(call.read()) == code
    assert sim.galaxy.watcher_count == 0


async def test_test_connection(sim: Sim) -> None:
    assert (await sim.repo.TestConnection(gpb.TestConnectionRequest())).ok
    sim.galaxy.available = False
    reply = await sim.repo.TestConnection(gpb.TestConnectionRequest())
    assert not reply.ok  # a database failure is ok=false, never an error


async def test_get_last_deploy_time(sim: Sim) -> None:
    reply = await sim.repo.GetLastDeployTime(gpb.GetLastDeployTimeRequest())
    assert reply.present
    ts = reply.time_of_last_deploy
    assert ts.seconds * 1_000_000_000 + ts.nanos == sim.galaxy.deploy_time_ns
    sim.galaxy.redeploy()
    later = (await sim.repo.GetLastDeployTime(gpb.GetLastDeployTimeRequest())).time_of_last_deploy
    assert later.ToNanoseconds() == sim.galaxy.deploy_time_ns > ts.ToNanoseconds()


# ----- DiscoverHierarchy -----


async def test_discover_pages_the_whole_galaxy(sim: Sim) -> None:
    objects, totals = await _discover_all(sim, page_size=37)
    ids = _ids(objects)
    assert len(ids) == len(set(ids)) == sim.galaxy.object_count
    assert set(totals) == {sim.galaxy.object_count}
    assert len(totals) == -(-sim.galaxy.object_count // 37)
    seen: set[int] = set()
    for obj in objects:  # preorder: every parent before its children
        assert obj.parent_gobject_id == 0 or obj.parent_gobject_id in seen
        seen.add(obj.gobject_id)
    single, _ = await _discover_all(sim, page_size=5000)
    assert _ids(single) == ids


async def test_discover_default_page_and_attributes(sim: Sim) -> None:
    reply = await sim.repo.DiscoverHierarchy(gpb.DiscoverHierarchyRequest())
    assert len(reply.objects) == 400 and not reply.next_page_token  # default page: 500
    assert all(o.attributes for o in reply.objects)  # include_attributes defaults to true
    explicit = await sim.repo.DiscoverHierarchy(
        gpb.DiscoverHierarchyRequest(include_attributes=True)
    )
    assert explicit.objects == reply.objects
    bare = await sim.repo.DiscoverHierarchy(gpb.DiscoverHierarchyRequest(include_attributes=False))
    assert _ids(list(bare.objects)) == _ids(list(reply.objects))
    assert not any(o.attributes for o in bare.objects)
    obj = next(o for o in reply.objects if o.contained_name)
    attribute = obj.attributes[0]
    assert attribute.full_tag_reference == f"{obj.tag_name}.{attribute.attribute_name}"
    assert attribute.is_configured


def _chain_has(obj: Obj, *names: str) -> bool:
    wanted = {n.lower().lstrip("$") for n in names}
    return any(c.lower().lstrip("$") in wanted for c in obj.template_chain)


FILTERS: list[tuple[dict[str, Any], Callable[[Obj], bool]]] = [
    ({"category_ids": [13]}, lambda o: o.is_area),
    ({"category_ids": [1, 3]}, lambda o: o.category_id in (1, 3)),
    ({"template_chain_contains": ["$Pump"]}, lambda o: _chain_has(o, "$Pump")),
    ({"template_chain_contains": ["valve", "$Motor"]}, lambda o: _chain_has(o, "valve", "motor")),
    ({"template_chain_contains": ["$UserDefined"]}, lambda o: _chain_has(o, "$UserDefined")),
    ({"tag_name_glob": "pump_00?"}, lambda o: o.tag_name.startswith("Pump_00")),
    ({"tag_name_glob": "*1"}, lambda o: o.tag_name.endswith("1")),
    ({"alarm_bearing_only": True}, lambda o: any(a.is_alarm for a in o.attributes)),
    ({"historized_only": True}, lambda o: any(a.is_historized for a in o.attributes)),
    (
        {"category_ids": [10], "tag_name_glob": "T*", "alarm_bearing_only": True},
        lambda o: (
            o.category_id == 10
            and o.tag_name.startswith("T")
            and any(a.is_alarm for a in o.attributes)
        ),
    ),
    ({"tag_name_glob": "NoSuch*"}, lambda o: False),
]


@pytest.mark.parametrize(("fields", "predicate"), FILTERS)
async def test_discover_filters(
    sim: Sim, fields: dict[str, Any], predicate: Callable[[Obj], bool]
) -> None:
    everything, _ = await _discover_all(sim, page_size=5000)
    expected = [o.gobject_id for o in everything if predicate(o)]
    objects, totals = await _discover_all(sim, page_size=23, **fields)
    assert _ids(objects) == expected  # nothing extra, nothing omitted, preorder kept
    assert set(totals) == {len(expected)}
    if fields != {"tag_name_glob": "NoSuch*"}:
        assert 0 < len(expected) < len(everything)


async def test_filters_do_not_prune_the_traversal(sim: Sim) -> None:
    motors, _ = await _discover_all(sim, template_chain_contains=["$Motor"])
    assert motors and all(o.contained_name == "Motor" for o in motors)  # below pumps and areas


async def test_discover_max_depth(sim: Sim) -> None:
    roots, _ = await _discover_all(sim, max_depth=wrappers_pb2.Int32Value(value=0))
    assert roots and all(o.parent_gobject_id == 0 for o in roots)
    root = roots[0]
    subtree, _ = await _discover_all(sim, root_gobject_id=root.gobject_id)
    level1, _ = await _discover_all(
        sim, root_gobject_id=root.gobject_id, max_depth=wrappers_pb2.Int32Value(value=1)
    )
    assert level1[0].gobject_id == root.gobject_id
    assert all(o.parent_gobject_id == root.gobject_id for o in level1[1:])
    children = [o for o in subtree if o.parent_gobject_id == root.gobject_id]
    assert _ids(level1[1:]) == _ids(children)
    only_root, _ = await _discover_all(
        sim, root_gobject_id=root.gobject_id, max_depth=wrappers_pb2.Int32Value(value=0)
    )
    assert _ids(only_root) == [root.gobject_id]
    bad = gpb.DiscoverHierarchyRequest(max_depth=wrappers_pb2.Int32Value(value=-1))
    assert await _code(sim.repo.DiscoverHierarchy(bad)) == grpc.StatusCode.INVALID_ARGUMENT


async def test_discover_root_by_id_tag_and_contained_path(sim: Sim) -> None:
    everything, _ = await _discover_all(sim, page_size=5000)
    tank = next(o for o in everything if o.tag_name == "Tank_001")
    by_id, _ = await _discover_all(sim, root_gobject_id=tank.gobject_id)
    by_tag, _ = await _discover_all(sim, root_tag_name="TANK_001")
    by_path, _ = await _discover_all(sim, root_contained_path="Tank_001")
    assert by_id[0].gobject_id == tank.gobject_id
    assert _ids(by_id) == _ids(by_tag) == _ids(by_path)
    assert len(by_id) > 1  # the tank contains valves or an agitator
    contained = by_id[1]
    path, _ = await _discover_all(sim, root_contained_path=contained.hierarchical_name)
    assert path[0].gobject_id == contained.gobject_id
    area = next(o for o in everything if o.tag_name == tank.area_tag_name)
    browse_path = []
    node: Obj | None = area
    by_gid = {o.gobject_id: o for o in everything}
    while node is not None:
        browse_path.append(node.browse_name)
        node = by_gid.get(node.parent_gobject_id)
    slash = "/".join([*reversed(browse_path), tank.browse_name])
    from_path, _ = await _discover_all(sim, root_contained_path=slash)
    assert _ids(from_path) == _ids(by_id)


@pytest.mark.parametrize(
    "root",
    [
        {"root_gobject_id": 99_999},
        {"root_gobject_id": 0},
        {"root_tag_name": "NoSuchTag"},
        {"root_contained_path": "Tank_001.NoSuchChild"},
        {"root_contained_path": "Area_001/NoSuchChild"},
    ],
)
async def test_discover_unknown_root_is_not_found(sim: Sim, root: dict[str, Any]) -> None:
    code = await _code(sim.repo.DiscoverHierarchy(gpb.DiscoverHierarchyRequest(**root)))
    assert code == grpc.StatusCode.NOT_FOUND


async def test_negative_page_size_is_invalid(sim: Sim) -> None:
    bad_discover = sim.repo.DiscoverHierarchy(gpb.DiscoverHierarchyRequest(page_size=-1))
    assert await _code(bad_discover) == grpc.StatusCode.INVALID_ARGUMENT
    bad_browse = sim.repo.BrowseChildren(gpb.BrowseChildrenRequest(page_size=-1))
    assert await _code(bad_browse) == grpc.StatusCode.INVALID_ARGUMENT


# ----- page tokens -----


async def test_page_token_is_reusable_and_page_size_may_change(sim: Sim) -> None:
    first = await sim.repo.DiscoverHierarchy(gpb.DiscoverHierarchyRequest(page_size=10))
    token = first.next_page_token
    a = await sim.repo.DiscoverHierarchy(
        gpb.DiscoverHierarchyRequest(page_size=10, page_token=token)
    )
    b = await sim.repo.DiscoverHierarchy(
        gpb.DiscoverHierarchyRequest(page_size=10, page_token=token)
    )
    assert a == b
    c = await sim.repo.DiscoverHierarchy(
        gpb.DiscoverHierarchyRequest(page_size=20, page_token=token)
    )
    assert _ids(list(c.objects))[:10] == _ids(list(a.objects))


async def test_foreign_page_tokens_are_invalid(sim: Sim) -> None:
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    pumps = gpb.DiscoverHierarchyRequest(page_size=2, template_chain_contains=["$Pump"])
    token = (await sim.repo.DiscoverHierarchy(pumps)).next_page_token
    assert token
    other_filter = gpb.DiscoverHierarchyRequest(
        page_size=2, template_chain_contains=["$Valve"], page_token=token
    )
    assert await _code(sim.repo.DiscoverHierarchy(other_filter)) == invalid
    other_root = gpb.DiscoverHierarchyRequest(
        page_size=2, template_chain_contains=["$Pump"], root_tag_name="Area_001", page_token=token
    )
    assert await _code(sim.repo.DiscoverHierarchy(other_root)) == invalid
    browse_token = (
        await sim.repo.BrowseChildren(gpb.BrowseChildrenRequest(page_size=1))
    ).next_page_token
    assert browse_token
    swapped = gpb.DiscoverHierarchyRequest(page_token=browse_token)
    assert await _code(sim.repo.DiscoverHierarchy(swapped)) == invalid
    back = gpb.BrowseChildrenRequest(page_token=token)
    assert await _code(sim.repo.BrowseChildren(back)) == invalid
    other_parent = gpb.BrowseChildrenRequest(parent_tag_name="Area_001", page_token=browse_token)
    assert await _code(sim.repo.BrowseChildren(other_parent)) == invalid
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[5] ^= 1  # tamper with the offset
    tampered = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    for bad in ("garbage", "!!!", tampered, token[:-2]):
        request = gpb.DiscoverHierarchyRequest(
            page_size=2, template_chain_contains=["$Pump"], page_token=bad
        )
        assert await _code(sim.repo.DiscoverHierarchy(request)) == invalid, bad


async def test_page_tokens_go_stale_after_a_redeploy(sim: Sim) -> None:
    discover = await sim.repo.DiscoverHierarchy(gpb.DiscoverHierarchyRequest(page_size=5))
    browse = await sim.repo.BrowseChildren(
        gpb.BrowseChildrenRequest(parent_tag_name="Area_001", page_size=2)
    )
    sim.galaxy.redeploy()
    stale = gpb.DiscoverHierarchyRequest(page_size=5, page_token=discover.next_page_token)
    with pytest.raises(aio.AioRpcError) as caught:
        await sim.repo.DiscoverHierarchy(stale)
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "stale" in (caught.value.details() or "")
    stale_browse = gpb.BrowseChildrenRequest(
        parent_tag_name="Area_001", page_size=2, page_token=browse.next_page_token
    )
    assert await _code(sim.repo.BrowseChildren(stale_browse)) == grpc.StatusCode.INVALID_ARGUMENT
    objects, totals = await _discover_all(sim, page_size=50)  # a fresh query pages again
    assert len(set(_ids(objects))) == sim.galaxy.object_count == totals[0] > 400


async def test_tokens_of_another_server_are_invalid(galaxy: Galaxy) -> None:
    async with serve(galaxy) as first, serve(galaxy) as second:
        token = (
            await first.repo.DiscoverHierarchy(gpb.DiscoverHierarchyRequest(page_size=3))
        ).next_page_token
        request = gpb.DiscoverHierarchyRequest(page_size=3, page_token=token)
        assert await _code(second.repo.DiscoverHierarchy(request)) == (
            grpc.StatusCode.INVALID_ARGUMENT
        )


# ----- BrowseChildren -----


async def test_browse_roots_and_children(sim: Sim) -> None:
    everything, _ = await _discover_all(sim, page_size=5000, include_attributes=False)
    parents = {o.parent_gobject_id for o in everything}
    roots, has = await _browse_all(sim)
    assert _ids(roots) == [o.gobject_id for o in everything if o.parent_gobject_id == 0]
    assert has == [o.gobject_id in parents for o in roots]
    for parent in everything[:60]:
        expected = [o.gobject_id for o in everything if o.parent_gobject_id == parent.gobject_id]
        kids, kid_has = await _browse_all(sim, parent_gobject_id=parent.gobject_id, page_size=3)
        assert _ids(kids) == expected
        assert kid_has == [g in parents for g in expected]
    area = roots[0]
    by_id, _ = await _browse_all(sim, parent_gobject_id=area.gobject_id)
    by_tag, _ = await _browse_all(sim, parent_tag_name=area.tag_name.lower())
    by_path, _ = await _browse_all(sim, parent_contained_path=area.browse_name)
    assert _ids(by_id) == _ids(by_tag) == _ids(by_path) and by_id
    assert all(c.attributes for c in by_id if not c.is_area)
    tank = next(o for o in everything if o.tag_name == "Tank_001")
    contained, _ = await _browse_all(sim, parent_contained_path="tank_001")
    assert all(c.parent_gobject_id == tank.gobject_id for c in contained) and contained
    leaf = next(o for o in everything if o.gobject_id not in parents)
    assert await _browse_all(sim, parent_gobject_id=leaf.gobject_id) == ([], [])


@pytest.mark.parametrize(
    "parent",
    [
        {"parent_gobject_id": 123_456},
        {"parent_tag_name": "Nope_001"},
        {"parent_contained_path": "Nope/Nope"},
    ],
)
async def test_browse_unknown_parent_is_not_found(sim: Sim, parent: dict[str, Any]) -> None:
    code = await _code(sim.repo.BrowseChildren(gpb.BrowseChildrenRequest(**parent)))
    assert code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize(("fields", "predicate"), FILTERS)
async def test_browse_filters(
    sim: Sim, fields: dict[str, Any], predicate: Callable[[Obj], bool]
) -> None:
    everything, _ = await _discover_all(sim, page_size=5000)
    for parent in {o.parent_gobject_id for o in everything if not o.is_area}:
        expected = [
            o.gobject_id for o in everything if o.parent_gobject_id == parent and predicate(o)
        ]
        children, has = await _browse_all(sim, parent_gobject_id=parent, page_size=7, **fields)
        assert _ids(children) == expected
        assert len(has) == len(children)


async def test_browse_include_attributes(sim: Sim) -> None:
    full, _ = await _browse_all(sim, parent_tag_name="Area_001")
    bare, _ = await _browse_all(sim, parent_tag_name="Area_001", include_attributes=False)
    assert _ids(full) == _ids(bare)
    assert all(o.attributes for o in full) and not any(o.attributes for o in bare)


async def test_browse_page_size_default_500_cap_5000() -> None:
    async with serve(Galaxy(8000, 5, areas=1)) as sim:
        everything, _ = await _browse_all(sim, parent_tag_name="Area_001", include_attributes=False)
        assert len(everything) > 5000
        default = await sim.repo.BrowseChildren(
            gpb.BrowseChildrenRequest(parent_tag_name="Area_001", include_attributes=False)
        )
        assert len(default.children) == 500 and default.next_page_token
        capped = await sim.repo.BrowseChildren(
            gpb.BrowseChildrenRequest(
                parent_tag_name="Area_001", page_size=100_000, include_attributes=False
            )
        )
        assert len(capped.children) == 5000 and capped.next_page_token
        assert _ids(list(capped.children)) == _ids(everything)[:5000]


# ----- WatchDeployEvents -----


def _ts(ns: int) -> timestamp_pb2.Timestamp:
    return timestamp_pb2.Timestamp(seconds=ns // 1_000_000_000, nanos=ns % 1_000_000_000)


async def test_watch_bootstrap_then_one_event_per_deploy(sim: Sim) -> None:
    galaxy = sim.galaxy
    call = sim.repo.WatchDeployEvents(gpb.WatchDeployEventsRequest())
    boot = await read(call)
    assert boot.sequence == 1 and boot.time_of_last_deploy_present
    assert boot.time_of_last_deploy.ToNanoseconds() == galaxy.deploy_time_ns
    assert (boot.object_count, boot.attribute_count) == (400, galaxy.attribute_count)
    galaxy.redeploy()
    first = await read(call)
    galaxy.redeploy()
    second = await read(call)
    assert (first.sequence, second.sequence) == (2, 3)
    assert boot.time_of_last_deploy.ToNanoseconds() < first.time_of_last_deploy.ToNanoseconds()
    assert first.time_of_last_deploy.ToNanoseconds() < second.time_of_last_deploy.ToNanoseconds()
    assert second.object_count == galaxy.object_count > first.object_count > 400
    assert second.attribute_count == galaxy.attribute_count
    call.cancel()


async def test_watch_suppresses_the_bootstrap_the_caller_has_seen(sim: Sim) -> None:
    seen = _ts(sim.galaxy.deploy_time_ns)
    call = sim.repo.WatchDeployEvents(gpb.WatchDeployEventsRequest(last_seen_deploy_time=seen))
    await eventually(lambda: sim.galaxy.watcher_count == 1)
    await asyncio.sleep(0.05)
    sim.galaxy.redeploy()
    event = await read(call)
    assert event.sequence == 2  # the bootstrap (sequence 1) was not sent
    call.cancel()


async def test_watch_sends_the_bootstrap_for_an_older_deploy(sim: Sim) -> None:
    old = _ts(sim.galaxy.deploy_time_ns - 60_000_000_000)
    call = sim.repo.WatchDeployEvents(gpb.WatchDeployEventsRequest(last_seen_deploy_time=old))
    assert (await read(call)).sequence == 1
    call.cancel()


async def test_watchers_each_get_every_event_and_cancel_cleanly(sim: Sim) -> None:
    calls = [sim.repo.WatchDeployEvents(gpb.WatchDeployEventsRequest()) for _ in range(3)]
    for call in calls:
        assert (await read(call)).sequence == 1
    assert sim.galaxy.watcher_count == 3
    sim.galaxy.redeploy()
    for call in calls:
        assert (await read(call)).sequence == 2
    for call in calls:
        call.cancel()
    await eventually(lambda: sim.galaxy.watcher_count == 0)
    for call in calls:
        assert call.cancelled()
        assert await call.code() == grpc.StatusCode.CANCELLED


# ----- scale -----


async def test_a_100k_galaxy_builds_and_pages() -> None:
    start = time.perf_counter()
    galaxy = Galaxy(100_000, 3)
    assert time.perf_counter() - start < 5.0
    async with serve(galaxy) as sim:
        objects, totals = await _discover_all(sim, page_size=5000, include_attributes=False)
        ids = _ids(objects)
        assert len(ids) == len(set(ids)) == 100_000 == totals[0]
        assert len(totals) == 20
        page = await sim.repo.DiscoverHierarchy(
            gpb.DiscoverHierarchyRequest(page_size=5000, template_chain_contains=["$Tank"])
        )
        assert len(page.objects) == 5000 and page.total_object_count > 5000
        assert all(o.attributes and _chain_has(o, "$Tank") for o in page.objects)
        roots, _ = await _browse_all(sim, include_attributes=False)
        assert roots and all(o.is_area for o in roots)
