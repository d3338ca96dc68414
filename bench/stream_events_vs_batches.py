"""``Session.stream_events()`` (one event at a time) against ``stream_event_batches()`` (lists),
on the same StreamEventBatches from a flood simulator in its own process, with the same work
per event in both consumers (a count), so that the difference is the library's: what handing
on events one by one costs. Alternating rounds (A B, B A, ...): events/s and client CPU per
event per round, and their ratios. Target (design/architecture.md): stream_events() ≥ 80 % of
stream_event_batches().

Run: ``python -m bench.stream_events_vs_batches --rounds 6`` (a line per round, one JSON line).
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from typing import Any

from mxgateway import GatewayClient, run
from tests.hardening.simproc import SimProcess


async def _measure(endpoint: str, tags: list[str], one_by_one: bool, seconds: float) -> Any:
    async with await GatewayClient.connect(endpoint=endpoint, plaintext=True) as client:
        session = await client.open_session("shapes")
        server = await session.register("shapes")
        await session.subscribe_bulk(server, tags)
        count = 0
        started = cpu = deadline = 0.0
        if one_by_one:
            events = session.stream_events()
            async for _ in events:
                if not deadline:
                    started, cpu = time.perf_counter(), time.process_time()
                    deadline = started + seconds
                count += 1
                if count & 1023 == 0 and time.perf_counter() > deadline:
                    break
            await events.aclose()
        else:
            lists = session.stream_event_batches()
            async for batch in lists:
                if not deadline:
                    started, cpu = time.perf_counter(), time.process_time()
                    deadline = started + seconds
                for _ in batch:
                    count += 1
                if time.perf_counter() > deadline:
                    break
            await lists.aclose()
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        await session.close()
        return count / elapsed, cpu / count * 1e9


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    rows: dict[str, list[tuple[float, float]]] = {"stream_event_batches": [], "stream_events": []}
    async with SimProcess(flood=True) as sim:
        tags = await sim.call("sample_references", args.items)
        for index in range(args.rounds):
            order = (False, True) if index % 2 == 0 else (True, False)
            for one_by_one in order:
                key = "stream_events" if one_by_one else "stream_event_batches"
                rows[key].append(await _measure(sim.endpoint, tags, one_by_one, args.seconds))
    batches, events = rows["stream_event_batches"], rows["stream_events"]
    rate = [e[0] / b[0] for e, b in zip(events, batches, strict=True)]
    cpu = [b[1] / e[1] for e, b in zip(events, batches, strict=True)]
    for number, (b, e) in enumerate(zip(batches, events, strict=True), start=1):
        print(
            f"round {number}: stream_event_batches {b[0]:,.0f}/s {b[1]:.0f} ns/event, "
            f"stream_events {e[0]:,.0f}/s {e[1]:.0f} ns/event",
            flush=True,
        )
    return {
        "rounds": args.rounds,
        "eventsPerSecondRatio": [round(r, 3) for r in rate],
        "eventsPerSecondRatioMedian": round(statistics.median(rate), 3),
        "eventsPerCpuSecondRatio": [round(r, 3) for r in cpu],
        "eventsPerCpuSecondRatioMedian": round(statistics.median(cpu), 3),
        "nsPerEvent": {k: [round(v[1]) for v in rows[k]] for k in rows},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--items", type=int, default=16)
    print(json.dumps(run(_main(parser.parse_args())), sort_keys=True))


if __name__ == "__main__":
    main()
