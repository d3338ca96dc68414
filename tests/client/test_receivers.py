"""The event receivers: the thread receiver for StreamEvents and grpc.aio, through the one stream
core. No thread or connection outlives its stream; a slow consumer holds the reader back; a
deadline, a cancel and a server status behave as on grpc.aio."""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest

from mxgateway import (
    ClientOptions,
    GatewayClient,
    MxEvent,
    MxGatewayClientClosedError,
    MxGatewayProtocolError,
    MxGatewaySessionNotFoundError,
    MxGatewayTransportError,
    Session,
)
from mxgateway._channel import open_sync_channel
from mxgateway._receivers import ThreadReceiver
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.client._helpers import serve_gateway, take
from tests.hardening.proxy import TcpProxy

_STREAM_EVENTS = "/mxaccess_gateway.v1.MxAccessGateway/StreamEvents"


def _reader_threads() -> list[str]:
    return [t.name for t in threading.enumerate() if t.name.startswith("mxgateway-events")]


async def _until(
    predicate: Callable[[], bool],
    within: float = 5.0,
    state: Callable[[], object] = _reader_threads,
) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        assert time.monotonic() < deadline, f"not reached in time: {state()}"
        await asyncio.sleep(0.01)


@pytest.fixture
async def flood() -> AsyncIterator[SimulatedGateway]:
    async with SimulatedGateway(SimConfig(rate=200.0, galaxy_size=60)) as gateway:
        yield gateway


@pytest.fixture
async def proxy(flood: SimulatedGateway) -> AsyncIterator[TcpProxy]:
    async with TcpProxy(flood.endpoint) as tcp_proxy:
        yield tcp_proxy


async def _session(client: GatewayClient, sim: SimulatedGateway, items: int = 10) -> Session:
    session = await client.open_session("receivers")
    server = await session.register("receivers")
    results = await session.subscribe_bulk(server, sim.sample_references(items))
    assert all(r.was_successful for r in results)
    return session


def test_thread_is_the_default_receiver() -> None:
    assert ClientOptions(endpoint="gw:5001").event_receiver == "thread"
    with pytest.raises(ValueError, match="event_receiver"):
        ClientOptions(endpoint="gw:5001", event_receiver="fast")  # type: ignore[arg-type]


async def test_stream_events_runs_on_a_reader_thread(flood: SimulatedGateway) -> None:
    async with await GatewayClient.connect(endpoint=flood.endpoint, plaintext=True) as client:
        assert client.event_receiver == "thread"
        session = await _session(client, flood)
        stream = session.stream_events(path="single")
        first = await anext(stream)
        assert session.event_path == "single"
        assert len(_reader_threads()) == 1
        rest = [await anext(stream) for _ in range(50)]
        sequences = [e.worker_sequence for e in [first, *rest]]
        assert sequences == list(range(sequences[0], sequences[0] + 51))
        await stream.aclose()
        assert _reader_threads() == []  # aclose() returns after the thread ended


async def test_aio_receiver_uses_no_thread(flood: SimulatedGateway) -> None:
    async with await GatewayClient.connect(
        endpoint=flood.endpoint, plaintext=True, event_receiver="aio"
    ) as client:
        assert client.event_receiver == "aio"
        session = await _session(client, flood)
        events = await take(session.stream_events(path="single"), 20)
        assert len(events) == 20
        assert _reader_threads() == []


async def _stream_and_stop(session: Session, stop: str) -> None:
    """Stream on the thread receiver and end the stream the way ``stop`` says."""
    stream = session.stream_events(path="single")
    if stop == "break":
        async for _ in stream:
            break
        del stream  # the generator is finalized by the loop (as after a plain ``break``)
    elif stop == "aclose":
        await anext(stream)
        await stream.aclose()
    elif stop == "cancel":
        got_one = asyncio.Event()

        async def consume() -> None:
            async for _ in stream:
                got_one.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(got_one.wait(), 10)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


@pytest.mark.parametrize("stop", ["break", "aclose", "cancel"])
async def test_no_thread_or_connection_outlives_its_stream(
    flood: SimulatedGateway, proxy: TcpProxy, stop: str
) -> None:
    async with await GatewayClient.connect(endpoint=proxy.endpoint, plaintext=True) as client:
        session = await _session(client, flood)

        def state() -> object:
            return (_reader_threads(), proxy.open_links)

        await _until(lambda: proxy.open_links == 1, state=state)  # the client's own channel
        await _stream_and_stop(session, stop)
        await _until(lambda: state() == ([], 1), state=state)
        # The gateway saw the subscriber leave: a new stream is accepted at once.
        assert await take(session.stream_events(path="single"), 1)
        await _until(lambda: state() == ([], 1), state=state)


async def test_an_error_ends_thread_and_connection(
    flood: SimulatedGateway, proxy: TcpProxy
) -> None:
    async with await GatewayClient.connect(endpoint=proxy.endpoint, plaintext=True) as client:
        session = await _session(client, flood)
        stream = session.stream_events(path="single", resume=False)
        await anext(stream)
        flood.close_session(session.session_id)  # the gateway ends it; the re-attach fails
        with pytest.raises(MxGatewaySessionNotFoundError):
            async for _ in session.stream_events(path="single"):
                pass
        await stream.aclose()
        await _until(lambda: _reader_threads() == [] and proxy.open_links == 1)


async def test_closing_the_client_ends_its_streams(flood: SimulatedGateway) -> None:
    client = await GatewayClient.connect(endpoint=flood.endpoint, plaintext=True)
    session = await _session(client, flood)
    failure: list[BaseException] = []

    async def consume() -> None:
        try:
            async for _ in session.stream_events(path="single"):
                pass
        except Exception as exc:
            failure.append(exc)

    task = asyncio.create_task(consume())
    await _until(lambda: len(_reader_threads()) == 1)
    await client.close()
    await asyncio.wait_for(task, 10)
    assert isinstance(failure[0], MxGatewayClientClosedError)
    assert _reader_threads() == []


async def test_a_slow_consumer_holds_the_reader_back(flood: SimulatedGateway) -> None:
    async with await GatewayClient.connect(endpoint=flood.endpoint, plaintext=True) as client:
        session = await _session(client, flood, items=40)  # 8,000 events/s
        request = pb.StreamEventsRequest(session_id=session.session_id).SerializeToString()
        receiver = ThreadReceiver(
            functools.partial(open_sync_channel, client.options),
            _STREAM_EVENTS,
            request,
            metadata=(),
            max_pending=8,
        )
        try:
            await anext(receiver)
            await asyncio.sleep(0.5)  # about 4,000 events arrive at the gateway meanwhile
            drained = await anext(receiver)
            assert 1 <= len(drained) <= 8  # the thread stopped reading at the bound
        finally:
            await receiver.aclose()
        assert _reader_threads() == []


async def test_a_deadline_ends_the_call(flood: SimulatedGateway) -> None:
    async with await GatewayClient.connect(endpoint=flood.endpoint, plaintext=True) as client:
        session = await client.open_session("quiet")  # nothing advised: nothing arrives
        request = pb.StreamEventsRequest(session_id=session.session_id).SerializeToString()
        receiver = ThreadReceiver(
            functools.partial(open_sync_channel, client.options),
            _STREAM_EVENTS,
            request,
            metadata=(),
            timeout=0.3,
        )
        started = time.monotonic()
        try:
            with pytest.raises(grpc.RpcError) as info:
                await anext(receiver)
        finally:
            await receiver.aclose()
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        assert time.monotonic() - started < 5


class _EndsWithStatus(pb_grpc.MxAccessGatewayServicer):
    """Five events, then a failing status: the status must come after all five."""

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
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "session is FAULTED: test")


@pytest.mark.parametrize("receiver", ["thread", "aio"])
async def test_a_status_arrives_after_the_messages_sent_before_it(receiver: str) -> None:
    async def test(endpoint: str) -> None:
        async with await GatewayClient.connect(
            endpoint=endpoint,
            plaintext=True,
            event_receiver=receiver,  # type: ignore[arg-type]
        ) as client:
            session = Session(client, pb.OpenSessionReply(session_id="s1"))
            seen: list[MxEvent] = []
            with pytest.raises(MxGatewayProtocolError, match="FAULTED"):
                async for event in session.stream_events(path="single"):
                    seen.append(event)
            assert [e.worker_sequence for e in seen] == [1, 2, 3, 4, 5]

    await serve_gateway(_EndsWithStatus(), test)  # type: ignore[abstract]
    assert _reader_threads() == []


class _SingleOnly(pb_grpc.MxAccessGatewayServicer):
    """A gateway without StreamEventBatches (UNIMPLEMENTED), like the genuine one."""

    async def StreamEvents(
        self, request: pb.StreamEventsRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[pb.MxEvent]:
        for sequence in range(1, 4):
            yield pb.MxEvent(
                session_id=request.session_id,
                family=pb.MX_EVENT_FAMILY_ON_DATA_CHANGE,
                worker_sequence=sequence,
                on_data_change=pb.OnDataChangeEvent(),
            )


async def test_the_fallback_is_probed_once_per_client(caplog: pytest.LogCaptureFixture) -> None:
    async def test(endpoint: str) -> None:
        async with await GatewayClient.connect(endpoint=endpoint, plaintext=True) as client:
            for name in ("s1", "s2", "s3"):
                session = Session(client, pb.OpenSessionReply(session_id=name))
                events = [e async for e in session.stream_events(resume=False)]
                assert [e.worker_sequence for e in events] == [1, 2, 3]
                assert session.event_path == "single"

    with caplog.at_level(logging.INFO, logger="mxgateway"):
        await serve_gateway(_SingleOnly(), test)  # type: ignore[abstract]
    lines = [r for r in caplog.records if "lacks StreamEventBatches" in r.getMessage()]
    assert len(lines) == 1


async def test_stream_events_uses_batches_when_offered(flood: SimulatedGateway) -> None:
    async with await GatewayClient.connect(endpoint=flood.endpoint, plaintext=True) as client:
        session = await _session(client, flood)
        events = await take(session.stream_events(), 30)
        assert session.event_path == "batches"
        sequences = [e.worker_sequence for e in events]
        assert sequences == list(range(sequences[0], sequences[0] + 30))
        assert _reader_threads() == []  # batches are read on the loop


async def test_reconnects_during_an_outage_leave_no_connection_behind(
    flood: SimulatedGateway, proxy: TcpProxy
) -> None:
    # Each reconnect attempt of the thread receiver is a channel of its own; one that failed
    # (nothing listening) must not go on reconnecting after it was closed.
    client = await GatewayClient.connect(endpoint=proxy.endpoint, plaintext=True)
    session = await _session(client, flood)
    seen: list[MxEvent] = []

    async def consume() -> None:
        async for events in session.stream_event_batches(path="single", retry_budget_s=20):
            seen.extend(events)

    task = asyncio.create_task(consume())
    await _until(lambda: len(seen) > 50)
    proxy.refuse()
    await asyncio.sleep(1.0)  # several failed attempts
    proxy.accept()
    mark = len(seen)
    await _until(lambda: len(seen) > mark + 100, within=10)
    # The outage cut the commands' connection too: it is back once a call is answered (when
    # grpc's backoff lets it connect again is a matter of timing, not what is tested here).
    async with asyncio.timeout(10):
        while True:
            try:
                await client.query_active_alarms()
                break
            except MxGatewayTransportError:
                await asyncio.sleep(0.1)
    await asyncio.sleep(0.5)
    assert proxy.open_links == 2  # the commands' connection and the stream's, nothing else
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await session.close()
    await client.close()
    await _until(lambda: proxy.open_links == 0)
