"""End-to-end event-stream throughput: the flood simulator in another process, this client.

``mxgw-py sim --flood --plaintext`` runs in a child process (module-scoped fixture); in this
process, on one event loop (uvloop where available), each benchmark times how long a consumer
takes to receive a fixed number of events from a stream that stays open across rounds:

- ``stream_event_batches``: ``Session.stream_event_batches()``, decoded to MxEvent structs by
  the codec, counted with ``len``;
- ``generated_stubs``: the plain generated stub's StreamEventBatches (protobuf parses each
  MxEventBatch) and ``event_from_pb`` for every event - what a consumer written on the
  generated stubs does;
- ``stream_event_columns``: ``Session.stream_event_columns()`` at its default batch size,
  EventColumns counted with ``len``; ``stream_event_batches_default`` is the struct stream at
  that same batch size, and ``raw_bytes_batches`` the stream core's receiver of those messages
  with no decoding (the floor: a raw identity receiver);
- ``stream_events_thread`` / ``stream_events_aio``: ``Session.stream_events(path="single")``,
  StreamEvents, one event (one gRPC message) at a time, read by the thread receiver and by the
  aio receiver (``ClientOptions.event_receiver``);
- ``raw_bytes_single``: StreamEvents through an identity deserializer on grpc.aio, with no
  decoding at all: a plain grpc.aio reader.

Sessions advise their items before the stream opens: the flood simulator produces events only
while a subscriber reads, so nothing queues meanwhile. ``extra_info`` holds events/s (median
and best round) and CPU nanoseconds per event (this process, ``time.process_time``); the last
test prints the ratios of this run (targets in design/architecture.md: batches >= 6x the
stubs, StreamEvents >= 3x a plain grpc.aio reader, columns >= 2x structs and >= 0.6 of the raw
receiver by events per CPU-second). ``bench/stream_throughput.py``,
``bench/shapes_throughput.py`` and ``mxgw-py bench-stream-events --compare`` measure the same
with alternating rounds and CPU per event, which is steadier on a busy machine.

Run: ``python -m pytest bench/test_bench_stream.py --benchmark-only -s``. With
``--benchmark-disable`` (CI) every case reads a short burst once, to check that it works.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from typing import Any

import pytest

import mxgateway
from mxgateway import EventReceiver, GatewayClient, MxEvent, Session
from mxgateway._pbconvert import event_from_pb
from mxgateway._receivers import aio_messages
from mxgateway._session import DEFAULT_COLUMN_BATCH_EVENTS
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway_cli._bench import flood_simulator, simulator_tags

BATCH = 1000
ITEMS = 16
ROUNDS = 3
SERVICE = "/mxaccess_gateway.v1.MxAccessGateway/"

# Events per timed round (and read before timing), full run / --benchmark-disable.
BATCH_EVENTS = (3_000_000, 20_000)
BATCH_WARMUP = (500_000, 2_000)
SINGLE_EVENTS = (50_000, 300)
SINGLE_WARMUP = (5_000, 100)

RESULTS: dict[str, float] = {}
CPU_PER_EVENT: dict[str, float] = {}  # ns of this process's CPU per event


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    if mxgateway.preferred_event_loop() == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return None


@pytest.fixture(scope="module")
def runner() -> Iterator[asyncio.Runner]:
    """One event loop for the module: streams stay open across benchmark rounds."""
    with asyncio.Runner(loop_factory=_loop_factory()) as loop_runner:
        yield loop_runner


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    """``mxgw-py sim --flood`` running in a child process."""
    with flood_simulator() as sim:
        yield sim.endpoint


def _connect(runner: asyncio.Runner, endpoint: str, receiver: EventReceiver) -> GatewayClient:
    async def connect() -> GatewayClient:
        gateway = await GatewayClient.connect(
            endpoint=endpoint, plaintext=True, event_receiver=receiver
        )
        await gateway.wait_ready(30)
        return gateway

    return runner.run(connect())


@pytest.fixture(scope="module")
def client(runner: asyncio.Runner, endpoint: str) -> Iterator[GatewayClient]:
    """A GatewayClient of the simulator (thread receiver, the default)."""
    gateway = _connect(runner, endpoint, "thread")
    try:
        yield gateway
    finally:
        runner.run(gateway.close())


@pytest.fixture(scope="module")
def aio_client(runner: asyncio.Runner, endpoint: str) -> Iterator[GatewayClient]:
    """A GatewayClient of the simulator reading StreamEvents with grpc.aio."""
    gateway = _connect(runner, endpoint, "aio")
    try:
        yield gateway
    finally:
        runner.run(gateway.close())


async def _session(client: GatewayClient) -> Session:
    session = await client.open_session("bench-stream")
    server = await session.register("bench-stream")
    await session.subscribe_bulk(server, simulator_tags(ITEMS))
    return session


async def _take_batches(batches: AsyncIterator[list[MxEvent]], count: int) -> int:
    n = 0
    async for batch in batches:
        n += len(batch)
        if n >= count:
            break
    return n


async def _take_events(events: AsyncIterator[Any], count: int) -> int:
    n = 0
    async for _ in events:
        n += 1
        if n >= count:
            break
    return n


async def _stub_batches(stub: Any, request: Any) -> AsyncIterator[list[MxEvent]]:
    call = stub.StreamEventBatches(request)
    try:
        async for message in call:
            yield [event_from_pb(event) for event in message.events]
    finally:
        call.cancel()


async def _raw_single(channel: Any, request: Any) -> AsyncIterator[bytes]:
    multicallable = channel.unary_stream(
        SERVICE + "StreamEvents",
        request_serializer=pb.StreamEventsRequest.SerializeToString,
        response_deserializer=None,  # the raw bytes: no decoding
    )
    call = multicallable(request)
    try:
        async for raw in call:
            yield raw
    finally:
        call.cancel()


def _run(
    benchmark: Any,
    runner: asyncio.Runner,
    name: str,
    stream: AsyncIterator[Any],
    take: Callable[[AsyncIterator[Any], int], Coroutine[Any, Any, int]],
    sizes: tuple[tuple[int, int], tuple[int, int]],
) -> None:
    disabled = bool(getattr(benchmark, "disabled", False))
    (count, warmup) = (sizes[0][1], sizes[1][1]) if disabled else (sizes[0][0], sizes[1][0])
    times: list[float] = []
    cpu: list[float] = []

    def one_round() -> None:
        started = time.perf_counter()
        cpu_started = time.process_time()
        got = runner.run(take(stream, count))
        times.append(time.perf_counter() - started)
        cpu.append((time.process_time() - cpu_started) / got * 1e9)
        assert got >= count, f"{name}: the stream ended after {got} events"

    try:
        runner.run(take(stream, warmup))
        benchmark.pedantic(one_round, rounds=ROUNDS, iterations=1)
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            runner.run(aclose())
    ordered = sorted(times)
    median = ordered[len(ordered) // 2]
    RESULTS[name] = count / median
    CPU_PER_EVENT[name] = sorted(cpu)[len(cpu) // 2]
    benchmark.extra_info.update(
        {
            "events": count,
            "events_per_s_median": round(count / median),
            "events_per_s_best": round(count / ordered[0]),
            "cpu_ns_per_event_median": round(CPU_PER_EVENT[name], 1),
        }
    )
    print(
        f"\n{name}: {count / median:,.0f} events/s, {CPU_PER_EVENT[name]:.0f} ns CPU/event "
        f"(median of {len(times)})"
    )


def test_stream_event_batches(benchmark: Any, runner: asyncio.Runner, client: Any) -> None:
    session = runner.run(_session(client))
    try:
        stream = session.stream_event_batches(max_batch_events=BATCH, resume=False)
        _run(
            benchmark,
            runner,
            "stream_event_batches",
            stream,
            _take_batches,
            (BATCH_EVENTS, BATCH_WARMUP),
        )
        assert session.event_path == "batches"
    finally:
        runner.run(session.close())


async def _take_columns(units: AsyncIterator[Any], count: int) -> int:
    n = 0
    async for columns in units:
        n += len(columns)
        if n >= count:
            break
    return n


async def _raw_batches(client: GatewayClient, request: Any, batch: int) -> AsyncIterator[int]:
    messages: Any = aio_messages(client._raw_batches, request, metadata=client.options.metadata)
    try:
        async for raws in messages:
            yield len(raws) * batch  # flood batches are full
    finally:
        await messages.aclose()


async def _take_counts(counts: AsyncIterator[int], count: int) -> int:
    n = 0
    async for k in counts:
        n += k
        if n >= count:
            break
    return n


def test_stream_event_columns(benchmark: Any, runner: asyncio.Runner, client: Any) -> None:
    session = runner.run(_session(client))
    try:
        stream = session.stream_event_columns(resume=False)
        _run(
            benchmark,
            runner,
            "stream_event_columns",
            stream,
            _take_columns,
            (BATCH_EVENTS, BATCH_WARMUP),
        )
    finally:
        runner.run(session.close())


def test_stream_event_batches_default(benchmark: Any, runner: asyncio.Runner, client: Any) -> None:
    session = runner.run(_session(client))
    try:
        stream = session.stream_event_batches(
            max_batch_events=DEFAULT_COLUMN_BATCH_EVENTS, resume=False
        )
        _run(
            benchmark,
            runner,
            "stream_event_batches_default",
            stream,
            _take_batches,
            (BATCH_EVENTS, BATCH_WARMUP),
        )
    finally:
        runner.run(session.close())


def test_raw_bytes_batches(benchmark: Any, runner: asyncio.Runner, client: Any) -> None:
    session = runner.run(_session(client))
    try:
        request = pb.StreamEventsRequest(
            session_id=session.session_id, max_batch_events=DEFAULT_COLUMN_BATCH_EVENTS
        )
        counts = _raw_batches(client, request, DEFAULT_COLUMN_BATCH_EVENTS)
        _run(
            benchmark,
            runner,
            "raw_bytes_batches",
            counts,
            _take_counts,
            (BATCH_EVENTS, BATCH_WARMUP),
        )
    finally:
        runner.run(session.close())


def test_generated_stubs(benchmark: Any, runner: asyncio.Runner, client: Any) -> None:
    session = runner.run(_session(client))
    try:
        stub = pb_grpc.MxAccessGatewayStub(client._live_channel())
        request = pb.StreamEventsRequest(session_id=session.session_id, max_batch_events=BATCH)
        # The stubs are far slower: a tenth of the events per round keeps the rounds short.
        sizes = ((BATCH_EVENTS[0] // 10, BATCH_EVENTS[1]), (BATCH_WARMUP[0] // 10, 2_000))
        _run(
            benchmark,
            runner,
            "generated_stubs",
            _stub_batches(stub, request),
            _take_batches,
            sizes,
        )
    finally:
        runner.run(session.close())


def _stream_events(benchmark: Any, runner: asyncio.Runner, client: Any, name: str) -> None:
    session = runner.run(_session(client))
    try:
        stream = session.stream_events(resume=False, path="single")
        _run(benchmark, runner, name, stream, _take_events, (SINGLE_EVENTS, SINGLE_WARMUP))
        assert session.event_path == "single"
    finally:
        runner.run(session.close())


def test_stream_events_thread(benchmark: Any, runner: asyncio.Runner, client: Any) -> None:
    assert client.event_receiver == "thread"
    _stream_events(benchmark, runner, client, "stream_events_thread")


def test_stream_events_aio(benchmark: Any, runner: asyncio.Runner, aio_client: Any) -> None:
    assert aio_client.event_receiver == "aio"
    _stream_events(benchmark, runner, aio_client, "stream_events_aio")


def test_raw_bytes_single(benchmark: Any, runner: asyncio.Runner, client: Any) -> None:
    session = runner.run(_session(client))
    try:
        request = pb.StreamEventsRequest(session_id=session.session_id)
        stream = _raw_single(client._live_channel(), request)
        _run(
            benchmark,
            runner,
            "raw_bytes_single",
            stream,
            _take_events,
            (SINGLE_EVENTS, SINGLE_WARMUP),
        )
    finally:
        runner.run(session.close())


def test_ratios_of_this_run(benchmark: Any) -> None:
    """The ratios of the cases above, printed and kept in ``extra_info``.

    No timed assertion (they vary by machine); the benchmark fixture is only used so that
    ``--benchmark-only`` runs (and saves) this too.
    """
    needed = (
        "stream_event_batches",
        "generated_stubs",
        "stream_events_thread",
        "stream_events_aio",
        "raw_bytes_single",
    )
    missing = [name for name in needed if name not in RESULTS]
    if missing:
        pytest.skip(f"not measured in this run: {', '.join(missing)}")
    batches = RESULTS["stream_event_batches"] / RESULTS["generated_stubs"]
    thread_to_raw = RESULTS["stream_events_thread"] / RESULTS["raw_bytes_single"]
    thread_to_aio = RESULTS["stream_events_thread"] / RESULTS["stream_events_aio"]
    benchmark.pedantic(lambda: None, rounds=1, iterations=1)
    benchmark.extra_info.update(
        {
            "stream_event_batches_to_stubs": round(batches, 2),
            "stream_events_thread_to_raw_bytes": round(thread_to_raw, 3),
            "stream_events_thread_to_aio": round(thread_to_aio, 3),
        }
    )
    print(
        f"\nstream_event_batches / generated stubs: {batches:.1f}x (target >= 6)"
        f"\nstream_events (thread) / raw bytes on grpc.aio: {thread_to_raw:.2f}x (target >= 3)"
        f"\nstream_events thread / aio receiver: {thread_to_aio:.2f}x"
    )
    shapes = ("stream_event_columns", "stream_event_batches_default", "raw_bytes_batches")
    if all(name in CPU_PER_EVENT for name in shapes):
        # Events per CPU-second: the inverse ratio of CPU nanoseconds per event.
        to_structs = CPU_PER_EVENT["stream_event_batches_default"] / CPU_PER_EVENT[shapes[0]]
        to_raw = CPU_PER_EVENT["raw_bytes_batches"] / CPU_PER_EVENT[shapes[0]]
        benchmark.extra_info.update(
            {"columns_to_structs": round(to_structs, 2), "columns_to_raw": round(to_raw, 3)}
        )
        print(
            f"columns / structs (events per CPU-second): {to_structs:.2f}x (target >= 2)\n"
            f"columns / raw receiver: {to_raw:.3f} (target >= 0.6)"
        )
