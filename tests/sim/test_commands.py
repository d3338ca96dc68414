"""Invoke: every command kind, MXAccess failures as replies, bulk entries failing in place."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest
from google.protobuf import timestamp_pb2

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim import SimulatedGateway
from mxgateway.sim._users import KNOWN_USERS
from tests.sim.helpers import (
    MXACCESS_FAILURE,
    OK,
    Client,
    K,
    mx_bool,
    mx_double,
    mx_int,
    mx_str,
    take,
)

FREE_DOUBLE = "Pump_001.Speed"  # FreeAccess, alarm attribute
OPERATE_DOUBLE = "Pump_001.SpeedSP"
SECURED_BOOL = "Pump_001.StartCmd"  # SecuredWrite
VERIFIED_BOOL = "Valve_001.Interlock"  # VerifiedWrite
VIEW_ONLY = "AppEngine_001.CPULoad"
FLOAT_ARRAY = "Tank_001.LevelProfile"  # 10 elements
INT_ARRAY = "FT_001.Samples"  # 8 elements
E_FAIL = 0x80004005 - (1 << 32)
SECURITY = pb.MX_STATUS_CATEGORY_SECURITY_ERROR
CONFIGURATION = pb.MX_STATUS_CATEGORY_CONFIGURATION_ERROR


def assert_failure(reply: pb.MxCommandReply, category: int | None = None) -> None:
    assert reply.protocol_status.code == MXACCESS_FAILURE, reply
    assert reply.hresult < 0
    assert reply.statuses and reply.statuses[0].success == 0
    if category is not None:
        assert reply.statuses[0].category == category
    assert reply.diagnostic_message


async def advised(client: Client, ref: str) -> tuple[int, int]:
    server = await client.register()
    item = await client.add_item(server, ref)
    reply = await client.advise(server, item)
    assert reply.protocol_status.code == OK
    return server, item


async def test_reply_echoes_session_correlation_and_kind(client: Client) -> None:
    reply = await client.invoke(
        K.MX_COMMAND_KIND_REGISTER, register=pb.RegisterCommand(client_name="x")
    )
    assert reply.session_id == client.session_id
    assert reply.correlation_id == f"c-{K.MX_COMMAND_KIND_REGISTER}"
    assert reply.kind == K.MX_COMMAND_KIND_REGISTER
    assert reply.protocol_status.code == OK
    assert reply.statuses[0].success == 1
    assert reply.WhichOneof("payload") == "register"


async def test_handles_are_per_session(client: Client) -> None:
    other = Client(client.stub)
    await other.open()
    a, b = await client.register(), await other.register()
    assert a == b == 1  # independent counters
    item = await client.add_item(a, FREE_DOUBLE)
    reply = await other.advise(b, item)
    assert_failure(reply, CONFIGURATION)  # that item handle does not exist in `other`


async def test_kind_without_matching_payload_is_invalid(client: Client) -> None:
    reply = await client.invoke(
        K.MX_COMMAND_KIND_ADD_ITEM, register=pb.RegisterCommand(client_name="x")
    )
    assert reply.protocol_status.code == pb.PROTOCOL_STATUS_CODE_INVALID_REQUEST
    reply = await client.invoke(pb.MX_COMMAND_KIND_UNSPECIFIED)
    assert reply.protocol_status.code == pb.PROTOCOL_STATUS_CODE_INVALID_REQUEST


async def test_unregister_and_bad_server_handle(client: Client) -> None:
    server = await client.register()
    item = await client.add_item(server, FREE_DOUBLE)
    reply = await client.invoke(
        K.MX_COMMAND_KIND_UNREGISTER, unregister=pb.UnregisterCommand(server_handle=server)
    )
    assert reply.protocol_status.code == OK
    assert_failure(await client.advise(server, item), CONFIGURATION)
    reply = await client.invoke(
        K.MX_COMMAND_KIND_UNREGISTER, unregister=pb.UnregisterCommand(server_handle=99)
    )
    assert_failure(reply, CONFIGURATION)
    assert reply.hresult == 0x80070006 - (1 << 32)  # E_HANDLE, as int32


async def test_add_item_variants_and_remove(client: Client) -> None:
    server = await client.register()
    for kind, arm, cls in (
        (K.MX_COMMAND_KIND_ADD_ITEM, "add_item", pb.AddItemCommand),
        (K.MX_COMMAND_KIND_ADD_ITEM2, "add_item2", pb.AddItem2Command),
        (K.MX_COMMAND_KIND_ADD_BUFFERED_ITEM, "add_buffered_item", pb.AddBufferedItemCommand),
    ):
        extra = {} if cls is pb.AddItemCommand else {"item_context": "ctx"}
        payload: dict[str, Any] = {
            arm: cls(server_handle=server, item_definition=FREE_DOUBLE, **extra)
        }
        reply = await client.invoke(kind, **payload)
        assert reply.protocol_status.code == OK
        assert reply.WhichOneof("payload") == "item_handle"
        handle = reply.item_handle.item_handle
        removed = await client.invoke(
            K.MX_COMMAND_KIND_REMOVE_ITEM,
            remove_item=pb.RemoveItemCommand(server_handle=server, item_handle=handle),
        )
        assert removed.protocol_status.code == OK
        again = await client.invoke(
            K.MX_COMMAND_KIND_REMOVE_ITEM,
            remove_item=pb.RemoveItemCommand(server_handle=server, item_handle=handle),
        )
        assert_failure(again, CONFIGURATION)
    empty = await client.invoke(
        K.MX_COMMAND_KIND_ADD_ITEM,
        add_item=pb.AddItemCommand(server_handle=server, item_definition=" "),
    )
    assert_failure(empty)


async def test_unknown_item_adds_then_advise_gives_bad_quality(client: Client) -> None:
    call = client.stream()
    server = await client.register()
    item = await client.add_item(server, "NoSuchTag.NoSuchAttr")  # AddItem succeeds
    reply = await client.advise(server, item)
    assert reply.protocol_status.code == OK
    (event,) = await take(call, 1)
    assert event.item_handle == item
    assert event.family == pb.MX_EVENT_FAMILY_ON_DATA_CHANGE
    assert event.quality == 0
    assert event.statuses[0].success == 0
    assert event.statuses[0].category == CONFIGURATION
    assert event.value.is_null
    call.cancel()


async def test_advise_gives_the_current_value_then_changes(
    gw: SimulatedGateway, client: Client
) -> None:
    call = client.stream()
    await advised(client, FREE_DOUBLE)
    (first,) = await take(call, 1)
    assert first.quality == 192
    assert first.value.data_type == pb.MX_DATA_TYPE_DOUBLE
    assert first.value.variant_type == "VT_R8"
    assert first.statuses[0].success == 1
    assert first.WhichOneof("body") == "on_data_change"
    gw.set_value(FREE_DOUBLE, 12.5)
    (second,) = await take(call, 1)
    assert second.value.double_value == 12.5
    assert second.worker_sequence == first.worker_sequence + 1
    gw.set_quality(FREE_DOUBLE, 0)
    (third,) = await take(call, 1)
    assert third.quality == 0
    call.cancel()


async def test_unadvise_suspend_activate(gw: SimulatedGateway, client: Client) -> None:
    server, item = await advised(client, FREE_DOUBLE)
    await client.drain()
    args = {"server_handle": server, "item_handle": item}
    reply = await client.invoke(K.MX_COMMAND_KIND_SUSPEND, suspend=pb.SuspendCommand(**args))
    assert reply.protocol_status.code == OK
    gw.set_value(FREE_DOUBLE, 1.0)
    assert await client.drain() == []  # suspended: no data change
    reply = await client.invoke(K.MX_COMMAND_KIND_ACTIVATE, activate=pb.ActivateCommand(**args))
    assert reply.protocol_status.code == OK
    (event,) = await client.drain()  # activation sends the current value
    assert event.value.double_value == 1.0
    reply = await client.invoke(K.MX_COMMAND_KIND_UN_ADVISE, un_advise=pb.UnAdviseCommand(**args))
    assert reply.protocol_status.code == OK
    gw.set_value(FREE_DOUBLE, 2.0)
    assert await client.drain() == []
    again = await client.invoke(K.MX_COMMAND_KIND_UN_ADVISE, un_advise=pb.UnAdviseCommand(**args))
    assert_failure(again)
    not_advised = await client.invoke(K.MX_COMMAND_KIND_SUSPEND, suspend=pb.SuspendCommand(**args))
    assert_failure(not_advised)


async def test_advise_supervisory(client: Client) -> None:
    server = await client.register()
    item = await client.add_item(server, OPERATE_DOUBLE)
    reply = await client.invoke(
        K.MX_COMMAND_KIND_ADVISE_SUPERVISORY,
        advise_supervisory=pb.AdviseSupervisoryCommand(server_handle=server, item_handle=item),
    )
    assert reply.protocol_status.code == OK
    (event,) = await client.drain()
    assert event.item_handle == item and event.quality == 192


async def test_write_before_advise_fails(client: Client) -> None:
    server = await client.register()
    item = await client.add_item(server, OPERATE_DOUBLE)
    reply = await client.write(server, item, mx_double(5.0))
    assert_failure(reply, pb.MX_STATUS_CATEGORY_OPERATIONAL_ERROR)
    assert reply.hresult == E_FAIL
    assert "advise" in reply.diagnostic_message


async def test_write_then_data_change_and_write_complete(
    gw: SimulatedGateway, client: Client
) -> None:
    other = Client(client.stub)
    await other.open()
    other_server, other_item = await advised(other, OPERATE_DOUBLE)
    server, item = await advised(client, OPERATE_DOUBLE)
    await client.drain()
    await other.drain()
    reply = await client.write(server, item, mx_double(33.25))
    assert reply.protocol_status.code == OK
    change, complete = await client.drain()
    assert change.family == pb.MX_EVENT_FAMILY_ON_DATA_CHANGE
    assert change.value.double_value == 33.25
    assert complete.family == pb.MX_EVENT_FAMILY_ON_WRITE_COMPLETE
    assert complete.item_handle == item and complete.server_handle == server
    assert complete.HasField("hresult") and complete.hresult == 0
    assert complete.WhichOneof("body") == "on_write_complete"
    assert complete.worker_sequence == change.worker_sequence + 1
    (seen,) = await other.drain()  # values are global: the other session sees the write
    assert seen.item_handle == other_item and seen.value.double_value == 33.25
    state = gw.attribute(OPERATE_DOUBLE)
    assert state is not None and state.value == 33.25
    assert other_server == 1


async def test_write2_uses_the_timestamp(client: Client) -> None:
    server, item = await advised(client, OPERATE_DOUBLE)
    await client.drain()
    stamp = timestamp_pb2.Timestamp(seconds=1_700_000_000, nanos=5000)
    reply = await client.invoke(
        K.MX_COMMAND_KIND_WRITE2,
        write2=pb.Write2Command(
            server_handle=server, item_handle=item, value=mx_int(7), timestamp_value=stamp
        ),
    )
    assert reply.protocol_status.code == OK
    change, _complete = await client.drain()
    assert change.value.double_value == 7.0  # coerced to the attribute's DOUBLE
    assert change.source_timestamp == stamp


async def test_write_type_mismatch_is_a_failure(client: Client) -> None:
    server, item = await advised(client, OPERATE_DOUBLE)
    reply = await client.write(server, item, mx_str("not a number"))
    assert_failure(reply, CONFIGURATION)
    assert reply.hresult == 0x80020005 - (1 << 32)


async def test_write_to_unknown_item_fails(client: Client) -> None:
    server, item = await advised(client, "Nope.Nothing")
    assert_failure(await client.write(server, item, mx_double(1)), CONFIGURATION)


async def test_array_element_and_whole_array(gw: SimulatedGateway, client: Client) -> None:
    server = await client.register()
    whole = await client.add_item(server, INT_ARRAY + "[]")
    element = await client.add_item(server, INT_ARRAY + "[3]")
    outside = await client.add_item(server, INT_ARRAY + "[99]")
    for handle in (whole, element, outside):
        assert (await client.advise(server, handle)).protocol_status.code == OK
    first = {e.item_handle: e for e in await client.drain()}
    assert first[whole].value.WhichOneof("kind") == "array_value"
    assert list(first[whole].value.array_value.dimensions) == [8]
    assert first[element].value.WhichOneof("kind") == "int32_value"
    assert first[outside].quality == 0
    reply = await client.write(server, element, mx_int(4242))
    assert reply.protocol_status.code == OK
    events = await client.drain()
    by_item = {e.item_handle: e for e in events if e.family == pb.MX_EVENT_FAMILY_ON_DATA_CHANGE}
    assert by_item[element].value.int32_value == 4242
    assert by_item[whole].value.array_value.int32_values[2] == 4242
    sparse = pb.MxValue(
        data_type=pb.MX_DATA_TYPE_INTEGER,
        sparse_array_value=pb.MxSparseArray(
            element_data_type=pb.MX_DATA_TYPE_INTEGER,
            total_length=8,
            elements=[pb.MxSparseElement(index=0, value=mx_int(9))],
        ),
    )
    assert (await client.write(server, whole, sparse)).protocol_status.code == OK
    assert gw.attribute(INT_ARRAY).value == [9, 0, 0, 0, 0, 0, 0, 0]  # type: ignore[union-attr]


async def authenticate(client: Client, server: int, user: str, password: str) -> pb.MxCommandReply:
    return await client.invoke(
        K.MX_COMMAND_KIND_AUTHENTICATE_USER,
        authenticate_user=pb.AuthenticateUserCommand(
            server_handle=server, user_name=user, password=password
        ),
    )


async def test_authenticate_user(client: Client) -> None:
    server = await client.register()
    ok = await authenticate(client, server, "operator", "operator")
    assert ok.protocol_status.code == OK
    assert ok.user_id.user_id > 0
    bad = await authenticate(client, server, "operator", "wrong")
    assert_failure(bad, SECURITY)
    assert "wrong" not in bad.diagnostic_message
    unknown = await authenticate(client, server, "mallory", "x")
    assert_failure(unknown, SECURITY)


async def test_archestra_user_to_id(client: Client) -> None:
    server = await client.register()
    user = KNOWN_USERS[1]
    reply = await client.invoke(
        K.MX_COMMAND_KIND_ARCHESTRA_USER_TO_ID,
        archestra_user_to_id=pb.ArchestraUserToIdCommand(
            server_handle=server, user_guid="{" + user.guid.upper() + "}"
        ),
    )
    assert reply.protocol_status.code == OK
    assert reply.user_id.user_id == user.user_id
    unknown = await client.invoke(
        K.MX_COMMAND_KIND_ARCHESTRA_USER_TO_ID,
        archestra_user_to_id=pb.ArchestraUserToIdCommand(server_handle=server, user_guid="x"),
    )
    assert_failure(unknown)


async def test_secured_attribute_rejects_plain_write(client: Client) -> None:
    server, item = await advised(client, SECURED_BOOL)
    reply = await client.write(server, item, mx_bool(True))
    assert_failure(reply, SECURITY)
    view_server, view_item = await advised(client, VIEW_ONLY)
    assert_failure(await client.write(view_server, view_item, mx_int(1)), SECURITY)


async def test_write_secured_needs_an_authenticated_user(client: Client) -> None:
    server, item = await advised(client, SECURED_BOOL)
    await client.drain()

    async def secured(current: int, verifier: int = 0) -> pb.MxCommandReply:
        return await client.invoke(
            K.MX_COMMAND_KIND_WRITE_SECURED,
            write_secured=pb.WriteSecuredCommand(
                server_handle=server,
                item_handle=item,
                current_user_id=current,
                verifier_user_id=verifier,
                value=mx_bool(True),
            ),
        )

    assert_failure(await secured(101), SECURITY)  # not authenticated yet
    user = (await authenticate(client, server, "operator", "operator")).user_id.user_id
    assert (await secured(user)).protocol_status.code == OK
    families = [e.family for e in await client.drain()]
    assert families == [pb.MX_EVENT_FAMILY_ON_DATA_CHANGE, pb.MX_EVENT_FAMILY_ON_WRITE_COMPLETE]


async def test_verified_write_needs_a_second_user(client: Client) -> None:
    server, item = await advised(client, VERIFIED_BOOL)
    operator = (await authenticate(client, server, "operator", "operator")).user_id.user_id
    stamp = timestamp_pb2.Timestamp(seconds=1_700_000_000)

    async def secured2(verifier: int) -> pb.MxCommandReply:
        return await client.invoke(
            K.MX_COMMAND_KIND_WRITE_SECURED2,
            write_secured2=pb.WriteSecured2Command(
                server_handle=server,
                item_handle=item,
                current_user_id=operator,
                verifier_user_id=verifier,
                value=mx_bool(True),
                timestamp_value=stamp,
            ),
        )

    assert_failure(await secured2(0), SECURITY)
    assert_failure(await secured2(operator), SECURITY)  # the verifier must be someone else
    supervisor = (await authenticate(client, server, "supervisor", "supervisor")).user_id.user_id
    assert (await secured2(supervisor)).protocol_status.code == OK


async def _buffered_item(client: Client, interval_ms: int) -> tuple[int, int]:
    server = await client.register()
    reply = await client.invoke(
        K.MX_COMMAND_KIND_SET_BUFFERED_UPDATE_INTERVAL,
        set_buffered_update_interval=pb.SetBufferedUpdateIntervalCommand(
            server_handle=server, update_interval_ms=interval_ms
        ),
    )
    assert reply.protocol_status.code == OK
    reply = await client.invoke(
        K.MX_COMMAND_KIND_ADD_BUFFERED_ITEM,
        add_buffered_item=pb.AddBufferedItemCommand(
            server_handle=server, item_definition=OPERATE_DOUBLE, item_context=""
        ),
    )
    return server, reply.item_handle.item_handle


async def test_buffered_items(gw: SimulatedGateway, client: Client) -> None:
    server, item = await _buffered_item(client, 100)
    state = gw.attribute(OPERATE_DOUBLE)
    assert state is not None
    initial = state.value
    call = client.stream()
    await client.advise(server, item)
    for value in (1.0, 2.0, 3.0):
        gw.set_value(OPERATE_DOUBLE, value)
    # Samples come in windows of the update interval; how they fall into windows depends on
    # how long the advise reply took to arrive, so read until the last one.
    samples: list[pb.BufferedSample] = []
    while not samples or samples[-1].value.double_value != 3.0:
        (event,) = await take(call, 1)
        assert event.family == pb.MX_EVENT_FAMILY_ON_BUFFERED_DATA_CHANGE
        assert event.WhichOneof("body") == "on_buffered_data_change"
        body = event.on_buffered_data_change
        assert body.data_type == pb.MX_DATA_TYPE_DOUBLE
        assert event.value == body.samples[-1].value  # the event carries the newest sample
        samples += body.samples
    # Every sample once, in order: the value at advise time, then each one set.
    assert [s.value.double_value for s in samples] == [initial, 1.0, 2.0, 3.0]
    assert all(s.quality == 192 for s in samples)
    call.cancel()
    bad = await client.invoke(
        K.MX_COMMAND_KIND_SET_BUFFERED_UPDATE_INTERVAL,
        set_buffered_update_interval=pb.SetBufferedUpdateIntervalCommand(
            server_handle=server, update_interval_ms=0
        ),
    )
    assert_failure(bad, CONFIGURATION)


async def test_buffered_window_opens_with_the_first_sample(client: Client) -> None:
    # The first delivery waits the whole interval after the first sample (the advise), not
    # whatever tick comes first: samples that follow at once share its window.
    server, item = await _buffered_item(client, 400)
    call = client.stream()
    advised_ns = time.time_ns()
    await client.advise(server, item)
    (event,) = await take(call, 1)
    delivered_ns = event.worker_timestamp.ToNanoseconds()
    assert delivered_ns - advised_ns >= 400_000_000 - 5_000_000  # clock granularity slack
    call.cancel()


async def test_drain_events_limits(gw: SimulatedGateway, client: Client) -> None:
    await advised(client, FREE_DOUBLE)
    for value in range(5):
        gw.set_value(FREE_DOUBLE, float(value))
    two = await client.drain(2)
    rest = await client.drain()
    sequences = [e.worker_sequence for e in two + rest]
    assert sequences == list(range(1, 7))
    assert await client.drain() == []


# ----- bulk -----


async def test_add_advise_unadvise_remove_bulk(gw: SimulatedGateway, client: Client) -> None:
    server = await client.register()
    reply = await client.invoke(
        K.MX_COMMAND_KIND_ADD_ITEM_BULK,
        add_item_bulk=pb.AddItemBulkCommand(
            server_handle=server, tag_addresses=[FREE_DOUBLE, "", "Nope.Nothing"]
        ),
    )
    assert reply.protocol_status.code == OK
    results = list(reply.bulk_subscribe.results)
    assert [r.was_successful for r in results] == [True, False, True]
    assert results[1].hresult < 0 and results[1].statuses[0].success == 0
    good, unknown = results[0].item_handle, results[2].item_handle
    handles = [good, 999, unknown]
    for kind, arm, cls in (
        (K.MX_COMMAND_KIND_ADVISE_ITEM_BULK, "advise_item_bulk", pb.AdviseItemBulkCommand),
        (K.MX_COMMAND_KIND_UN_ADVISE_ITEM_BULK, "un_advise_item_bulk", pb.UnAdviseItemBulkCommand),
        (K.MX_COMMAND_KIND_REMOVE_ITEM_BULK, "remove_item_bulk", pb.RemoveItemBulkCommand),
    ):
        payload: dict[str, Any] = {arm: cls(server_handle=server, item_handles=handles)}
        reply = await client.invoke(kind, **payload)
        assert reply.protocol_status.code == OK, arm
        assert [r.was_successful for r in reply.bulk_subscribe.results] == [True, False, True]
        assert reply.bulk_subscribe.results[0].tag_address == FREE_DOUBLE
        assert reply.bulk_subscribe.results[1].error_message


async def test_subscribe_and_unsubscribe_bulk(gw: SimulatedGateway, client: Client) -> None:
    server = await client.register()
    refs = gw.sample_references(5)
    reply = await client.invoke(
        K.MX_COMMAND_KIND_SUBSCRIBE_BULK,
        subscribe_bulk=pb.SubscribeBulkCommand(
            server_handle=server, tag_addresses=[*refs, "Nope.Nothing"], supervisory=True
        ),
    )
    results = reply.bulk_subscribe.results
    assert all(r.was_successful for r in results) and len(results) == 6
    events = await client.drain()
    assert len(events) == 6
    assert sorted(e.quality for e in events) == [0] + [192] * 5
    bad_server = await client.invoke(
        K.MX_COMMAND_KIND_SUBSCRIBE_BULK,
        subscribe_bulk=pb.SubscribeBulkCommand(server_handle=77, tag_addresses=refs[:2]),
    )
    assert bad_server.protocol_status.code == OK  # entries fail in place, never the call
    assert [r.was_successful for r in bad_server.bulk_subscribe.results] == [False, False]
    handles = [r.item_handle for r in results]
    reply = await client.invoke(
        K.MX_COMMAND_KIND_UNSUBSCRIBE_BULK,
        unsubscribe_bulk=pb.UnsubscribeBulkCommand(server_handle=server, item_handles=handles),
    )
    assert all(r.was_successful for r in reply.bulk_subscribe.results)


async def test_subscribe_bulk_buffered(gw: SimulatedGateway, client: Client) -> None:
    server = await client.register()
    call = client.stream()
    await client.invoke(
        K.MX_COMMAND_KIND_SUBSCRIBE_BULK,
        subscribe_bulk=pb.SubscribeBulkCommand(
            server_handle=server, tag_addresses=[OPERATE_DOUBLE], buffered_update_interval_ms=50
        ),
    )
    (event,) = await take(call, 1)
    assert event.family == pb.MX_EVENT_FAMILY_ON_BUFFERED_DATA_CHANGE
    call.cancel()


@pytest.mark.parametrize("kind", ["write_bulk", "write2_bulk"])
async def test_write_bulk_partial_failure(client: Client, kind: str) -> None:
    server = await client.register()
    good = await client.add_item(server, OPERATE_DOUBLE)
    secured = await client.add_item(server, SECURED_BOOL)
    not_advised = await client.add_item(server, FREE_DOUBLE)
    for handle in (good, secured):
        await client.advise(server, handle)
    if kind == "write_bulk":
        entries = [
            pb.WriteBulkEntry(item_handle=good, value=mx_double(1.5)),
            pb.WriteBulkEntry(item_handle=secured, value=mx_bool(True)),
            pb.WriteBulkEntry(item_handle=not_advised, value=mx_double(2)),
            pb.WriteBulkEntry(item_handle=555, value=mx_double(2)),
            pb.WriteBulkEntry(item_handle=good, value=mx_str("x")),
        ]
        reply = await client.invoke(
            K.MX_COMMAND_KIND_WRITE_BULK,
            write_bulk=pb.WriteBulkCommand(server_handle=server, entries=entries),
        )
    else:
        stamp = timestamp_pb2.Timestamp(seconds=1_600_000_000)
        entries2 = [
            pb.Write2BulkEntry(item_handle=good, value=mx_double(1.5), timestamp_value=stamp),
            pb.Write2BulkEntry(item_handle=secured, value=mx_bool(True)),
            pb.Write2BulkEntry(item_handle=not_advised, value=mx_double(2)),
            pb.Write2BulkEntry(item_handle=555, value=mx_double(2)),
            pb.Write2BulkEntry(item_handle=good, value=mx_str("x")),
        ]
        reply = await client.invoke(
            K.MX_COMMAND_KIND_WRITE2_BULK,
            write2_bulk=pb.Write2BulkCommand(server_handle=server, entries=entries2),
        )
    assert reply.protocol_status.code == OK
    results = reply.bulk_write.results
    assert [r.was_successful for r in results] == [True, False, False, False, False]
    assert results[1].statuses[0].category == SECURITY
    assert all(r.hresult < 0 and r.error_message for r in results[1:])
    assert [r.item_handle for r in results] == [good, secured, not_advised, 555, good]


async def test_write_secured_bulks(client: Client) -> None:
    server = await client.register()
    secured = await client.add_item(server, SECURED_BOOL)
    verified = await client.add_item(server, VERIFIED_BOOL)
    for handle in (secured, verified):
        await client.advise(server, handle)
    operator = (await authenticate(client, server, "operator", "operator")).user_id.user_id
    supervisor = (await authenticate(client, server, "supervisor", "supervisor")).user_id.user_id
    reply = await client.invoke(
        K.MX_COMMAND_KIND_WRITE_SECURED_BULK,
        write_secured_bulk=pb.WriteSecuredBulkCommand(
            server_handle=server,
            entries=[
                pb.WriteSecuredBulkEntry(
                    item_handle=secured, value=mx_bool(True), current_user_id=operator
                ),
                pb.WriteSecuredBulkEntry(
                    item_handle=verified, value=mx_bool(True), current_user_id=operator
                ),
            ],
        ),
    )
    assert [r.was_successful for r in reply.bulk_write.results] == [True, False]
    reply = await client.invoke(
        K.MX_COMMAND_KIND_WRITE_SECURED2_BULK,
        write_secured2_bulk=pb.WriteSecured2BulkCommand(
            server_handle=server,
            entries=[
                pb.WriteSecured2BulkEntry(
                    item_handle=verified,
                    value=mx_bool(False),
                    current_user_id=operator,
                    verifier_user_id=supervisor,
                ),
                pb.WriteSecured2BulkEntry(
                    item_handle=verified, value=mx_bool(False), current_user_id=999
                ),
            ],
        ),
    )
    assert [r.was_successful for r in reply.bulk_write.results] == [True, False]


async def test_read_bulk(gw: SimulatedGateway, client: Client) -> None:
    server = await client.register()
    cached_item = await client.add_item(server, OPERATE_DOUBLE)
    await client.advise(server, cached_item)
    gw.set_value(OPERATE_DOUBLE, 8.5)
    reply = await client.invoke(
        K.MX_COMMAND_KIND_READ_BULK,
        read_bulk=pb.ReadBulkCommand(
            server_handle=server,
            tag_addresses=[OPERATE_DOUBLE, FREE_DOUBLE, "Nope.Nothing", INT_ARRAY + "[2]"],
            timeout_ms=100,
        ),
    )
    assert reply.protocol_status.code == OK
    cached, fresh, unknown, element = reply.bulk_read.results
    assert cached.was_successful and cached.was_cached and cached.item_handle == cached_item
    assert cached.value.double_value == 8.5 and cached.quality == 192
    assert cached.HasField("source_timestamp")
    assert fresh.was_successful and not fresh.was_cached and fresh.item_handle == 0
    assert not unknown.was_successful and unknown.quality == 0
    assert unknown.statuses[0].category == CONFIGURATION
    assert element.was_successful and element.value.WhichOneof("kind") == "int32_value"


async def test_every_data_type_encodes(gw: SimulatedGateway, client: Client) -> None:
    refs = [
        "Pump_001.Running",
        "Diag_001.Flags[]",
        "Pump_001.Mode",
        "FT_001.Samples[]",
        "Motor_001.Current",
        "Tank_001.LevelProfile[]",
        "Pump_001.Speed",
        "Diag_001.Values[]",
        "Tank_001.BatchId",
        "Diag_001.Names[]",
        "Valve_001.LastChange",
        "Diag_001.Stamps[]",
        "Pump_001.RunHours",
        "Diag_001.Durations[]",
        "Diag_001.ItemReference",
        "Diag_001.LastStatus",
        "Diag_001.ValueType",
        "Diag_001.AccessLevel",
        "Diag_001.Quality",
        "Diag_001.State",
        "Diag_001.Record",
        "Tank_001.Label",
        "Diag_001.Log",
        "Diag_001.NoDataValue",
        "Pump_001.Speed.InAlarm",
        "Pump_001.Speed.Priority",
    ]
    server = await client.register()
    await client.subscribe(server, refs)
    gw.step_values(3)
    events = await client.drain()
    assert {e.item_handle for e in events} == set(range(1, len(refs) + 1))
    assert all(e.quality == 192 for e in events), [e for e in events if e.quality != 192][:1]
    kinds = {e.value.WhichOneof("kind") for e in events}
    assert {"bool_value", "int32_value", "float_value", "double_value", "string_value"} <= kinds
    assert {"timestamp_value", "elapsed_value", "array_value"} <= kinds


async def test_alarm_sub_attributes_follow_the_alarm(gw: SimulatedGateway, client: Client) -> None:
    server = await client.register()
    in_alarm, acked, ack_msg = await client.subscribe(
        server, ["Pump_001.Speed.InAlarm", "Pump_001.Speed.Acked", "Pump_001.Speed.AckMsg"]
    )
    await client.advise(server, await client.add_item(server, FREE_DOUBLE))
    gw.set_value(FREE_DOUBLE, 0.0)
    await client.drain()
    gw.set_value(FREE_DOUBLE, 99.0)  # above the limit: the alarm raises
    changes = {e.item_handle: e for e in await client.drain()}
    assert changes[in_alarm].value.bool_value is True
    assert changes[acked].value.bool_value is False
    reply = await client.write(server, ack_msg, mx_str("seen it"))
    assert reply.protocol_status.code == OK
    changes = {e.item_handle: e for e in await client.drain()}
    assert changes[acked].value.bool_value is True


async def test_failures_never_are_grpc_errors(client: Client) -> None:
    server = await client.register()
    for reply in (
        await client.advise(server, 12345),
        await client.write(123, 456, mx_double(1)),
        await authenticate(client, 77, "operator", "operator"),
    ):
        assert reply.protocol_status.code == MXACCESS_FAILURE


async def test_stream_rejects_faulted_and_second_subscriber(client: Client) -> None:
    first = client.stream()
    server = await client.register()
    await client.advise(server, await client.add_item(server, FREE_DOUBLE))
    await take(first, 1)
    second = client.stream()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await second.read()
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    batches = client.stream_batches()
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await batches.read()
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    first.cancel()


async def test_set_value_checks_the_type(gw: SimulatedGateway) -> None:
    with pytest.raises(ValueError):
        gw.set_value(OPERATE_DOUBLE, "text")
    with pytest.raises(ValueError):
        gw.set_value(INT_ARRAY, 3)
    with pytest.raises(KeyError):
        gw.set_value(INT_ARRAY + "[42]", 3)
    with pytest.raises(KeyError):
        gw.set_value("Nope.Nothing", 1)
    gw.set_value(INT_ARRAY + "[1]", 3)
    assert gw.attribute(INT_ARRAY).value[0] == 3  # type: ignore[index, union-attr]
