"""Quiet streams stay open: the alarm feed with a prefix no alarm matches, the deploy watch, and
a session's event stream with nothing advised (on StreamEventBatches and on StreamEvents through
the thread receiver), all on the client's default options, against a simulator in its own
process that keeps grpc-core's default server ping policy (a ping without data at most every
5 minutes, GOAWAY "too_many_pings" after 2 strikes).

Every stream runs with ``resume=False``, so a GOAWAY or any other break ends it and is counted
(with resuming on, the library would hide it by reconnecting).

Run: ``python -m bench.hardening.quiet_streams --minutes 15`` (a line per stream, one JSON
line; exit 1 if any stream ended).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import logging
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

from mxgateway import ClientOptions, GalaxyRepositoryClient, GatewayClient, run
from mxgateway._options import DEFAULT_KEEPALIVE_S
from tests.hardening.simproc import SimProcess


async def _hold(name: str, stream: AsyncIterator[Any], seconds: float) -> dict[str, Any]:
    """Read ``stream`` for ``seconds``; say whether it was still open then."""
    started = time.monotonic()
    items = 0
    try:
        async with asyncio.timeout(seconds):
            async for _ in stream:
                items += 1
    except TimeoutError:
        return {"stream": name, "open": True, "items": items, "seconds": round(seconds, 1)}
    except Exception as exc:
        ended = round(time.monotonic() - started, 1)
        return {
            "stream": name,
            "open": False,
            "items": items,
            "endedAfter": ended,
            "error": f"{type(exc).__name__}: {exc}",
        }
    ended = round(time.monotonic() - started, 1)
    return {
        "stream": name,
        "open": False,
        "items": items,
        "endedAfter": ended,
        "error": "the stream ended",
    }


async def _main(args: argparse.Namespace) -> dict[str, Any]:
    seconds = args.minutes * 60
    options = ClientOptions(
        endpoint="127.0.0.1:1", plaintext=True, keepalive_seconds=args.keepalive
    )
    async with SimProcess(rate=1.0) as sim:
        options = dataclasses.replace(options, endpoint=sim.endpoint)
        async with GatewayClient(options) as client, GalaxyRepositoryClient(options) as galaxy:
            batches = await client.open_session("quiet-batches")
            single = await client.open_session("quiet-single")
            results = await asyncio.gather(
                _hold(
                    "stream_alarms (no matching alarm)",
                    client.stream_alarms("NoSuchArea_", resume=False),
                    seconds,
                ),
                _hold("watch_deploy_events", galaxy.watch_deploy_events(resume=False), seconds),
                _hold(
                    "stream_events (StreamEventBatches, nothing advised)",
                    batches.stream_events(resume=False),
                    seconds,
                ),
                _hold(
                    "stream_events (StreamEvents, thread receiver, nothing advised)",
                    single.stream_events(resume=False, path="single"),
                    seconds,
                ),
            )
            for session in (batches, single):
                await session.close()
    for result in results:
        state = (
            "open"
            if result["open"]
            else f"ENDED after {result['endedAfter']} s ({result['error']})"
        )
        print(f"{result['stream']}: {state}", flush=True)
    return {"minutes": args.minutes, "keepaliveSeconds": args.keepalive, "streams": results}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument(
        "--keepalive",
        type=float,
        default=DEFAULT_KEEPALIVE_S,
        help="the client's keepalive_seconds (default: the library's); 30 shows the old GOAWAY",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    summary = run(_main(args))
    print(json.dumps(summary, sort_keys=True))
    return 0 if all(r["open"] for r in summary["streams"]) else 1


if __name__ == "__main__":
    sys.exit(main())
