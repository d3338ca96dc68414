"""The session's own state (``items``, ``reference``), recovery after the gateway lost the session,
replies validated for what they must carry, and a close that never hides the caller's error."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from mxgateway import (
    GatewayClient,
    MxAccessError,
    MxDataType,
    MxEvent,
    MxEventFamily,
    MxGatewayProtocolError,
    MxGatewaySessionNotFoundError,
    Session,
    SessionItem,
)
from mxgateway._recovery import HandleMap, SessionState
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.client._helpers import serve_gateway
from tests.hardening.conftest import find_reference


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedGateway]:
    async with SimulatedGateway(SimConfig(rate=20.0, galaxy_size=60)) as gateway:
        yield gateway


@pytest.fixture
async def client(sim: SimulatedGateway) -> AsyncIterator[GatewayClient]:
    async with await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True) as c:
        yield c


async def _within(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


# -- the session's items -----------------------------------------------------------------------


async def test_items_follow_every_command(client: GatewayClient, sim: SimulatedGateway) -> None:
    refs = sim.sample_references(8)
    session = await client.open_session()
    server = await session.register("items")
    a = await session.add_item(server, refs[0])
    b = await session.add_item2(server, refs[1], "ctx-b")
    c = await session.add_buffered_item(server, refs[2], "ctx-c")
    assert session.items[a] == SessionItem(server, a, refs[0])
    assert session.items[b] == SessionItem(server, b, refs[1], "add_item2", "ctx-b")
    assert session.items[c].kind == "buffered"
    await session.advise(server, a)
    await session.advise_supervisory(server, b)
    await session.suspend(server, a)
    assert session.items[a].advise == "advise" and session.items[a].suspended
    assert session.items[b].advise == "supervisory"
    await session.activate(server, a)
    await session.unadvise(server, b)
    assert not session.items[a].suspended and not session.items[b].advised
    bulk = await session.subscribe_bulk(server, refs[3:6])
    added = await session.add_item_bulk(server, refs[6:8])
    for result in bulk:
        assert session.items[result.item_handle].definition == result.tag_address
        assert session.items[result.item_handle].advised
    await session.advise_item_bulk(server, [r.item_handle for r in added])
    assert all(session.items[r.item_handle].advised for r in added)
    await session.remove_item(server, c)
    await session.unsubscribe_bulk(server, [r.item_handle for r in bulk])
    assert set(session.items) == {a, b} | {r.item_handle for r in added}
    with pytest.raises(MxAccessError):
        await session.remove_item(server, c)  # a failure changes nothing
    await session.unregister(server)
    assert dict(session.items) == {}
    with pytest.raises(TypeError):
        session.items[1] = SessionItem(1, 1, "x")  # type: ignore[index]
    await session.close()


async def test_every_event_knows_its_reference(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    refs = sim.sample_references(30)
    session = await client.open_session()
    server = await session.register("refs")
    results = await session.subscribe_bulk(server, refs)
    by_handle = {r.item_handle: r.tag_address for r in results}
    seen: set[str] = set()
    async for event in session.stream_events():
        assert session.reference(event) == by_handle[event.item_handle]
        assert event.tag == by_handle[event.item_handle]  # filled by the decoder
        seen.add(by_handle[event.item_handle])
        if seen == set(refs):
            break
    await session.close()


# -- recovery ------------------------------------------------------------------------------------


def _data(events: list[MxEvent]) -> list[MxEvent]:
    return [e for e in events if e.family == MxEventFamily.ON_DATA_CHANGE]


async def test_a_recovering_session_survives_a_restart(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    writable = find_reference(sim, MxDataType.DOUBLE)
    refs = [r for r in sim.sample_references(21) if r != writable][:20]
    session = await client.open_session("healer", recover=True)
    server = await session.register("healer")
    results = await session.subscribe_bulk(server, [*refs, writable])
    handles = {r.tag_address: r.item_handle for r in results}
    old_id = session.session_id
    events: list[MxEvent] = []

    async def consume() -> None:
        async for event in session.stream_events(retry_budget_s=20):
            events.append(event)

    task = asyncio.create_task(consume())
    await _within(lambda: len(_data(events)) > 20)
    await sim.restart()
    await _within(lambda: any(e.session_recovered for e in events))
    mark = len(events)
    await _within(lambda: len(_data(events[mark:])) > 20)  # events flow on the new session
    markers = [e for e in events if e.session_recovered is not None]
    assert len(markers) == 1
    recovered = markers[0].session_recovered
    assert recovered is not None
    assert recovered.old_session_id == old_id
    assert recovered.new_session_id == session.session_id != old_id
    assert recovered.failed == ()
    assert session.recoveries == 1 and session.last_recovery is not None
    after = _data(events[mark:])
    assert all(e.session_id == session.session_id for e in after)
    assert {e.item_handle for e in after} <= set(handles.values())
    assert all(session.reference(e) in handles for e in after)
    # The caller's handles still write.
    await session.write(server, handles[writable], 42.5)
    await _within(lambda: sim.attribute(writable).value == 42.5)  # type: ignore[union-attr]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await session.close()
    assert sim.session_ids() == []


async def test_a_command_meeting_the_loss_recovers_and_is_not_sent_again(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    writable = find_reference(sim, MxDataType.DOUBLE)
    session = await client.open_session("healer", recover=True)
    server = await session.register("healer")
    item = await session.add_item(server, writable)
    await session.advise(server, item)
    await sim.restart()
    sim.set_value(writable, 1.0)
    with pytest.raises(MxGatewaySessionNotFoundError, match="not sent again"):
        await session.write(server, item, 7.0)
    assert sim.attribute(writable).value == 1.0  # type: ignore[union-attr]
    assert session.recoveries == 1
    await session.write(server, item, 7.0)  # the next one goes to the recovered session
    assert sim.attribute(writable).value == 7.0  # type: ignore[union-attr]
    await session.close()


async def test_handles_are_mapped_when_the_new_ones_differ(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    writable = find_reference(sim, MxDataType.DOUBLE)
    refs = [r for r in sim.sample_references(7) if r != writable][:6]
    session = await client.open_session("mapper", recover=True)
    server = await session.register("mapper")
    results = await session.subscribe_bulk(server, [*refs, writable])
    # Holes in the numbering: the replay numbers the survivors 1.. again, so the gateway's
    # new handles differ from the ones the caller holds.
    await session.unsubscribe_bulk(server, [r.item_handle for r in results[:3]])
    kept = {r.tag_address: r.item_handle for r in results[3:]}
    await sim.restart()
    events: list[MxEvent] = []

    async def consume() -> None:
        async for event in session.stream_events(retry_budget_s=20):
            events.append(event)

    task = asyncio.create_task(consume())
    await _within(lambda: len(_data(events)) > 40)
    assert not session._handles.empty  # the map is in use
    live_handles = set(sim.registry.sessions[session.session_id].items)
    assert live_handles != set(kept.values())
    for event in _data(events):
        assert event.item_handle in kept.values()
        assert kept[session.reference(event)] == event.item_handle  # type: ignore[index]
        assert event.tag == session.reference(event)  # named by its live handle
    await session.write(server, kept[writable], 12.25)
    await _within(lambda: sim.attribute(writable).value == 12.25)  # type: ignore[union-attr]
    # A new item gets a handle the caller does not already hold.
    extra = await session.add_item(server, sim.sample_references(7)[-1])
    assert extra not in kept.values()
    assert session.items[extra].definition == sim.sample_references(7)[-1]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await session.close()


async def test_without_recover_a_lost_session_is_an_error(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    session = await client.open_session()
    server = await session.register("plain")
    await session.subscribe_bulk(server, sim.sample_references(2))
    await sim.restart()
    with pytest.raises(MxGatewaySessionNotFoundError):
        async for _ in session.stream_events(retry_budget_s=10):
            pass
    assert session.recoveries == 0


def test_items_that_could_not_be_restored_map_to_no_handle() -> None:
    handles = HandleMap()
    handles.set({1: 1}, {1: 1, 2: 5, 3: 2}, dead_items=[4])
    command = pb.MxCommand(write=pb.WriteCommand(server_handle=1, item_handle=4))
    assert handles.command_to_live(command).write.item_handle == 0  # refused as invalid
    assert command.write.item_handle == 4  # the caller's command is not changed
    moved = pb.MxCommand(write=pb.WriteCommand(server_handle=1, item_handle=2))
    assert handles.command_to_live(moved).write.item_handle == 5
    state = SessionState()
    reply = pb.MxCommandReply(item_handle=pb.ItemHandleReply(item_handle=2))
    add = pb.MxCommand(add_item=pb.AddItemCommand(server_handle=1, item_definition="T.A"))
    state.items[2] = SessionItem(1, 2, "T.B")
    handles.reply_to_caller(add, reply, state)
    assert reply.item_handle.item_handle not in (2, 4, 5)  # a number the caller does not hold


# -- replies that lack what they must carry ------------------------------------------------------


class _Deficient(pb_grpc.MxAccessGatewayServicer):
    """Replies that leave out what they must carry."""

    async def Invoke(self, request: Any, context: Any) -> pb.MxCommandReply:
        ok = pb.ProtocolStatus(code=pb.PROTOCOL_STATUS_CODE_OK)
        command = request.command
        arm = command.WhichOneof("payload")
        if arm == "register" and command.register.client_name == "no-status":
            return pb.MxCommandReply(register=pb.RegisterReply(server_handle=1))
        if arm in ("register", "add_item", "authenticate_user"):
            return pb.MxCommandReply(protocol_status=ok)  # no handle, no user id
        if arm == "subscribe_bulk":
            tags = command.subscribe_bulk.tag_addresses
            results = [pb.SubscribeResult(tag_address=tags[0], item_handle=1, was_successful=True)]
            return pb.MxCommandReply(
                protocol_status=ok, bulk_subscribe=pb.BulkSubscribeReply(results=results)
            )
        return pb.MxCommandReply(protocol_status=ok)


async def test_a_reply_without_what_it_must_carry_is_a_protocol_error() -> None:
    async def test(endpoint: str) -> None:
        async with await GatewayClient.connect(endpoint=endpoint, plaintext=True) as client:
            session = Session(client, pb.OpenSessionReply(session_id="s1"))
            with pytest.raises(MxGatewayProtocolError, match="no register"):
                await session.register("x")
            with pytest.raises(MxGatewayProtocolError, match="no item_handle"):
                await session.add_item(1, "T.A")
            with pytest.raises(MxGatewayProtocolError, match="no user_id"):
                await session.authenticate_user(1, "user", "pw")
            with pytest.raises(MxGatewayProtocolError, match="1 results for 3 entries"):
                await session.subscribe_bulk(1, ["T.A", "T.B", "T.C"])
            with pytest.raises(MxGatewayProtocolError, match="no protocol status"):
                await session.register("no-status")
            assert dict(session.items) == {}  # nothing was recorded from a bad reply

    await serve_gateway(_Deficient(), test)  # type: ignore[abstract]


# -- closing ----------------------------------------------------------------------------------


async def test_closing_never_hides_the_callers_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    sim = SimulatedGateway(SimConfig(rate=0.0))
    await sim.start()
    client = await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True, timeout=2.0)
    try:
        with caplog.at_level(logging.WARNING, logger="mxgateway"), pytest.raises(LookupError):
            async with await client.open_session() as session:
                await sim.stop()  # the close will fail: nobody answers
                raise LookupError("the caller's own error")
        assert any("closing session" in r.getMessage() for r in caplog.records)
        assert session.closed
    finally:
        await client.close()
        await sim.stop()


async def test_a_transport_error_keeps_its_cause() -> None:
    sim = SimulatedGateway(SimConfig(rate=0.0))
    await sim.start()
    client = await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True, timeout=2.0)
    try:
        session = await client.open_session()
        await sim.stop()
        with pytest.raises(Exception) as info:
            await session.register("x")
        assert isinstance(info.value.__cause__, grpc.RpcError)
    finally:
        await client.close()


async def test_closing_a_session_the_gateway_lost_succeeds(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    async with await client.open_session() as session:
        await sim.restart()  # the gateway forgets the session
    assert session.closed  # async with exited cleanly
