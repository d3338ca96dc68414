"""A long cut run for the alarm feed and the deploy watch: both follow the simulator through a
TCP proxy that aborts every connection again and again while alarms raise, clear and are
acknowledged at random; every few cuts the gateway stays unreachable for a while and the Galaxy
is redeployed meanwhile; then outages of growing length, then gateway restarts with changes
made while it is down.

Checks that the consumer of the feed (which builds its view only from the items it is given)
ends up holding exactly the gateway's active alarms, that no alarm was reported active twice,
and that every deploy was yielded exactly once; measures how long after a cut the feed is
resynced and the size of the differences.

Run: ``python -m bench.hardening.feed_cuts --cuts 200`` (prints a summary and one JSON line).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import random
import statistics
import time
from typing import Any

from mxgateway import (
    DeployEvent,
    GalaxyRepositoryClient,
    GatewayClient,
    codec_implementation,
    preferred_event_loop,
    run,
)
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.hardening.feeds import AlarmConsumer, AlarmDriver, wait_for
from tests.hardening.proxy import TcpProxy


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {
        "p50": round(statistics.median(values), 3),
        "p99": round(_percentile(values, 0.99), 3),
        "max": round(max(values), 3),
    }


class Watch:
    """The deploy watch and when it was healthy again after each trouble."""

    def __init__(self) -> None:
        self.events: list[DeployEvent] = []
        self.trouble_since: float | None = None
        self.recoveries: list[float] = []

    def on_trouble(self, reason: str | None) -> None:
        now = time.monotonic()
        if reason is None:
            if self.trouble_since is not None:
                self.recoveries.append(now - self.trouble_since)
            self.trouble_since = None
        elif self.trouble_since is None:
            self.trouble_since = now

    async def run(self, galaxy: GalaxyRepositoryClient, budget: float) -> None:
        async for event in galaxy.watch_deploy_events(
            retry_budget_s=budget, on_trouble=self.on_trouble
        ):
            self.events.append(event)


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    sim = SimulatedGateway(SimConfig(rate=0.0, galaxy_size=args.galaxy_size, seed=args.seed))
    await sim.start()
    try:
        return await _soak(args, rng, sim)
    finally:
        await sim.stop()


async def _soak(
    args: argparse.Namespace, rng: random.Random, sim: SimulatedGateway
) -> dict[str, Any]:
    driver = AlarmDriver(sim, seed=args.seed)
    consumer = AlarmConsumer()
    watch = Watch()
    expected_deploys = [sim.galaxy.deploy_time_ns]
    async with (
        TcpProxy(sim.endpoint) as proxy,
        await GatewayClient.connect(endpoint=proxy.endpoint, plaintext=True) as client,
        await GalaxyRepositoryClient.connect(endpoint=proxy.endpoint, plaintext=True) as galaxy,
    ):
        tasks = [
            asyncio.create_task(consumer.follow(client.stream_alarms(retry_budget_s=args.budget))),
            asyncio.create_task(watch.run(galaxy, args.budget)),
        ]
        await wait_for(lambda: consumer.snapshot_completes == 1 and len(watch.events) == 1)
        churn = asyncio.create_task(driver.churn(1.0 / args.changes))
        started = time.monotonic()
        cuts = outages = 0
        for index in range(args.cuts):
            await asyncio.sleep(rng.uniform(args.min_gap, args.max_gap))
            if index % args.outage_every == args.outage_every - 1:
                await wait_for(lambda: len(watch.events) == len(expected_deploys), within=60)
                proxy.refuse()  # unreachable for a while; a deploy meanwhile
                await asyncio.sleep(rng.uniform(0.2, 2.0))
                sim.redeploy()
                expected_deploys.append(sim.galaxy.deploy_time_ns)
                proxy.accept()
                outages += 1
            elif proxy.cut():
                cuts += 1
            if rng.random() < 0.1:
                # A live deploy, once every earlier one arrived: two deploys within one outage
                # arrive as one event (the current state), by contract.
                await wait_for(lambda: len(watch.events) == len(expected_deploys), within=60)
                sim.redeploy()
                expected_deploys.append(sim.galaxy.deploy_time_ns)
                await wait_for(lambda: len(watch.events) == len(expected_deploys), within=60)
        long_outages: list[dict[str, float]] = []
        for seconds in args.outages:
            await asyncio.sleep(2.0)
            before = len(consumer.resyncs)
            proxy.refuse()
            await asyncio.sleep(seconds)
            back = time.monotonic()
            proxy.accept()
            await wait_for(lambda b=before: len(consumer.resyncs) > b, within=seconds + 30)
            long_outages.append(
                {
                    "outageSeconds": seconds,
                    "secondsToResync": round(time.monotonic() - back, 3),
                    "resyncOutageSeconds": round(consumer.resyncs[-1].outage_ns / 1e9, 3),
                }
            )
        restarts: list[float] = []
        for _ in range(args.restarts):
            await asyncio.sleep(1.0)
            before = len(consumer.resyncs)
            await wait_for(lambda: len(watch.events) == len(expected_deploys), within=60)
            await sim.stop()
            for _ in range(20):
                driver.random_step()  # changes while the gateway is down
            sim.redeploy()
            expected_deploys.append(sim.galaxy.deploy_time_ns)
            back = time.monotonic()
            await sim.start()
            await wait_for(lambda b=before: len(consumer.resyncs) > b, within=30)
            restarts.append(time.monotonic() - back)
        churn.cancel()
        await asyncio.gather(churn, return_exceptions=True)
        expected = {
            a.alarm_full_reference: int(a.current_state) for a in sim.alarms.active_alarms()
        }
        try:
            await wait_for(lambda: consumer.states() == expected, within=30)
            settled = True
        except AssertionError:
            settled = False
        with contextlib.suppress(AssertionError):  # reported below
            await wait_for(lambda: len(watch.events) >= len(expected_deploys), within=30)
        await asyncio.sleep(0.5)  # anything late or doubled would show now
        elapsed = time.monotonic() - started
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    failures = [r for r in results if not isinstance(r, asyncio.CancelledError)]
    got_deploys = [e.time_of_last_deploy.ToNanoseconds() for e in watch.events]
    resyncs = consumer.resyncs
    return {
        "codec": codec_implementation(),
        "loop": preferred_event_loop(),
        "seconds": round(elapsed, 1),
        "cuts": cuts,
        "outages": outages,
        "restarts": len(restarts),
        "connections": proxy.connections,
        "alarmChanges": driver.operations,
        "transitions": consumer.transitions(),
        "resyncs": len(resyncs),
        "diffItems": sum(r.appeared + r.changed + r.cleared for r in resyncs),
        "appeared": sum(r.appeared for r in resyncs),
        "changed": sum(r.changed for r in resyncs),
        "cleared": sum(r.cleared for r in resyncs),
        "activeAtEnd": len(expected),
        "consumerMatchesGateway": settled and consumer.states() == expected,
        "mismatches": sorted(
            (ref, consumer.states().get(ref, 0), expected.get(ref, 0))
            for ref in set(expected) | set(consumer.states())
            if consumer.states().get(ref, 0) != expected.get(ref, 0)
        )[:10],
        "reportedActiveTwice": len(consumer.violations),
        "violations": consumer.violations[:5],
        "deploysExpected": len(expected_deploys),
        "deploysYielded": len(got_deploys),
        "deploysExactlyOnce": got_deploys == expected_deploys,
        "deploysMissing": [
            expected_deploys.index(t) for t in expected_deploys if t not in got_deploys
        ][:20],
        "streamErrors": [repr(f) for f in failures],
        "resyncOutageSeconds": _stats([r.outage_ns / 1e9 for r in resyncs]),
        "deployWatchBackSeconds": _stats(watch.recoveries),
        "longOutages": long_outages,
        "secondsToResyncAfterRestart": _stats(restarts),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cuts", type=int, default=200)
    parser.add_argument("--outage-every", type=int, default=5, help="every Nth cut is an outage")
    parser.add_argument("--changes", type=float, default=200.0, help="alarm changes per second")
    parser.add_argument("--galaxy-size", type=int, default=200)
    parser.add_argument("--min-gap", type=float, default=0.2, help="seconds between cuts")
    parser.add_argument("--max-gap", type=float, default=1.0)
    parser.add_argument(
        "--outages", type=float, nargs="*", default=[1.0, 5.0, 15.0, 25.0], help="seconds"
    )
    parser.add_argument("--restarts", type=int, default=10)
    parser.add_argument("--budget", type=float, default=30.0, help="retry budget, seconds")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # one "lost" warning per cut and stream
    summary = run(soak(args))
    print(
        f"{summary['cuts']} cuts, {summary['outages']} outages, {summary['restarts']} restarts "
        f"over {summary['seconds']} s; {summary['alarmChanges']} alarm changes, "
        f"{summary['transitions']} live transitions, {summary['resyncs']} resyncs with "
        f"{summary['diffItems']} difference items; consumer matches the gateway: "
        f"{summary['consumerMatchesGateway']}; reported active twice: "
        f"{summary['reportedActiveTwice']}; deploys {summary['deploysYielded']}/"
        f"{summary['deploysExpected']} exactly once: {summary['deploysExactlyOnce']}"
    )
    print(f"resynced after (from the loss): {summary['resyncOutageSeconds']}")
    for outage in summary["longOutages"]:
        print(
            f"outage {outage['outageSeconds']} s: resynced {outage['secondsToResync']} s "
            "after the gateway was reachable again"
        )
    print(json.dumps(summary, sort_keys=True))
    ok = (
        summary["consumerMatchesGateway"]
        and summary["reportedActiveTwice"] == 0
        and summary["deploysExactlyOnce"]
        and not summary["streamErrors"]
    )
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
