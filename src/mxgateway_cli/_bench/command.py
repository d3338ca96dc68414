"""The ``bench-stream-events`` command: flags, the run, the report and its human form.

With no ``--endpoint`` it starts the flood simulator in a child process (``simulator``), in
genuine mode (``--no-event-batches``) for ``--path single``, paced with ``--rate``; with
``--endpoint`` it measures that gateway with the common connection flags (TLS by default).
Which consumers run, in which rounds, is decided here; how each one reads is in ``consumers``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import math
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from mxgateway_cli._bench.consumers import PathName, Spec, measure_client, measure_raw, measure_stub
from mxgateway_cli._bench.rounds import Measure, ratio, run_rounds
from mxgateway_cli._bench.simulator import (
    SimulatorError,
    SimulatorProcess,
    builtin_simulator,
    simulator_summary,
    simulator_tags,
)
from mxgateway_cli._bench.stats import StreamStats, summary
from mxgateway_cli._connection import DEFAULT_TIMEOUT_S, _integer, resolve_api_key, seconds
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
    from mxgateway import ClientOptions, EventReceiver, GatewayClient

__all__ = [
    "DEFAULT_ITEMS",
    "DEFAULT_ROUNDS",
    "add_bench_arguments",
    "cmd_bench_stream_events",
    "main",
    "run_bench",
]

DEFAULT_ITEMS = 16
DEFAULT_ROUNDS = 3
MAX_ITEMS = 100_000
MAX_ROUNDS = 100
MAX_SECONDS = 86_400.0
MAX_RATE = 10_000_000.0  # the simulator's own bound on --flood-rate
# A simulator busy less than this fraction of one core while a consumer was measured had idle
# time: it waited for the consumer (or for its pace), so it did not bound the figure.
_SIMULATOR_BUSY = 0.9

_PROG = "mxgw-py bench-stream-events"

LATENCY_TEXT = (
    "latency: from the event's gateway_receive_timestamp (stamped by the gateway, here the "
    "simulator, when it produced the event) to time.time_ns() when the consumer had the "
    "decoded event; per event (on the batch path without --rate: per message, from its oldest "
    "event). Against --endpoint it compares two hosts' clocks."
)
RATIO_TEXT = (
    "ratio A ÷ B: events/s of A over events/s of B measured in the same round (A and B back "
    "to back, the first alternating), and the same for the client process's CPU per event "
    "(below 1: A spends less CPU per event); the median over the rounds is the figure to quote."
)
MACHINE_TEXT = (
    "figures: this machine, this run (shared cores: they swing with load, so compare the "
    "ratios of one run rather than figures of different runs)."
)


def _wrap(text: str, indent: str = "") -> str:
    return textwrap.fill(text, width=92, initial_indent=indent, subsequent_indent=indent)


EPILOG = f"""\
what is measured:
  --path batches: Session.stream_event_batches(); --compare adds a consumer on the plain
  generated stubs. --path columns: Session.stream_event_columns() (EventColumns: numpy
  columns, no Python object per event; needs mxgateway[columns]); --compare runs it beside
  stream_event_batches() and a raw identity reader of the same rpc (no decoding), in
  alternating rounds. --path single: Session.stream_events(path="single") (StreamEvents, one
  event per message; the built-in simulator runs in genuine mode, --no-event-batches);
  --compare runs it with the thread receiver, with the aio receiver, and a raw identity
  reader of the same rpc (no decoding), in alternating rounds. Every consumer opens its own
  session, opens the stream, then advises the items, and closes the session after.
  CPU: time.process_time() of this process over each window (per event), the event loop's
  thread and the receiver's thread; the simulator's CPU from /proc (Linux).
{_wrap(LATENCY_TEXT, "  ")}
{_wrap(RATIO_TEXT, "  ")}
  --rate: the simulator produces that many events/s per session; events/s is then bounded
  by that source, not by the client: read the latency and the CPU per event.
{_wrap(MACHINE_TEXT, "  ")}

exit codes: 0 ok; 1 the gateway/MXAccess reported a failure, sequences were dropped or
doubled, or a consumer fell behind a --rate (queue overflow); 2 usage; 3 transport, timeout,
or the built-in simulator could not start; 4 authentication or authorization.
"""


# -- argparse -------------------------------------------------------------------------------


def _number(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of {what}: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number of {what}: {text!r}")
    return value


def _window_seconds(text: str) -> float:
    value = seconds(text)
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"{value:g} s is over {MAX_SECONDS:g} s")
    return value


def _warmup_seconds(text: str) -> float:
    value = _number(text, "seconds")
    if not 0 <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be 0..{MAX_SECONDS:g} seconds: {text!r}")
    return value


def _bounded_int(text: str, low: int, high: int) -> int:
    return _integer(text, low, high, f"{low}..{high}")


def _items(text: str) -> int:
    return _bounded_int(text, 1, MAX_ITEMS)


def _rounds(text: str) -> int:
    return _bounded_int(text, 1, MAX_ROUNDS)


def _batch_size(text: str) -> int:
    # max_batch_events is a uint32 on the wire.
    return _bounded_int(text, 1, 0xFFFFFFFF)


def _rate(text: str) -> float:
    value = _number(text, "events per second")
    if not 0 < value <= MAX_RATE:
        raise argparse.ArgumentTypeError(f"must be more than 0 and at most {MAX_RATE:,.0f}")
    return value


def add_bench_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags of ``bench-stream-events`` to ``parser`` and set its handler.

    The connection flags are the common ones (same names and checks as
    ``mxgateway_cli._connection``), except that ``--endpoint`` has no default: without it the
    flood simulator is started in a child process. ``--json`` is added unless the parser
    already has it (e.g. from ``json_parent()``). The parser's epilog says what is measured.
    """
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
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
        type=_items,
        default=None,
        metavar="N",
        help=f"items to advise, 1..{MAX_ITEMS:,} (default {DEFAULT_ITEMS}: Pump_001.Speed, "
        "Pump_002.Speed, ...)",
    )
    run.add_argument(
        "--item",
        action="append",
        metavar="REF",
        help="advise this item reference instead (repeatable; the count replaces --items)",
    )
    run.add_argument(
        "--duration",
        type=_window_seconds,
        default=5.0,
        metavar="SECONDS",
        help="measured seconds of each window (default 5)",
    )
    run.add_argument(
        "--warmup",
        type=_warmup_seconds,
        default=1.0,
        metavar="SECONDS",
        help="seconds read and checked before each window (default 1)",
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
        choices=("batches", "columns", "single"),
        default="batches",
        help="batches: stream_event_batches() (falls back to StreamEvents on UNIMPLEMENTED; "
        "the report says which ran); columns: stream_event_columns(), EventColumns of the "
        "same rpc (numpy; the same fallback); single: stream_events(path='single'), "
        "StreamEvents, one event per message, as the genuine gateway offers (the built-in "
        "simulator then runs with --no-event-batches)",
    )
    run.add_argument(
        "--receiver",
        choices=("thread", "aio"),
        default=None,
        help="how the client reads StreamEvents (ClientOptions.event_receiver): thread (the "
        "default: a sync channel read in a thread) or aio (grpc.aio on the event loop); "
        "--path single --compare runs both",
    )
    run.add_argument(
        "--rate",
        type=_rate,
        default=None,
        metavar="EVENTS_PER_S",
        help="a fixed-rate run: the built-in simulator produces this many events per second "
        "per session (--flood-rate); reports latency, CPU per event and integrity. Not with "
        "--endpoint (a client cannot set a gateway's rate)",
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
        help="batches: also the plain generated stubs (protobuf + event_from_pb); columns: "
        "also stream_event_batches() and a raw identity reader; single: the thread receiver, "
        "the aio receiver and a raw identity reader; in alternating rounds, with the ratio "
        "per round and its median",
    )
    run.add_argument(
        "--rounds",
        type=_rounds,
        default=None,
        metavar="N",
        help=f"rounds of every consumer, 1..{MAX_ROUNDS} (default {DEFAULT_ROUNDS} with "
        "--compare, else 1)",
    )
    if "--json" not in parser._option_string_actions:
        run.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=cmd_bench_stream_events)


# -- checks and settings ----------------------------------------------------------------------


def _tags(args: argparse.Namespace) -> list[str]:
    if args.item:
        if args.items is not None and args.items != len(args.item):
            raise UsageError("--items and --item disagree: give one of them")
        if len(args.item) > MAX_ITEMS:
            raise UsageError(f"--item is given {len(args.item):,} times, over {MAX_ITEMS:,}")
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
    else:
        if args.plaintext and (args.ca_file or args.server_name_override):
            raise UsageError("--ca-file and --server-name-override need TLS; drop --plaintext")
        if args.rate is not None:
            raise UsageError(
                "--rate needs the built-in simulator (no --endpoint): a client cannot set the "
                "rate of a gateway's events"
            )
    if args.compare and args.path == "single" and args.receiver is not None:
        raise UsageError(
            "--receiver runs one receiver; --path single --compare runs both: drop one of them"
        )
    if args.path == "columns" and importlib.util.find_spec("numpy") is None:
        raise UsageError("--path columns needs numpy: pip install 'mxgateway[columns]'")
    _tags(args)


def _decoder_name(module: Any) -> str:
    return "python" if module.__name__.endswith("_pycodec") else "cython"


@contextlib.contextmanager
def client_decoder(choice: str) -> Iterator[str]:
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


# -- the run ----------------------------------------------------------------------------------


class _Run:
    """The consumers of one run, bound to their clients, in the order ``run_rounds`` wants."""

    def __init__(self, args: argparse.Namespace, spec: Spec) -> None:
        self.args = args
        self.spec = spec
        self.path: PathName = args.path  # what the first consumer found the gateway to offer
        self.clients: dict[EventReceiver, GatewayClient] = {}

    def receivers(self) -> list[EventReceiver]:
        if self.args.path == "single" and self.args.compare:
            return ["thread", "aio"]
        return [self.args.receiver or "thread"]

    async def open_clients(self, stack: contextlib.AsyncExitStack, options: ClientOptions) -> None:
        from mxgateway import GatewayClient

        for receiver in self.receivers():
            client = await stack.enter_async_context(
                await GatewayClient.connect(options=replace(options, event_receiver=receiver))
            )
            await client.wait_ready(options.timeout or DEFAULT_TIMEOUT_S)
            self.clients[receiver] = client

    def consumers(self) -> list[Measure]:
        primary = self.clients[self.receivers()[0]]

        async def ours(client: GatewayClient) -> StreamStats:
            stats = await measure_client(client, self.spec)
            if stats.path == "single":
                self.path = "single"
            return stats

        def with_path() -> Spec:
            return replace(self.spec, path=self.path)

        def rpc_path() -> Spec:
            # The rpc the columns were read from (StreamEventBatches unless it fell back).
            return replace(self.spec, path="single" if self.path == "single" else "batches")

        consumers: list[Measure] = [lambda: ours(primary)]
        if self.args.compare:
            if self.args.path == "single":
                aio = self.clients["aio"]
                consumers.append(lambda: ours(aio))
                consumers.append(lambda: measure_raw(aio, with_path()))
            elif self.args.path == "columns":
                consumers.append(
                    lambda: measure_client(primary, replace(self.spec, path="batches"))
                )
                consumers.append(lambda: measure_raw(primary, rpc_path()))
            else:
                consumers.append(lambda: measure_stub(primary, with_path()))
        return consumers


def _report(
    args: argparse.Namespace,
    runs: list[list[StreamStats]],
    *,
    decoder: str,
    loop: str,
    endpoint: str,
    items: int,
) -> dict[str, Any]:
    primary = runs[0]
    report = summary(primary)
    report.update(
        {
            "batchSize": args.batch_size,
            "decoder": decoder,
            "durationSeconds": args.duration,
            "endpoint": endpoint,
            "items": items,
            "loop": loop,
            "requestedPath": args.path,
            "simulator": args.endpoint is None,
            "warmupSeconds": args.warmup,
        }
    )
    if args.rate is not None:
        report["rateEventsPerSecond"] = args.rate
    if args.endpoint is None:
        report["simulatorGenuine"] = args.path == "single"
    if len(runs) > 1:
        report["consumers"] = {consumer[0].label: summary(consumer) for consumer in runs}
        report["ratios"] = [ratio(primary, other) for other in runs[1:]]
    return report


async def run_bench(args: argparse.Namespace) -> dict[str, Any]:
    """Run the benchmark the flags describe; return the report (the JSON object printed).

    Raises UsageError for bad flag values or combinations, SimulatorError when the built-in
    simulator cannot start, and the mxgateway exceptions of the calls. The child simulator is
    stopped before this returns or raises (cancellation included); its stats, when it printed
    them, are in ``simulatorStats``.
    """
    _check_usage(args)
    tags = _tags(args)
    if args.endpoint is not None:
        options = _client_options(args, None)  # flags checked before any work
    rounds = args.rounds or (DEFAULT_ROUNDS if args.compare else 1)
    sim: SimulatorProcess | None = None
    async with contextlib.AsyncExitStack() as stack:
        if args.endpoint is None:
            sim = await stack.enter_async_context(
                builtin_simulator(genuine=args.path == "single", flood_rate=args.rate)
            )
            options = _client_options(args, sim.endpoint)
        spec = Spec(
            tags=tuple(tags),
            path=args.path,
            batch_size=args.batch_size,
            warmup=args.warmup,
            duration=args.duration,
            per_event_latency=args.rate is not None,
            progress=sys.stderr.isatty(),
            simulator_cpu=sim.cpu_seconds if sim is not None else None,
        )
        run = _Run(args, spec)
        await run.open_clients(stack, options)
        with client_decoder(args.decoder) as decoder:
            runs = await run_rounds(run.consumers(), rounds)
        report = _report(
            args,
            runs,
            decoder=decoder,
            loop=_loop_name(),
            endpoint=options.endpoint,
            items=len(tags),
        )
    if sim is not None and sim.stopped_stats is not None:
        report["simulatorStats"] = simulator_summary(sim.stopped_stats)
    return report


# -- output -----------------------------------------------------------------------------------


def _fmt(value: float | None, spec: str = ",.0f") -> str:
    return "-" if value is None else format(value, spec)


def _row(label: str, part: dict[str, Any]) -> str:
    lat = part.get("latencyMs") or {}
    latency = "/".join(_fmt(lat.get(k), "g") for k in ("p50", "p99", "max")) if lat else "-"
    share = part.get("simulatorCpuShare")
    cells = [
        f"{label:<22}",
        f"{part['eventsPerSecond']:>12,.0f}",
        f"{part['messagesPerSecond']:>12,.0f}",
        f"{_fmt(part.get('mbPerSecond'), ',.1f'):>7}",
        f"{_fmt(part.get('cpuPerEventUs'), '.3f'):>8}",
        f"{_fmt(part.get('loopThreadCpuPerEventUs'), '.3f'):>7}",
        f"{_fmt(part.get('receiverThreadCpuPerEventUs'), '.3f'):>7}",
        f"{_fmt(None if share is None else share * 100, '.0f'):>5}",
        f"  {latency}",
    ]
    line = " ".join(cells)
    if part.get("error"):
        line += f"  FAILED: {part['error']}"
    return line


def _simulator_lines(report: dict[str, Any], parts: dict[str, dict[str, Any]]) -> list[str]:
    lines = []
    stats = report.get("simulatorStats") or {}
    per_message = stats.get("cpuPerMessageUs")
    if per_message is not None:
        lines.append(
            f"simulator: {per_message:g} µs CPU per message over the whole run "
            f"({stats.get('messages', 0):,} messages, {stats.get('cpuSeconds', 0):g} s CPU)"
        )
    shares = [p["simulatorCpuShare"] for p in parts.values() if "simulatorCpuShare" in p]
    if shares:
        busiest = max(shares)
        verdict = (
            "it had idle time, so it did not bound these figures"
            if busiest < _SIMULATOR_BUSY
            else "it may have bounded these figures"
        )
        lines.append(
            f"simulator busy at most {busiest * 100:.0f} % of one core while a consumer was "
            f"measured (sim % column): {verdict}"
        )
    return lines


def human(report: dict[str, Any]) -> str:
    """The report as text: a table of the consumers, the ratios, what was measured how."""
    parts: dict[str, dict[str, Any]] = report.get("consumers") or {
        (
            f"{report['consumer']}/{report['receiver']}"
            if report.get("receiver")
            else report["consumer"]
        ): report
    }
    where = "built-in simulator" if report["simulator"] else report["endpoint"]
    mode = ""
    if report["simulator"]:
        mode = " (genuine mode: no StreamEventBatches)" if report.get("simulatorGenuine") else ""
    rounds = report.get("rounds", 1)
    lines = [
        f"path {report['path']} (asked {report['requestedPath']}), {where}{mode}, "
        f"{report['items']} items, batch size {report['batchSize']}, decoder "
        f"{report['decoder']}, loop {report['loop']}",
        f"{rounds} round(s) of {report['warmupSeconds']:g} s warm-up + "
        f"{report['durationSeconds']:g} s measured per consumer",
    ]
    rate = report.get("rateEventsPerSecond")
    if rate is not None:
        lines.append(
            _wrap(
                f"fixed rate: the simulator produces {rate:,.0f} events/s per session; events/s "
                "is bounded by that rate-limited source, not by the client (read the latency "
                "and the CPU per event)"
            )
        )
    lines.append(
        f"{'consumer':<22} {'events/s':>12} {'messages/s':>12} {'MB/s':>7} "
        f"{'CPU µs/ev':>8} {'loop':>7} {'recv':>7} {'sim %':>5}  latency ms p50/p99/max"
    )
    lines += [_row(label, part) for label, part in parts.items()]
    per_round = []
    for label, part in parts.items():
        p99s = [(r.get("latencyMs") or {}).get("p99") for r in part.get("perRound", [])]
        if any(v is not None for v in p99s):
            per_round.append(f"{label} " + " ".join(_fmt(v, "g") for v in p99s))
    if per_round:
        lines.append(_wrap("p99 latency ms per round: " + "; ".join(per_round)))
    for r in report.get("ratios", []):
        lines.append(
            f"{r['numerator']} ÷ {r['denominator']}: events/s "
            + " ".join(f"{v:g}" for v in r["eventsPerSecond"])
            + f" (median {_fmt(r['eventsPerSecondMedian'], 'g')}); CPU per event "
            + " ".join(f"{v:g}" for v in r["cpuPerEvent"])
            + f" (median {_fmt(r['cpuPerEventMedian'], 'g')})"
        )
    dropped = sum(p.get("droppedSequences", 0) for p in parts.values())
    duplicates = sum(p.get("duplicateSequences", 0) for p in parts.values())
    unchecked = [label for label, p in parts.items() if "droppedSequences" not in p]
    lines.append(
        f"sequences: {dropped} dropped, {duplicates} duplicate"
        + (f" (not checked by {', '.join(unchecked)}: it decodes nothing)" if unchecked else "")
    )
    lines += [_wrap(line) for line in _simulator_lines(report, parts)]
    notes = [
        "CPU µs/ev: this process's CPU per event; loop: the event loop's thread; recv: the "
        "thread receiver's reader thread; sim %: the simulator's CPU over the window, in % "
        "of one core.",
        LATENCY_TEXT,
        *([RATIO_TEXT] if report.get("ratios") else []),
        MACHINE_TEXT,
    ]
    lines += [_wrap(note) for note in notes]
    return "\n".join(lines)


def _failed(report: dict[str, Any]) -> str | None:
    """Why the run fails (exit 1) though it measured: lost or doubled sequences, a consumer
    that fell behind; None when it passed."""
    parts = list((report.get("consumers") or {"": report}).values())
    if any(p.get("droppedSequences") or p.get("duplicateSequences") for p in parts):
        return "sequences were dropped or duplicated"
    errors = [p["error"] for p in parts if p.get("error")]
    if errors:
        return f"a consumer fell behind: {errors[0]}"
    return None


def cmd_bench_stream_events(args: argparse.Namespace) -> int:
    """The command: run on the chosen loop, print the report, return the exit code.

    Errors are reported here (JSON on stdout with ``--json``, else text on stderr, keys
    masked): usage 2, gateway/MXAccess failure 1, transport/timeout/simulator start 3,
    auth 4. Dropped or duplicate sequences, or a consumer that fell behind a ``--rate``, print
    the report and exit 1. KeyboardInterrupt propagates after the child simulator was stopped.
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
        sys.stdout.write(human(report) + "\n")
        sys.stdout.flush()
    failure = _failed(report)
    if failure is not None:
        if not json_mode:
            emit_error(False, _PROG, failure)
        return EXIT_FAILURE
    return EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mxgateway_cli._bench``: the command on its own (without ``mxgw-py``)."""
    parser = argparse.ArgumentParser(
        prog=_PROG, description="Measure event-stream throughput, latency and integrity."
    )
    add_bench_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return int(args.handler(args))
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
