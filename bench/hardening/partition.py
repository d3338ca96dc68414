"""How long the client takes to notice a silent partition (a connection on which nothing
arrives and nothing closes), with its default options: while events flow on StreamEventBatches
(the aio channel), while they flow on StreamEvents (the thread receiver's own connection), and on
an idle stream. The TCP proxy stalls every connection; the figure is the time until the client
opens a new one.

Run: ``python -m bench.hardening.partition`` (one line per case and one JSON line).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import time
from typing import Any

from mxgateway import ClientOptions, GatewayClient, run
from mxgateway._options import DEFAULT_KEEPALIVE_S
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.hardening.proxy import TcpProxy


async def _detect(rate: float, keepalive: float, limit: float, path: str) -> float | None:
    config = SimConfig(rate=rate, galaxy_size=60, replay_capacity=100_000)
    async with SimulatedGateway(config) as sim, TcpProxy(sim.endpoint) as proxy:
        options = ClientOptions(
            endpoint=proxy.endpoint, plaintext=True, keepalive_seconds=keepalive
        )
        async with GatewayClient(options) as client:
            session = await client.open_session()
            server = await session.register("partition")
            await session.subscribe_bulk(server, sim.sample_references(2))

            async def consume() -> None:
                stream = session.stream_events(retry_budget_s=limit + 60, path=path)  # type: ignore[arg-type]
                async for _ in stream:
                    pass

            consumer = asyncio.create_task(consume())
            await asyncio.sleep(2.0)
            before = proxy.connections
            stalled = time.monotonic()
            proxy.stall()
            while time.monotonic() - stalled < limit:
                if proxy.connections > before:  # the client gave up on a stalled connection
                    break
                await asyncio.sleep(0.1)
            detected = time.monotonic() - stalled if proxy.connections > before else None
            consumer.cancel()
            await asyncio.gather(consumer, return_exceptions=True)
            proxy.cut(stalled_only=True)  # the gateway drops the dead stream too
            return detected


async def partition(args: argparse.Namespace) -> dict[str, Any]:
    cases: list[dict[str, Any]] = []
    for name, rate, path in (
        ("flowing (StreamEventBatches)", 20.0, "auto"),
        ("flowing (StreamEvents, thread receiver)", 20.0, "single"),
        ("idle", 0.0, "auto"),
    ):
        seconds = await _detect(rate, args.keepalive, args.limit, path)
        shown = None if seconds is None else round(seconds, 1)
        cases.append({"stream": name, "secondsToDetect": shown})
        print(f"{name} stream, keepalive {args.keepalive:g} s: noticed after {shown} s", flush=True)
    return {"keepaliveSeconds": args.keepalive, "cases": cases}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--keepalive", type=float, default=DEFAULT_KEEPALIVE_S, help="keepalive_seconds"
    )
    parser.add_argument("--limit", type=float, default=420.0, help="give up after (s)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    summary = run(partition(args))
    print(json.dumps(summary, sort_keys=True))
    return 0 if all(c["secondsToDetect"] is not None for c in summary["cases"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
