"""Session commands against the simulator over loopback gRPC: typed results and errors."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest

from mxgateway import (
    GalaxyRepositoryClient,
    GatewayClient,
    MxAccessError,
    MxDataType,
    MxEventFamily,
    MxGatewayClientClosedError,
    MxGatewayRequestTooLargeError,
    MxGatewaySessionNotFoundError,
    ProtocolStatusCode,
    to_mx_value,
)
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim import SimulatedGateway
from tests.client._helpers import find_attribute, first_matching, take


async def test_register_add_advise_streams_typed_events(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    reference = sim.sample_references(1)[0]
    async with await client.open_session(client_session_name="python-client") as session:
        assert session.session_id
        server = await session.register("python-client")
        item = await session.add_item(server, reference)
        await session.advise(server, item)
        events = await take(session.stream_events(), 3)
    assert [e.item_handle for e in events] == [item] * 3
    assert all(e.family == MxEventFamily.ON_DATA_CHANGE for e in events)
    sequences = [e.worker_sequence for e in events]
    assert sequences == list(range(sequences[0], sequences[0] + 3))
    assert all(e.session_id == session.session_id for e in events)
    assert events[0].source_timestamp_ns is not None
    assert events[0].source_timestamp is not None
    assert events[0].source_timestamp.tzinfo is UTC


async def test_write_before_advise_raises_mxaccess_error_with_reply(
    client: GatewayClient, galaxy: GalaxyRepositoryClient
) -> None:
    reference = await find_attribute(galaxy, data_type=MxDataType.DOUBLE)
    async with await client.open_session() as session:
        server = await session.register("t")
        item = await session.add_item(server, reference)
        with pytest.raises(MxAccessError) as info:
            await session.write(server, item, 1.5)
    error = info.value
    assert error.raw_reply is not None
    assert error.raw_reply.protocol_status.code == int(ProtocolStatusCode.MXACCESS_FAILURE)
    assert error.hresult != 0 or any(not s.ok for s in error.statuses)
    parts = str(error).split(": ")
    assert len(parts) == len(set(parts)), str(error)  # each text said once


async def test_invoke_raw_leaves_mxaccess_failure_in_reply(
    client: GatewayClient, galaxy: GalaxyRepositoryClient
) -> None:
    reference = await find_attribute(galaxy, data_type=MxDataType.DOUBLE)
    async with await client.open_session() as session:
        server = await session.register("t")
        item = await session.add_item(server, reference)
        value = to_mx_value(2.5)  # a generated MxValue, as the original client documents
        command = pb.MxCommand(
            kind=pb.MX_COMMAND_KIND_WRITE,
            write=pb.WriteCommand(server_handle=server, item_handle=item, value=value),
        )
        reply = await session.invoke_raw(command)
        assert reply.protocol_status.code == int(ProtocolStatusCode.MXACCESS_FAILURE)
        with pytest.raises(MxAccessError):
            await session.invoke(command)


async def test_write_after_advise_completes_and_changes_value(
    client: GatewayClient, galaxy: GalaxyRepositoryClient
) -> None:
    reference = await find_attribute(galaxy, data_type=MxDataType.DOUBLE)
    async with await client.open_session() as session:
        server = await session.register("t")
        item = await session.add_item(server, reference)
        await session.advise(server, item)
        events = session.stream_events()
        await session.write(server, item, 42.25)
        complete = await first_matching(
            events, lambda e: e.family == MxEventFamily.ON_WRITE_COMPLETE
        )
        assert complete.item_handle == item
        results = await session.read_bulk(server, [reference])
    assert results[0].was_successful
    assert results[0].value == 42.25


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
async def test_non_finite_write_rejected_before_sending(
    client: GatewayClient, galaxy: GalaxyRepositoryClient, bad: float
) -> None:
    reference = await find_attribute(galaxy, data_type=MxDataType.DOUBLE)
    async with await client.open_session() as session:
        server = await session.register("t")
        item = await session.add_item(server, reference)
        await session.advise(server, item)
        with pytest.raises(ValueError):
            await session.write(server, item, bad)
        # Nothing was written: the value is still a finite generated one.
        results = await session.read_bulk(server, [reference])
        assert math.isfinite(results[0].value)


async def test_out_of_range_int_rejected(client: GatewayClient) -> None:
    async with await client.open_session() as session:
        with pytest.raises(ValueError, match="int64"):
            await session.write(1, 1, 2**63)
        with pytest.raises(ValueError):
            await session.write(2**31, 1, 1)


async def test_secured_attribute_needs_write_secured(
    client: GatewayClient, galaxy: GalaxyRepositoryClient
) -> None:
    reference = await find_attribute(galaxy, data_type=MxDataType.BOOLEAN, security=(2,))
    async with await client.open_session() as session:
        server = await session.register("t")
        item = await session.add_item(server, reference)
        await session.advise(server, item)
        with pytest.raises(MxAccessError):
            await session.write(server, item, True)
        user = await session.authenticate_user(server, "operator", "operator")
        assert user > 0
        await session.write_secured(server, item, True, current_user_id=user)
        with pytest.raises(MxAccessError) as info:
            await session.authenticate_user(server, "operator", "wrong-password")
        assert "wrong-password" not in str(info.value)
        assert "wrong-password" not in repr(info.value.raw_reply.statuses)


async def test_bulk_family_keeps_failures_in_results(
    client: GatewayClient, sim: SimulatedGateway, galaxy: GalaxyRepositoryClient
) -> None:
    references = sim.sample_references(3)
    double_ref = await find_attribute(galaxy, data_type=MxDataType.DOUBLE)
    async with await client.open_session() as session:
        server = await session.register("bulk")
        added = await session.add_item_bulk(server, references)
        assert [r.tag_address for r in added] == references
        assert all(r.was_successful for r in added)
        handles = [r.item_handle for r in added]
        advised = await session.advise_item_bulk(server, [*handles, 999_999])
        assert [r.was_successful for r in advised] == [True, True, True, False]
        subscribed = await session.subscribe_bulk(server, [double_ref])
        double_item = subscribed[0].item_handle
        written = await session.write_bulk(server, [(double_item, 7.5), (999_999, 1.0)])
        assert [r.was_successful for r in written] == [True, False]
        stamped = await session.write2_bulk(server, [(double_item, 8.5, datetime.now(UTC))])
        assert stamped[0].was_successful
        read = await session.read_bulk(server, [double_ref], timeout_ms=500)
        assert read[0].was_cached
        assert read[0].value == 8.5
        assert read[0].raw.value.double_value == 8.5  # the protobuf stays reachable
        assert all(r.was_successful for r in await session.unadvise_item_bulk(server, handles))
        assert all(r.was_successful for r in await session.remove_item_bulk(server, handles))
        assert (await session.unsubscribe_bulk(server, [double_item]))[0].was_successful


async def test_bad_bulk_value_sends_nothing(client: GatewayClient) -> None:
    async with await client.open_session() as session:
        with pytest.raises(ValueError):
            await session.write_bulk(1, [(1, 1.0), (2, math.nan)])


async def test_a_bulk_over_the_message_limit_is_split_into_calls(client: GatewayClient) -> None:
    async with await client.open_session() as session:
        server = await session.register("split")
        tags = ["T" * 1000 + f".A{i}" for i in range(17_000)]  # about 17 MB: over 16 MiB
        results = await session.add_item_bulk(server, tags)
        assert [r.tag_address for r in results] == tags
        assert all(r.was_successful for r in results)  # MXAccess takes unknown references
        assert len(session.items) == len(tags)
        with pytest.raises(MxGatewayRequestTooLargeError):  # one entry alone over the limit
            await session.add_item_bulk(server, ["T" * 17_000_000])


async def test_every_single_command(
    client: GatewayClient, galaxy: GalaxyRepositoryClient, sim: SimulatedGateway
) -> None:
    reference = await find_attribute(galaxy, data_type=MxDataType.DOUBLE)
    async with await client.open_session() as session:
        server = await session.register("all")
        item2 = await session.add_item2(server, reference, "ctx")
        await session.advise_supervisory(server, item2)
        await session.suspend(server, item2)
        await session.activate(server, item2)
        await session.write2(server, item2, 5.0, datetime.now(UTC))
        await session.un_advise(server, item2)
        await session.remove_item(server, item2)
        buffered = await session.add_buffered_item(server, reference, "")
        await session.set_buffered_update_interval(server, 100)
        await session.advise(server, buffered)
        user = await session.archestra_user_to_id(server, "6a0e4d52-1a11-4c7e-9a01-000000000101")
        assert user == 101
        sim.step_values(3)
        drained = await session.drain_events(max_events=100)
        assert all(e.session_id == session.session_id for e in drained)
        await session.unregister(server)


async def test_unknown_session_is_typed(client: GatewayClient) -> None:
    async with await client.open_session() as session:
        await client.close_session(session.session_id)
        with pytest.raises(MxGatewaySessionNotFoundError):
            await session.register("gone")


async def test_close_is_idempotent_and_closed_client_refuses(client: GatewayClient) -> None:
    session = await client.open_session()
    assert await session.close() is not None
    assert await session.close() is None
    await client.close()
    with pytest.raises(MxGatewayClientClosedError):
        await client.open_session()
