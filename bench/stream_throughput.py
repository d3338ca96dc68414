"""End-to-end event-stream throughput, printed as one JSON line (a plain script, no pytest).

Starts ``mxgw-py sim --flood --plaintext`` in a child process per group (unless
``--endpoint``): the batches group against a simulator with StreamEventBatches, the single
group against one in genuine mode (``--no-event-batches``, what the genuine gateway offers).
In this one process it measures, with the consumers of ``mxgw-py bench-stream-events``:

* batches: ``Session.stream_event_batches()`` into structs, the consumer on the plain
  generated stubs (protobuf ``MxEventBatch`` + ``event_from_pb`` for every event), and raw
  batch bytes with no decoding (their events counted without decoding them);
* single: ``Session.stream_events(path="single")`` with the thread receiver and with the aio
  receiver, raw StreamEvents bytes with no decoding (grpc.aio, identity deserializer: a plain
  grpc.aio reader), and the generated-stub consumer on StreamEvents.

Each consumer runs ``--rounds`` times, each time in a session of its own, for ``--duration``
seconds after ``--warmup``. The two consumers a ratio compares first run back to back in every
round, the one going first alternating, so that both figures of a round saw the same machine
(this one is small and shared: other load moves single figures two to four times). Per
consumer: events/s (its events over its measured seconds, summed over the rounds), CPU per
event of this process, of the loop's thread and of the receiver's thread, the simulator's CPU
share; per ratio: the per-round values and their median (the steadier figure), of events/s and
of CPU per event. Targets (design/architecture.md): batches ``stream_event_batches`` ÷
``generated_stubs`` >= 6; single ``stream_events/thread`` ÷ ``raw_bytes/aio`` (a plain grpc.aio
reader) >= 3.

Run: ``python bench/stream_throughput.py`` (``--help`` for the knobs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import mxgateway
from mxgateway import EventReceiver, GatewayClient
from mxgateway_cli._bench import (
    PathName,
    SimulatorProcess,
    Spec,
    flood_simulator,
    measure_client,
    measure_raw,
    measure_stub,
    ratio,
    run_rounds,
    simulator_tags,
    summary,
)
from mxgateway_cli._bench.rounds import Measure
from mxgateway_cli._bench.simulator import simulator_summary

PATHS: tuple[PathName, ...] = ("batches", "single")
RECEIVERS: tuple[EventReceiver, ...] = ("thread", "aio")


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
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


async def _group(
    endpoint: str, args: argparse.Namespace, path: PathName, sim: SimulatorProcess | None
) -> dict[str, Any]:
    """Every consumer of ``path`` ``args.rounds`` times; the first two form the compared pair;
    ratios of the first to each other."""
    spec = Spec(
        tags=tuple(simulator_tags(args.items)),
        path=path,
        batch_size=args.batch_size,
        warmup=args.warmup,
        duration=args.duration,
        simulator_cpu=sim.cpu_seconds if sim is not None else None,
    )
    async with contextlib.AsyncExitStack() as stack:
        clients: dict[EventReceiver, GatewayClient] = {}
        for receiver in RECEIVERS:
            client = await stack.enter_async_context(
                await GatewayClient.connect(endpoint, plaintext=True, event_receiver=receiver)
            )
            await client.wait_ready(30)
            clients[receiver] = client
        thread, aio = clients["thread"], clients["aio"]
        consumers: list[Measure]
        if path == "batches":
            consumers = [
                lambda: measure_client(thread, spec),
                lambda: measure_stub(aio, spec),
                lambda: measure_raw(aio, spec),
            ]
        else:
            consumers = [
                lambda: measure_client(thread, spec),
                lambda: measure_client(aio, spec),
                lambda: measure_raw(aio, spec),
                lambda: measure_stub(aio, spec),
            ]
        runs = await run_rounds(consumers, args.rounds)
    out: dict[str, Any] = {"consumers": {r[0].label: summary(r) for r in runs}}
    out["ratios"] = [ratio(runs[0], other) for other in runs[1:]]
    return out


@contextlib.contextmanager
def _gateway(args: argparse.Namespace, path: PathName) -> Iterator[SimulatorProcess | None]:
    if args.endpoint:
        yield None
        return
    with flood_simulator(genuine=path == "single") as sim:
        yield sim


def _run(args: argparse.Namespace) -> dict[str, Any]:
    report: dict[str, Any] = {
        "batchSize": args.batch_size,
        "codec": mxgateway.codec_implementation(),
        "durationSeconds": args.duration,
        "items": args.items,
        "loop": args.loop or mxgateway.preferred_event_loop(),
        "rounds": args.rounds,
        "warmupSeconds": args.warmup,
    }
    for path in PATHS:
        if args.only not in (None, path):
            continue
        with _gateway(args, path) as sim:
            endpoint = sim.endpoint if sim is not None else args.endpoint
            group = mxgateway.run(_group(endpoint, args, path, sim), loop=args.loop)
        if sim is not None and sim.stopped_stats is not None:
            group["simulatorStats"] = simulator_summary(sim.stopped_stats)
        report[path] = group
    return report


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print it as one JSON line."""
    args = _parse(argv)
    started = time.perf_counter()
    report = _run(args)
    report["wallSeconds"] = round(time.perf_counter() - started, 1)
    sys.stdout.write(json.dumps(report, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
