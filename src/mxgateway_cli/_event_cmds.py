"""Event commands: ``stream-events`` (a session's events) and ``smoke`` (an end-to-end check).

``stream-events`` prints one MxEvent (protobuf JSON) per line and stops at ``--max-events``,
at ``--timeout`` seconds, or when the gateway ends the stream, and exits 0. A broken stream is
resumed after the last printed sequence for up to ``--retry-budget`` seconds, then exits 3.
A session the gateway lost (a restart) exits 1, unless ``--recover``: see ``_RECOVER_HELP``.
``smoke`` opens a session, registers, adds and advises one item, waits for ``--max-events``
events and closes the session in a ``finally`` block, whatever happened.
"""

from __future__ import annotations

import argparse
import asyncio
import enum
import json
import sys
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from mxgateway import (
    GatewayClient,
    MxEvent,
    MxGatewaySessionNotFoundError,
    MxGatewayStreamLostError,
    MxGatewayTimeoutError,
    RecoveryFailure,
    Session,
    SessionRecovered,
)
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
from mxgateway_cli._exit_codes import EXIT_OK, UsageError
from mxgateway_cli._items import add_item_flags, items_of
from mxgateway_cli._json import event_dict
from mxgateway_cli._output import emit, emit_json, progress
from mxgateway_cli._streams import consume

__all__ = ["add_event_commands", "event_text"]

DEFAULT_RETRY_BUDGET_S = 30.0  # the library's default

_RECOVER_HELP = (
    "when the gateway has lost the session (a restart, an expired lease): open a new session, "
    "subscribe the --item references on it (SubscribeBulk), print one sessionRecovered line "
    "with the old and new ids, and go on streaming; later losses are recovered the same way. "
    "This process did not build the session (open-session and subscribe-bulk ran elsewhere), "
    "so only the --item references are restored, with new item handles; without --item the "
    "new session has no items. The new session is left open for the process that owns it. "
    "Without --recover a lost session exits 1."
)


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
    if event.tag is not None:
        parts.append(event.tag)
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
    if event.session_recovered is not None:
        return recovered_text(event.session_recovered)
    return " ".join(parts)


def recovered_text(recovered: SessionRecovered) -> str:
    """One human line for a session recovery."""
    text = (
        f"session recovered: {recovered.old_session_id} -> {recovered.new_session_id} "
        f"(events after #{recovered.last_sequence} of the old session are lost)"
    )
    if recovered.failed:
        text += " not restored: " + ", ".join(f.definition for f in recovered.failed)
    return text


def recovered_dict(recovered: SessionRecovered) -> dict[str, Any]:
    """The JSON line of a session recovery (the other lines are MxEvents)."""
    return {
        "sessionRecovered": {
            "failed": [
                {"definition": f.definition, "error": f.error, "itemHandle": f.item_handle}
                for f in recovered.failed
            ],
            "lastSequence": str(recovered.last_sequence),
            "newSessionId": recovered.new_session_id,
            "oldSessionId": recovered.old_session_id,
            "reason": recovered.reason,
        }
    }


def _print_recovered(json_mode: bool, recovered: SessionRecovered) -> None:
    if json_mode:
        emit_json(recovered_dict(recovered))
    else:
        emit(False, None, recovered_text(recovered))


def _printer(json_mode: bool) -> Callable[[MxEvent], None]:
    def print_event(event: MxEvent) -> None:
        if event.session_recovered is not None:
            _print_recovered(json_mode, event.session_recovered)
        elif json_mode:
            emit_json(event_dict(event))
        else:
            emit(False, None, event_text(event))

    return print_event


async def _reopen(client: GatewayClient, lost: Session, args: argparse.Namespace) -> Session:
    """--recover for a session another process built: a new session with the --item
    references subscribed (this process knows nothing else of the old one)."""
    session = await client.open_session("mxgw-py stream-events", recover=True)
    session.leave_open()  # it continues the one another process owns
    failed = []
    items = items_of(args, required=False)
    if items:
        server = await session.register("mxgw-py stream-events")
        for result in await session.subscribe_bulk(server, items):
            if not result.was_successful:
                failed.append(result)
    _print_recovered(
        args.json,
        SessionRecovered(
            old_session_id=lost.session_id,
            new_session_id=session.session_id,
            last_sequence=0,
            failed=tuple(
                RecoveryFailure(r.server_handle, 0, r.tag_address, r.error_message) for r in failed
            ),
            reason="the gateway no longer knows the session",
        ),
    )
    return session


async def cmd_stream_events(args: argparse.Namespace) -> int:
    """Print a session's events until the bound, the timeout or the end of the stream."""
    if (args.item or args.items_file) and not args.recover:
        raise UsageError("--item and --items-file are only used with --recover")
    if args.duration is not None and args.timeout is not None:
        raise UsageError("--duration and --timeout are the same bound here: give one")
    async with gateway_client(args) as client:
        current = [attach_session(client, args.session_id)]
        await connected(client, args)
        progress(f"streaming events of session {args.session_id} (Ctrl-C to stop)")
        reporter = None
        if args.stats is not None:
            reporter = asyncio.create_task(_report_stats(lambda: current[0], args.stats))
        try:
            await _stream(client, args, current)
        finally:
            if reporter is not None:
                reporter.cancel()
                await asyncio.gather(reporter, return_exceptions=True)
                _write_stats(current[0])
        session = current[0]
        # Reaching the bound while the stream is still reconnecting is a lost gateway, not
        # a quiet success: the bound must not hide it.
        if session.stream_trouble is not None:
            raise MxGatewayStreamLostError(
                f"event stream of session {session.session_id} was still reconnecting at the "
                f"--duration/--timeout bound ({session.stream_trouble})"
            )
    return EXIT_OK


async def _stream(client: GatewayClient, args: argparse.Namespace, current: list[Session]) -> None:
    """Print events of ``current[0]`` to the bounds; with --recover, a session the gateway lost
    is replaced (in ``current``) by a new one with the --item references."""
    loop = asyncio.get_running_loop()
    bound = args.duration if args.duration is not None else args.timeout
    deadline = None if bound is None else loop.time() + bound
    printer = _printer(args.json)
    printed = 0

    def print_event(event: MxEvent) -> None:
        nonlocal printed
        printed += 1
        printer(event)

    while True:
        session = current[0]
        remaining = None if deadline is None else max(0.0, deadline - loop.time())
        try:
            await consume(
                session.stream_events(
                    after_worker_sequence=args.after_sequence if not printed else 0,
                    retry_budget_s=args.retry_budget,
                ),
                print_event,
                max_items=None if args.max_events is None else args.max_events - printed,
                seconds=remaining,
            )
            return
        except MxGatewaySessionNotFoundError:
            if not args.recover or session.recovers:
                raise
            current[0] = await _reopen(client, session, args)


def _write_stats(session: Session) -> None:
    """One ``{"stats": {...}}`` line on stderr (stdout stays the events)."""
    if session.stats is not None:
        data = {"stats": session.stats.as_dict()}
        sys.stderr.write(json.dumps(data, sort_keys=True) + "\n")
        sys.stderr.flush()


async def _report_stats(session: Callable[[], Session], every: float) -> None:
    while True:
        await asyncio.sleep(every)
        _write_stats(session())


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
        "--duration",
        type=seconds,
        metavar="SECONDS",
        help="stop after SECONDS and exit 0 (the same as --timeout for this command)",
    )
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
    parser.add_argument(
        "--stats",
        type=seconds,
        metavar="SECONDS",
        help="write the stream's statistics as one JSON line to stderr every SECONDS, and at "
        "the end (events, messages, bytes, reconnects, gaps, lag, latency histogram)",
    )
    parser.add_argument("--recover", action="store_true", help=_RECOVER_HELP)
    add_item_flags(parser, what="with --recover: a reference to subscribe on a recovered session")
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
