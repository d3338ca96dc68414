"""Event streams: structs from raw bytes, batches, fallback, resume, gaps, cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from mxgateway import (
    GatewayClient,
    MxEvent,
    MxGatewayProtocolError,
    MxGatewaySessionNotFoundError,
    MxGatewayStreamLostError,
    Session,
    encode_event,
)
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.client._helpers import take
from tests.client.conftest import API_KEY
from tests.streams import MODES, StreamMode, connect, event_lists


@pytest.fixture(params=MODES)
async def mode_client(
    request: pytest.FixtureRequest, sim: SimulatedGateway
) -> AsyncIterator[tuple[StreamMode, GatewayClient]]:
    """A client of ``sim`` for each way a stream runs (see tests/streams.py)."""
    mode: StreamMode = request.param
    async with await connect(mode, sim.endpoint, api_key=API_KEY) as client:
        yield mode, client


async def _advised_session(client: GatewayClient, sim: SimulatedGateway, items: int = 2) -> Session:
    session = await client.open_session()
    server = await session.register("events")
    results = await session.subscribe_bulk(server, sim.sample_references(items))
    assert all(r.was_successful for r in results)
    return session


def _contiguous(events: list[MxEvent]) -> bool:
    sequences = [e.worker_sequence for e in events]
    return sequences == list(range(sequences[0], sequences[0] + len(sequences)))


async def test_batches_path_yields_lists(client: GatewayClient, sim: SimulatedGateway) -> None:
    session = await _advised_session(client, sim)
    batches = await take(session.stream_event_batches(), 3)
    assert session.event_path == "batches"
    events = [e for batch in batches for e in batch]
    assert all(isinstance(e, MxEvent) for e in events)
    assert _contiguous(events)
    await session.close()


async def test_raw_stream_matches_struct_stream(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    session = await _advised_session(client, sim)
    raw = await take(client.stream_events_raw(session.session_id), 3)
    assert all(isinstance(e, pb.MxEvent) for e in raw)
    # The replay ring lets the struct stream read the same events again.
    structs = await take(session.stream_events(after_worker_sequence=raw[0].worker_sequence), 2)
    assert [encode_event(e) for e in structs] == [e.SerializeToString() for e in raw[1:]]
    await session.close()


async def test_resume_after_cut_loses_and_doubles_nothing(
    mode_client: tuple[StreamMode, GatewayClient], sim: SimulatedGateway
) -> None:
    mode, client = mode_client
    session = await _advised_session(client, sim, items=4)
    seen: list[MxEvent] = []

    async def consume() -> None:
        async for batch in event_lists(session, mode, retry_budget_s=10):
            seen.extend(batch)
            if len(seen) >= 60:
                return

    task = asyncio.create_task(consume())
    for _ in range(3):
        await asyncio.sleep(0.3)
        sim.drop_streams()
    await asyncio.wait_for(task, 20)
    assert _contiguous(seen)
    await session.close()


@pytest.mark.parametrize("mode", MODES)
async def test_replay_gap_is_a_typed_item(mode: StreamMode) -> None:
    config = SimConfig(rate=200.0, replay_capacity=8)
    async with (
        SimulatedGateway(config) as sim,
        await connect(mode, sim.endpoint) as client,
    ):
        session = await _advised_session(client, sim, items=2)
        first = await take(session.stream_events(path=mode.path), 1)
        sim.step_values(20)  # far more events than the ring keeps
        await asyncio.sleep(0.2)
        events = await take(
            session.stream_events(after_worker_sequence=first[0].worker_sequence, path=mode.path),
            2,
        )
        gap = events[0].replay_gap
        assert gap is not None
        assert gap.requested_after_sequence == first[0].worker_sequence
        assert gap.oldest_available_sequence > first[0].worker_sequence + 1
        await session.close()


async def test_cancelling_consumer_cancels_call(
    mode_client: tuple[StreamMode, GatewayClient], sim: SimulatedGateway
) -> None:
    mode, client = mode_client
    session = await _advised_session(client, sim)
    got_one = asyncio.Event()

    async def consume() -> None:
        async for _ in session.stream_events(path=mode.path):
            got_one.set()

    task = asyncio.create_task(consume())
    await asyncio.wait_for(got_one.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # The gateway saw the subscriber leave: a new stream is accepted (not FAILED_PRECONDITION).
    events = await take(session.stream_events(path=mode.path), 1)
    assert events
    await session.close()


async def test_first_attach_waits_for_a_leaving_subscriber(
    mode_client: tuple[StreamMode, GatewayClient], sim: SimulatedGateway
) -> None:
    mode, client = mode_client
    session = await _advised_session(client, sim)
    holder = session.stream_events(path=mode.path)
    await anext(holder)  # attached: the session's one subscriber slot is taken
    second = asyncio.create_task(take(session.stream_events(path=mode.path), 2))
    await asyncio.sleep(0.5)
    assert not second.done()  # refused so far, and waiting for the slot
    await holder.aclose()
    events = await asyncio.wait_for(second, 10)
    assert len(events) == 2
    await session.close()


async def test_a_live_second_subscriber_is_refused_after_the_grace(
    mode_client: tuple[StreamMode, GatewayClient], sim: SimulatedGateway
) -> None:
    mode, client = mode_client
    session = await _advised_session(client, sim)
    holder = event_lists(session, mode)
    await anext(holder)
    loop = asyncio.get_running_loop()
    started = loop.time()
    with pytest.raises(MxGatewayProtocolError) as info:
        await take(event_lists(session, mode), 1)
    assert loop.time() - started >= 1.5  # it waited for the slot before giving up
    assert info.value.grpc_code == "FAILED_PRECONDITION"
    assert "subscriber" in str(info.value)
    assert await anext(holder)  # the first stream is untouched
    await holder.aclose()
    await session.close()


async def test_stream_of_unknown_session_is_typed(
    mode_client: tuple[StreamMode, GatewayClient],
) -> None:
    mode, client = mode_client
    session = await client.open_session()
    await session.close()
    with pytest.raises(MxGatewaySessionNotFoundError):
        await take(session.stream_events(path=mode.path), 1)


@pytest.mark.parametrize("mode", MODES)
async def test_gateway_gone_gives_up_within_budget(mode: StreamMode) -> None:
    sim = SimulatedGateway(SimConfig(rate=50.0))
    await sim.start()
    client = await connect(mode, sim.endpoint)
    try:
        session = await _advised_session(client, sim)
        stream = session.stream_events(retry_budget_s=1.0, path=mode.path)
        await anext(stream)
        await sim.stop()
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(MxGatewayStreamLostError):
            async for _ in stream:
                pass
        assert loop.time() - started < 15
    finally:
        await client.close()
        await sim.stop()


class _SingleOnlyGateway(pb_grpc.MxAccessGatewayServicer):
    """A gateway without the batch extension: StreamEventBatches is UNIMPLEMENTED."""

    async def StreamEvents(
        self, request: pb.StreamEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.MxEvent]:
        for sequence in range(1, 6):
            yield pb.MxEvent(
                session_id=request.session_id,
                family=pb.MX_EVENT_FAMILY_ON_DATA_CHANGE,
                worker_sequence=sequence,
                on_data_change=pb.OnDataChangeEvent(),
            )


async def test_falls_back_to_stream_events_when_batches_unimplemented() -> None:
    server = grpc.aio.server()
    pb_grpc.add_MxAccessGatewayServicer_to_server(_SingleOnlyGateway(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with await GatewayClient.connect(
            endpoint=f"127.0.0.1:{port}", plaintext=True
        ) as client:
            session = Session(client, pb.OpenSessionReply(session_id="s1"))
            batches = await take(session.stream_event_batches(resume=False), 5)
            assert session.event_path == "single"
            # Lists of the StreamEvents messages that arrived together (one drain each).
            assert [e.worker_sequence for b in batches for e in b] == [1, 2, 3, 4, 5]
    finally:
        await server.stop(None)
