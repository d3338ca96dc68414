"""Follow and acknowledge alarms (async): the alarms active now, then the live alarm feed.

    python examples/alarms.py --plaintext --prefix Tank_ --ack --operator alice --comment checked

``stream_alarms`` yields, in the gateway's order, one ``ActiveAlarm`` per active alarm, one
``AlarmSnapshotComplete``, an ``AlarmProviderStatus``, then live ``AlarmTransition`` items.
With ``--ack`` every alarm still waiting for an acknowledgement (ACTIVE or INACTIVE_UNACKED)
is acknowledged as it is seen; its ACKNOWLEDGE transition then arrives in the feed. An
acknowledgement MXAccess refuses raises ``MxAccessError``; the example prints it and goes on.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys

import mxgateway
from mxgateway import (
    ActiveAlarm,
    AlarmConditionState,
    AlarmFeedItem,
    AlarmFeedResync,
    AlarmProviderStatus,
    AlarmResyncClear,
    AlarmSnapshotComplete,
    AlarmTransition,
    GatewayClient,
    MxAccessError,
    MxGatewayError,
)

UNACKNOWLEDGED = (AlarmConditionState.ACTIVE, AlarmConditionState.INACTIVE_UNACKED)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="127.0.0.1:5000", help="gateway HOST:PORT")
    parser.add_argument("--plaintext", action="store_true", help="no TLS (the simulator)")
    parser.add_argument("--api-key-env", metavar="NAME", help="env variable holding the API key")
    parser.add_argument("--prefix", default="", help="only alarms whose reference starts so")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds to follow")
    parser.add_argument("--max-messages", type=int, default=0, help="stop after N (0: no limit)")
    parser.add_argument("--ack", action="store_true", help="acknowledge unacknowledged alarms")
    parser.add_argument("--max-acks", type=int, default=3, help="acknowledge at most N")
    parser.add_argument("--operator", default="", help="operator of the acknowledgements")
    parser.add_argument("--comment", default="acknowledged by examples/alarms.py")
    return parser.parse_args(argv)


def name(value: object) -> str:
    if value == AlarmConditionState.UNSPECIFIED:
        return "NORMAL"  # back to normal: the enum has no other name for it
    return getattr(value, "name", str(value))  # values this version does not know stay ints


def describe(item: AlarmFeedItem) -> str:
    if isinstance(item, ActiveAlarm):
        return (
            f"active      {item.alarm_full_reference} {name(item.current_state)} "
            f"severity={item.severity} {item.description}"
        )
    if isinstance(item, AlarmSnapshotComplete):
        return f"snapshot complete: {item.active_alarm_count} active; live transitions follow"
    if isinstance(item, AlarmProviderStatus):
        health = f"degraded: {item.reason}" if item.degraded else "healthy"
        return f"provider    {name(item.mode)} {health}"
    if isinstance(item, AlarmFeedResync):
        return (
            f"resync      after {item.outage.total_seconds():.3f} s ({item.reason}): "
            f"{item.appeared} appeared, {item.changed} changed, {item.cleared} cleared"
        )
    if isinstance(item, AlarmResyncClear):
        return f"cleared     {item.alarm_full_reference} (ended while the feed was down)"
    who = f" by {item.operator_user or '?'}: {item.operator_comment}" if item.operator_user else ""
    return (
        f"{name(item.transition_kind).lower():<11} {item.alarm_full_reference} -> "
        f"{name(item.current_state)} severity={item.severity}{who}"
    )


def unacknowledged(item: AlarmFeedItem) -> str | None:
    """The reference of an alarm that waits for an acknowledgement, else None."""
    if isinstance(item, ActiveAlarm | AlarmTransition) and item.current_state in UNACKNOWLEDGED:
        return item.alarm_full_reference
    return None


async def follow(args: argparse.Namespace) -> int:
    api_key = os.environ[args.api_key_env] if args.api_key_env else None
    async with await GatewayClient.connect(
        args.endpoint, api_key=api_key, plaintext=args.plaintext
    ) as client:
        active = await client.query_active_alarms(args.prefix)
        print(f"{len(active)} alarm(s) active now")
        acknowledged: set[str] = set()
        messages = 0
        with contextlib.suppress(TimeoutError):  # the duration is over
            async with asyncio.timeout(args.duration):
                async for item in client.stream_alarms(args.prefix):
                    print(describe(item), flush=True)
                    reference = unacknowledged(item)
                    if args.ack and reference and len(acknowledged) < args.max_acks:
                        acknowledged.add(reference)
                        try:
                            result = await client.acknowledge_alarm(
                                reference, comment=args.comment, operator=args.operator
                            )
                        except MxAccessError as error:
                            print(f"not acknowledged: {reference}: {error}", flush=True)
                        else:
                            print(f"acknowledged {reference}: {name(result.resulting_state)}")
                    messages += 1
                    if messages == args.max_messages:
                        break
    print(f"{messages} feed message(s), {len(acknowledged)} acknowledgement(s)")
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return mxgateway.run(follow(args))
    except MxGatewayError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
