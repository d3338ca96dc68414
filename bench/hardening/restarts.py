"""Gateway restarts under a recovering session: how soon events flow again.

A simulator in its own process (``tests.hardening.simproc``) restarts (every session lost) while
a ``recover=True`` session with 1,000 advised items streams, on each path: StreamEventBatches,
and StreamEvents on the thread and on the aio receiver. For each restart it measures the time
from the gateway being back to the first event of the recovered session, and checks one
marker per restart and no worker_sequence twice within a session.

Run: ``python -m bench.hardening.restarts --restarts 5`` (a table, then one JSON line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from mxgateway import EventReceiver, GatewayClient, MxEvent, run
from tests.hardening.simproc import SimProcess


async def _until(predicate: Callable[[], object], step: float = 0.002) -> None:
    # Polling: what is awaited is the other process's restart, which no Event here can signal.
    while not predicate():  # noqa: ASYNC110
        await asyncio.sleep(step)


async def _measure(sim: SimProcess, path: str, restarts: int, items: int) -> dict[str, Any]:
    refs = await sim.call("sample_references", items)
    receiver: EventReceiver = "aio" if path == "aio" else "thread"
    async with await GatewayClient.connect(
        endpoint=sim.endpoint, plaintext=True, event_receiver=receiver
    ) as client:
        session = await client.open_session("restarts", recover=True)
        server = await session.register("restarts")
        await session.subscribe_bulk(server, refs)
        events: list[tuple[float, MxEvent]] = []

        async def consume() -> None:
            stream = session.stream_event_batches(
                retry_budget_s=60, path="auto" if path == "batches" else "single"
            )
            async for batch in stream:
                now = time.monotonic()
                events.extend((now, e) for e in batch)

        task = asyncio.create_task(consume())
        delays: list[float] = []
        try:
            for _ in range(restarts):
                await _until(lambda: len(events) >= 100)
                old = session.session_id
                mark = len(events)
                await sim.call("restart")
                back = time.monotonic()

                def fresh(m: int = mark, o: str = old) -> list[float]:
                    return [t for t, e in events[m:] if e.session_id != o and e.worker_sequence]

                await _until(fresh)
                first = fresh()[0]
                delays.append(first - back)
                target = len(events) + 100
                await _until(lambda: len(events) >= target)  # noqa: B023
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        markers = sum(1 for _, e in events if e.session_recovered is not None)
        counts = Counter((e.session_id, e.worker_sequence) for _, e in events if e.worker_sequence)
        await session.close()
    return {
        "path": path,
        "restarts": restarts,
        "markers": markers,
        "duplicates": sum(c - 1 for c in counts.values()),
        "eventsAgainSeconds": {
            "median": round(statistics.median(delays), 3),
            "max": round(max(delays), 3),
        },
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    cases = []
    async with SimProcess(rate=args.rate, galaxy_size=max(200, args.items // 2)) as sim:
        for path in ("batches", "thread", "aio"):
            case = await _measure(sim, path, args.restarts, args.items)
            cases.append(case)
            again = case["eventsAgainSeconds"]
            print(
                f"{path:8s} {case['restarts']} restarts: {case['markers']} markers, "
                f"{case['duplicates']} duplicates, events again after median {again['median']} s,"
                f" max {again['max']} s",
                flush=True,
            )
    return {"items": args.items, "cases": cases}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--restarts", type=int, default=5)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=1.0, help="changes per second per item")
    args = parser.parse_args()
    print(json.dumps(run(_main(args)), sort_keys=True))


if __name__ == "__main__":
    main()
