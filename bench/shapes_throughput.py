"""Event shapes end to end: structs, columns and a raw receiver, by CPU time per event.

Starts the flood simulator (``mxgw-py sim --flood --plaintext``) in a child process and, in
this process and run, reads StreamEventBatches from it with:

* ``raw``: the stream core's own receiver (grpc.aio, identity deserializer) with no decoding:
  the floor every shape is compared with (events = messages x batch size: flood batches are
  full, checked on the last message);
* ``structs``: ``Session.stream_event_batches()`` (lists of MxEvent);
* ``columns``: ``Session.stream_event_columns()`` (EventColumns);
* ``structs_baseline`` (with ``--baseline-so PATH``): ``stream_event_batches()`` with the
  client's codec swapped for another build of ``mxgateway._speedups`` (e.g. the first
  release's), so "structs now vs. then" is measured in the same run.

Each consumer reads for ``--warmup`` then ``--duration`` seconds per round; the consumers of a
round run back to back in an order that rotates between rounds, so that every figure saw the
same machine. Per consumer and batch size: events/s (wall), CPU nanoseconds per event and
events per CPU-second (``time.process_time()`` of this process: the client, gRPC threads
included; the simulator is another process), and latency (arrival minus the gateway receive
time of a unit's first event, weighted by its events). Ratios are per round, then the median.

``--rate R`` paces the simulator (``--flood-rate R``): the latency at a fixed rate, where a
batch holds what was due (the simulator never waits to fill one).

Run: ``python bench/shapes_throughput.py --batch-sizes 1000,4000,16000`` (``--help``).
Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import ModuleType
from typing import Any

import mxgateway
from mxgateway import GatewayClient, Session, _codec
from mxgateway._receivers import aio_messages
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway_cli._bench import simulator_command, simulator_env, simulator_tags

Units = AsyncIterator[Any]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", help="plaintext flood gateway (default: start one)")
    parser.add_argument("--batch-sizes", default="1000,4000,16000")
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--duration", type=float, default=2.0, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=0.0, help="paced flood, events/s")
    parser.add_argument(
        "--consumers",
        default="raw,structs,columns",
        help="comma-separated: raw, structs, columns (structs_baseline with --baseline-so)",
    )
    parser.add_argument("--baseline-so", help="another build of mxgateway._speedups")
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default=None)
    return parser.parse_args(argv)


def _load_baseline(path: str) -> ModuleType:
    """A compiled codec from ``path`` under another module name (its init is _speedups)."""
    spec = importlib.util.spec_from_file_location("mxgw_baseline._speedups", path)
    if spec is None or spec.loader is None:
        raise SystemExit(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# A paced flood simulator in a child process, with a queue deep enough for a loaded machine
# (a consumer that stalls longer than the queue holds overflows the session, and ends the run).
_PACED = (
    "import asyncio, json, signal, sys\n"
    "from mxgateway.sim import SimConfig, SimulatedGateway\n"
    "async def main():\n"
    "    stop = asyncio.Event()\n"
    "    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)\n"
    "    config = SimConfig(rate=0.0, flood=True, flood_rate=float(sys.argv[1]),\n"
    "                       queue_capacity=int(sys.argv[2]))\n"
    "    async with SimulatedGateway(config) as gateway:\n"
    "        print(json.dumps({'listening': gateway.endpoint}), flush=True)\n"
    "        await stop.wait()\n"
    "asyncio.run(main())\n"
)


@contextlib.contextmanager
def _simulator(rate: float) -> Iterator[str]:
    command = simulator_command()
    if rate > 0:
        command = [sys.executable, "-c", _PACED, repr(rate), str(max(10_000, int(rate)))]
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, env=simulator_env())
        assert process.stdout is not None
        try:
            line = process.stdout.readline()
            if not line:
                log.seek(0)
                raise SystemExit(f"simulator failed: {log.read()[-2000:]!r}")
            yield str(json.loads(line)["listening"])
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()


async def _session(client: GatewayClient, items: int) -> Session:
    session = await client.open_session("bench-shapes")
    server = await session.register("bench-shapes")
    await session.subscribe_bulk(server, simulator_tags(items))
    return session


async def _raw_units(client: GatewayClient, session: Session, batch: int) -> Units:
    request = pb.StreamEventsRequest(session_id=session.session_id, max_batch_events=batch)
    messages: Any = aio_messages(client._raw_batches, request, metadata=client.options.metadata)
    try:
        async for raws in messages:
            yield raws
    finally:
        await messages.aclose()


def _count_raw(unit: list[bytes], batch: int) -> tuple[int, int | None]:
    return len(unit) * batch, None


def _count_structs(unit: list[Any], batch: int) -> tuple[int, int | None]:
    return len(unit), unit[0].gateway_receive_timestamp_ns if unit else None


def _count_columns(unit: Any, batch: int) -> tuple[int, int | None]:
    n = len(unit)
    if not n:
        return 0, None
    stamp = int(unit.gateway_receive_timestamp_ns[0])
    return n, None if stamp == -(2**63) else stamp


async def _measure(
    units: Units,
    count: Callable[[Any, int], tuple[int, int | None]],
    batch: int,
    warmup: float,
    duration: float,
) -> dict[str, Any]:
    """Read ``units`` for warmup + duration seconds; the figures of the measured part."""
    time_ns = time.time_ns
    latencies: list[tuple[int, int]] = []
    events = 0
    last: Any = None
    start_at = time.perf_counter() + warmup
    end_at = start_at + duration
    started = False
    cpu0 = wall0 = 0.0
    try:
        async for unit in units:
            now = time_ns()
            n, stamp = count(unit, batch)
            last = unit
            if started:
                events += n
                if stamp is not None:
                    latencies.append((now - stamp, n))
                if time.perf_counter() >= end_at:
                    break
            elif time.perf_counter() >= start_at:
                started = True
                cpu0, wall0 = time.process_time(), time.perf_counter()
    finally:
        await units.aclose()  # type: ignore[attr-defined]
    cpu = time.process_time() - cpu0
    wall = time.perf_counter() - wall0
    return {
        "events": events,
        "cpu": cpu,
        "wall": wall,
        "latencies": latencies,
        "last": last,
    }


def _percentile(samples: list[tuple[int, int]], q: float) -> float | None:
    if not samples:
        return None
    ordered = sorted(samples)
    total = sum(w for _, w in ordered)
    seen = 0
    for value, weight in ordered:
        seen += weight
        if seen >= q * total:
            return value / 1e6
    return ordered[-1][0] / 1e6


async def _run_one(
    client: GatewayClient, name: str, batch: int, args: argparse.Namespace, baseline: Any
) -> dict[str, Any]:
    session = await _session(client, args.items)
    saved = _codec.impl
    try:
        units: Units
        if name == "raw":
            units, count = _raw_units(client, session, batch), _count_raw
        elif name in ("structs", "structs_baseline"):
            if name == "structs_baseline":
                _codec.impl = baseline
            units = session.stream_event_batches(max_batch_events=batch, resume=False)
            count = _count_structs
        elif name == "columns":
            units = session.stream_event_columns(max_batch_events=batch, resume=False)
            count = _count_columns
        else:
            raise SystemExit(f"unknown consumer {name!r}")
        result = await _measure(units, count, batch, args.warmup, args.duration)
    finally:
        _codec.impl = saved
        await session.close()
    if name == "raw" and result["last"] and args.rate <= 0:
        decoded = _codec.impl.decode_event_batch(result["last"][-1])
        if len(decoded) != batch:
            raise SystemExit(f"raw: a flood batch held {len(decoded)} events, not {batch}")
    return result


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    names = [n.strip() for n in args.consumers.split(",") if n.strip()]
    baseline = None
    if args.baseline_so:
        baseline = _load_baseline(args.baseline_so)
        if "structs_baseline" not in names:
            names.append("structs_baseline")
    sizes = [int(s) for s in args.batch_sizes.split(",")]
    endpoint_cm = contextlib.nullcontext(args.endpoint) if args.endpoint else _simulator(args.rate)
    report: dict[str, Any] = {
        "codec": mxgateway.codec_implementation(),
        "loop": type(asyncio.get_running_loop()).__module__.split(".")[0],
        "rate": args.rate,
        "items": args.items,
        "duration": args.duration,
        "rounds": args.rounds,
        "batchSizes": {},
    }
    with endpoint_cm as endpoint:
        client = await GatewayClient.connect(endpoint=endpoint, plaintext=True)
        try:
            await client.wait_ready(30)
            for batch in sizes:
                rounds: list[dict[str, dict[str, Any]]] = []
                for r in range(args.rounds):
                    order = names[r % len(names) :] + names[: r % len(names)]
                    this: dict[str, dict[str, Any]] = {}
                    for name in order:
                        this[name] = await _run_one(client, name, batch, args, baseline)
                    rounds.append(this)
                report["batchSizes"][str(batch)] = _summary(names, rounds)
        finally:
            await client.close()
    return report


def _summary(names: list[str], rounds: list[dict[str, dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name in names:
        events = sum(r[name]["events"] for r in rounds)
        cpu = sum(r[name]["cpu"] for r in rounds)
        wall = sum(r[name]["wall"] for r in rounds)
        latencies = [s for r in rounds for s in r[name]["latencies"]]
        out[name] = {
            "events": events,
            "eventsPerSecond": round(events / wall) if wall else None,
            "cpuNsPerEvent": round(cpu / events * 1e9, 1) if events else None,
            "eventsPerCpuSecond": round(events / cpu) if cpu else None,
            "latencyP50Ms": _percentile(latencies, 0.5),
            "latencyP99Ms": _percentile(latencies, 0.99),
        }

    def ratio(a: str, b: str, key: str) -> float | None:
        if a not in names or b not in names:
            return None
        per_round = [
            (r[a]["events"] / r[a]["cpu"]) / (r[b]["events"] / r[b]["cpu"])
            for r in rounds
            if r[a]["cpu"] and r[b]["cpu"] and r[b]["events"]
        ]
        per_round_ratios[key] = [round(x, 3) for x in per_round]
        return round(statistics.median(per_round), 3) if per_round else None

    per_round_ratios: dict[str, list[float]] = {}
    out["ratios"] = {  # the median of the rounds' ratios
        key: ratio(a, b, key)
        for key, a, b in (
            ("columnsToStructs", "columns", "structs"),
            ("columnsToRaw", "columns", "raw"),
            ("structsToRaw", "structs", "raw"),
            ("structsToBaseline", "structs", "structs_baseline"),
        )
    }
    # Each round's ratio beside the median (the spread says how noisy the machine was).
    out["ratiosPerRound"] = per_round_ratios
    out["cpuNsPerEventPerRound"] = {
        name: [
            round(r[name]["cpu"] / r[name]["events"] * 1e9, 1) if r[name]["events"] else None
            for r in rounds
        ]
        for name in names
    }
    return out


def main(argv: list[str] | None = None) -> None:
    args = _parse(argv)
    loop_factory = None
    wanted = args.loop or mxgateway.preferred_event_loop()
    if wanted == "uvloop":
        import uvloop

        loop_factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        report = runner.run(_main(args))
    json.dump(report, sys.stdout, indent=1, sort_keys=True)
    print()


if __name__ == "__main__":
    main()
