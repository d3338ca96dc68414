"""End-to-end event-stream throughput, printed as one JSON line (a plain script, no pytest).

Starts ``mxgw-py sim --flood --plaintext`` in a child process (unless ``--endpoint``) and, in
this one process and run, measures against it:

* batches: ``Session.stream_event_batches()`` into structs, the consumer on the plain
  generated stubs (protobuf ``MxEventBatch`` + ``event_from_pb`` for every event), and raw
  batch bytes with no decoding (the transport's ceiling);
* single: ``Session.stream_events()`` (one event per message), raw single-message bytes with no
  decoding (identity deserializer), and the generated-stub consumer on StreamEvents.

Each consumer runs ``--rounds`` times for ``--duration`` seconds (after ``--warmup``). The two
consumers a ratio compares run back to back in every round, the one going first alternating,
so that both figures of a round saw the same machine (this one is small and shared: other
load moves single figures by 20 % and more). A consumer's rate is its events over its
measured seconds, summed over the rounds; ``pairRatioMedian`` is the median of the per-round
ratios, the steadier figure. Ratios:
``batches.ratioToStubs`` = stream_event_batches / stubs (target >= 6),
``single.ratioToRaw`` = stream_events / raw bytes (target >= 0.9).

Run: ``python bench/stream_throughput.py`` (``--help`` for the knobs). The figures are also in
the JSON: ``cpuSeconds`` is this process's CPU time while measuring (gRPC threads included).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import mxgateway
from mxgateway import ClientOptions, GatewayClient
from mxgateway_cli._bench import (
    PathName,
    StreamStats,
    flood_simulator,
    measure_client,
    measure_raw,
    measure_stub,
    simulator_tags,
)

Measure = Callable[..., Awaitable[StreamStats]]


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--endpoint", help="plaintext gateway to use (default: start the sim)")
    parser.add_argument("--items", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--duration", type=float, default=1.5, help="seconds per measurement")
    parser.add_argument("--warmup", type=float, default=0.5, help="seconds before each")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default=None)
    parser.add_argument(
        "--only", choices=("batches", "single"), default=None, help="measure one group only"
    )
    return parser.parse_args(argv)


def _total(runs: list[StreamStats]) -> dict[str, Any]:
    events = sum(r.events for r in runs)
    seconds = sum(r.seconds for r in runs)
    cpu = sum(r.cpu_seconds for r in runs)
    return {
        "events": events,
        "seconds": round(seconds, 3),
        "eventsPerSecond": round(events / seconds, 1) if seconds else 0.0,
        "perRound": [round(r.events_per_s, 1) for r in runs],
        "cpuSeconds": round(cpu, 3),
        "droppedSequences": sum(r.dropped for r in runs),
        "duplicateSequences": sum(r.duplicates for r in runs),
    }


async def _group(
    client: GatewayClient,
    args: argparse.Namespace,
    path: PathName,
    consumers: dict[str, Measure],
) -> dict[str, Any]:
    """Every consumer ``args.rounds`` times; the first two form the compared pair.

    In each round the pair runs back to back, the one going first alternating, so a round's
    two figures saw the same conditions; ``pairRatios`` are first/second per round.
    """
    tags = simulator_tags(args.items)
    runs: dict[str, list[StreamStats]] = {name: [] for name in consumers}
    first, second, *others = list(consumers)
    for round_ in range(args.rounds):
        pair = [first, second] if round_ % 2 == 0 else [second, first]
        for name in pair + others:
            stats = await consumers[name](
                client,
                tags=tags,
                path=path,
                batch_size=args.batch_size,
                warmup=args.warmup,
                duration=args.duration,
            )
            runs[name].append(stats)
    out: dict[str, Any] = {name: _total(r) for name, r in runs.items()}
    ratios = sorted(
        a.events_per_s / b.events_per_s
        for a, b in zip(runs[first], runs[second], strict=True)
        if b.events_per_s
    )
    out["pairRatios"] = [round(r, 3) for r in ratios]
    out["pairRatioMedian"] = round(statistics.median(ratios), 3) if ratios else None
    return out


def _ratio(a: dict[str, Any], b: dict[str, Any]) -> float | None:
    return round(a["eventsPerSecond"] / b["eventsPerSecond"], 3) if b["eventsPerSecond"] else None


async def _run(endpoint: str, args: argparse.Namespace) -> dict[str, Any]:
    options = ClientOptions(endpoint=endpoint, plaintext=True)
    report: dict[str, Any] = {
        "batchSize": args.batch_size,
        "codec": mxgateway.codec_implementation(),
        "durationSeconds": args.duration,
        "items": args.items,
        "rounds": args.rounds,
        "warmupSeconds": args.warmup,
    }
    async with await GatewayClient.connect(options=options) as client:
        await client.wait_ready(30)
        loop = type(asyncio.get_running_loop()).__module__
        report["loop"] = "uvloop" if loop.startswith("uvloop") else "asyncio"
        if args.only in (None, "batches"):
            batches = await _group(
                client,
                args,
                "batches",
                {
                    "streamEventBatches": measure_client,
                    "generatedStubs": measure_stub,
                    "rawBytes": measure_raw,
                },
            )
            batches["ratioToStubs"] = _ratio(
                batches["streamEventBatches"], batches["generatedStubs"]
            )
            report["batches"] = batches
        if args.only in (None, "single"):
            single = await _group(
                client,
                args,
                "single",
                {
                    "streamEvents": measure_client,
                    "rawBytes": measure_raw,
                    "generatedStubs": measure_stub,
                },
            )
            single["ratioToRaw"] = _ratio(single["streamEvents"], single["rawBytes"])
            report["single"] = single
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print it as one JSON line."""
    args = _parse(argv)
    started = time.perf_counter()
    if args.endpoint:
        report = mxgateway.run(_run(args.endpoint, args), loop=args.loop)
    else:
        with flood_simulator() as endpoint:
            report = mxgateway.run(_run(endpoint, args), loop=args.loop)
    report["wallSeconds"] = round(time.perf_counter() - started, 1)
    sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
