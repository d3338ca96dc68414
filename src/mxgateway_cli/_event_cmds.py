"""Event commands: ``stream-events`` (a session's events) and ``smoke`` (an end-to-end check).

``stream-events`` prints one MxEvent (protobuf JSON) per line and stops at ``--max-events``,
at ``--timeout`` seconds, or when the gateway ends the stream, and exits 0. A broken stream is
resumed after the last printed sequence for up to ``--retry-budget`` seconds, then exits 3.
``smoke`` opens a session, registers, adds and advises one item, waits for ``--max-events``
events and closes the session in a ``finally`` block, whatever happened.
"""

from __future__ import annotations

import argparse
import enum
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from mxgateway import MxEvent, MxGatewayStreamLostError, MxGatewayTimeoutError
from mxgateway_cli._connection import (
    DEFAULT_TIMEOUT_S,
    attach_session,
    connected,
    connection_parent,
    gateway_client,
    json_parent,
    positive_int,
    seconds,
    uint64,
)
from mxgateway_cli._exit_codes import EXIT_OK
from mxgateway_cli._json import event_dict
from mxgateway_cli._output import emit, emit_json, progress
from mxgateway_cli._streams import consume

__all__ = ["add_event_commands", "event_text"]

DEFAULT_RETRY_BUDGET_S = 30.0  # the library's default


def _name(value: Any) -> str:
    return value.name if isinstance(value, enum.Enum) else str(value)


def _value_text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return f"{value.total_seconds():g}s"
    if isinstance(value, str):
        return repr(value)
    return str(value)


def event_text(event: MxEvent) -> str:
    """One human line for an event."""
    parts = [f"#{event.worker_sequence}", _name(event.family)]
    if event.item_handle:
        parts.append(f"item={event.item_handle}")
    if event.has_value:
        parts.append(f"value={_value_text(event.value)}")
        parts.append(f"quality={event.quality}")
    if event.replay_gap is not None:
        gap = event.replay_gap
        parts.append(
            f"replay-gap requested-after={gap.requested_after_sequence} "
            f"oldest={gap.oldest_available_sequence}"
        )
    return " ".join(parts)


def _printer(json_mode: bool) -> Callable[[MxEvent], None]:
    def print_event(event: MxEvent) -> None:
        if json_mode:
            emit_json(event_dict(event))
        else:
            emit(False, None, event_text(event))

    return print_event


async def cmd_stream_events(args: argparse.Namespace) -> int:
    """Print a session's events until the bound, the timeout or the end of the stream."""
    async with gateway_client(args) as client:
        session = attach_session(client, args.session_id)
        await connected(client, args)
        progress(f"streaming events of session {args.session_id} (Ctrl-C to stop)")
        await consume(
            session.stream_events(
                after_worker_sequence=args.after_sequence, retry_budget_s=args.retry_budget
            ),
            _printer(args.json),
            max_items=args.max_events,
            seconds=args.timeout,
        )
        # Reaching the bound while the stream is still reconnecting is a lost gateway, not
        # a quiet success: the bound must not hide it.
        if session.stream_trouble is not None:
            raise MxGatewayStreamLostError(
                f"event stream of session {args.session_id} was still reconnecting at the "
                f"--timeout bound ({session.stream_trouble})"
            )
    return EXIT_OK


async def cmd_smoke(args: argparse.Namespace) -> int:
    """Open, register, add, advise, take ``--max-events`` events, and always close."""
    wait_s = args.timeout or DEFAULT_TIMEOUT_S
    events: list[MxEvent] = []
    async with gateway_client(args) as client:
        session = await client.open_session(args.client_name)
        failed = True
        try:
            progress(f"smoke: session {session.session_id}")
            server_handle = await session.register(args.client_name)
            item_handle = await session.add_item(server_handle, args.item)
            await session.advise(server_handle, item_handle)
            await consume(
                session.stream_events(),
                events.append,
                max_items=args.max_events,
                seconds=wait_s,
            )
            if len(events) < args.max_events:
                raise MxGatewayTimeoutError(
                    f"smoke: {len(events)} of {args.max_events} events within {wait_s:g} s"
                )
            failed = False
        finally:
            try:
                await session.close()
            except Exception:
                if not failed:
                    raise  # otherwise the first failure is the one to report
    result = {
        "closed": True,
        "events": [event_dict(event) for event in events],
        "item": args.item,
        "itemHandle": item_handle,
        "serverHandle": server_handle,
        "sessionId": session.session_id,
    }

    def text() -> str:
        lines = [
            f"session {session.session_id}: server handle {server_handle}, "
            f"item {args.item} handle {item_handle}"
        ]
        lines += [event_text(event) for event in events]
        lines.append("session closed: ok")
        return "\n".join(lines)

    emit(args.json, result, text)
    return EXIT_OK


def add_event_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``stream-events`` and ``smoke`` to the ``mxgw-py`` parser."""
    parser = commands.add_parser(
        "stream-events",
        help="print a session's events, one per line",
        description=(
            "Print the events of a session opened by open-session, one per line, until "
            "--max-events, --timeout or the end of the stream (exit 0 in each case)."
        ),
        parents=[json_parent(), connection_parent(stream=True)],
    )
    parser.add_argument(
        "--session-id", required=True, metavar="ID", help="a session opened by open-session"
    )
    parser.add_argument("--max-events", type=positive_int, metavar="N", help="stop after N events")
    parser.add_argument(
        "--after-sequence",
        type=uint64,
        default=0,
        metavar="SEQ",
        help="resume after this worker sequence (replayed by the gateway; 0: live only)",
    )
    parser.add_argument(
        "--retry-budget",
        type=seconds,
        default=DEFAULT_RETRY_BUDGET_S,
        metavar="SECONDS",
        help=(
            "keep reconnecting a broken stream this long, then exit 3 "
            f"(default {DEFAULT_RETRY_BUDGET_S:g})"
        ),
    )
    parser.set_defaults(handler=cmd_stream_events)

    parser = commands.add_parser(
        "smoke",
        help="open, register, add, advise, stream a few events, close",
        description=(
            "End-to-end check: open a session, register, add and advise --item, wait for "
            "--max-events events (at most --timeout seconds, else exit 3), and close the "
            "session in a finally block."
        ),
        parents=[json_parent(), connection_parent()],
    )
    parser.add_argument("--item", required=True, metavar="REF", help="e.g. Tag.Attribute")
    parser.add_argument(
        "--client-name", default="mxgw-py-smoke", help="session and MXAccess client name"
    )
    parser.add_argument(
        "--max-events", type=positive_int, default=1, metavar="N", help="events to wait for"
    )
    parser.set_defaults(handler=cmd_smoke)
