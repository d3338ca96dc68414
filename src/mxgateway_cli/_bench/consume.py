"""The consumers' hot loops: read for a warm-up and a measured window, check sequences, time.

Four loops, one per shape of what a stream yields: lists of events (``consume_batches``),
``EventColumns`` (``consume_columns``), events one by one (``consume_events``) and raw message
bytes (``consume_raw``). They share the
window (``_Window``): a warm-up that is read and checked but not counted, then ``duration``
seconds from the first message after it; the clock is compared with an int per message and
everything else happens only when it passes the next check time.

Integrity over the whole run (warm-up included): ``worker_sequence`` must be contiguous. Per
message the first and last sequence and the count are checked (``last - first + 1 == len`` and
``first`` = previous ``last + 1``); the codec keeps the wire order, so this proves contiguity
for batches that are ascending inside. A message that fails the check is scanned event by
event, counting dropped (skipped) and duplicate (repeated) sequences exactly. ReplayGap
sentinels are counted apart. Columns are checked the same way on their ``worker_sequence``
column (a replay gap is a row kept whole in ``others``).

Latency: ``time.time_ns()`` when the consumer receives the event minus the event's
``gateway_receive_timestamp_ns`` (set by the gateway, or the simulator, when it produced the
event). Per event on the single path; on the batch path per event with ``per_event_latency``
(paced runs), else once per message from its first (oldest) event weighted by the message's
size, so that the per-event cost of a throughput run stays a ``len()``: an upper bound for the
message's other events.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from array import array
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from mxgateway_cli._bench.stats import CpuClock, StreamStats

if TYPE_CHECKING:
    from mxgateway import MxEvent
    from mxgateway.columns import EventColumns

__all__ = [
    "GRACE_S",
    "ClockSource",
    "batch_event_counter",
    "consume_batches",
    "consume_columns",
    "consume_events",
    "consume_raw",
    "default_clocks",
]

_NS = 1_000_000_000
GRACE_S = 2.0
"""A stalled stream is given up this long after the window's end (at least 10 % of it)."""

ClockSource = Callable[[], dict[str, CpuClock]]
"""Called when the measured window starts: the CPU clocks to read over it, by name."""


def default_clocks() -> dict[str, CpuClock]:
    """This process's CPU and the calling (event loop's) thread's CPU."""
    return {"process": time.process_time, "loopThread": time.thread_time}


class _Window:
    """Warm-up, then the measured window; checked when the clock passes ``check_at``.

    ``tick`` is called from the consumers' hot loops only when ``now >= check_at`` (a plain int
    comparison per message otherwise); it records the baselines, prints progress and says when
    to stop (returns 0).
    """

    def __init__(
        self,
        stats: StreamStats,
        *,
        warmup: float,
        duration: float,
        wire: Callable[[], int] | None,
        clocks: ClockSource | None,
        progress: bool,
    ) -> None:
        self.stats = stats
        self.wire = wire
        self.clock_source = clocks or default_clocks
        self.clocks: dict[str, CpuClock] = {}
        self.base_cpu: dict[str, float | None] = {}
        self.progress = progress
        self.warmup = warmup
        self.duration = duration
        now = time.time_ns()
        self.start_ns = now
        self.measure_ns = now + int(warmup * _NS)
        self.end_ns = self.measure_ns + int(duration * _NS)
        self.measuring = False
        self.finished = False
        self.timed_out = False
        self.base_events = self.base_messages = self.base_bytes = 0
        self.base_t = 0.0
        self.next_progress = now + _NS
        self.progress_events, self.progress_ns = 0, now
        self.check_at = min(self.measure_ns, self.next_progress) if progress else self.measure_ns

    def tick(self, now: int, events: int, messages: int) -> int:
        """Advance the phases at ``now`` (ns); the next check time, or 0 to stop."""
        if not self.measuring and now >= self.measure_ns:
            self.measuring = True
            self.start_ns = now  # progress counts from here now
            self.end_ns = now + int(self.duration * _NS)  # from the first counted message
            self.clocks = self.clock_source()
            self.base_cpu = {name: read() for name, read in self.clocks.items()}
            self.base_t = time.perf_counter()
            self.base_events, self.base_messages = events, messages
            self.base_bytes = self.wire() if self.wire is not None else 0
            del self.stats.latencies_ns[:]
            weights = self.stats.latency_weights
            if weights is not None:
                del weights[:]
        if self.measuring and now >= self.end_ns:
            self.finish(events, messages)
            return 0
        if self.progress and now >= self.next_progress:
            self._print_progress(now, events)
            self.next_progress = now + _NS
        target = self.end_ns if self.measuring else self.measure_ns
        return min(target, self.next_progress) if self.progress else target

    @contextlib.asynccontextmanager
    async def deadline(self) -> AsyncIterator[None]:
        """Stop waiting for a stalled stream ``GRACE_S`` after the window should have ended."""
        limit = self.warmup + self.duration
        try:
            async with asyncio.timeout(limit + max(GRACE_S, 0.1 * limit)):
                yield
        except TimeoutError:
            self.timed_out = True

    def ended(self, events: int, messages: int) -> None:
        """The loop ended without reaching the end of the window: the stream ended or stalled.

        A stall after the warm-up still gives a measurement (over the time it took); otherwise
        raise the mxgateway error that says what happened.
        """
        from mxgateway import MxGatewayTimeoutError, MxGatewayTransportError

        name = self.stats.label
        if self.timed_out:
            if self.measuring:
                self.finish(events, messages)
                return
            raise MxGatewayTimeoutError(
                f"{name}: no events for the measured window ({events:,} in the warm-up)"
            )
        self.finish(events, messages)
        phase = "measured window" if self.measuring else "warm-up"
        raise MxGatewayTransportError(
            f"{name}: the event stream ended during the {phase} after {events:,} events"
        )

    def finish(self, events: int, messages: int) -> None:
        """Record the measured window (also when the stream ended early); once."""
        stats = self.stats
        if not self.measuring:
            # Ended during the warm-up: nothing measured, and the warm-up's latency samples
            # are not reported either.
            del stats.latencies_ns[:]
            if stats.latency_weights is not None:
                del stats.latency_weights[:]
            return
        if self.finished:
            return
        self.finished = True
        stats.seconds = time.perf_counter() - self.base_t
        for name, read in self.clocks.items():
            start, end = self.base_cpu.get(name), read()
            if start is not None and end is not None:
                stats.cpu[name] = end - start
        stats.events = events - self.base_events
        stats.messages = messages - self.base_messages
        if self.wire is not None:
            stats.wire_bytes = self.wire() - self.base_bytes
        if self.progress:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def _print_progress(self, now: int, events: int) -> None:
        # One line on the terminal, rewritten each second: the phase, the rate over the last
        # second and the lag (the newest latency sample: now minus its gateway timestamp).
        rate = (events - self.progress_events) * _NS / max(now - self.progress_ns, 1)
        self.progress_events, self.progress_ns = events, now
        if self.measuring:
            phase = f"measuring {(now - self.start_ns) / _NS:4.1f}/{self.duration:g} s"
            events -= self.base_events
        else:
            phase = f"warming up {(now - self.start_ns) / _NS:4.1f}/{self.warmup:g} s"
        samples = self.stats.latencies_ns
        lag = f"{samples[-1] / 1e6:,.1f} ms" if samples else "-"
        sys.stderr.write(
            f"\r{self.stats.label}: {phase}, {events:,} events, {rate:,.0f} events/s, "
            f"lag {lag}\x1b[K"
        )
        sys.stderr.flush()


@contextlib.asynccontextmanager
async def _closing(iterator: AsyncIterator[Any]) -> AsyncIterator[None]:
    """Close an async generator when done (breaking out of ``async for`` does not)."""
    try:
        yield
    finally:
        aclose = getattr(iterator, "aclose", None)
        if aclose is not None:
            await aclose()


def _irregular(stats: StreamStats, batch: Sequence[MxEvent], expected: int) -> int:
    """The slow path: scan one message event by event; return the next expected sequence."""
    for event in batch:
        if event.replay_gap is not None:
            stats.replay_gaps += 1
            continue
        sequence = event.worker_sequence
        if expected < 0:
            stats.first_sequence = sequence
        elif sequence > expected:
            stats.dropped += sequence - expected
        elif sequence < expected:
            stats.duplicates += 1
            continue
        expected = sequence + 1
    return expected


async def consume_batches(
    batches: AsyncIterator[list[MxEvent]],
    stats: StreamStats,
    *,
    warmup: float,
    duration: float,
    wire: Callable[[], int] | None = None,
    clocks: ClockSource | None = None,
    per_event_latency: bool = False,
    progress: bool = False,
    opened: asyncio.Event | None = None,
) -> StreamStats:
    """Read lists of events for ``warmup`` + ``duration`` seconds; fill and return ``stats``.

    Per message: one clock read, ``len``, the first/last sequence check and one latency sample
    (of the first event, weighted by the count; one per event with ``per_event_latency``).
    Closes ``batches`` when done. A failure of the stream is raised after the window so far
    was recorded in ``stats``. ``opened`` is set when the loop starts reading (the stream's
    call exists by the time it first waits for a message).
    """
    time_ns = time.time_ns
    latencies = stats.latencies_ns
    add_latency = latencies.append
    weights: array[int] | None = None
    if not per_event_latency:
        weights = stats.latency_weights = array("q")
    window = _Window(
        stats, warmup=warmup, duration=duration, wire=wire, clocks=clocks, progress=progress
    )
    check_at = window.check_at
    expected = -1
    events = messages = 0
    stopped = False
    try:
        async with window.deadline(), _closing(batches):
            if opened is not None:
                opened.set()
            async for batch in batches:
                now = time_ns()
                n = len(batch)
                messages += 1
                if n:
                    events += n
                    first = batch[0]
                    sequence = first.worker_sequence
                    if sequence == expected and batch[-1].worker_sequence == sequence + n - 1:
                        expected = sequence + n
                    else:
                        expected = _irregular(stats, batch, expected)
                    if weights is None:
                        for event in batch:
                            received = event.gateway_receive_timestamp_ns
                            if received is not None:
                                add_latency(now - received)
                    else:
                        received = first.gateway_receive_timestamp_ns
                        if received is not None:
                            add_latency(now - received)
                            weights.append(n)
                if now >= check_at:
                    check_at = window.tick(now, events, messages)
                    if not check_at:
                        stopped = True
                        break
    except Exception:
        window.finish(events, messages)
        raise
    finally:
        stats.last_sequence = expected - 1 if expected >= 0 else None
    if not stopped:
        window.ended(events, messages)
    return stats


def _has_gap(unit: EventColumns) -> bool:
    return any(event.replay_gap is not None for _, event in unit.others)


def _irregular_columns(stats: StreamStats, unit: EventColumns, expected: int) -> int:
    """``_irregular`` for one EventColumns: row by row, replay-gap rows counted apart."""
    gaps = {row for row, event in unit.others if event.replay_gap is not None}
    if not gaps:
        return _irregular_sequences(stats, unit.worker_sequence.tolist(), expected)
    stats.replay_gaps += len(gaps)
    sequences = unit.worker_sequence.tolist()
    return _irregular_sequences(
        stats, [s for row, s in enumerate(sequences) if row not in gaps], expected
    )


def _irregular_sequences(stats: StreamStats, sequences: Sequence[int], expected: int) -> int:
    """The sequences of one message in order (no replay gaps); the next expected sequence."""
    for sequence in sequences:
        if expected < 0:
            stats.first_sequence = sequence
        elif sequence > expected:
            stats.dropped += sequence - expected
        elif sequence < expected:
            stats.duplicates += 1
            continue
        expected = sequence + 1
    return expected


async def consume_columns(
    units: AsyncIterator[EventColumns],
    stats: StreamStats,
    *,
    warmup: float,
    duration: float,
    wire: Callable[[], int] | None = None,
    clocks: ClockSource | None = None,
    per_event_latency: bool = False,
    progress: bool = False,
    opened: asyncio.Event | None = None,
) -> StreamStats:
    """``consume_batches`` for ``EventColumns`` (``Session.stream_event_columns``).

    Per unit: ``len``, the first/last check on the ``worker_sequence`` column (the rows of
    ``others`` looked at only when there are any: a replay gap is one of them) and one
    latency sample from the first row's ``gateway_receive_timestamp_ns``, weighted by the
    count; with ``per_event_latency`` one per row (numpy, rows without the stamp left out).
    No MxEvent is made for a row.
    """
    from mxgateway.types import TIMESTAMP_ABSENT

    time_ns = time.time_ns
    latencies = stats.latencies_ns
    add_latency = latencies.append
    weights: array[int] | None = None
    if not per_event_latency:
        weights = stats.latency_weights = array("q")
    window = _Window(
        stats, warmup=warmup, duration=duration, wire=wire, clocks=clocks, progress=progress
    )
    check_at = window.check_at
    expected = -1
    events = messages = 0
    stopped = False
    try:
        async with window.deadline(), _closing(units):
            if opened is not None:
                opened.set()
            async for unit in units:
                now = time_ns()
                n = len(unit)
                messages += 1
                if n:
                    events += n
                    sequences = unit.worker_sequence
                    sequence = int(sequences[0])
                    if (
                        sequence == expected
                        and int(sequences[n - 1]) == sequence + n - 1
                        and not (unit.others and _has_gap(unit))
                    ):
                        expected = sequence + n
                    else:
                        expected = _irregular_columns(stats, unit, expected)
                    stamps = unit.gateway_receive_timestamp_ns
                    if weights is None:
                        present = stamps[stamps != TIMESTAMP_ABSENT]
                        latencies.frombytes((now - present).astype("=q").tobytes())
                    else:
                        received = int(stamps[0])
                        if received != TIMESTAMP_ABSENT:
                            add_latency(now - received)
                            weights.append(n)
                if now >= check_at:
                    check_at = window.tick(now, events, messages)
                    if not check_at:
                        stopped = True
                        break
    except Exception:
        window.finish(events, messages)
        raise
    finally:
        stats.last_sequence = expected - 1 if expected >= 0 else None
    if not stopped:
        window.ended(events, messages)
    return stats


async def consume_events(
    events_in: AsyncIterator[MxEvent],
    stats: StreamStats,
    *,
    warmup: float,
    duration: float,
    wire: Callable[[], int] | None = None,
    clocks: ClockSource | None = None,
    progress: bool = False,
    opened: asyncio.Event | None = None,
) -> StreamStats:
    """As ``consume_batches`` for single events (latency and sequence check per event)."""
    time_ns = time.time_ns
    latencies = stats.latencies_ns
    stats.latency_weights = None
    add_latency = latencies.append
    window = _Window(
        stats, warmup=warmup, duration=duration, wire=wire, clocks=clocks, progress=progress
    )
    check_at = window.check_at
    expected = -1
    events = 0
    stopped = False
    try:
        async with window.deadline(), _closing(events_in):
            if opened is not None:
                opened.set()
            async for event in events_in:
                now = time_ns()
                events += 1
                sequence = event.worker_sequence
                if sequence == expected:
                    expected = sequence + 1
                else:
                    expected = _irregular(stats, (event,), expected)
                received = event.gateway_receive_timestamp_ns
                if received is not None:
                    add_latency(now - received)
                if now >= check_at:
                    check_at = window.tick(now, events, events)
                    if not check_at:
                        stopped = True
                        break
    except Exception:
        window.finish(events, events)
        raise
    finally:
        stats.last_sequence = expected - 1 if expected >= 0 else None
    if not stopped:
        window.ended(events, events)
    return stats


async def consume_raw(
    messages_in: AsyncIterator[bytes],
    stats: StreamStats,
    *,
    warmup: float,
    duration: float,
    count_events: Callable[[bytes], int] | None = None,
    clocks: ClockSource | None = None,
    progress: bool = False,
    opened: asyncio.Event | None = None,
) -> StreamStats:
    """Count raw messages, their bytes and their events (no decoding, no sequence checks).

    ``count_events`` gives the events of one message (None: one per message, StreamEvents).
    """
    time_ns = time.time_ns
    stats.checked = False
    nbytes = 0
    window = _Window(
        stats,
        warmup=warmup,
        duration=duration,
        wire=lambda: nbytes,
        clocks=clocks,
        progress=progress,
    )
    check_at = window.check_at
    messages = events = 0
    stopped = False
    try:
        async with window.deadline(), _closing(messages_in):
            if opened is not None:
                opened.set()
            async for raw in messages_in:
                now = time_ns()
                messages += 1
                nbytes += len(raw)
                events += 1 if count_events is None else count_events(raw)
                if now >= check_at:
                    check_at = window.tick(now, events, messages)
                    if not check_at:
                        stopped = True
                        break
    except Exception:
        window.finish(events, messages)
        raise
    if not stopped:
        window.ended(events, messages)
    return stats


def batch_event_counter() -> Callable[[bytes], int]:
    """A function giving the number of events in a serialized MxEventBatch, without decoding
    them: protobuf parses the batch as ``repeated bytes events`` (the field number of
    ``MxEventBatch.events`` from the generated descriptor), which walks the top-level fields
    by their lengths and keeps each event's bytes undecoded."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    from mxgateway.generated import mxaccess_gateway_pb2 as pb

    number = pb.MxEventBatch.DESCRIPTOR.fields_by_name["events"].number
    proto = descriptor_pb2.FileDescriptorProto(
        name="mxgw_bench_shallow.proto", package="mxgw_bench", syntax="proto3"
    )
    message = proto.message_type.add(name="ShallowEventBatch")
    message.field.add(
        name="events",
        number=number,
        type=descriptor_pb2.FieldDescriptorProto.TYPE_BYTES,
        label=descriptor_pb2.FieldDescriptorProto.LABEL_REPEATED,
    )
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    shallow: Any = message_factory.GetMessageClass(
        pool.FindMessageTypeByName("mxgw_bench.ShallowEventBatch")
    )
    parse = shallow.FromString

    def count(raw: bytes) -> int:
        return len(parse(raw).events)

    return count
