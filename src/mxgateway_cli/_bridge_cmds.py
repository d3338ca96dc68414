"""``bridge`` (a session's events into NATS JetStream) and ``bridge-tail`` (read them back).

``bridge`` runs until SIGINT/SIGTERM or ``--timeout``: it prints one line when it waits as a
standby (``{"standby": ...}``), one when it forwards (``{"active": ...}``, the session and the
sequence it resumed after), one if another bridge took over (``{"fenced": ...}``) and one when
it stops (``{"stopped": ...}``, what it forwarded). Exit codes as the other stream commands:
0 at ``--timeout`` or SIGTERM (after draining what is in flight), 130 at SIGINT (also after
draining), 1 the gateway or the bridge refused (an unknown session, a stream fed by another
bridge), 2 bad flags, 3 the gateway or NATS could not be reached (or a gateway stream was lost
beyond ``--retry-budget``), 4 authentication.

``bridge-tail`` prints the events of a bridge's stream exactly as ``stream-events`` prints a
session's (``--json``: protobuf JSON, one per line, ``sessionRecovered`` lines for session
changes, events with ``replayGap`` for gap records).

NATS credentials come from ``--nats-creds``, ``--nats-nkey``, ``--nats-user`` with
``--nats-password-env``/``--nats-password-file``, or ``--nats-token-env``/``--nats-token-file``
(or in the URL: ``nats://user:pass@host``); none is ever printed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mxgateway import MxEvent
from mxgateway_cli._connection import (
    client_options,
    connection_parent,
    json_parent,
    positive_int,
    seconds,
)
from mxgateway_cli._event_cmds import event_text, recovered_dict, recovered_text
from mxgateway_cli._exit_codes import EXIT_INTERRUPTED, EXIT_OK, UsageError
from mxgateway_cli._items import add_item_flags, items_of
from mxgateway_cli._json import event_dict
from mxgateway_cli._output import emit, emit_json, register_secret, text_line
from mxgateway_cli._streams import add_retry_budget
from mxgateway_cli._streams import consume as read_bounded

if TYPE_CHECKING:
    from mxgateway.bridge import NatsOptions

__all__ = ["add_bridge_commands", "nats_options"]

_DEFAULT_NATS = "nats://127.0.0.1:4222"


# -- flags -----------------------------------------------------------------------------------


def _nats_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("NATS")
    group.add_argument(
        "--nats",
        action="append",
        default=[],
        metavar="URL",
        help=f"a NATS server, nats://HOST:PORT or tls://HOST:PORT (repeat for a cluster; "
        f"default {_DEFAULT_NATS})",
    )
    group.add_argument("--nats-creds", metavar="PATH", help="NATS .creds file (JWT and NKey)")
    group.add_argument("--nats-nkey", metavar="PATH", help="NATS NKey seed file")
    group.add_argument("--nats-user", metavar="USER", help="NATS user (password from below)")
    secret = group.add_mutually_exclusive_group()
    secret.add_argument("--nats-password-env", metavar="NAME", help="NATS password from env var")
    secret.add_argument("--nats-password-file", metavar="PATH", help="NATS password from a file")
    token = group.add_mutually_exclusive_group()
    token.add_argument("--nats-token-env", metavar="NAME", help="NATS token from env var NAME")
    token.add_argument("--nats-token-file", metavar="PATH", help="NATS token from a file")
    group.add_argument("--nats-ca-file", metavar="PEM", help="CA certificates of the NATS servers")
    group.add_argument("--nats-cert-file", metavar="PEM", help="NATS client certificate")
    group.add_argument("--nats-key-file", metavar="PEM", help="NATS client certificate's key")


def _secret(env: str | None, path: str | None, what: str) -> str | None:
    value: str | None = None
    if env:
        value = os.environ.get(env, "")
        register_secret(value)
        value = value.strip()
        if not value:
            raise UsageError(f"environment variable {env} ({what}) is not set or empty")
    elif path:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            reason = getattr(exc, "strerror", None) or "not readable UTF-8 text"
            raise UsageError(f"cannot read the {what} file {path}: {reason}") from None
        register_secret(text)
        value = text.strip()
        if not value:
            raise UsageError(f"the {what} file {path} is empty")
    if value:
        register_secret(value)
    return value


def nats_options(args: argparse.Namespace) -> NatsOptions:
    """NatsOptions from the NATS flags (UsageError for a bad URL or combination)."""
    from mxgateway.bridge import NatsOptions

    password = _secret(args.nats_password_env, args.nats_password_file, "NATS password")
    token = _secret(args.nats_token_env, args.nats_token_file, "NATS token")
    if password is not None and args.nats_user is None:
        raise UsageError("--nats-password-env/--nats-password-file need --nats-user")
    try:
        options = NatsOptions(
            servers=tuple(args.nats or [_DEFAULT_NATS]),
            user=args.nats_user,
            password=password,
            token=token,
            creds_file=args.nats_creds,
            nkey_seed_file=args.nats_nkey,
            ca_file=args.nats_ca_file,
            cert_file=args.nats_cert_file,
            key_file=args.nats_key_file,
        )
    except ValueError as exc:
        raise UsageError(_flag_names(str(exc))) from None
    for secret in options.secrets:
        register_secret(secret)
    return options


_NATS_FIELDS = {
    "creds_file": "--nats-creds",
    "nkey_seed_file": "--nats-nkey",
    "ca_file": "--nats-ca-file",
    "cert_file": "--nats-cert-file",
    "key_file": "--nats-key-file",
}


def _flag_names(message: str) -> str:
    for field, flag in _NATS_FIELDS.items():
        message = message.replace(field.replace("_", " "), flag).replace(field, flag)
    return message


def _count(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        value = positive_int(text)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be in {low}..{high}: {text!r}")
        return value

    return parse


def _bytes_limit(text: str) -> int:
    units = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
    body = text.strip().lower().removesuffix("b").removesuffix("i")
    factor = 1
    if body and body[-1] in units:
        factor = units[body[-1]]
        body = body[:-1]
    value = positive_int(body) * factor
    if value < 1024:
        raise argparse.ArgumentTypeError(f"must be at least 1024 bytes: {text!r}")
    return value


# -- bridge ----------------------------------------------------------------------------------


def _printer(json_mode: bool) -> Any:
    def notify(kind: str, details: dict[str, Any]) -> None:
        if json_mode:
            emit_json({kind: details})
        elif kind == "stopped":
            emit(False, None, "stopped: " + text_line(details))
        else:
            emit(False, None, f"{kind}: " + text_line(details))

    return notify


async def cmd_bridge(args: argparse.Namespace) -> int:
    """Forward a session's events into JetStream until SIGINT/SIGTERM or --timeout."""
    from mxgateway.bridge import Bridge, BridgeConfig

    items = items_of(args, required=False)
    if items and args.session_id:
        raise UsageError("give --item/--items-file (the bridge opens a session) or --session-id")
    if not items and not args.session_id:
        raise UsageError("give --item REF or --items-file PATH, or --session-id ID")
    nats = nats_options(args)
    options = client_options(args)
    try:
        config = BridgeConfig(
            stream=args.stream,
            name=args.name,
            subject_prefix=args.subject_prefix,
            layout=args.layout,
            items=tuple(items),
            session_id=args.session_id,
            client_name=args.client_name,
            replicas=args.replicas,
            max_age_s=args.max_age,
            max_bytes=args.max_bytes,
            kv_bucket=args.kv_bucket,
            takeover_s=args.takeover_seconds,
            max_pending=args.max_pending,
            ack_every=min(args.ack_every, args.max_pending),
            ack_timeout_s=args.ack_timeout,
            retry_budget_s=args.retry_budget,
            alarms=args.alarms,
            deploys=args.deploys,
            close_session=args.close_session,
        )
    except (ValueError, TypeError) as exc:
        raise UsageError(_config_flag(str(exc))) from None

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    interrupted: list[int] = []

    def on_signal(signum: int) -> None:
        interrupted.append(signum)
        stop.set()

    installed = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, on_signal, signum)
            installed.append(signum)
        except (NotImplementedError, RuntimeError):  # pragma: no cover - Windows
            pass
    try:
        bridge = Bridge(options, nats, config, notify=_printer(args.json))
        await bridge.run(stop=stop, duration=args.timeout)
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
    if interrupted and interrupted[0] == signal.SIGINT:
        return EXIT_INTERRUPTED
    return EXIT_OK


_CONFIG_FLAGS = {
    "takeover_s": "--takeover-seconds",
    "max_pending": "--max-pending",
    "ack_every": "--ack-every",
    "ack_timeout_s": "--ack-timeout",
    "max_age_s": "--max-age",
    "max_bytes": "--max-bytes",
    "subject_prefix": "--subject-prefix",
    "kv_bucket": "--kv-bucket",
    "retry_budget_s": "--retry-budget",
    "replicas": "--replicas",
    "stream": "--stream",
    "name": "--name",
}


def _config_flag(message: str) -> str:
    for field, flag in _CONFIG_FLAGS.items():
        if message.startswith(field + " "):
            return flag + message[len(field) :]
    return message


# -- bridge-tail -----------------------------------------------------------------------------


def _event_printer(json_mode: bool) -> Any:
    def print_event(event: MxEvent) -> None:
        recovered = event.session_recovered
        if recovered is not None:
            if json_mode:
                emit_json(recovered_dict(recovered))
            else:
                emit(False, None, recovered_text(recovered))
        elif json_mode:
            emit_json(event_dict(event))
        else:
            emit(False, None, event_text(event))

    return print_event


async def cmd_bridge_tail(args: argparse.Namespace) -> int:
    """Print the events of a bridge's stream until --max-events or --timeout."""
    from mxgateway.bridge import connect_nats, consume

    nats = nats_options(args)
    nc = await connect_nats(nats)
    try:
        events = consume(
            nc,
            args.stream,
            durable=args.durable,
            from_start=args.from_start,
            subject_prefix=args.subject_prefix,
            kv_bucket=args.kv_bucket,
        )
        await read_bounded(
            events, _event_printer(args.json), max_items=args.max_events, seconds=args.timeout
        )
    finally:
        await nc.close()
    return EXIT_OK


def add_bridge_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``bridge`` and ``bridge-tail`` to the ``mxgw-py`` parser."""
    parser = commands.add_parser(
        "bridge",
        help="forward a session's events into NATS JetStream (exactly once, with a standby)",
        description=(
            "Forward a gateway session's events into a NATS JetStream stream, exactly once "
            "across crashes and restarts, until SIGINT/SIGTERM or --timeout. The bridge opens "
            "its own session (--item/--items-file) or forwards one (--session-id); run a "
            "second one with the same --name as a standby. See docs/bridge.md."
        ),
        parents=[json_parent(), connection_parent(stream=True)],
    )
    add_item_flags(parser, what="a tag to forward (the bridge opens and owns the session)")
    parser.add_argument("--session-id", metavar="ID", help="forward this existing session")
    _nats_flags(parser)
    stream = parser.add_argument_group("stream")
    stream.add_argument("--stream", required=True, metavar="NAME", help="the JetStream stream")
    stream.add_argument(
        "--name",
        metavar="NAME",
        help="the bridge's name (default: the stream's); bridges of "
        "one name are one active and its standbys",
    )
    stream.add_argument(
        "--subject-prefix", metavar="PREFIX", help="subjects under PREFIX (default mxgw.NAME)"
    )
    stream.add_argument(
        "--layout",
        choices=("batch", "items"),
        default="batch",
        help="batch: one message per gateway batch (default); items: one per event, a subject "
        "per tag",
    )
    stream.add_argument(
        "--replicas", type=_count(1, 5), default=1, metavar="N", help="copies of a new stream"
    )
    stream.add_argument(
        "--max-age", type=seconds, metavar="SECONDS", help="a new stream's age limit"
    )
    stream.add_argument(
        "--max-bytes", type=_bytes_limit, metavar="N", help="a new stream's size limit (e.g. 10G)"
    )
    stream.add_argument(
        "--kv-bucket", default="mxgw-bridge", metavar="NAME", help="bucket of state and lease"
    )
    stream.add_argument(
        "--alarms",
        nargs="?",
        const="",
        metavar="PREFIX",
        help="also forward the central alarm feed (alarms whose reference starts with PREFIX)",
    )
    stream.add_argument("--deploys", action="store_true", help="also forward Galaxy deploys")
    run = parser.add_argument_group("running")
    run.add_argument(
        "--takeover-seconds",
        type=seconds,
        default=6.0,
        metavar="S",
        help="a standby takes over after S seconds without the lease renewed (default 6)",
    )
    run.add_argument(
        "--max-pending",
        type=_count(1, 100_000),
        default=512,
        metavar="N",
        help="messages unacknowledged by JetStream at most, then stop reading (default 512)",
    )
    run.add_argument(
        "--ack-every",
        type=_count(1, 100_000),
        default=64,
        metavar="N",
        help="ask JetStream to acknowledge every N-th message (and each read's last; default 64)",
    )
    run.add_argument(
        "--ack-timeout",
        type=seconds,
        default=10.0,
        metavar="S",
        help="resynchronise with the stream when an acknowledgement is this late (default 10)",
    )
    add_retry_budget(parser, "gateway stream")
    run.add_argument(
        "--client-name", default="mxgw-py bridge", help="session and MXAccess client name"
    )
    run.add_argument(
        "--close-session",
        action="store_true",
        help="on a clean stop, close the gateway session and forget the state (by default a "
        "restarted bridge continues the session)",
    )
    parser.set_defaults(handler=cmd_bridge)

    tail = commands.add_parser(
        "bridge-tail",
        help="print the events of a bridge's JetStream stream",
        description=(
            "Print the events a bridge forwarded, as stream-events prints them, until "
            "--max-events or --timeout (exit 0)."
        ),
        parents=[json_parent()],
    )
    _nats_flags(tail)
    tail.add_argument("--stream", required=True, metavar="NAME", help="the bridge's stream")
    tail.add_argument(
        "--durable", metavar="NAME", help="a durable consumer (shared by processes of one name)"
    )
    tail.add_argument(
        "--from-start", action="store_true", help="from the stream's first message (new consumers)"
    )
    tail.add_argument("--max-events", type=positive_int, metavar="N", help="stop after N events")
    tail.add_argument("--timeout", type=seconds, metavar="SECONDS", help="stop after SECONDS")
    tail.add_argument(
        "--subject-prefix", metavar="PREFIX", help="default: read from the stream's subjects"
    )
    tail.add_argument(
        "--kv-bucket", default="mxgw-bridge", metavar="NAME", help="where tags of batches are"
    )
    tail.add_argument(
        "--log-level",
        default="WARNING",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        metavar="LEVEL",
        help="library log level on stderr",
    )
    tail.set_defaults(handler=cmd_bridge_tail)
