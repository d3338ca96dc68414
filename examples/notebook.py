"""mxgateway in a notebook: what works inside a running event loop, as in Jupyter.

    python examples/notebook.py --plaintext

A Jupyter (IPython) cell runs while the kernel's event loop is running. There
``asyncio.run(...)`` and ``mxgateway.run(...)`` fail ("cannot be called from a running event
loop"), and calling it anew per call fails later ("Event loop is closed"). Two ways work:

- ``mxgateway.sync``: blocking calls; the client runs its own loop on a thread of its own, so
  a cell just calls it (and the client may live from one cell to the next);
- top-level ``await``: IPython awaits a cell's coroutine on the kernel's loop, so the async
  API works as written (``async with await GatewayClient.connect(...)``).

This script plays the kernel: it runs an event loop and executes each "cell" inside it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

import mxgateway
from mxgateway import MxGatewayError, sync


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="127.0.0.1:5000", help="gateway HOST:PORT")
    parser.add_argument("--plaintext", action="store_true", help="no TLS (the simulator)")
    parser.add_argument("--api-key-env", metavar="NAME", help="env variable holding the API key")
    parser.add_argument("--tag", default="Pump_001.Speed", help="the tag the cells use")
    parser.add_argument("--max-changes", type=int, default=3, help="changes the watch cell shows")
    return parser.parse_args(argv)


def cell_connect(args: argparse.Namespace) -> sync.GatewayClient:
    """In [1]: client = sync.GatewayClient.connect(...)  (kept for the next cells)"""
    api_key = os.environ[args.api_key_env] if args.api_key_env else None
    return sync.GatewayClient.connect(args.endpoint, api_key=api_key, plaintext=args.plaintext)


def cell_read(client: sync.GatewayClient, args: argparse.Namespace) -> None:
    """In [2]: client.read(tag)"""
    value = client.read(args.tag)[args.tag]
    print(f"[2] {value.tag} = {value.value!r} (quality {value.quality}, at {value.timestamp})")


def cell_watch(client: sync.GatewayClient, args: argparse.Namespace) -> None:
    """In [3]: for change in client.subscribe(tag, duration=...): ..."""
    for count, change in enumerate(client.subscribe(args.tag, duration=30), start=1):
        print(f"[3] {change.tag} = {change.value!r}")
        if count == args.max_changes:
            break  # ends the subscription (Ctrl-C / "interrupt kernel" would cancel it too)


async def cell_await(args: argparse.Namespace) -> None:
    """In [4]: async with await mxgateway.GatewayClient.connect(...) as aclient: ...
    (top-level await: IPython runs this on the kernel's loop)"""
    api_key = os.environ[args.api_key_env] if args.api_key_env else None
    async with await mxgateway.GatewayClient.connect(
        args.endpoint, api_key=api_key, plaintext=args.plaintext
    ) as aclient:
        value = (await aclient.read(args.tag))[args.tag]
        print(f"[4] awaited on the kernel's loop: {value.tag} = {value.value!r}")


def cell_run_does_not_work(args: argparse.Namespace) -> None:
    """In [5]: asyncio.run(main())  -- the mistake this example is about (mxgateway.run too)"""

    async def main() -> None:
        async with await mxgateway.GatewayClient.connect(args.endpoint, plaintext=True):
            pass

    coroutine = main()
    try:
        asyncio.run(coroutine)
    except RuntimeError as error:
        coroutine.close()  # never started
        print(f"[5] asyncio.run in a running loop: RuntimeError: {error}")
        print("    use mxgateway.sync, or `await` the coroutine in the cell instead")


async def kernel(args: argparse.Namespace) -> None:
    """The kernel: every cell runs while this event loop is running."""
    asyncio.get_running_loop()
    client = cell_connect(args)
    try:
        cell_read(client, args)
        cell_watch(client, args)
        await cell_await(args)
        cell_run_does_not_work(args)
    finally:
        client.close()  # In [6]: client.close()  (also done at exit if forgotten)
    print("every cell ran inside a running event loop")


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        asyncio.run(kernel(args))
    except MxGatewayError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
