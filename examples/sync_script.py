"""mxgateway.sync in a plain script: the blocking API from end to end.

    python examples/sync_script.py --plaintext

No ``async``, no event loop to manage: each client runs the async client on a loop thread of
its own, started by ``connect`` and stopped by ``close`` (or the ``with`` block). Methods,
arguments, results and exceptions are those of the async API; streams are iterators; calls
may come from several threads at once.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import os
import sys

from mxgateway import MxAccessError, MxEventFamily, MxGatewayError
from mxgateway.sync import GalaxyRepositoryClient, GatewayClient


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="127.0.0.1:5000", help="gateway HOST:PORT")
    parser.add_argument("--plaintext", action="store_true", help="no TLS (the simulator)")
    parser.add_argument("--api-key-env", metavar="NAME", help="env variable holding the API key")
    parser.add_argument("--tag", action="append", help="a tag to read and watch (repeatable)")
    parser.add_argument("--setpoint", default="Pump_001.SpeedSP", help="a tag to write")
    parser.add_argument("--max-changes", type=int, default=4, help="changes to watch")
    return parser.parse_args(argv)


def tour(args: argparse.Namespace) -> int:
    api_key = os.environ[args.api_key_env] if args.api_key_env else None
    tags: list[str] = args.tag or ["Pump_001.Speed", "Tank_001.Level"]
    with GatewayClient.connect(args.endpoint, api_key=api_key, plaintext=args.plaintext) as client:
        # Tags by name: read, a confirmed write, changes.
        for value in client.read(tags).values():
            print(f"read      {value.tag} = {value.value!r}")
        outcome = client.write(args.setpoint, 42.5)  # waits for MXAccess's outcome
        print(f"write     {args.setpoint} = 42.5 confirmed: {outcome is not None and outcome.ok}")
        for count, change in enumerate(client.subscribe(tags, duration=30), start=1):
            print(f"change    {change.tag} = {change.value!r}")
            if count == args.max_changes:
                break

        # The library's own exceptions, unchanged.
        try:
            client.write(args.setpoint, "not a number")
        except MxAccessError as error:
            print(f"refused   {type(error).__name__}: {error}")

        # Several threads, one client.
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            values = list(pool.map(lambda tag: client.read(tag)[tag].value, tags * 2))
        print(f"threads   {len(values)} reads from 4 threads")

        # The handles level: a session, every MXAccess command, its event stream.
        with client.open_session("sync-script") as session:
            server = session.register("sync-script")
            results = session.subscribe_bulk(server, tags)
            print(f"session   {session.session_id}: {sum(r.was_successful for r in results)} items")
            with session.stream_event_batches() as batches:
                batch = next(batches)
            changes = [e for e in batch if e.family == MxEventFamily.ON_DATA_CHANGE]
            print(
                f"events    {len(changes)} data change(s) in the first batch, e.g. {changes[0].tag}"
            )

        alarms = client.query_active_alarms()
        print(f"alarms    {len(alarms)} active")

    with GalaxyRepositoryClient.connect(
        args.endpoint, api_key=api_key, plaintext=args.plaintext
    ) as galaxy:
        roots = galaxy.browse_children()
        print(f"galaxy    {len(roots)} root object(s): {', '.join(r.tag_name for r in roots[:3])}")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return tour(args)
    except MxGatewayError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
