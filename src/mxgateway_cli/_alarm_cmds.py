"""Alarm commands on the gateway's central alarm feed (no session needed).

``stream-alarms`` prints one AlarmFeedMessage per line (active alarms, one snapshotComplete,
a providerStatus, then live transitions) until ``--max-messages`` or ``--timeout`` (exit 0).
A cut or a gateway restart is reconnected for up to ``--retry-budget`` seconds (then exit 3);
after a reconnect one ``{"resync": {...}}`` line comes first, then only the differences:
``{"resyncClear": {...}}`` for alarms that ended meanwhile, ``activeAlarm`` for those that
appeared or changed state.
``query-alarms`` prints one ActiveAlarmSnapshot per line. ``acknowledge-alarm`` prints the
AcknowledgeAlarmReply; an MXAccess failure (e.g. an unknown reference) exits 1.
"""

from __future__ import annotations

import argparse
import enum
from typing import Any

from mxgateway import (
    AcknowledgeResult,
    ActiveAlarm,
    AlarmFeedItem,
    AlarmFeedResync,
    AlarmResyncClear,
    AlarmSnapshotComplete,
    AlarmTransition,
)
from mxgateway_cli._connection import (
    connected,
    connection_parent,
    gateway_client,
    json_parent,
    positive_int,
)
from mxgateway_cli._exit_codes import EXIT_OK
from mxgateway_cli._json import acknowledge_dict, active_alarm_dict, alarm_feed_dict
from mxgateway_cli._output import emit, emit_json, progress
from mxgateway_cli._streams import Trouble, add_retry_budget, consume

__all__ = ["add_alarm_commands"]


def _name(value: Any) -> str:
    return value.name if isinstance(value, enum.Enum) else str(value)


def _alarm_text(alarm: ActiveAlarm) -> str:
    return (
        f"{alarm.alarm_full_reference} {_name(alarm.current_state)} "
        f"severity={alarm.severity} {alarm.description}".rstrip()
    )


def _feed_text(item: AlarmFeedItem) -> str:
    if isinstance(item, ActiveAlarm):
        return "active " + _alarm_text(item)
    if isinstance(item, AlarmSnapshotComplete):
        return f"snapshot complete: {item.active_alarm_count} active"
    if isinstance(item, AlarmTransition):
        return (
            f"{_name(item.transition_kind)} {item.alarm_full_reference} "
            f"-> {_name(item.current_state)} severity={item.severity}"
        )
    if isinstance(item, AlarmFeedResync):
        return (
            f"resync after {item.outage_ns / 1e9:.3f} s ({item.reason}): {item.appeared} "
            f"appeared, {item.changed} changed, {item.cleared} cleared; "
            f"{item.active_alarm_count} active"
        )
    if isinstance(item, AlarmResyncClear):
        return (
            f"cleared-while-disconnected {item.alarm_full_reference} "
            f"(was {_name(item.previous_state)}) severity={item.severity}"
        )
    degraded = f" degraded: {item.reason}" if item.degraded else ""
    return f"provider {_name(item.mode)}{degraded}"


async def cmd_stream_alarms(args: argparse.Namespace) -> int:
    """Print the alarm feed until ``--max-messages``, ``--timeout`` or its end."""

    def show(item: AlarmFeedItem) -> None:
        if args.json:
            emit_json(alarm_feed_dict(item))
        else:
            emit(False, None, _feed_text(item))

    trouble = Trouble("the alarm feed")
    async with gateway_client(args) as client:
        await connected(client, args)
        progress("following the alarm feed (Ctrl-C to stop)")
        await consume(
            client.stream_alarms(
                args.filter_prefix, retry_budget_s=args.retry_budget, on_trouble=trouble
            ),
            show,
            max_items=args.max_messages,
            seconds=args.timeout,
        )
        trouble.check()
    return EXIT_OK


async def cmd_query_alarms(args: argparse.Namespace) -> int:
    """Print the alarms active now, one per line."""
    async with gateway_client(args) as client:
        alarms = await client.query_active_alarms(args.filter_prefix)
    for alarm in alarms:
        if args.json:
            emit_json(active_alarm_dict(alarm))
        else:
            emit(False, None, _alarm_text(alarm))
    return EXIT_OK


async def cmd_acknowledge_alarm(args: argparse.Namespace) -> int:
    """Acknowledge one alarm by its full reference."""
    async with gateway_client(args) as client:
        result: AcknowledgeResult = await client.acknowledge_alarm(
            args.reference, comment=args.comment, operator=args.operator
        )
    emit(
        args.json,
        acknowledge_dict(result),
        lambda: f"{result.alarm_full_reference}: {_name(result.resulting_state)}",
    )
    return EXIT_OK


def _non_empty(text: str) -> str:
    if not text.strip():
        raise argparse.ArgumentTypeError("must not be empty")
    return text


def add_alarm_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``stream-alarms``, ``query-alarms`` and ``acknowledge-alarm`` to the parser."""
    parser = commands.add_parser(
        "stream-alarms",
        help="follow the central alarm feed, one message per line",
        description=(
            "Print the active alarms, a snapshot-complete marker, the provider status and then "
            "live transitions, one per line, until --max-messages or --timeout (exit 0). A cut "
            "or a gateway restart is reconnected (exit 3 after --retry-budget); then a resync "
            "line comes first, followed only by what changed meanwhile."
        ),
        parents=[json_parent(), connection_parent(stream=True)],
    )
    parser.add_argument(
        "--filter-prefix",
        default="",
        metavar="PREFIX",
        help="only alarms whose reference starts with PREFIX",
    )
    parser.add_argument(
        "--max-messages", type=positive_int, metavar="N", help="stop after N messages"
    )
    add_retry_budget(parser, "alarm feed")
    parser.set_defaults(handler=cmd_stream_alarms)

    parser = commands.add_parser(
        "query-alarms",
        help="the alarms active now, one per line",
        parents=[json_parent(), connection_parent()],
    )
    parser.add_argument(
        "--filter-prefix",
        default="",
        metavar="PREFIX",
        help="only alarms whose reference starts with PREFIX",
    )
    parser.set_defaults(handler=cmd_query_alarms)

    parser = commands.add_parser(
        "acknowledge-alarm",
        help="acknowledge an alarm by its full reference",
        parents=[json_parent(), connection_parent()],
    )
    parser.add_argument(
        "--reference", required=True, type=_non_empty, metavar="REF", help="e.g. Tank1.Level.Hi"
    )
    parser.add_argument("--comment", default="", help="operator comment")
    parser.add_argument("--operator", default="", help="operator user name")
    parser.set_defaults(handler=cmd_acknowledge_alarm)
