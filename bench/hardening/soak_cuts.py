"""A long connection-cut run: several sessions stream through a TCP proxy that aborts every
connection again and again; then outages of growing length with the sessions kept alive.

Checks that every worker_sequence arrives exactly once and in order on every session
(StreamEventBatches and StreamEvents both), and measures how long a stream takes to deliver
again after a cut and after an outage ends.

Run: ``python -m bench.hardening.soak_cuts --cuts 200`` (prints a summary and one JSON line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import statistics
import time
from typing import Any

from mxgateway import GatewayClient, Session, codec_implementation, preferred_event_loop, run
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.hardening.proxy import TcpProxy


class Stream:
    """One session's resuming stream and what it delivered."""

    def __init__(self, session: Session, path: str) -> None:
        self.session = session
        self.path = path
        self.count = 0
        self.last = 0
        self.gaps = 0
        self.duplicates = 0
        self.replay_gaps = 0
        self.arrivals: list[float] = []  # monotonic time of each delivery (one per message)

    def _take(self, sequences: list[int], replay_gap: bool) -> None:
        if replay_gap:
            self.replay_gaps += 1
        for sequence in sequences:
            if self.last and sequence <= self.last:
                self.duplicates += 1
            elif self.last and sequence != self.last + 1:
                self.gaps += 1
            self.last = max(self.last, sequence)
            self.count += 1
        self.arrivals.append(time.monotonic())

    async def run(self) -> None:
        if self.path == "batches":
            async for batch in self.session.stream_event_batches(retry_budget_s=60):
                self._take(
                    [e.worker_sequence for e in batch if e.replay_gap is None],
                    any(e.replay_gap is not None for e in batch),
                )
        else:
            async for event in self.session.stream_events(retry_budget_s=60):
                if event.replay_gap is not None:
                    self._take([], True)
                else:
                    self._take([event.worker_sequence], False)

    def first_arrival_after(self, moment: float) -> float | None:
        for arrival in self.arrivals:
            if arrival > moment:
                return arrival - moment
        return None


async def _session(client: GatewayClient, sim: SimulatedGateway, items: int) -> Session:
    session = await client.open_session()
    server = await session.register("soak")
    await session.subscribe_bulk(server, sim.sample_references(items))
    return session


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    config = SimConfig(
        rate=args.rate, galaxy_size=200, replay_capacity=200_000, detach_grace_s=120.0
    )
    async with (
        SimulatedGateway(config) as sim,
        TcpProxy(sim.endpoint) as proxy,
        await GatewayClient.connect(endpoint=proxy.endpoint, plaintext=True) as client,
    ):
        streams = [
            Stream(await _session(client, sim, args.items), "batches" if i % 2 == 0 else "single")
            for i in range(args.sessions)
        ]
        tasks = [asyncio.create_task(s.run()) for s in streams]
        await asyncio.sleep(1.0)
        cut_times: list[float] = []
        started = time.monotonic()
        for _ in range(args.cuts):
            await asyncio.sleep(rng.uniform(args.min_gap, args.max_gap))
            if proxy.cut():
                cut_times.append(time.monotonic())
        outages: list[dict[str, float]] = []
        for seconds in args.outages:
            await asyncio.sleep(2.0)
            proxy.refuse()
            await asyncio.sleep(seconds)
            back = time.monotonic()
            proxy.accept()
            await asyncio.sleep(min(10.0, seconds + 5.0))
            delays = [d for s in streams if (d := s.first_arrival_after(back)) is not None]
            outages.append(
                {
                    "outageSeconds": seconds,
                    "maxSecondsToEventsAgain": round(max(delays), 2) if delays else -1.0,
                    "streamsBack": len(delays),
                }
            )
        await asyncio.sleep(2.0)
        elapsed = time.monotonic() - started
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for session in (s.session for s in streams):
            await session.close()
    failures = [r for r in results if not isinstance(r, asyncio.CancelledError)]
    recoveries = [
        d
        for moment in cut_times
        for s in streams
        if (d := s.first_arrival_after(moment)) is not None
    ]
    return {
        "codec": codec_implementation(),
        "loop": preferred_event_loop(),
        "sessions": args.sessions,
        "itemsPerSession": args.items,
        "eventsPerSecondOffered": args.sessions * args.items * args.rate,
        "seconds": round(elapsed, 1),
        "cuts": len(cut_times),
        "connections": proxy.connections,
        "events": sum(s.count for s in streams),
        "gaps": sum(s.gaps for s in streams),
        "duplicates": sum(s.duplicates for s in streams),
        "replayGaps": sum(s.replay_gaps for s in streams),
        "streamErrors": [repr(f) for f in failures],
        "secondsToEventsAfterCut": {
            "p50": round(statistics.median(recoveries), 3),
            "p99": round(_percentile(recoveries, 0.99), 3),
            "max": round(max(recoveries), 3),
        },
        "outages": outages,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuts", type=int, default=200)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--items", type=int, default=20)
    # 4 x 20 items x 15/s: a 25 s outage queues 7,500 events per session, under the gateway's
    # 10,000 (a longer one faults the session: the overflow error, by contract).
    parser.add_argument("--rate", type=float, default=15.0, help="steps/s per item")
    parser.add_argument("--min-gap", type=float, default=0.2, help="seconds between cuts")
    parser.add_argument("--max-gap", type=float, default=1.0)
    parser.add_argument(
        "--outages", type=float, nargs="*", default=[1.0, 5.0, 15.0, 25.0], help="seconds"
    )
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # one "resuming" warning per cut and stream
    summary = run(soak(args))
    print(
        f"{summary['cuts']} cuts over {summary['seconds']} s, {summary['sessions']} sessions: "
        f"{summary['events']} events, {summary['gaps']} gaps, {summary['duplicates']} "
        f"duplicates, {summary['replayGaps']} replay gaps; events again after a cut: "
        f"median {summary['secondsToEventsAfterCut']['p50']} s, "
        f"max {summary['secondsToEventsAfterCut']['max']} s"
    )
    for outage in summary["outages"]:
        print(
            f"outage {outage['outageSeconds']} s: {outage['streamsBack']} streams back, "
            f"the last after {outage['maxSecondsToEventsAgain']} s"
        )
    print(json.dumps(summary, sort_keys=True))
    bad = summary["gaps"] + summary["duplicates"] + summary["replayGaps"]
    return 1 if bad or summary["streamErrors"] else 0


if __name__ == "__main__":
    raise SystemExit(main())
