"""The client's memory while its consumer is paused and the gateway keeps producing, for
pauses of growing length: gRPC's flow control holds the backlog at the gateway (whose queue
overflows), so what the client holds does not grow with the pause.

The simulator runs in its own process; this process measures only the client: tracemalloc's
peak over the run and the RSS growth. Each run ends with the typed overflow error.

Run: ``python -m bench.hardening.slow_consumer --pauses 2 5 20`` (one line per pause and one
JSON line).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tracemalloc
from collections.abc import AsyncIterator
from typing import Any

from bench.hardening.load import rss_mib
from mxgateway import (
    GatewayClient,
    MxGatewayEventQueueOverflowError,
    codec_implementation,
    preferred_event_loop,
    run,
)
from mxgateway.sim._galaxy import Galaxy
from tests.hardening.simproc import SimProcess


async def _one(endpoint: str, references: list[str], path: str, pause: float) -> dict[str, Any]:
    async with await GatewayClient.connect(endpoint=endpoint, plaintext=True) as client:
        session = await client.open_session()
        server = await session.register("slow")
        stream: AsyncIterator[Any] = (
            session.stream_event_batches() if path == "batches" else session.stream_events()
        )
        gc.collect()
        rss_before = rss_mib()
        tracemalloc.start()
        try:
            first = asyncio.ensure_future(anext(stream))
            await asyncio.sleep(0.2)
            await session.subscribe_bulk(server, references)
            await first
            await asyncio.sleep(pause)
            rss_paused = rss_mib()
            read = 0
            error = ""

            async def drain() -> None:
                nonlocal read
                async for item in stream:
                    read += len(item) if path == "batches" else 1

            try:
                await asyncio.wait_for(drain(), 30)  # a consumer that keeps up never overflows
            except MxGatewayEventQueueOverflowError as exc:
                error = type(exc).__name__
            except TimeoutError:
                error = ""
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        await session.close()
    return {
        "path": path,
        "pauseSeconds": pause,
        "eventsReadAfterPause": read,
        "error": error,
        "tracedPeakMiB": round(peak / 2**20, 2),
        "rssGrowthMiB": round(rss_paused - rss_before, 1),
    }


async def slow(args: argparse.Namespace) -> dict[str, Any]:
    references = Galaxy(60, 1).sample_references(args.items)
    results: list[dict[str, Any]] = []
    async with SimProcess(
        rate=args.rate, galaxy_size=60, queue_capacity=args.queue_capacity
    ) as sim:
        for path in ("batches", "single"):
            for pause in args.pauses:
                result = await _one(sim.endpoint, references, path, pause)
                results.append(result)
                print(
                    f"{path}, paused {pause} s: read {result['eventsReadAfterPause']} then "
                    f"{result['error'] or 'no error'}; traced peak {result['tracedPeakMiB']} MiB, "
                    f"RSS +{result['rssGrowthMiB']} MiB",
                    flush=True,
                )
    return {
        "codec": codec_implementation(),
        "loop": preferred_event_loop(),
        "eventsPerSecondOffered": args.items * args.rate,
        "queueCapacity": args.queue_capacity,
        "results": results,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pauses", type=float, nargs="+", default=[2.0, 5.0, 20.0])
    parser.add_argument("--items", type=int, default=100)
    parser.add_argument("--rate", type=float, default=400.0, help="steps/s per item")
    parser.add_argument("--queue-capacity", type=int, default=1000)
    args = parser.parse_args(argv)
    summary = run(slow(args))
    print(json.dumps(summary, sort_keys=True))
    return 0 if all(r["error"] for r in summary["results"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
