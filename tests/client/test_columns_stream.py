"""Session.stream_event_columns: the stream core's promises, in columns.

The same core runs ``stream_event_batches`` and ``stream_event_columns`` (only the shape of
what it yields differs), so these tests check the promises through the columns: rows equal the
struct stream's events; nothing lost or doubled across cuts; ReplayGap and recovery markers
in ``others``; handles mapped after a recovery; names; statistics; the StreamEvents fallback;
a decode error ending the stream after what decoded; confirmed writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import numpy as np
import pytest

from mxgateway import (
    EventColumns,
    GatewayClient,
    MxDataType,
    MxEvent,
    MxEventFamily,
    MxGatewayDecodeError,
    Session,
    StreamPath,
    ValueKind,
)
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.client._helpers import serve_gateway, take
from tests.hardening.conftest import find_reference

PATHS = [pytest.param("auto", id="batches"), pytest.param("single", id="single")]


async def _advised(client: GatewayClient, sim: SimulatedGateway, items: int = 4) -> Session:
    session = await client.open_session()
    server = await session.register("columns")
    results = await session.subscribe_bulk(server, sim.sample_references(items))
    assert all(r.was_successful for r in results)
    return session


def _events(units: list[EventColumns]) -> list[MxEvent]:
    return [e for columns in units for e in columns.to_events()]


def _sequences(units: list[EventColumns]) -> list[int]:
    return [int(s) for columns in units for s in columns.worker_sequence]


async def _within(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("path", PATHS)
async def test_rows_equal_the_struct_stream(
    client: GatewayClient, sim: SimulatedGateway, path: StreamPath
) -> None:
    session = await _advised(client, sim)
    units = await take(session.stream_event_columns(path=path), 3)
    assert all(isinstance(u, EventColumns) and len(u) for u in units)
    events = _events(units)
    sequences = _sequences(units)
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    assert all(e.tag == session.reference(e) is not None for e in events)
    # The replay ring gives the struct stream the same events again (0 would mean "from
    # now": resume after the first one).
    structs = await take(
        session.stream_events(after_worker_sequence=sequences[0], path=path), len(events) - 1
    )
    assert structs == events[1:]
    await session.close()


async def test_resume_after_cuts_loses_and_doubles_nothing(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    session = await _advised(client, sim)
    units: list[EventColumns] = []

    async def consume() -> None:
        async for columns in session.stream_event_columns(retry_budget_s=10):
            units.append(columns)
            if sum(map(len, units)) >= 80:
                return

    task = asyncio.create_task(consume())
    for _ in range(3):
        await asyncio.sleep(0.3)
        sim.drop_streams()
    await asyncio.wait_for(task, 20)
    sequences = _sequences(units)
    assert sequences == list(range(sequences[0], sequences[0] + len(sequences)))
    assert session.stats is not None and session.stats.reconnects >= 1
    await session.close()


async def test_a_resume_drops_what_the_replay_repeats(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    session = await _advised(client, sim)
    first = await take(session.stream_event_columns(), 2)
    last = _sequences(first)[-1]
    # Resuming from the middle of what was read: the rows start right after it.
    again = await take(session.stream_event_columns(after_worker_sequence=last - 3), 1)
    assert int(again[0].worker_sequence[0]) == last - 2
    await session.close()


async def test_replay_gap_is_a_row_in_others() -> None:
    config = SimConfig(rate=200.0, replay_capacity=8)
    async with (
        SimulatedGateway(config) as sim,
        await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True) as client,
    ):
        session = await _advised(client, sim, items=2)
        first = await take(session.stream_event_columns(), 1)
        after = int(first[0].worker_sequence[0])
        sim.step_values(20)  # far more events than the ring keeps
        await asyncio.sleep(0.2)
        units = await take(session.stream_event_columns(after_worker_sequence=after), 1)
        columns = units[0]
        assert columns.value_kind[0] == ValueKind.OTHER
        row, event = columns.others[0]
        assert row == 0 and event.replay_gap is not None
        assert event.replay_gap.requested_after_sequence == after
        assert session.stats is not None and session.stats.replay_gaps == 1
        await session.close()


async def test_statistics_count_rows(client: GatewayClient, sim: SimulatedGateway) -> None:
    session = await _advised(client, sim)
    units = await take(session.stream_event_columns(), 3)
    stats = session.stats
    assert stats is not None
    assert stats.events == sum(map(len, units))
    assert stats.last_sequence == _sequences(units)[-1]
    assert sum(stats.latency_counts) == stats.events
    assert stats.path == "batches"
    await session.close()


async def test_recovery_marker_and_mapped_handles() -> None:
    async with (
        SimulatedGateway(SimConfig(rate=20.0, galaxy_size=60)) as sim,
        await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True) as client,
    ):
        writable = find_reference(sim, MxDataType.DOUBLE)
        refs = [r for r in sim.sample_references(7) if r != writable][:6]
        session = await client.open_session("mapper", recover=True)
        server = await session.register("mapper")
        results = await session.subscribe_bulk(server, [*refs, writable])
        # Holes in the numbering: the replay numbers the survivors 1.. again.
        await session.unsubscribe_bulk(server, [r.item_handle for r in results[:3]])
        kept = {r.tag_address: r.item_handle for r in results[3:]}
        old_id = session.session_id
        units: list[EventColumns] = []

        async def consume() -> None:
            async for columns in session.stream_event_columns(retry_budget_s=20):
                units.append(columns)

        task = asyncio.create_task(consume())
        await _within(lambda: sum(map(len, units)) > 5)
        await sim.restart()
        await _within(lambda: any(r.session_recovered for u in units for _, r in u.others))
        mark = len(units)
        await _within(lambda: sum(map(len, units[mark:])) > 40)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        markers = [(u, e) for u in units for _, e in u.others if e.session_recovered]
        assert len(markers) == 1
        marker_unit, marker = markers[0]
        assert len(marker_unit) == 1 and marker_unit.value_kind[0] == ValueKind.OTHER
        recovered = marker.session_recovered
        assert recovered is not None and recovered.old_session_id == old_id
        assert recovered.new_session_id == session.session_id
        assert not session._handles.empty  # the map is in use
        live = set(sim.registry.sessions[session.session_id].items)
        assert live != set(kept.values())
        after = [u for u in units[mark:] if len(u)]
        items = np.concatenate(
            [u.item_handle[u.family == MxEventFamily.ON_DATA_CHANGE] for u in after]
        )
        assert set(items.tolist()) <= set(kept.values())
        for columns in after:
            for event in columns.to_events():
                if event.family == MxEventFamily.ON_DATA_CHANGE:
                    assert kept[session.reference(event)] == event.item_handle  # type: ignore[index]
                    assert event.tag == session.reference(event)
            assert columns.tags is not None and set(columns.tags) <= set(kept.values())
        await session.close()


async def test_a_confirmed_write_is_routed_by_a_columns_stream(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    double = find_reference(sim, MxDataType.DOUBLE)
    session = await client.open_session()
    server = await session.register("confirm")
    item = await session.add_item(server, double)
    await session.advise(server, item)
    units: list[EventColumns] = []

    async def consume() -> None:
        async for columns in session.stream_event_columns():
            units.append(columns)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    outcome = await session.write(server, item, 2.5, confirm=True)
    assert outcome is not None and outcome.ok
    assert session._outcome_reader is None  # the columns stream delivered it
    await asyncio.sleep(0.1)
    assert outcome.event in _events(units)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await session.close()


async def test_bounds_of_max_batch_events(client: GatewayClient, sim: SimulatedGateway) -> None:
    session = await _advised(client, sim)
    with pytest.raises(ValueError, match="max_batch_events"):
        await take(session.stream_event_columns(max_batch_events=2**32), 1)
    with pytest.raises(TypeError, match="max_batch_events"):
        await take(session.stream_event_columns(max_batch_events=1.5), 1)  # type: ignore[arg-type]
    units = await take(session.stream_event_columns(max_batch_events=2), 3)
    assert all(len(u) <= 2 for u in units)
    await session.close()


# ---- gateways written for the test ----------------------------------------------------------


def _event(sequence: int, session_id: str) -> pb.MxEvent:
    event = pb.MxEvent(
        session_id=session_id,
        family=pb.MX_EVENT_FAMILY_ON_DATA_CHANGE,
        worker_sequence=sequence,
        item_handle=1,
        on_data_change=pb.OnDataChangeEvent(),
    )
    event.value.data_type = pb.MX_DATA_TYPE_INTEGER
    event.value.int32_value = sequence * 10
    return event


class _SingleOnlyGateway(pb_grpc.MxAccessGatewayServicer):
    """The genuine gateway's rpcs: StreamEventBatches is UNIMPLEMENTED."""

    async def StreamEvents(
        self, request: pb.StreamEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.MxEvent]:
        for sequence in range(1, 6):
            yield _event(sequence, request.session_id)


async def test_falls_back_to_stream_events() -> None:
    async def run(endpoint: str) -> None:
        async with await GatewayClient.connect(endpoint=endpoint, plaintext=True) as client:
            session = Session(client, pb.OpenSessionReply(session_id="s1"))
            units = await take(session.stream_event_columns(resume=False), 5)
            assert session.event_path == "single"
            assert _sequences(units)[:5] == [1, 2, 3, 4, 5]
            assert [e.value for e in _events(units)][:5] == [10, 20, 30, 40, 50]

    await serve_gateway(_SingleOnlyGateway(), run)  # type: ignore[abstract]


def _broken_batches(request: pb.StreamEventsRequest) -> list[bytes]:
    """A good MxEventBatch, then bytes that are not one."""
    good = pb.MxEventBatch(events=[_event(1, request.session_id), _event(2, request.session_id)])
    # Field number 0 inside the empty OnDataChangeEvent: the codec rejects it (docs/codec.md
    # D5). Sent as bytes, so that no protobuf version on the server side gets to parse it.
    raw = pb.MxEvent(session_id=request.session_id, worker_sequence=3).SerializeToString()
    bad_event = raw + b"\xa2\x01\x02\x00\x00"
    events_key = (pb.MxEventBatch.DESCRIPTOR.fields_by_name["events"].number << 3) | 2
    bad = bytes([events_key, len(bad_event)]) + bad_event
    return [good.SerializeToString(), bad]


async def _serve_raw_batches(test: Callable[[str], Awaitable[None]]) -> None:
    """A gateway whose StreamEventBatches sends ``_broken_batches`` as raw bytes."""

    async def stream(
        request: pb.StreamEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        for data in _broken_batches(request):
            yield data
        await asyncio.sleep(3600)

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        (
            grpc.method_handlers_generic_handler(
                "mxaccess_gateway.v1.MxAccessGateway",
                {
                    "StreamEventBatches": grpc.unary_stream_rpc_method_handler(
                        stream, request_deserializer=pb.StreamEventsRequest.FromString
                    )
                },
            ),
        )
    )
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        await test(f"127.0.0.1:{port}")
    finally:
        await server.stop(None)


async def test_a_decode_error_ends_the_stream_after_what_decoded() -> None:
    async def run(endpoint: str) -> None:
        async with await GatewayClient.connect(endpoint=endpoint, plaintext=True) as client:
            session = Session(client, pb.OpenSessionReply(session_id="s1"))
            units: list[EventColumns] = []
            with pytest.raises(MxGatewayDecodeError):
                async for columns in session.stream_event_columns(resume=False):
                    units.append(columns)
            assert _sequences(units) == [1, 2]
            assert session.stats is not None and session.stats.decode_errors == 1

    await _serve_raw_batches(run)
