"""Session commands: open-session, close-session and one command per MXAccess call.

Each invocation is a new process, so every command but ``open-session`` names a session
opened earlier with ``--session-id``: the session and its MXAccess handles live on the
gateway. A command prints what it did and what came back, e.g. ``register`` prints
``{"kind": "MX_COMMAND_KIND_REGISTER", "serverHandle": 1, "sessionId": "..."}``; without
``--json`` it prints the bare result (session id, handle) so shell scripts can capture it.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mxgateway import MxDataType, Session
from mxgateway_cli._connection import (
    attach_session,
    connection_parent,
    gateway_client,
    int32,
    json_parent,
    non_negative_int32,
)
from mxgateway_cli._exit_codes import EXIT_OK, UsageError
from mxgateway_cli._items import add_item_flags, items_of
from mxgateway_cli._json import message_dict, value_dict
from mxgateway_cli._output import emit, register_secret
from mxgateway_cli._values import TYPE_NAMES, data_type_of, infer_type, parse_time, parse_value

__all__ = ["add_session_commands"]


def _kind(name: str) -> str:
    return f"MX_COMMAND_KIND_{name}"


def _result(args: argparse.Namespace, kind: str, **fields: Any) -> dict[str, Any]:
    return {"kind": _kind(kind), "sessionId": args.session_id, **fields}


def _timestamp(text: str | None) -> datetime:
    return datetime.now(UTC) if text is None else parse_time(text, "--timestamp")


# -- session life cycle ----------------------------------------------------------------------


async def cmd_open_session(args: argparse.Namespace) -> int:
    """OpenSession; prints the OpenSessionReply (text: the session id)."""
    async with gateway_client(args) as client:
        session = await client.open_session(args.name, lease_seconds=args.lease_seconds)
        session.leave_open()  # for the next commands: they name it with --session-id
    emit(args.json, message_dict(session.open_reply), session.session_id)
    return EXIT_OK


async def cmd_close_session(args: argparse.Namespace) -> int:
    """CloseSession (idempotent on the gateway); prints the CloseSessionReply."""
    if not args.session_id.strip():
        raise UsageError("--session-id is empty")
    async with gateway_client(args) as client:
        reply = await client.close_session(args.session_id)
    emit(args.json, message_dict(reply), f"closed {args.session_id}")
    return EXIT_OK


# -- registration and items ------------------------------------------------------------------


async def cmd_register(args: argparse.Namespace) -> int:
    """Register; prints the server handle."""
    async with gateway_client(args) as client:
        handle = await attach_session(client, args.session_id).register(args.client_name)
    emit(args.json, _result(args, "REGISTER", serverHandle=handle), str(handle))
    return EXIT_OK


async def cmd_unregister(args: argparse.Namespace) -> int:
    """Unregister a server handle."""
    async with gateway_client(args) as client:
        await attach_session(client, args.session_id).unregister(args.server_handle)
    emit(args.json, _result(args, "UNREGISTER", serverHandle=args.server_handle), "ok")
    return EXIT_OK


async def cmd_add_item(args: argparse.Namespace) -> int:
    """AddItem (or AddItem2 with ``--item-context``); prints the item handle."""
    context = getattr(args, "item_context", None)
    async with gateway_client(args) as client:
        session = attach_session(client, args.session_id)
        if context is None:
            handle = await session.add_item(args.server_handle, args.item)
        else:
            handle = await session.add_item2(args.server_handle, args.item, context)
    fields: dict[str, Any] = {
        "itemDefinition": args.item,
        "itemHandle": handle,
        "serverHandle": args.server_handle,
    }
    if context is not None:
        fields["itemContext"] = context
    kind = "ADD_ITEM" if context is None else "ADD_ITEM2"
    emit(args.json, _result(args, kind, **fields), str(handle))
    return EXIT_OK


_ITEM_COMMANDS: dict[str, tuple[str, str, str]] = {
    # command: (Session method, command kind, help)
    "remove-item": ("remove_item", "REMOVE_ITEM", "RemoveItem: forget an item"),
    "advise": ("advise", "ADVISE", "Advise: the item's changes arrive as events"),
    "advise-supervisory": (
        "advise_supervisory",
        "ADVISE_SUPERVISORY",
        "AdviseSupervisory: advise for supervisory writes",
    ),
    "unadvise": ("un_advise", "UN_ADVISE", "UnAdvise: stop the item's events"),
}


async def cmd_item(args: argparse.Namespace) -> int:
    """RemoveItem, Advise, AdviseSupervisory or UnAdvise of one item."""
    method, kind, _ = _ITEM_COMMANDS[args.command]
    async with gateway_client(args) as client:
        session = attach_session(client, args.session_id)
        await getattr(session, method)(args.server_handle, args.item_handle)
    result = _result(args, kind, itemHandle=args.item_handle, serverHandle=args.server_handle)
    emit(args.json, result, "ok")
    return EXIT_OK


# -- users (for secured writes) --------------------------------------------------------------


def _password(args: argparse.Namespace) -> str:
    if args.password_env:
        value = os.environ.get(args.password_env, "")
        register_secret(value)
        if not value:
            raise UsageError(f"environment variable {args.password_env} is not set or empty")
        return value
    try:
        text = Path(args.password_file).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or "not readable UTF-8 text"
        raise UsageError(f"cannot read --password-file {args.password_file}: {reason}") from None
    value = text.rstrip("\r\n")
    register_secret(value)
    if not value:
        raise UsageError(f"--password-file {args.password_file} is empty")
    return value


async def cmd_authenticate_user(args: argparse.Namespace) -> int:
    """AuthenticateUser; prints the user id for secured writes (never the password)."""
    password = _password(args)
    async with gateway_client(args) as client:
        session = attach_session(client, args.session_id)
        user_id = await session.authenticate_user(args.server_handle, args.user, password)
    result = _result(
        args, "AUTHENTICATE_USER", serverHandle=args.server_handle, user=args.user, userId=user_id
    )
    emit(args.json, result, str(user_id))
    return EXIT_OK


async def cmd_archestra_user_to_id(args: argparse.Namespace) -> int:
    """ArchestrAUserToId; prints the user id of an ArchestrA user GUID."""
    async with gateway_client(args) as client:
        session = attach_session(client, args.session_id)
        user_id = await session.archestra_user_to_id(args.server_handle, args.user_guid)
    result = _result(
        args,
        "ARCHESTRA_USER_TO_ID",
        serverHandle=args.server_handle,
        userGuid=args.user_guid,
        userId=user_id,
    )
    emit(args.json, result, str(user_id))
    return EXIT_OK


# -- writes ----------------------------------------------------------------------------------


async def _write(args: argparse.Namespace, session: Session, value: Any, dt: MxDataType) -> None:
    command = args.command
    handles = (args.server_handle, args.item_handle)
    if command == "write":
        await session.write(*handles, value, data_type=dt, user_id=args.user_id)
    elif command == "write2":
        stamp = _timestamp(args.timestamp)
        await session.write2(*handles, value, stamp, data_type=dt, user_id=args.user_id)
    elif command == "write-secured":
        await session.write_secured(
            *handles,
            value,
            current_user_id=args.current_user_id,
            verifier_user_id=args.verifier_user_id,
            data_type=dt,
        )
    else:
        stamp = _timestamp(args.timestamp)
        await session.write_secured2(
            *handles,
            value,
            stamp,
            current_user_id=args.current_user_id,
            verifier_user_id=args.verifier_user_id,
            data_type=dt,
        )


async def cmd_write(args: argparse.Namespace) -> int:
    """Write, Write2, WriteSecured or WriteSecured2 of one value (parsed before connecting)."""
    type_name = args.type or infer_type(args.value, array=args.array)
    value, data_type = parse_value(type_name, args.value, array=args.array)
    if getattr(args, "timestamp", None) is not None:
        _timestamp(args.timestamp)  # a bad timestamp is a usage error before connecting
    async with gateway_client(args) as client:
        await _write(args, attach_session(client, args.session_id), value, data_type)
    kind = args.command.upper().replace("-", "_")
    result = _result(
        args,
        kind,
        itemHandle=args.item_handle,
        serverHandle=args.server_handle,
        value=value_dict(value, data_type),
    )
    emit(args.json, result, "ok")
    return EXIT_OK


# -- bulk ------------------------------------------------------------------------------------


async def cmd_read_bulk(args: argparse.Namespace) -> int:
    """ReadBulk; per-tag outcomes are in ``results`` (a failing tag never fails the call)."""
    items_of(args)  # a usage error before connecting
    async with gateway_client(args) as client:
        session = attach_session(client, args.session_id)
        results = await session.read_bulk(
            args.server_handle, items_of(args), timeout_ms=args.timeout_ms
        )
    values = {
        r.tag_address: f"{r.value!r} quality={r.quality}" for r in results if r.was_successful
    }
    _emit_bulk(args, "READ_BULK", [r.raw for r in results], values)
    return EXIT_OK


async def cmd_subscribe_bulk(args: argparse.Namespace) -> int:
    """SubscribeBulk (AddItem + Advise per tag); per-tag outcomes in ``results``."""
    items = items_of(args)
    async with gateway_client(args) as client:
        session = attach_session(client, args.session_id)
        results = await session.subscribe_bulk(
            args.server_handle,
            items,
            supervisory=args.supervisory,
            buffered_update_interval_ms=args.buffered_update_interval_ms,
        )
    _emit_bulk(args, "SUBSCRIBE_BULK", results)
    return EXIT_OK


def _split_entries(args: argparse.Namespace) -> list[tuple[int, str]]:
    pairs: list[tuple[int, str]] = []
    for text in args.entry:
        handle_text, sep, value_text = text.partition("=")
        if not sep:
            raise UsageError(f"--entry {text!r} is not ITEM_HANDLE=VALUE")
        try:
            handle = int32(handle_text)
        except argparse.ArgumentTypeError as exc:
            raise UsageError(f"--entry {text!r}: item handle {exc}") from None
        pairs.append((handle, value_text))
    return pairs


def _bulk_type(args: argparse.Namespace, texts: list[str]) -> str:
    """--type, or the one type every value reads as (integers with decimals: double)."""
    if args.type:
        return str(args.type)
    kinds = {infer_type(text, array=args.array) for text in texts}
    if kinds <= {"int32", "int64"}:
        return "int64" if "int64" in kinds else "int32"
    if kinds <= {"int32", "int64", "double"}:
        return "double"
    if len(kinds) == 1:
        return kinds.pop()
    raise UsageError(f"the --entry values read as {', '.join(sorted(kinds))}: give --type")


async def cmd_write_bulk(args: argparse.Namespace) -> int:
    """WriteBulk of ``--entry ITEM_HANDLE=VALUE`` pairs (all of one type)."""
    pairs = _split_entries(args)
    type_name = _bulk_type(args, [text for _, text in pairs])
    entries = [
        (handle, parse_value(type_name, text, array=args.array)[0]) for handle, text in pairs
    ]
    data_type = data_type_of(type_name)
    async with gateway_client(args) as client:
        session = attach_session(client, args.session_id)
        results = await session.write_bulk(
            args.server_handle, entries, data_type=data_type, user_id=args.user_id
        )
    _emit_bulk(args, "WRITE_BULK", results)
    return EXIT_OK


def _emit_bulk(
    args: argparse.Namespace,
    kind: str,
    results: list[Any],
    values: dict[str, str] | None = None,
) -> None:
    """The results of a bulk as JSON, or a line a tag (or item) in text: its item handle and
    outcome, and the value read where there is one."""
    dicts = [message_dict(result) for result in results]
    data = _result(args, kind, results=dicts, serverHandle=args.server_handle)

    def text() -> str:
        lines = []
        for entry in dicts:
            tag = entry.get("tagAddress")
            handle = entry.get("itemHandle")
            if entry.get("wasSuccessful"):
                status = (values or {}).get(tag or "", "ok")
            else:
                status = f"FAILED {entry.get('errorMessage')}"
            name = f"{tag} (item {handle})" if tag and handle else tag or f"item {handle}"
            lines.append(f"{name}: {status}")
        return "\n".join(lines)

    emit(args.json, data, text)


# -- parsers ---------------------------------------------------------------------------------


def _session_id(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--session-id", required=True, metavar="ID", help="a session opened by open-session"
    )


def _server_handle(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--server-handle", required=True, type=int32, metavar="N", help="from register"
    )


def _item_handle(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--item-handle", required=True, type=int32, metavar="N", help="from add-item"
    )


def _value_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--type",
        choices=TYPE_NAMES,
        help=(
            "value type (the element type with --array); default: read from --value "
            "(true/false bool, an integer int32 or int64, a decimal double, else string; "
            "times and elapsed times need --type)"
        ),
    )
    parser.add_argument(
        "--array",
        action="store_true",
        help="the value is a JSON array (nested for rank 2+), e.g. '[1, 2, 3]'",
    )


def add_session_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the session and MXAccess commands to the ``mxgw-py`` parser."""
    parents = [json_parent(), connection_parent()]

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        return commands.add_parser(name, help=help_text, description=help_text, parents=parents)

    parser = command("open-session", "open a gateway session and print its id")
    parser.add_argument(
        "--name", default="mxgw-py", help="client session name shown by the gateway"
    )
    parser.add_argument(
        "--lease-seconds",
        type=non_negative_int32,
        default=0,
        metavar="N",
        help="session lease (0: the gateway's default)",
    )
    parser.set_defaults(handler=cmd_open_session)

    parser = command("close-session", "close a gateway session (idempotent)")
    _session_id(parser)
    parser.set_defaults(handler=cmd_close_session)

    parser = command("register", "Register with MXAccess; prints the server handle")
    _session_id(parser)
    parser.add_argument("--client-name", default="mxgw-py", help="MXAccess client name")
    parser.set_defaults(handler=cmd_register)

    parser = command("unregister", "Unregister a server handle")
    _session_id(parser)
    _server_handle(parser)
    parser.set_defaults(handler=cmd_unregister)

    for name, kind, context_help in (
        ("add-item", "AddItem", None),
        ("add-item2", "AddItem2", "item context (AddItem2)"),
    ):
        parser = command(name, f"{kind}: add an item; prints its item handle")
        _session_id(parser)
        _server_handle(parser)
        parser.add_argument("--item", required=True, metavar="REF", help="e.g. Tag.Attribute")
        if context_help is not None:
            parser.add_argument("--item-context", required=True, metavar="TEXT", help=context_help)
        parser.set_defaults(handler=cmd_add_item)

    for name, (_, _, help_text) in _ITEM_COMMANDS.items():
        parser = command(name, help_text)
        _session_id(parser)
        _server_handle(parser)
        _item_handle(parser)
        parser.set_defaults(handler=cmd_item)

    parser = command(
        "authenticate-user", "AuthenticateUser: a user id for write-secured (password not shown)"
    )
    _session_id(parser)
    _server_handle(parser)
    parser.add_argument("--user", required=True, metavar="NAME", help="ArchestrA user name")
    password = parser.add_mutually_exclusive_group(required=True)
    password.add_argument("--password-env", metavar="NAME", help="env var holding the password")
    password.add_argument("--password-file", metavar="PATH", help="file holding the password")
    parser.set_defaults(handler=cmd_authenticate_user)

    parser = command("archestra-user-to-id", "ArchestrAUserToId: a user id from a user GUID")
    _session_id(parser)
    _server_handle(parser)
    parser.add_argument("--user-guid", required=True, metavar="GUID", help="ArchestrA user GUID")
    parser.set_defaults(handler=cmd_archestra_user_to_id)

    writes = {
        "write": "Write a value (the item must be advised)",
        "write2": "Write2: write a value with its timestamp",
        "write-secured": "WriteSecured: write with authenticated user ids",
        "write-secured2": "WriteSecured2: secured write with a timestamp",
    }
    for name, help_text in writes.items():
        parser = command(name, help_text)
        _session_id(parser)
        _server_handle(parser)
        _item_handle(parser)
        _value_flags(parser)
        parser.add_argument("--value", required=True, metavar="TEXT", help="the value to write")
        if name.startswith("write-secured"):
            parser.add_argument(
                "--current-user-id", required=True, type=int32, metavar="N", help="writer's user id"
            )
            parser.add_argument(
                "--verifier-user-id",
                type=int32,
                default=0,
                metavar="N",
                help="verifier's user id (VerifiedWrite attributes)",
            )
        else:
            parser.add_argument(
                "--user-id", type=int32, default=0, metavar="N", help="user id (0: none)"
            )
        if name.endswith("2"):
            parser.add_argument(
                "--timestamp",
                metavar="ISO8601",
                help="timestamp of the value, with an offset (default: now)",
            )
        parser.set_defaults(handler=cmd_write)

    parser = command("read-bulk", "ReadBulk: read many tags in one round trip")
    _session_id(parser)
    _server_handle(parser)
    add_item_flags(parser)
    parser.add_argument(
        "--timeout-ms",
        type=non_negative_int32,
        default=0,
        metavar="MS",
        help="per-tag read timeout (0: the worker's default)",
    )
    parser.set_defaults(handler=cmd_read_bulk)

    parser = command("subscribe-bulk", "SubscribeBulk: AddItem + Advise for many tags")
    _session_id(parser)
    _server_handle(parser)
    add_item_flags(parser)
    parser.add_argument("--supervisory", action="store_true", help="advise supervisory")
    parser.add_argument(
        "--buffered-update-interval-ms",
        type=non_negative_int32,
        default=0,
        metavar="MS",
        help="buffered items with this update interval (0: not buffered)",
    )
    parser.set_defaults(handler=cmd_subscribe_bulk)

    parser = command("write-bulk", "WriteBulk: write many items in one round trip")
    _session_id(parser)
    _server_handle(parser)
    _value_flags(parser)
    parser.add_argument(
        "--entry",
        required=True,
        action="append",
        metavar="ITEM_HANDLE=VALUE",
        help="one write (repeat for more), e.g. --entry 2=123",
    )
    parser.add_argument("--user-id", type=int32, default=0, metavar="N", help="user id (0: none)")
    parser.set_defaults(handler=cmd_write_bulk)
