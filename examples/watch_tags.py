"""Watch tags by name (async): print every change until --duration or --max-changes.

    python examples/watch_tags.py --plaintext --tag Pump_001.Speed --tag Tank_001.Level

``client.subscribe`` adds and advises the tags on a session the client keeps for its tag-level
calls; each tag's current value comes first, then its changes. A tag the gateway does not know
arrives once with ``error`` set; events lost to a gateway restart arrive as a notice whose tag
is ``"*"``.
"""

from __future__ import annotations

import argparse
import os
import sys

import mxgateway
from mxgateway import GatewayClient, MxGatewayError, TagChange


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="127.0.0.1:5000", help="gateway HOST:PORT")
    parser.add_argument("--plaintext", action="store_true", help="no TLS (the simulator)")
    parser.add_argument("--api-key-env", metavar="NAME", help="env variable holding the API key")
    parser.add_argument("--tag", action="append", help="a tag to watch (repeatable)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds to watch")
    parser.add_argument("--max-changes", type=int, default=0, help="stop after N (0: no limit)")
    return parser.parse_args(argv)


def describe(change: TagChange) -> str:
    """One line per change: time, tag, value and quality; or the error or notice."""
    if change.tag == "*":
        return f"notice: {change.error}"
    if change.error is not None:
        return f"{change.tag}: error: {change.error}"
    when = change.timestamp.isoformat(timespec="milliseconds") if change.timestamp else "-"
    quality = "good" if change.is_good else f"quality {change.quality}"
    return f"{when} {change.tag} = {change.value!r} ({quality})"


async def watch(args: argparse.Namespace) -> int:
    api_key = os.environ[args.api_key_env] if args.api_key_env else None
    tags = args.tag or ["Pump_001.Speed", "Tank_001.Level"]
    async with await GatewayClient.connect(
        args.endpoint, api_key=api_key, plaintext=args.plaintext
    ) as client:
        seen = 0
        async for change in client.subscribe(tags, duration=args.duration):
            print(describe(change), flush=True)
            seen += 1
            if seen == args.max_changes:
                break  # leaving the loop ends the subscription
    print(f"{seen} change(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return mxgateway.run(watch(args))
    except MxGatewayError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
