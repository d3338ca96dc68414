"""A longer load run: N sessions x M advised items streaming at once from a simulator in its
own process, repeated; every sequence accounted for, 128 pending commands per session checked
in every run, and the client's tasks and memory after each run (allocated blocks, RSS, and
with ``--tracemalloc`` the traced current and peak sizes).

Run: ``python -m bench.hardening.load --sessions 32 --items 2000 --seconds 20 --runs 5``
(prints one line per run and one JSON line).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import sys
import tracemalloc
from typing import Any

from mxgateway import GatewayClient, codec_implementation, preferred_event_loop, run
from mxgateway.sim._galaxy import Galaxy
from tests.hardening.load_run import load_run
from tests.hardening.simproc import SimProcess


def rss_mib() -> float:
    """The resident set size of this process now (Linux), else the peak."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


async def load(args: argparse.Namespace) -> dict[str, Any]:
    galaxy = max(200, args.items // 5 + 10)
    references = Galaxy(galaxy, 1).sample_references(args.items)
    if len(references) < args.items:
        raise SystemExit(f"the simulated Galaxy has only {len(references)} attributes")
    runs: list[dict[str, Any]] = []
    baseline_tasks = len(asyncio.all_tasks())
    if args.tracemalloc:
        tracemalloc.start()
    async with (
        SimProcess(
            flood=True, rate=0.0, galaxy_size=galaxy, max_sessions=max(64, args.sessions)
        ) as sim,
        await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True) as client,
    ):
        for number in range(args.runs):
            if args.tracemalloc:
                tracemalloc.reset_peak()
            result = await load_run(
                client,
                sim,
                references,
                sessions=args.sessions,
                stream_seconds=args.seconds,
                live_events=1000,
                limit_seconds=args.seconds + 300,
            )
            await asyncio.sleep(0.2)  # let cancelled calls settle
            gc.collect()
            entry: dict[str, Any] = {
                "run": number + 1,
                "events": result.events,
                "eventsPerSecond": round(result.events / result.stream_seconds),
                "incompleteSessions": result.incomplete_sessions,
                "setupSeconds": round(result.setup_seconds, 2),
                "pendingCheckSeconds": round(result.pending_seconds, 2),
                "streamSeconds": round(result.stream_seconds, 2),
                "tasksLeft": len(asyncio.all_tasks()) - baseline_tasks,
                "allocatedBlocks": sys.getallocatedblocks(),
                "rssMiB": round(rss_mib(), 1),
            }
            if args.tracemalloc:
                current, peak = tracemalloc.get_traced_memory()
                entry["tracedMiB"] = round(current / 2**20, 2)
                entry["tracedPeakMiB"] = round(peak / 2**20, 2)
            runs.append(entry)
            print(
                f"run {entry['run']}: {entry['events']} events in {entry['streamSeconds']} s "
                f"({entry['eventsPerSecond']}/s), {entry['incompleteSessions']} incomplete "
                f"sessions, {entry['tasksLeft']} tasks left, {entry['allocatedBlocks']} blocks, "
                f"RSS {entry['rssMiB']} MiB"
                + (
                    f", traced {entry['tracedMiB']} MiB (peak {entry['tracedPeakMiB']})"
                    if args.tracemalloc
                    else ""
                ),
                flush=True,
            )
    return {
        "codec": codec_implementation(),
        "loop": preferred_event_loop(),
        "sessions": args.sessions,
        "itemsPerSession": args.items,
        "secondsPerRun": args.seconds,
        "runs": runs,
        "blocksGrowthAfterFirstRun": runs[-1]["allocatedBlocks"] - runs[0]["allocatedBlocks"],
        "rssGrowthAfterFirstRunMiB": round(runs[-1]["rssMiB"] - runs[0]["rssMiB"], 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=32)
    parser.add_argument("--items", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=20.0, help="streaming per run")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--tracemalloc", action="store_true", help="trace (slower)")
    args = parser.parse_args(argv)
    summary = run(load(args))
    print(json.dumps(summary, sort_keys=True))
    failed = any(r["incompleteSessions"] or r["tasksLeft"] for r in summary["runs"])
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
