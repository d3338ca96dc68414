"""Consumers wired to a gateway: the mxgateway client, the generated stubs, a raw reader.

Every consumer opens its own session and registers, opens its event stream, and only once the
stream is open advises the items (SubscribeBulk): a gateway then never queues events for a
session nobody reads yet (a paced source would overflow that queue at once). It reads for the
warm-up and the window, then closes the session. Streams run with ``resume=False``: a broken
stream is reported, not resumed. A stream that ends because the gateway's queue for the session
overflowed (the consumer fell behind a paced source) is recorded in ``StreamStats.error`` and
the run goes on; any other failure is raised.

* ``measure_client``: ``Session.stream_event_batches(max_batch_events=...)`` (``path
  "batches"``; falls back to StreamEvents when the gateway answers UNIMPLEMENTED and says so
  in ``StreamStats.path``), ``Session.stream_event_columns(max_batch_events=...)`` (``path
  "columns"``: EventColumns, numpy; the same fallback) or
  ``Session.stream_events(path="single")``, one event at a time, read by the client's event
  receiver (``ClientOptions.event_receiver``).
* ``measure_stub``: what a consumer written on the plain generated stubs does: protobuf
  messages (``MxEventBatch`` or ``MxEvent``) on a grpc.aio channel of its own, then
  ``event_from_pb`` for every event.
* ``measure_raw``: the raw bytes of the same rpc on the client's grpc.aio channel (identity
  deserializer, no decoding): the transport's ceiling. It counts the events really in each
  message: one per StreamEvents message; for StreamEventBatches the ``events`` entries, counted
  without decoding them (``batch_event_counter``).

Bytes are counted on every path: for the client, the stream's own count
(``Session.stats.bytes``: the stream core adds up every message it reads, from either
receiver), so the benchmark patches nothing; for the stubs, by a wrapper around the protobuf
deserializer (one Python call per message); the raw reader sums the lengths itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from mxgateway_cli._bench.consume import (
    ClockSource,
    batch_event_counter,
    consume_batches,
    consume_columns,
    consume_events,
    consume_raw,
    default_clocks,
)
from mxgateway_cli._bench.stats import CpuClock, StreamStats, receiver_thread_clock

if TYPE_CHECKING:
    from mxgateway import GatewayClient, MxEvent, Session

__all__ = [
    "PathName",
    "Spec",
    "measure_client",
    "measure_raw",
    "measure_stub",
]

PathName = Literal["batches", "columns", "single"]

_SERVICE = "/mxaccess_gateway.v1.MxAccessGateway/"
_CLOSE_TIMEOUT_S = 5.0
# How long to wait for a consumer's stream call to be opened before advising anyway, and how
# long after it is open before the items are advised (for the request to reach the gateway and
# the subscriber to be attached; loopback takes well under a millisecond).
_OPEN_TIMEOUT_S = 10.0
_ATTACH_SETTLE_S = 0.1
# The thread receiver's reader thread is named after the session (mxgateway._stream_core).
_RECEIVER_THREAD = "mxgateway-events-{session:.16}"


@dataclass(frozen=True, slots=True)
class Spec:
    """What each consumer of a run does: the items, the rpc, the window, what to measure.

    ``per_event_latency``: on the batch path, one latency sample per event (paced runs) rather
    than one per message. ``simulator_cpu``: the built-in simulator's CPU clock, read over each
    window.
    """

    tags: tuple[str, ...]
    path: PathName = "batches"
    batch_size: int = 1000
    warmup: float = 1.0
    duration: float = 5.0
    per_event_latency: bool = False
    progress: bool = False
    simulator_cpu: CpuClock | None = None

    def clocks(self, **more: CpuClock | None) -> ClockSource:
        """The clocks of a window: this process, the loop's thread, the simulator, ``more``."""

        def source() -> dict[str, CpuClock]:
            clocks = default_clocks()
            if self.simulator_cpu is not None:
                clocks["simulator"] = self.simulator_cpu
            clocks.update({name: clock for name, clock in more.items() if clock is not None})
            return clocks

        return source


# -- the stubs' byte count --------------------------------------------------------------------


def _counting(
    deserialize: Callable[[bytes], Any],
) -> tuple[Callable[[bytes], Any], Callable[[], int]]:
    total = 0

    def count(data: bytes) -> Any:
        nonlocal total
        total += len(data)
        return deserialize(data)

    return count, lambda: total


# -- sessions ---------------------------------------------------------------------------------


async def _close_quietly(session: Session) -> None:
    # Best effort and bounded: also runs while a Ctrl-C is unwinding the run.
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_CLOSE_TIMEOUT_S):
            await session.close()


@contextlib.asynccontextmanager
async def _session(client: GatewayClient, name: str) -> AsyncIterator[tuple[Session, int]]:
    """A new session with a registered server handle; closed afterwards."""
    session = await client.open_session(name)
    try:
        server = await session.register(name)
        yield session, server
    finally:
        await _close_quietly(session)


async def _advise(session: Session, server: int, tags: Sequence[str]) -> None:
    from mxgateway import MxGatewayProtocolError

    results = await session.subscribe_bulk(server, tags)
    failed = [r for r in results if not r.was_successful]
    if len(failed) == len(results):
        raise MxGatewayProtocolError(
            f"SubscribeBulk advised none of the {len(tags)} items "
            f"(first: {failed[0].error_message or 'failed'})"
        )


async def _attach_then_advise(
    session: Session,
    server: int,
    tags: Sequence[str],
    consume: Callable[[asyncio.Event], Awaitable[StreamStats]],
    stats: StreamStats,
) -> None:
    """Run ``consume`` (it opens the stream and sets the event when it starts reading: the
    stream's call exists by the time it first waits); advise ``tags`` ``_ATTACH_SETTLE_S``
    after that. An overflow of the session's queue (the consumer fell behind a paced source)
    is recorded in ``stats``; any other failure is raised."""
    from mxgateway import MxGatewayEventQueueOverflowError

    opened = asyncio.Event()
    task = asyncio.ensure_future(consume(opened))
    waiter = asyncio.ensure_future(opened.wait())
    try:
        await asyncio.wait(
            [task, waiter], timeout=_OPEN_TIMEOUT_S, return_when=asyncio.FIRST_COMPLETED
        )
        if not task.done():
            await asyncio.wait([task], timeout=_ATTACH_SETTLE_S)
        if not task.done():
            await _advise(session, server, tags)
        await task
    except MxGatewayEventQueueOverflowError as error:
        stats.error = f"{type(error).__name__}: {error}"
    except BaseException:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        raise
    finally:
        waiter.cancel()


async def _aio_messages(
    multicallable: Any, request: Any, metadata: Sequence[tuple[str, str]], what: str
) -> AsyncGenerator[Any, None]:
    """The messages of a grpc.aio unary-stream call; its errors as mxgateway exceptions; the
    call cancelled when the iterator is closed."""
    import grpc

    from mxgateway._rpc import translate_rpc_error

    call = multicallable(request, metadata=metadata)
    try:
        async for message in call:
            yield message
    except grpc.aio.AioRpcError as error:
        raise translate_rpc_error(error, what, not_found_is_session=True) from None
    finally:
        call.cancel()


# -- the consumers ----------------------------------------------------------------------------


async def measure_client(client: GatewayClient, spec: Spec) -> StreamStats:
    """One session read through the mxgateway client (see the module docstring).

    It changes nothing on the client: the bytes are the stream's own count
    (``Session.stats.bytes``).
    """
    receiver = client.event_receiver
    if spec.path == "batches":
        stats = StreamStats("stream_event_batches")
    elif spec.path == "columns":
        stats = StreamStats("stream_event_columns")
    else:
        stats = StreamStats("stream_events", receiver=receiver)
    async with _session(client, "mxgw-py bench") as (session, server):
        thread_clock: CpuClock | None = None

        def receiver_thread() -> float | None:
            # Looked up when the window starts (the reader thread exists by then).
            nonlocal thread_clock
            if thread_clock is None:
                name = _RECEIVER_THREAD.format(session=session.session_id)
                thread_clock = receiver_thread_clock(name)
            return thread_clock() if thread_clock is not None else None

        clocks = spec.clocks(receiverThread=receiver_thread if receiver == "thread" else None)

        def wire() -> int:
            # The stream core counts the bytes of every message it reads, from either receiver.
            return session.stats.bytes if session.stats is not None else 0

        def consume(opened: asyncio.Event) -> Awaitable[StreamStats]:
            if spec.path == "batches":
                return consume_batches(
                    session.stream_event_batches(max_batch_events=spec.batch_size, resume=False),
                    stats,
                    warmup=spec.warmup,
                    duration=spec.duration,
                    wire=wire,
                    clocks=clocks,
                    per_event_latency=spec.per_event_latency,
                    progress=spec.progress,
                    opened=opened,
                )
            if spec.path == "columns":
                return consume_columns(
                    session.stream_event_columns(max_batch_events=spec.batch_size, resume=False),
                    stats,
                    warmup=spec.warmup,
                    duration=spec.duration,
                    wire=wire,
                    clocks=clocks,
                    per_event_latency=spec.per_event_latency,
                    progress=spec.progress,
                    opened=opened,
                )
            return consume_events(
                session.stream_events(path="single", resume=False),
                stats,
                warmup=spec.warmup,
                duration=spec.duration,
                wire=wire,
                clocks=clocks,
                progress=spec.progress,
                opened=opened,
            )

        await _attach_then_advise(session, server, spec.tags, consume, stats)
        stats.path = session.event_path or spec.path
    if spec.path == "columns" and stats.path == "batches":
        stats.path = "columns"  # StreamEventBatches, decoded into columns
    if stats.path == "single" and spec.path != "single":
        # The gateway lacks StreamEventBatches: StreamEvents carries one event per message,
        # and the lists (or columns) were drains of messages that arrived together, not
        # messages.
        stats.receiver = receiver
        stats.messages = stats.events
    return stats


async def measure_stub(client: GatewayClient, spec: Spec) -> StreamStats:
    """The generated-stub consumer: protobuf messages, then ``event_from_pb`` for each event.

    Its own grpc.aio channel (the client's options) and its own session; the same checks as
    ours. The messages are deserialized by the generated classes, as the generated stub's
    multicallables do, through a wrapper that counts their bytes.
    """
    from mxgateway._channel import open_channel
    from mxgateway._pbconvert import event_from_pb
    from mxgateway.generated import mxaccess_gateway_pb2 as pb

    batches = spec.path != "single"
    method = "StreamEventBatches" if batches else "StreamEvents"
    message_type: Any = pb.MxEventBatch if batches else pb.MxEvent
    deserialize, wire = _counting(message_type.FromString)
    stats = StreamStats("generated_stubs", receiver=None if batches else "aio")
    async with (
        _session(client, "mxgw-py bench stubs") as (session, server),
        open_channel(client.options) as channel,
    ):
        multicallable: Any = channel.unary_stream(
            _SERVICE + method,
            request_serializer=pb.StreamEventsRequest.SerializeToString,
            response_deserializer=deserialize,
        )
        request = pb.StreamEventsRequest(
            session_id=session.session_id, max_batch_events=spec.batch_size if batches else 0
        )

        async def lists() -> AsyncIterator[list[MxEvent]]:
            messages = _aio_messages(
                multicallable, request, client.options.metadata, f"{method} (stubs)"
            )
            async with contextlib.aclosing(messages):
                async for message in messages:
                    if batches:
                        yield [event_from_pb(e) for e in message.events]
                    else:
                        yield [event_from_pb(message)]

        def consume(opened: asyncio.Event) -> Awaitable[StreamStats]:
            return consume_batches(
                lists(),
                stats,
                warmup=spec.warmup,
                duration=spec.duration,
                wire=wire,
                clocks=spec.clocks(),
                per_event_latency=spec.per_event_latency or not batches,
                progress=spec.progress,
                opened=opened,
            )

        await _attach_then_advise(session, server, spec.tags, consume, stats)
    stats.path = spec.path
    return stats


async def measure_raw(client: GatewayClient, spec: Spec) -> StreamStats:
    """Raw bytes with no decoding (identity deserializer) on the client's grpc.aio channel;
    the events really in each message are counted (see the module docstring). No sequence
    check and no latency: nothing is decoded."""
    from mxgateway.generated import mxaccess_gateway_pb2 as pb

    batches = spec.path != "single"
    method = "StreamEventBatches" if batches else "StreamEvents"
    multicallable: Any = client._live_channel().unary_stream(
        _SERVICE + method,
        request_serializer=pb.StreamEventsRequest.SerializeToString,
        response_deserializer=None,
    )
    stats = StreamStats("raw_bytes", receiver=None if batches else "aio")
    async with _session(client, "mxgw-py bench raw") as (session, server):
        request = pb.StreamEventsRequest(
            session_id=session.session_id, max_batch_events=spec.batch_size if batches else 0
        )

        def consume(opened: asyncio.Event) -> Awaitable[StreamStats]:
            return consume_raw(
                _aio_messages(multicallable, request, client.options.metadata, f"{method} (raw)"),
                stats,
                warmup=spec.warmup,
                duration=spec.duration,
                count_events=batch_event_counter() if batches else None,
                clocks=spec.clocks(),
                progress=spec.progress,
                opened=opened,
            )

        await _attach_then_advise(session, server, spec.tags, consume, stats)
    stats.path = spec.path
    return stats
