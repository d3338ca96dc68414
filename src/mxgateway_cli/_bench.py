"""``mxgw-py bench-stream-events``: end-to-end event-stream throughput, latency and integrity.

With no ``--endpoint`` it starts ``mxgw-py sim --flood --plaintext --listen 127.0.0.1:0`` in a
child process (the same interpreter, ``python -m mxgateway_cli sim``), reads the endpoint from
its ``{"listening": ...}`` line, and stops it in a ``finally`` (SIGTERM, then SIGKILL after a
grace period) however the run ends, Ctrl-C included. With ``--endpoint`` it runs against that
gateway with the common connection flags (TLS by default).

What is measured (client side, one process):

* ``--path batches``: ``Session.stream_event_batches(max_batch_events=--batch-size)``, the lists
  counted with ``len``; falls back to StreamEvents when the gateway answers UNIMPLEMENTED and the
  report says which path ran. ``--path single``: ``Session.stream_events()``, one event each.
  Streams run with ``resume=False``: a broken stream is reported (exit 3), not resumed. Each
  consumer opens its own session, advises the items with SubscribeBulk and closes it after.
* Events/s, messages/s and MB/s (10^6 bytes of serialized messages as gRPC delivered them,
  counted by the response deserializer of the client's raw stream) over ``--duration`` seconds,
  after ``--warmup`` seconds that are read and checked but not counted.
* Latency: ``time.time_ns()`` at receipt minus ``gateway_receive_timestamp_ns``. On the batch
  path it is taken once per message from the batch's first (oldest) event and weighted by the
  batch's size, so the per-event cost stays a ``len()``; on the single path, per event.
  Percentiles p50/p90/p99/max in milliseconds; it compares two hosts' clocks against an
  external gateway.
* Integrity over the whole run (warm-up included): ``worker_sequence`` must be contiguous. Per
  message the first and last sequence and the count are checked (``last - first + 1 == len``
  and ``first`` = previous ``last + 1``); the codec keeps the wire order, so this proves
  contiguity for batches that are ascending inside. A message that fails the check is scanned
  event by event, counting dropped (skipped) and duplicate (repeated) sequences exactly.
  ReplayGap sentinels are counted apart. Non-zero dropped/duplicates exit with code 1.
* ``--decoder python`` swaps the client process's codec (``mxgateway._codec.impl``) for the
  pure-Python twin (``mxgateway._pycodec``) for the run, which is what
  ``MXGATEWAY_NO_EXTENSIONS=1`` does at import; the child simulator keeps the compiled codec
  (its environment never carries ``MXGATEWAY_NO_EXTENSIONS``) because flood mode needs its
  encoder.
* ``--compare`` then runs, in the same process against the same gateway and for the same
  warm-up and duration, a consumer written on the plain generated stubs: protobuf-deserialized
  ``MxEventBatch`` (or ``MxEvent``) messages, ``event_from_pb`` for every event, the same
  integrity checks; the report gives its events/s and ``ratio`` = ours / its.

Exit codes: 0 ok; 1 the gateway/MXAccess reported a failure (or sequences were dropped or
doubled); 2 usage; 3 transport, timeout, or the built-in simulator could not start;
4 authentication or authorization.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import math
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any, Literal

from mxgateway_cli._connection import DEFAULT_TIMEOUT_S, positive_int, resolve_api_key, seconds
from mxgateway_cli._exit_codes import (
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_TRANSPORT,
    EXIT_USAGE,
    UsageError,
    exit_code_for,
)
from mxgateway_cli._output import emit_error, emit_json

if TYPE_CHECKING:
    from mxgateway import ClientOptions, GatewayClient, MxEvent, Session

__all__ = [
    "DEFAULT_ITEMS",
    "PathName",
    "SimulatorError",
    "StreamStats",
    "add_bench_arguments",
    "cmd_bench_stream_events",
    "consume_batches",
    "consume_events",
    "consume_raw",
    "flood_simulator",
    "measure_client",
    "measure_raw",
    "measure_stub",
    "run_bench",
    "simulator_command",
    "simulator_env",
    "simulator_tags",
]

DEFAULT_ITEMS = 16
_SERVICE = "/mxaccess_gateway.v1.MxAccessGateway/"
_SIM_START_TIMEOUT_S = 60.0
_SIM_STOP_TIMEOUT_S = 10.0
_NS = 1_000_000_000
_CLOSE_TIMEOUT_S = 5.0
_GRACE_S = 2.0  # a stalled stream is given up this long after the window's end

PathName = Literal["batches", "single"]


class SimulatorError(Exception):
    """The built-in simulator could not be started (exit code 3)."""


# -- argparse -------------------------------------------------------------------------------


def _non_negative_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds >= 0: {text!r}")
    return value


def _batch_size(text: str) -> int:
    # max_batch_events is a uint32 on the wire.
    value = positive_int(text)
    if value > 0xFFFFFFFF:
        raise argparse.ArgumentTypeError(f"{value} is outside 1..4294967295")
    return value


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of ``bench-stream-events`` to ``parser`` and set its handler.

    The connection flags are the common ones (same names and checks as
    ``mxgateway_cli._connection``), except that ``--endpoint`` has no default: without it the
    flood simulator is started in a child process. ``--json`` is added unless the parser
    already has it (e.g. from ``json_parent()``).
    """
    target = parser.add_argument_group(
        "gateway",
        "Without --endpoint the flood simulator is started in a child process on a free port "
        "and stopped afterwards; the key and TLS flags then do not apply.",
    )
    target.add_argument(
        "--endpoint",
        default=None,
        metavar="HOST:PORT",
        help="gateway to measure (default: a built-in flood simulator in a child process)",
    )
    keys = target.add_mutually_exclusive_group()
    keys.add_argument(
        "--api-key",
        metavar="KEY",
        help="API key (visible to other local users: prefer --api-key-env or --api-key-file)",
    )
    keys.add_argument("--api-key-env", metavar="NAME", help="read the API key from env var NAME")
    keys.add_argument("--api-key-file", metavar="PATH", help="read the API key from a file")
    tls = target.add_mutually_exclusive_group()
    tls.add_argument("--plaintext", action="store_true", help="connect without TLS")
    tls.add_argument("--tls", action="store_true", help="connect with TLS (the default)")
    target.add_argument("--ca-file", metavar="PEM", help="CA certificates to trust (PEM file)")
    target.add_argument(
        "--server-name-override", metavar="NAME", help="TLS server name to verify (tests)"
    )
    target.add_argument(
        "--timeout",
        type=seconds,
        metavar="SECONDS",
        help=f"deadline of the setup calls (default {DEFAULT_TIMEOUT_S:g})",
    )
    run = parser.add_argument_group("run")
    run.add_argument(
        "--items",
        type=positive_int,
        default=None,
        metavar="N",
        help=f"items to advise (default {DEFAULT_ITEMS}: Pump_001.Speed, Pump_002.Speed, ...)",
    )
    run.add_argument(
        "--item",
        action="append",
        metavar="REF",
        help="advise this item reference instead (repeatable; the count replaces --items)",
    )
    run.add_argument(
        "--duration",
        type=seconds,
        default=5.0,
        metavar="SECONDS",
        help="measured seconds (default 5)",
    )
    run.add_argument(
        "--warmup",
        type=_non_negative_seconds,
        default=1.0,
        metavar="SECONDS",
        help="seconds read and checked before measuring (default 1)",
    )
    run.add_argument(
        "--batch-size",
        type=_batch_size,
        default=1000,
        metavar="N",
        help="max_batch_events of StreamEventBatches (default 1000)",
    )
    run.add_argument(
        "--path",
        choices=("batches", "single"),
        default="batches",
        help="batches: stream_event_batches() (falls back to single on UNIMPLEMENTED; the "
        "report says which ran); single: stream_events(), one event per message",
    )
    run.add_argument(
        "--decoder",
        choices=("auto", "python"),
        default="auto",
        help="auto: the active codec (compiled unless MXGATEWAY_NO_EXTENSIONS=1); python: this "
        "process decodes with the pure-Python twin (the simulator keeps the compiled codec)",
    )
    run.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default=None,
        help="event loop of the client (default uvloop where available)",
    )
    run.add_argument(
        "--compare",
        action="store_true",
        help="also measure a consumer on the plain generated stubs (protobuf messages + "
        "event_from_pb) in the same run, and report the ratio",
    )
    if "--json" not in parser._option_string_actions:
        run.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=cmd_bench_stream_events)


# -- the built-in simulator -------------------------------------------------------------------


def simulator_command(listen: str = "127.0.0.1:0") -> list[str]:
    """The command line of the flood simulator (this interpreter, plaintext, no keys)."""
    return [
        sys.executable,
        "-m",
        "mxgateway_cli",
        "sim",
        "--flood",
        "--plaintext",
        "--listen",
        listen,
        "--rate",
        "0",
        "--log-level",
        "WARNING",
    ]


def simulator_env() -> dict[str, str]:
    """The simulator's environment: ours without MXGATEWAY_NO_EXTENSIONS (flood needs the
    compiled encoder, whatever codec the client uses)."""
    env = dict(os.environ)
    env.pop("MXGATEWAY_NO_EXTENSIONS", None)
    return env


def simulator_tags(items: int) -> list[str]:
    """``items`` tag references of the simulated Galaxy (unknown ones would flood as well)."""
    return [f"Pump_{i:03d}.Speed" for i in range(1, items + 1)]


def _stderr_tail(log: IO[bytes]) -> str:
    log.seek(0)
    text = log.read().decode("utf-8", "replace").strip()
    return text[-2000:]


def _stop_process(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after a grace period; reaps the child."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=_SIM_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _spawn_simulator(log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        simulator_command(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        env=simulator_env(),
    )


def _read_listening(line: bytes, log: IO[bytes]) -> str:
    import json

    if not line:
        tail = _stderr_tail(log)
        raise SimulatorError(
            "the flood simulator exited before it was ready" + (f": {tail}" if tail else "")
        )
    try:
        return str(json.loads(line)["listening"])
    except (ValueError, KeyError, TypeError):
        raise SimulatorError(f"unexpected first line from the simulator: {line[:200]!r}") from None


@contextlib.contextmanager
def flood_simulator() -> Iterator[str]:
    """Run the flood simulator in a child process; yield its endpoint; always stop it.

    Blocking (for pytest fixtures and scripts); ``run_bench`` has an async equivalent.
    """
    with tempfile.TemporaryFile() as log:
        process = _spawn_simulator(log)
        assert process.stdout is not None
        try:
            yield _read_listening(process.stdout.readline(), log)
        finally:
            _stop_process(process)
            process.stdout.close()


@contextlib.asynccontextmanager
async def _flood_simulator_async() -> AsyncIterator[tuple[str, int]]:
    """As ``flood_simulator`` without blocking the loop; yields (endpoint, pid).

    The child is stopped in ``finally`` also when the task is cancelled (Ctrl-C); the thread
    reading its first line then ends, because the pipe closes with the child.
    """
    with tempfile.TemporaryFile() as log:
        process = _spawn_simulator(log)
        assert process.stdout is not None
        stdout = process.stdout
        reader = asyncio.ensure_future(asyncio.to_thread(stdout.readline))
        try:
            try:
                line = await asyncio.wait_for(asyncio.shield(reader), _SIM_START_TIMEOUT_S)
            except TimeoutError:
                raise SimulatorError(
                    f"the flood simulator was not ready within {_SIM_START_TIMEOUT_S:.0f} s"
                ) from None
            yield _read_listening(line, log), process.pid
        finally:
            await asyncio.shield(asyncio.to_thread(_stop_process, process))
            with contextlib.suppress(Exception):
                await reader
            stdout.close()


# -- measuring --------------------------------------------------------------------------------


@dataclass(slots=True)
class StreamStats:
    """What one consumer saw: the measured window and the whole run's sequence checks."""

    consumer: str
    events: int = 0
    messages: int = 0
    wire_bytes: int | None = None
    seconds: float = 0.0
    cpu_seconds: float = 0.0
    dropped: int = 0
    duplicates: int = 0
    replay_gaps: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    latencies_ns: list[int] = field(default_factory=list)
    latency_weights: list[int] | None = None
    path: str = ""

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    def latency_ms(self) -> dict[str, float | None]:
        """p50/p90/p99/max in ms, event-weighted (None without samples)."""
        return _percentiles(self.latencies_ns, self.latency_weights)

    def summary(self) -> dict[str, Any]:
        """The JSON fields of this consumer (camelCase, as the CLI prints them)."""
        out: dict[str, Any] = {
            "consumer": self.consumer,
            "cpuSeconds": round(self.cpu_seconds, 4),
            "droppedSequences": self.dropped,
            "duplicateSequences": self.duplicates,
            "elapsedSeconds": round(self.seconds, 4),
            "events": self.events,
            "eventsPerSecond": round(self.events_per_s, 1),
            "firstSequence": self.first_sequence,
            "lastSequence": self.last_sequence,
            "messages": self.messages,
            "messagesPerSecond": round(self.messages_per_s, 1),
            "replayGaps": self.replay_gaps,
        }
        if self.wire_bytes is not None:
            out["bytes"] = self.wire_bytes
            mb = self.wire_bytes / 1e6 / self.seconds if self.seconds > 0 else 0.0
            out["mbPerSecond"] = round(mb, 2)
        if self.latency_weights is not None or self.latencies_ns:
            out["latencyMs"] = self.latency_ms()
        return out


def _percentiles(values: list[int], weights: list[int] | None) -> dict[str, float | None]:
    keys = ("p50", "p90", "p99", "max")
    if not values:
        return dict.fromkeys(keys)
    if weights is None:
        ordered = sorted(values)
        n = len(ordered)

        def at(q: float) -> int:
            return ordered[min(n - 1, max(0, math.ceil(q * n) - 1))]

        picks = [at(0.50), at(0.90), at(0.99), ordered[-1]]
    else:
        pairs = sorted(zip(values, weights, strict=True))
        total = sum(weights)
        picks = []
        for q in (0.50, 0.90, 0.99):
            rank = max(1, math.ceil(q * total))
            running = 0
            for value, weight in pairs:
                running += weight
                if running >= rank:
                    picks.append(value)
                    break
        picks.append(pairs[-1][0])
    return {k: round(v / 1e6, 3) for k, v in zip(keys, picks, strict=True)}


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
        progress: bool,
    ) -> None:
        self.stats = stats
        self.wire = wire
        self.progress = progress
        self.warmup = warmup
        self.duration = duration
        now = time.time_ns()
        self.start_ns = now
        self.measure_ns = now + int(warmup * _NS)
        self.end_ns = self.measure_ns + int(duration * _NS)
        self.measuring = False
        self.timed_out = False
        self.base_events = self.base_messages = self.base_bytes = 0
        self.base_t = self.base_cpu = 0.0
        self.next_progress = now + _NS
        self.check_at = min(self.measure_ns, self.next_progress) if progress else self.measure_ns

    def tick(self, now: int, events: int, messages: int, latencies: list[int]) -> int:
        """Advance the phases at ``now`` (ns); the next check time, or 0 to stop."""
        if not self.measuring and now >= self.measure_ns:
            self.measuring = True
            self.start_ns = now  # progress counts from here now
            self.end_ns = now + int(self.duration * _NS)  # from the first counted message
            self.base_t = time.perf_counter()
            self.base_cpu = time.process_time()
            self.base_events, self.base_messages = events, messages
            self.base_bytes = self.wire() if self.wire is not None else 0
            latencies.clear()
            weights = self.stats.latency_weights
            if weights is not None:
                weights.clear()
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
        """Stop waiting for a stalled stream ``_GRACE`` after the window should have ended."""
        limit = self.warmup + self.duration
        try:
            async with asyncio.timeout(limit + max(_GRACE_S, 0.1 * limit)):
                yield
        except TimeoutError:
            self.timed_out = True

    def ended(self, events: int, messages: int) -> None:
        """The loop ended without reaching the end of the window: the stream ended or stalled.

        A stall after the warm-up still gives a measurement (over the time it took); otherwise
        raise the mxgateway error that says what happened.
        """
        from mxgateway import MxGatewayTimeoutError, MxGatewayTransportError

        name = self.stats.consumer
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
        """Record the measured window (also when the stream ended early)."""
        stats = self.stats
        if not self.measuring:  # ended during the warm-up: nothing measured
            return
        stats.seconds = time.perf_counter() - self.base_t
        stats.cpu_seconds = time.process_time() - self.base_cpu
        stats.events = events - self.base_events
        stats.messages = messages - self.base_messages
        if self.wire is not None:
            stats.wire_bytes = self.wire() - self.base_bytes
        if self.progress:
            sys.stderr.write("\n")
            sys.stderr.flush()

    def _print_progress(self, now: int, events: int) -> None:
        if self.measuring:
            phase = f"measuring {(now - self.start_ns) / _NS:4.1f}/{self.duration:g} s"
            events -= self.base_events
        else:
            phase = f"warming up {(now - self.start_ns) / _NS:4.1f}/{self.warmup:g} s"
        sys.stderr.write(f"\r{self.stats.consumer}: {phase}, {events:,} events\x1b[K")
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
    progress: bool = False,
) -> StreamStats:
    """Read lists of events for ``warmup`` + ``duration`` seconds; fill and return ``stats``.

    Per message: one clock read, ``len``, the first/last sequence check and one latency sample
    (of the first event, weighted by the count). Closes ``batches`` when done.
    """
    time_ns = time.time_ns
    latencies = stats.latencies_ns
    weights = stats.latency_weights = []
    add_latency = latencies.append
    add_weight = weights.append
    window = _Window(stats, warmup=warmup, duration=duration, wire=wire, progress=progress)
    check_at = window.check_at
    expected = -1
    events = messages = 0
    stopped = False
    async with window.deadline(), _closing(batches):
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
                received = first.gateway_receive_timestamp_ns
                if received is not None:
                    add_latency(now - received)
                    add_weight(n)
            if now >= check_at:
                check_at = window.tick(now, events, messages, latencies)
                if not check_at:
                    stopped = True
                    break
    if not stopped:
        window.ended(events, messages)
    stats.last_sequence = expected - 1 if expected >= 0 else None
    return stats


async def consume_events(
    events_in: AsyncIterator[MxEvent],
    stats: StreamStats,
    *,
    warmup: float,
    duration: float,
    wire: Callable[[], int] | None = None,
    progress: bool = False,
) -> StreamStats:
    """As ``consume_batches`` for single events (latency and sequence check per event)."""
    time_ns = time.time_ns
    latencies = stats.latencies_ns
    stats.latency_weights = None
    add_latency = latencies.append
    window = _Window(stats, warmup=warmup, duration=duration, wire=wire, progress=progress)
    check_at = window.check_at
    expected = -1
    events = 0
    stopped = False
    async with window.deadline(), _closing(events_in):
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
                check_at = window.tick(now, events, events, latencies)
                if not check_at:
                    stopped = True
                    break
    if not stopped:
        window.ended(events, events)
    stats.last_sequence = expected - 1 if expected >= 0 else None
    return stats


async def consume_raw(
    messages_in: AsyncIterator[bytes],
    stats: StreamStats,
    *,
    warmup: float,
    duration: float,
    events_per_message: int = 1,
    progress: bool = False,
) -> StreamStats:
    """Count raw messages and their bytes (no decoding, no checks): the transport's ceiling.

    ``events_per_message`` converts messages to events (1 for StreamEvents).
    """
    time_ns = time.time_ns
    nbytes = 0
    window = _Window(
        stats, warmup=warmup, duration=duration, wire=lambda: nbytes, progress=progress
    )
    check_at = window.check_at
    messages = 0
    stopped = False
    async with window.deadline(), _closing(messages_in):
        async for raw in messages_in:
            now = time_ns()
            messages += 1
            nbytes += len(raw)
            if now >= check_at:
                check_at = window.tick(now, messages * events_per_message, messages, [])
                if not check_at:
                    stopped = True
                    break
    if not stopped:
        window.ended(messages * events_per_message, messages)
    return stats


# -- consumers wired to a gateway -------------------------------------------------------------


def _byte_counter() -> tuple[Callable[[bytes], bytes], Callable[[], int]]:
    total = 0

    def count(data: bytes) -> bytes:
        nonlocal total
        total += len(data)
        return data

    def read() -> int:
        return total

    return count, read


def _count_client_bytes(client: GatewayClient) -> Callable[[], int]:
    """Make ``client``'s raw event streams count their message bytes (an identity deserializer
    that adds ``len``); return the reader of the count."""
    from mxgateway.generated import mxaccess_gateway_pb2 as pb

    count, read = _byte_counter()
    channel = client._live_channel()
    serializer = pb.StreamEventsRequest.SerializeToString
    client._raw_events = channel.unary_stream(
        _SERVICE + "StreamEvents", request_serializer=serializer, response_deserializer=count
    )
    client._raw_batches = channel.unary_stream(
        _SERVICE + "StreamEventBatches", request_serializer=serializer, response_deserializer=count
    )
    return read


async def _close_quietly(session: Session) -> None:
    # Best effort and bounded: also runs while a Ctrl-C is unwinding the run.
    with contextlib.suppress(Exception):
        async with asyncio.timeout(_CLOSE_TIMEOUT_S):
            await session.close()


async def _subscribe(client: GatewayClient, tags: Sequence[str], name: str) -> Session:
    from mxgateway import MxGatewayProtocolError

    session = await client.open_session(name)
    try:
        server = await session.register(name)
        results = await session.subscribe_bulk(server, tags)
        failed = [r for r in results if not r.was_successful]
        if len(failed) == len(results):
            raise MxGatewayProtocolError(
                f"SubscribeBulk advised none of the {len(tags)} items "
                f"(first: {failed[0].error_message or 'failed'})"
            )
    except BaseException:
        await _close_quietly(session)
        raise
    return session


async def measure_client(
    client: GatewayClient,
    *,
    tags: Sequence[str],
    path: PathName,
    batch_size: int,
    warmup: float,
    duration: float,
    progress: bool = False,
    count_bytes: bool = True,
) -> StreamStats:
    """One session: advise ``tags`` and read them through the mxgateway client."""
    wire = _count_client_bytes(client) if count_bytes else None
    session = await _subscribe(client, tags, "mxgw-py bench")
    try:
        if path == "batches":
            stats = StreamStats("stream_event_batches")
            await consume_batches(
                session.stream_event_batches(max_batch_events=batch_size, resume=False),
                stats,
                warmup=warmup,
                duration=duration,
                wire=wire,
                progress=progress,
            )
            stats.path = session.event_path or "batches"
            if stats.path == "single":
                # StreamEvents carries one event per message; the lists are drains of
                # messages that arrived together, not messages.
                stats.messages = stats.events
        else:
            stats = StreamStats("stream_events")
            await consume_events(
                session.stream_events(resume=False),
                stats,
                warmup=warmup,
                duration=duration,
                wire=wire,
                progress=progress,
            )
            stats.path = "single"
    finally:
        await _close_quietly(session)
    return stats


async def measure_stub(
    client: GatewayClient,
    *,
    tags: Sequence[str],
    path: PathName,
    batch_size: int,
    warmup: float,
    duration: float,
    progress: bool = False,
) -> StreamStats:
    """The generated-stub consumer: protobuf messages, then ``event_from_pb`` for each event.

    Its own channel (the client's options) and its own session; the same checks as ours.
    """
    import grpc

    from mxgateway._channel import open_channel
    from mxgateway._pbconvert import event_from_pb
    from mxgateway._rpc import translate_rpc_error
    from mxgateway.generated import mxaccess_gateway_pb2 as pb
    from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc

    session = await _subscribe(client, tags, "mxgw-py bench stubs")
    metadata = client.options.metadata
    try:
        async with open_channel(client.options) as channel:
            stub = pb_grpc.MxAccessGatewayStub(channel)
            request = pb.StreamEventsRequest(
                session_id=session.session_id,
                max_batch_events=batch_size if path == "batches" else 0,
            )

            async def batches() -> AsyncIterator[list[MxEvent]]:
                call: Any = (
                    stub.StreamEventBatches(request, metadata=metadata)
                    if path == "batches"
                    else stub.StreamEvents(request, metadata=metadata)
                )
                try:
                    if path == "batches":
                        async for message in call:
                            yield [event_from_pb(e) for e in message.events]
                    else:
                        async for message in call:
                            yield [event_from_pb(message)]
                except grpc.aio.AioRpcError as error:
                    raise translate_rpc_error(
                        error, "StreamEvents (stubs)", not_found_is_session=True
                    ) from None
                finally:
                    call.cancel()

            stats = StreamStats("generated_stubs")
            await consume_batches(
                batches(), stats, warmup=warmup, duration=duration, progress=progress
            )
            stats.path = path
    finally:
        await _close_quietly(session)
    return stats


async def measure_raw(
    client: GatewayClient,
    *,
    tags: Sequence[str],
    path: PathName,
    batch_size: int,
    warmup: float,
    duration: float,
    progress: bool = False,
) -> StreamStats:
    """Raw bytes with no decoding (identity deserializer) on the client's own channel.

    Only for ``single`` messages is events = messages; on ``batches`` the events are counted
    as ``batch_size`` per message (flood batches are full).
    """
    import grpc

    from mxgateway._rpc import translate_rpc_error
    from mxgateway.generated import mxaccess_gateway_pb2 as pb

    session = await _subscribe(client, tags, "mxgw-py bench raw")
    method = "StreamEventBatches" if path == "batches" else "StreamEvents"
    multicallable: Any = client._live_channel().unary_stream(
        _SERVICE + method,
        request_serializer=pb.StreamEventsRequest.SerializeToString,
        response_deserializer=None,
    )
    request = pb.StreamEventsRequest(
        session_id=session.session_id, max_batch_events=batch_size if path == "batches" else 0
    )

    async def messages() -> AsyncIterator[bytes]:
        call = multicallable(request, metadata=client.options.metadata)
        try:
            async for raw in call:
                yield raw
        except grpc.aio.AioRpcError as error:
            raise translate_rpc_error(error, method) from None
        finally:
            call.cancel()

    try:
        stats = StreamStats(f"raw_bytes_{path}")
        await consume_raw(
            messages(),
            stats,
            warmup=warmup,
            duration=duration,
            events_per_message=batch_size if path == "batches" else 1,
            progress=progress,
        )
        stats.path = path
    finally:
        await _close_quietly(session)
    return stats


# -- the command ------------------------------------------------------------------------------


def _tags(args: argparse.Namespace) -> list[str]:
    if args.item:
        if args.items is not None and args.items != len(args.item):
            raise UsageError("--items and --item disagree: give one of them")
        return list(args.item)
    return simulator_tags(args.items if args.items is not None else DEFAULT_ITEMS)


def _check_usage(args: argparse.Namespace) -> None:
    if args.endpoint is None:
        extra = [
            flag
            for flag, value in (
                ("--api-key", args.api_key),
                ("--api-key-env", args.api_key_env),
                ("--api-key-file", args.api_key_file),
                ("--tls", args.tls),
                ("--ca-file", args.ca_file),
                ("--server-name-override", args.server_name_override),
            )
            if value
        ]
        if extra:
            raise UsageError(
                f"{', '.join(extra)} need --endpoint (the built-in simulator is plaintext "
                "without keys)"
            )
    elif args.plaintext and (args.ca_file or args.server_name_override):
        raise UsageError("--ca-file and --server-name-override need TLS; drop --plaintext")
    _tags(args)


def _decoder_name(module: Any) -> str:
    return "python" if module.__name__.endswith("_pycodec") else "cython"


@contextlib.contextmanager
def _client_decoder(choice: str) -> Iterator[str]:
    """Use the pure-Python twin in this process for the block when asked; yield the name."""
    from mxgateway import _codec

    if choice != "python":
        yield _decoder_name(_codec.impl)
        return
    from mxgateway import _pycodec

    saved = _codec.impl
    _codec.impl = _pycodec
    try:
        yield "python"
    finally:
        _codec.impl = saved


def _loop_name() -> str:
    loop = asyncio.get_running_loop()
    return "uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio"


def _client_options(args: argparse.Namespace, simulator: str | None) -> ClientOptions:
    """The built-in simulator's options (plaintext, no key), or the common flags' ones."""
    from mxgateway import ClientOptions

    timeout = args.timeout or DEFAULT_TIMEOUT_S
    if simulator is not None:
        return ClientOptions(endpoint=simulator, plaintext=True, timeout=timeout)
    key = resolve_api_key(args)  # registered for redaction before anything can fail
    try:
        return ClientOptions(
            endpoint=args.endpoint,
            api_key=key,
            plaintext=args.plaintext,
            ca_file=args.ca_file,
            server_name_override=args.server_name_override,
            timeout=timeout,
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


async def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark the flags describe; return the report (the JSON object printed).

    Raises UsageError for bad flag values or combinations, SimulatorError when the built-in
    simulator cannot start, and the mxgateway exceptions of the calls. The child simulator is
    stopped before this returns or raises (cancellation included).
    """
    from mxgateway import GatewayClient

    _check_usage(args)
    tags = _tags(args)
    if args.endpoint is not None:
        options = _client_options(args, None)  # flags checked before any work
    progress = sys.stderr.isatty()
    async with contextlib.AsyncExitStack() as stack:
        if args.endpoint is None:
            endpoint, _pid = await stack.enter_async_context(_flood_simulator_async())
            options = _client_options(args, endpoint)
        client = await stack.enter_async_context(await GatewayClient.connect(options=options))
        await client.wait_ready(options.timeout or DEFAULT_TIMEOUT_S)
        with _client_decoder(args.decoder) as decoder:
            ours = await measure_client(
                client,
                tags=tags,
                path=args.path,
                batch_size=args.batch_size,
                warmup=args.warmup,
                duration=args.duration,
                progress=progress,
            )
        stub: StreamStats | None = None
        if args.compare:
            stub = await measure_stub(
                client,
                tags=tags,
                path="single" if ours.path == "single" else "batches",
                batch_size=args.batch_size,
                warmup=args.warmup,
                duration=args.duration,
                progress=progress,
            )
        report = ours.summary()
        report.update(
            {
                "batchSize": args.batch_size,
                "decoder": decoder,
                "durationSeconds": args.duration,
                "endpoint": options.endpoint,
                "items": len(tags),
                "loop": _loop_name(),
                "path": ours.path,
                "requestedPath": args.path,
                "simulator": args.endpoint is None,
                "warmupSeconds": args.warmup,
            }
        )
        if stub is not None:
            compare = stub.summary()
            compare["ratio"] = (
                round(ours.events_per_s / stub.events_per_s, 2) if stub.events_per_s else None
            )
            report["compare"] = compare
        return report


def _human(report: dict[str, Any]) -> str:
    lat = report.get("latencyMs") or {}

    def ms(key: str) -> str:
        value = lat.get(key)
        return "-" if value is None else f"{value:g}"

    mb = report.get("mbPerSecond")
    where = "built-in simulator" if report["simulator"] else report["endpoint"]
    lines = [
        f"{report['eventsPerSecond']:,.0f} events/s, {report['messagesPerSecond']:,.0f} "
        f"messages/s" + (f", {mb:,.1f} MB/s" if mb is not None else ""),
        f"  path {report['path']} (asked {report['requestedPath']}), decoder "
        f"{report['decoder']}, loop {report['loop']}, {report['items']} items, batch size "
        f"{report['batchSize']}",
        f"  {report['events']:,} events in {report['elapsedSeconds']:.2f} s after "
        f"{report['warmupSeconds']:g} s warm-up ({where})",
        f"  latency ms: p50 {ms('p50')}  p90 {ms('p90')}  p99 {ms('p99')}  max {ms('max')}",
        f"  sequences: {report['droppedSequences']} dropped, "
        f"{report['duplicateSequences']} duplicate",
    ]
    compare = report.get("compare")
    if compare is not None:
        ratio = compare.get("ratio")
        lines.append(
            f"  generated stubs: {compare['eventsPerSecond']:,.0f} events/s; ratio "
            + (f"{ratio:g}x" if ratio is not None else "-")
        )
    return "\n".join(lines)


def _integrity_ok(report: dict[str, Any]) -> bool:
    parts = [report, report.get("compare") or {}]
    return all(not p.get("droppedSequences") and not p.get("duplicateSequences") for p in parts)


_PROG = "mxgw-py bench-stream-events"


def cmd_bench_stream_events(args: argparse.Namespace) -> int:
    """The command: run on the chosen loop, print the report, return the exit code.

    Errors are reported here (JSON on stdout with ``--json``, else text on stderr, keys
    masked): usage 2, gateway/MXAccess failure 1, transport/timeout/simulator start 3,
    auth 4. Dropped or duplicate sequences print the report and exit 1. KeyboardInterrupt
    propagates after the child simulator was stopped.
    """
    import mxgateway

    json_mode = bool(args.json)
    loop = args.loop or mxgateway.preferred_event_loop()
    if loop == "uvloop" and mxgateway.preferred_event_loop() != "uvloop":
        emit_error(json_mode, _PROG, "uvloop is not available here; use --loop asyncio")
        return EXIT_USAGE
    try:
        report = mxgateway.run(run_bench(args), loop=loop)
    except SimulatorError as exc:
        emit_error(json_mode, _PROG, str(exc))
        return EXIT_TRANSPORT
    except (UsageError, mxgateway.MxGatewayError) as exc:
        emit_error(json_mode, _PROG, str(exc) or type(exc).__name__)
        return exit_code_for(exc)
    if json_mode:
        emit_json(report)
    else:
        sys.stdout.write(_human(report) + "\n")
        sys.stdout.flush()
    if not _integrity_ok(report):
        if not json_mode:
            emit_error(False, _PROG, "sequences were dropped or duplicated")
        return EXIT_FAILURE
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mxgateway_cli._bench``: the command on its own (before main.py registers it)."""
    parser = argparse.ArgumentParser(
        prog="mxgw-py bench-stream-events",
        description="Measure event-stream throughput, latency and integrity.",
    )
    add_bench_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    raise SystemExit(main())
