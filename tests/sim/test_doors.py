"""The doors of a write: arrays fit their declared length, sparse totals are the declared length,
a value has at most ``max_value_elements`` elements and ``max_value_bytes`` bytes, DrainEvents
fits one reply. Refused writes are MXAccess failures (replies), change nothing, publish nothing,
and are counted by reason."""

from __future__ import annotations

import grpc
import pytest

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimConfig, SimulatedGateway
from mxgateway.sim._status import DISP_E_BADINDEX, E_INVALIDARG
from tests.sim.helpers import MXACCESS_FAILURE, OK, Client, K, channel_options, mx_str, take

VALUES = "Diag_001.Values"  # DOUBLE[5]
NAMES = "Diag_001.Names"  # STRING[4]
TEXT = "Tank_001.BatchId"  # STRING
CONFIGURATION = pb.MX_STATUS_CATEGORY_CONFIGURATION_ERROR


def doubles(count: int, *, dimensions: list[int] | None = None) -> pb.MxValue:
    return pb.MxValue(
        data_type=pb.MX_DATA_TYPE_DOUBLE,
        array_value=pb.MxArray(
            element_data_type=pb.MX_DATA_TYPE_DOUBLE,
            dimensions=[count] if dimensions is None else dimensions,
            double_values=[float(i) for i in range(count)],
        ),
    )


def sparse(total: int, *elements: tuple[int, float]) -> pb.MxValue:
    return pb.MxValue(
        data_type=pb.MX_DATA_TYPE_DOUBLE,
        sparse_array_value=pb.MxSparseArray(
            element_data_type=pb.MX_DATA_TYPE_DOUBLE,
            total_length=total,
            elements=[
                pb.MxSparseElement(
                    index=i, value=pb.MxValue(data_type=pb.MX_DATA_TYPE_DOUBLE, double_value=x)
                )
                for i, x in elements
            ],
        ),
    )


async def advised(client: Client, ref: str) -> tuple[int, int]:
    server = await client.register()
    item = await client.add_item(server, ref)
    assert (await client.advise(server, item)).protocol_status.code == OK
    return server, item


def assert_refused(reply: pb.MxCommandReply, hresult: int, *words: str) -> None:
    assert reply.protocol_status.code == MXACCESS_FAILURE, reply
    assert reply.hresult == hresult
    assert reply.statuses[0].success == 0
    assert reply.statuses[0].category == CONFIGURATION
    for word in words:
        assert word in reply.diagnostic_message


async def test_whole_array_writes_must_have_the_declared_length(
    gw: SimulatedGateway, client: Client
) -> None:
    server, item = await advised(client, f"{VALUES}[]")
    state = gw.attribute(VALUES)
    assert state is not None
    before = list(state.value)  # type: ignore[call-overload]
    for count in (0, 4, 6, 1000):
        reply = await client.write(server, item, doubles(count))
        assert_refused(reply, E_INVALIDARG, f"array length {count}", "declared length 5")
    reply = await client.write(server, item, doubles(5, dimensions=[5, 1]))
    assert_refused(reply, E_INVALIDARG, "2-dimensional")
    reply = await client.write(server, item, doubles(5, dimensions=[4]))
    assert_refused(reply, E_INVALIDARG, "dimensions say 4")
    mixed = doubles(3, dimensions=[])
    mixed.array_value.int32_values.extend([1, 2])  # 5 elements over two lists
    assert (await client.write(server, item, mixed)).protocol_status.code == MXACCESS_FAILURE
    assert state.value == before  # nothing stored
    assert (await client.write(server, item, doubles(5))).protocol_status.code == OK
    assert state.value == [0.0, 1.0, 2.0, 3.0, 4.0]
    assert gw.stats()["refused"] == {"array_length": 6}


@pytest.mark.parametrize("total", [50_000_000, 2**32 - 1, 4, 6])
async def test_sparse_totals_other_than_the_declared_length_are_refused(
    gw: SimulatedGateway, client: Client, total: int
) -> None:
    server, item = await advised(client, f"{VALUES}[]")
    state = gw.attribute(VALUES)
    assert state is not None
    before = list(state.value)  # type: ignore[call-overload]
    reply = await client.write(server, item, sparse(total, (0, 1.5)))
    assert_refused(reply, E_INVALIDARG, f"total_length {total}", "declared length 5")
    assert state.value == before
    assert gw.stats()["refused"] == {"sparse_total_length": 1}


async def test_sparse_writes_expand_to_the_declared_length(
    gw: SimulatedGateway, client: Client
) -> None:
    server, item = await advised(client, f"{VALUES}[]")
    state = gw.attribute(VALUES)
    assert state is not None
    assert (await client.write(server, item, sparse(0, (1, 7.5)))).protocol_status.code == OK
    assert state.value == [0.0, 7.5, 0.0, 0.0, 0.0]
    assert (await client.write(server, item, sparse(5, (4, 2.5)))).protocol_status.code == OK
    assert state.value == [0.0, 0.0, 0.0, 0.0, 2.5]
    reply = await client.write(server, item, sparse(5, (5, 1.0)))
    assert_refused(reply, DISP_E_BADINDEX, "index 5", "declared length 5")
    assert state.value == [0.0, 0.0, 0.0, 0.0, 2.5]
    assert gw.stats()["refused"] == {"array_index": 1}


async def test_element_writes_past_the_declared_length(
    gw: SimulatedGateway, client: Client
) -> None:
    server = await client.register()
    past = await client.add_item(server, f"{VALUES}[6]")  # accepted, as MXAccess does
    inside = await client.add_item(server, f"{VALUES}[5]")
    for item in (past, inside):
        assert (await client.advise(server, item)).protocol_status.code == OK
    reply = await client.write(
        server, past, pb.MxValue(data_type=pb.MX_DATA_TYPE_DOUBLE, double_value=1.0)
    )
    assert_refused(reply, DISP_E_BADINDEX, "element 6", "declared length 5")
    reply = await client.write(
        server, inside, pb.MxValue(data_type=pb.MX_DATA_TYPE_DOUBLE, double_value=9.0)
    )
    assert reply.protocol_status.code == OK
    state = gw.attribute(VALUES)
    assert state is not None and state.value[4] == 9.0  # type: ignore[index]
    assert gw.stats()["refused"] == {"array_index": 1}


async def test_a_million_elements_are_refused_and_subscribers_keep_their_stream(
    gw: SimulatedGateway, channel: grpc.aio.Channel
) -> None:
    """The hostile user's write: 1,000,000 elements to a 5-element array. It used to be stored
    and published, and every subscriber lost its stream to RESOURCE_EXHAUSTED."""
    writer = Client(pb_grpc.MxAccessGatewayStub(channel))
    reader = Client(pb_grpc.MxAccessGatewayStub(channel))
    await writer.open()
    await reader.open()
    server, item = await advised(writer, f"{VALUES}[]")
    await advised(reader, f"{VALUES}[]")
    stream = reader.stream()
    (initial,) = await take(stream, 1)
    assert initial.value.array_value.dimensions == [5]
    reply = await writer.write(server, item, doubles(1_000_000))
    assert_refused(reply, E_INVALIDARG, "1000000 elements", "(100000)")
    assert (await writer.write(server, item, doubles(5))).protocol_status.code == OK
    (change,) = await take(stream, 1)  # the stream lives on: the good write arrives
    assert list(change.value.array_value.double_values) == [0.0, 1.0, 2.0, 3.0, 4.0]
    stream.cancel()
    assert gw.stats()["refused"] == {"value_elements": 1}


async def test_values_over_the_byte_limit_are_refused(gateway_factory) -> None:
    async with (
        gateway_factory(max_message_bytes=64 * 1024) as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        assert gw.config.value_bytes_limit == 16 * 1024  # a quarter of the message limit
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        server, item = await advised(client, TEXT)
        names_server, names = await advised(client, f"{NAMES}[]")
        reply = await client.write(server, item, mx_str("x" * 20_000))
        assert_refused(reply, E_INVALIDARG, "bytes encoded", f"({16 * 1024})")
        big_names = pb.MxValue(
            data_type=pb.MX_DATA_TYPE_STRING,
            array_value=pb.MxArray(
                element_data_type=pb.MX_DATA_TYPE_STRING, string_values=["y" * 5000] * 4
            ),
        )
        reply = await client.write(names_server, names, big_names)
        assert_refused(reply, E_INVALIDARG, "bytes encoded")
        assert (await client.write(server, item, mx_str("x" * 10_000))).protocol_status.code == OK
        assert gw.stats()["refused"] == {"value_bytes": 2}


async def test_in_a_bulk_only_the_refused_entry_fails(gw: SimulatedGateway, client: Client) -> None:
    server = await client.register()
    handles = await client.subscribe(server, [f"{VALUES}[]", f"{VALUES}[]"])
    reply = await client.invoke(
        K.MX_COMMAND_KIND_WRITE_BULK,
        write_bulk=pb.WriteBulkCommand(
            server_handle=server,
            entries=[
                pb.WriteBulkEntry(item_handle=handles[0], value=sparse(2**32 - 1, (0, 1.0))),
                pb.WriteBulkEntry(item_handle=handles[1], value=doubles(5)),
            ],
        ),
    )
    assert reply.protocol_status.code == OK
    bad, good = reply.bulk_write.results
    assert not bad.was_successful and bad.hresult == E_INVALIDARG
    assert "total_length" in bad.error_message
    assert good.was_successful
    assert gw.stats()["refused"] == {"sparse_total_length": 1}


async def test_element_cap_is_configurable(gateway_factory) -> None:
    async with (
        gateway_factory(max_value_elements=4) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        server, item = await advised(client, f"{VALUES}[]")
        reply = await client.write(server, item, doubles(5))  # the declared length, but > 4
        assert_refused(reply, E_INVALIDARG, "5 elements", "(4)")
        reply = await client.write(server, item, sparse(0, *[(i, 1.0) for i in range(5)]))
        assert_refused(reply, E_INVALIDARG, "5 elements")


async def test_drain_events_fits_one_reply(gateway_factory) -> None:
    limit = 64 * 1024
    async with (
        gateway_factory(max_message_bytes=limit) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        server, _ = await advised(client, TEXT)
        for i in range(400):
            gw.set_value(TEXT, f"{i:04d}" + "z" * 400)
        queued = len(gw.registry.sessions[client.session_id].pending)
        assert queued == 401  # the advise value, then 400 changes
        drained: list[pb.MxEvent] = []
        while len(drained) < queued:
            reply = await client.invoke(
                K.MX_COMMAND_KIND_DRAIN_EVENTS, drain_events=pb.DrainEventsCommand(max_events=0)
            )
            assert reply.protocol_status.code == OK
            assert reply.ByteSize() <= limit
            assert reply.drain_events.events, "a drain made no progress"
            drained.extend(reply.drain_events.events)
        sequences = [e.worker_sequence for e in drained]
        assert sequences == list(range(1, queued + 1))
        assert server > 0


def test_config_bounds() -> None:
    with pytest.raises(ValueError, match="max_value_elements"):
        SimConfig(max_value_elements=0)
    with pytest.raises(ValueError, match="max_value_bytes"):
        SimConfig(max_value_bytes=10)
    assert SimConfig().value_bytes_limit == 1024 * 1024


# ----- what the simulator keeps: names, items, server handles; bulk replies -----


async def test_long_names_are_refused_and_nothing_is_kept(
    gw: SimulatedGateway, client: Client
) -> None:
    long_name = "n" * 1025
    opened = await Client(client.stub).open(name=long_name)
    assert opened.protocol_status.code == pb.PROTOCOL_STATUS_CODE_INVALID_REQUEST
    assert "1025 characters" in opened.protocol_status.message
    assert not opened.session_id and gw.session_ids() == [client.session_id]
    reply = await client.invoke(
        K.MX_COMMAND_KIND_REGISTER, register=pb.RegisterCommand(client_name=long_name)
    )
    assert_refused(reply, E_INVALIDARG, "client name", "(1024)")
    server = await client.register("n" * 1024)  # at the limit: fine
    reply = await client.invoke(
        K.MX_COMMAND_KIND_ADD_ITEM,
        add_item=pb.AddItemCommand(server_handle=server, item_definition="T." + "x" * 1100),
    )
    assert_refused(reply, E_INVALIDARG, "item definition")
    reply = await client.invoke(
        K.MX_COMMAND_KIND_SUBSCRIBE_BULK,
        subscribe_bulk=pb.SubscribeBulkCommand(
            server_handle=server, tag_addresses=["T." + "y" * 1100, "Pump_001.Speed"]
        ),
    )
    bad, good = reply.bulk_subscribe.results
    assert not bad.was_successful and bad.hresult == E_INVALIDARG
    assert good.was_successful
    assert len(gw.registry.sessions[client.session_id].items) == 1
    assert gw.stats()["refused"] == {"name_length": 4}


async def test_alarm_comments_are_names_too(gw: SimulatedGateway, client: Client) -> None:
    acked = await client.stub.AcknowledgeAlarm(
        pb.AcknowledgeAlarmRequest(
            alarm_full_reference="Pump_001.Speed", operator_comment="c" * 5000
        )
    )
    assert acked.protocol_status.code == pb.PROTOCOL_STATUS_CODE_INVALID_REQUEST
    assert "operator_comment" in acked.protocol_status.message
    server, item = await advised(client, "Pump_001.Speed.AckMsg")
    reply = await client.write(server, item, mx_str("c" * 5000))
    assert_refused(reply, E_INVALIDARG, "acknowledgement comment")
    assert gw.stats()["refused"] == {"name_length": 2}


async def test_items_per_session_are_capped(gateway_factory) -> None:
    async with (
        gateway_factory(max_items_per_session=3) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        server = await client.register()
        reply = await client.invoke(
            K.MX_COMMAND_KIND_ADD_ITEM_BULK,
            add_item_bulk=pb.AddItemBulkCommand(
                server_handle=server, tag_addresses=[f"Pump_00{i}.Speed" for i in range(1, 6)]
            ),
        )
        results = reply.bulk_subscribe.results
        assert [r.was_successful for r in results] == [True, True, True, False, False]
        assert "item limit reached (3 per session)" in results[3].error_message
        await client.invoke(
            K.MX_COMMAND_KIND_REMOVE_ITEM,
            remove_item=pb.RemoveItemCommand(server_handle=server, item_handle=1),
        )
        assert await client.add_item(server, "Pump_001.Speed") > 0  # room again
        other = Client(client.stub)
        await other.open()  # the cap is per session
        assert await other.add_item(await other.register(), "Pump_001.Speed") > 0
        assert gw.stats()["refused"] == {"items": 2}


async def test_server_handles_per_session_are_capped(gw: SimulatedGateway, client: Client) -> None:
    from mxgateway.sim._session import MAX_SERVER_HANDLES

    for _ in range(MAX_SERVER_HANDLES):
        await client.register()
    reply = await client.invoke(K.MX_COMMAND_KIND_REGISTER, register=pb.RegisterCommand())
    assert reply.protocol_status.code == MXACCESS_FAILURE
    assert f"server handle limit reached ({MAX_SERVER_HANDLES}" in reply.diagnostic_message
    await client.invoke(
        K.MX_COMMAND_KIND_UNREGISTER, unregister=pb.UnregisterCommand(server_handle=1)
    )
    assert await client.register() > 0
    assert gw.stats()["refused"] == {"server_handles": 1}


async def test_a_bulk_whose_reply_is_over_the_limit_runs_and_its_reply_is_refused(
    gateway_factory,
) -> None:
    limit = 64 * 1024
    async with (
        gateway_factory(max_message_bytes=limit) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        server = await client.register()
        # ~52 KiB asked; each result echoes its tag with a handle and a status: ~170 KiB
        tags = [f"N{i:05d}.Attribute" for i in range(3000)]
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.invoke(
                K.MX_COMMAND_KIND_ADD_ITEM_BULK,
                add_item_bulk=pb.AddItemBulkCommand(server_handle=server, tag_addresses=tags),
            )
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "SERVER: Sent message larger than max" in (info.value.details() or "")
        assert len(gw.registry.sessions[client.session_id].items) == 3000  # every entry ran
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.invoke(
                K.MX_COMMAND_KIND_READ_BULK,
                read_bulk=pb.ReadBulkCommand(server_handle=server, tag_addresses=tags),
            )
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert await client.register() > 0  # the session goes on
        assert gw.stats()["refused"] == {"reply_bytes": 2}
