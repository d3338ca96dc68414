"""The common flags of every networked command, and clients built from them.

``--endpoint`` (default ``localhost:5000``), one of ``--api-key`` / ``--api-key-env NAME`` /
``--api-key-file PATH``, ``--plaintext`` or ``--tls`` (the default; together a usage error),
``--ca-file``, ``--server-name-override`` and ``--timeout``. The key is registered with
:func:`mxgateway_cli._output.register_secret` as soon as it is read, so no error shows it.
"""

from __future__ import annotations

import argparse
import codecs
import math
import os
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from mxgateway import ClientOptions, GalaxyRepositoryClient, GatewayClient, Session
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway_cli._exit_codes import UsageError
from mxgateway_cli._output import register_secret

__all__ = [
    "DEFAULT_ENDPOINT",
    "DEFAULT_TIMEOUT_S",
    "attach_session",
    "client_options",
    "connected",
    "connection_parent",
    "galaxy_client",
    "gateway_client",
    "int32",
    "json_parent",
    "non_negative_int32",
    "positive_int",
    "read_key_file",
    "resolve_api_key",
    "seconds",
    "uint64",
]

DEFAULT_ENDPOINT = "localhost:5000"
DEFAULT_TIMEOUT_S = 30.0
"""Deadline of unary calls (and of the connection check of streams) without ``--timeout``."""

_INT = re.compile(r"[+-]?[0-9]+")
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


# -- argument types (argparse reports their ArgumentTypeError as a usage error, exit 2) ------


# The longest time a flag may name: three years. gRPC takes deadlines up to about 30 years;
# 1e10 s already makes every call fail at once with DEADLINE_EXCEEDED.
MAX_SECONDS = 1e8
# Longer than any number a flag takes (2**64 has 20 digits): refused before parsing, so a
# 5,000-digit argument is a usage error naming the flag, not Python's digit-limit error.
_MAX_DIGITS = 40


def seconds(text: str) -> float:
    """A positive, finite number of seconds, at most ``MAX_SECONDS``."""
    if len(text) > _MAX_DIGITS:
        raise argparse.ArgumentTypeError("not a number of seconds (too long)")
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive finite number of seconds: {text!r}")
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_SECONDS:g} seconds: {text!r}")
    return value


def _integer(text: str, low: int, high: int, what: str) -> int:
    if len(text) > _MAX_DIGITS or not _INT.fullmatch(text.strip()):
        shown = text if len(text) <= _MAX_DIGITS else text[:_MAX_DIGITS] + "..."
        raise argparse.ArgumentTypeError(f"not an integer in {what}: {shown!r}")
    value = int(text)
    if not low <= value <= high:
        raise argparse.ArgumentTypeError(f"{value} is outside {what}")
    return value


def int32(text: str) -> int:
    """A decimal int32 (handles, user ids)."""
    return _integer(text, _INT32_MIN, _INT32_MAX, "int32")


def non_negative_int32(text: str) -> int:
    """A decimal int32 >= 0."""
    return _integer(text, 0, _INT32_MAX, "0..2147483647")


def uint64(text: str) -> int:
    """A decimal integer 0..2^64-1 (event sequences)."""
    return _integer(text, 0, 2**64 - 1, "0..2^64-1")


def _receive_limit(text: str) -> int:
    return _integer(text, 1024, 2**31 - 1, "1024..2147483647")


def positive_int(text: str) -> int:
    """A decimal integer >= 1 (counts such as ``--max-events``)."""
    return _integer(text, 1, 2**63 - 1, "1..2^63-1")


# -- parent parsers --------------------------------------------------------------------------


def json_parent() -> argparse.ArgumentParser:
    """The ``--json`` flag, as a parent parser."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--json", action="store_true", help="print deterministic JSON (sorted keys, one per line)"
    )
    return parent


def connection_parent(*, stream: bool = False) -> argparse.ArgumentParser:
    """The common connection flags, as a parent parser.

    For stream commands (``stream=True``) ``--timeout`` bounds the whole stream (the command
    then stops and exits 0); otherwise it is the deadline of each call.
    """
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("connection")
    group.add_argument(
        "--endpoint",
        default=DEFAULT_ENDPOINT,
        metavar="HOST:PORT",
        help=f"gateway address (default {DEFAULT_ENDPOINT})",
    )
    keys = group.add_mutually_exclusive_group()
    keys.add_argument(
        "--api-key",
        metavar="KEY",
        help="API key (visible to other local users: prefer --api-key-env or --api-key-file)",
    )
    keys.add_argument("--api-key-env", metavar="NAME", help="read the API key from env var NAME")
    keys.add_argument("--api-key-file", metavar="PATH", help="read the API key from a file")
    tls = group.add_mutually_exclusive_group()
    tls.add_argument(
        "--plaintext", action="store_true", help="connect without TLS (only when asked)"
    )
    tls.add_argument("--tls", action="store_true", help="connect with TLS (the default)")
    group.add_argument("--ca-file", metavar="PEM", help="CA certificates to trust (PEM file)")
    group.add_argument(
        "--server-name-override", metavar="NAME", help="TLS server name to verify (tests)"
    )
    if stream:
        timeout_help = "stop after SECONDS and exit 0 (default: no limit)"
    else:
        timeout_help = f"deadline of each call in seconds (default {DEFAULT_TIMEOUT_S:g})"
    group.add_argument("--timeout", type=seconds, metavar="SECONDS", help=timeout_help)
    group.add_argument(
        "--max-receive-bytes",
        type=_receive_limit,
        metavar="N",
        help="largest message to accept (default 16777216, the gateway's own limit)",
    )
    parent.add_argument(
        "--log-level",
        type=_log_level,
        default="WARNING",
        metavar="LEVEL",
        help=(
            "library log level on stderr: debug, info, warning (default), error; debug also "
            "shows gRPC's own log (else quiet unless GRPC_VERBOSITY is set)"
        ),
    )
    return parent


_LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")


def _log_level(text: str) -> str:
    level = text.upper()
    if level not in _LOG_LEVELS:
        raise argparse.ArgumentTypeError(
            f"--log-level must be one of {', '.join(x.lower() for x in _LOG_LEVELS)}"
        )
    return level


# -- clients ---------------------------------------------------------------------------------


def resolve_api_key(args: argparse.Namespace) -> str | None:
    """The API key from ``--api-key``, ``--api-key-env`` or ``--api-key-file`` (or None)."""
    key: str | None = None
    if args.api_key is not None:
        key = args.api_key.strip()
        register_secret(args.api_key)
        if not key:
            raise UsageError("--api-key is empty")
    elif args.api_key_env:
        value = os.environ.get(args.api_key_env, "")
        register_secret(value)
        key = value.replace("\ufeff", "").strip()  # a BOM pasted along with the key
        if not key:
            raise UsageError(f"environment variable {args.api_key_env} is not set or empty")
    elif args.api_key_file:
        text = read_key_file(args.api_key_file, "--api-key-file")
        register_secret(text)
        key = text.strip()
        if not key:
            raise UsageError(f"--api-key-file {args.api_key_file} is empty")
    if key is not None:
        register_secret(key)
        _check_header_safe(key, args)
    return key


def read_key_file(path: str, flag: str) -> str:
    """The text of a key file, without a byte order mark (the caller strips white space).

    Windows editors save UTF-8 with a BOM (Notepad's "UTF-8 with BOM") and PowerShell 5's
    ``Out-File``/``>`` writes UTF-16 with one: a BOM kept in the key made gRPC refuse the header
    ("Illegal header value") after the CLI had already said nothing about the file.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {flag} {path}: {exc.strerror}") from None
    encoding = "utf-16" if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) else None
    try:
        return data.decode(encoding or "utf-8-sig")
    except UnicodeDecodeError:
        raise UsageError(f"cannot read {flag} {path}: not UTF-8 or UTF-16 text") from None


def _check_header_safe(key: str, args: argparse.Namespace) -> None:
    # gRPC sends the key in a header, which takes printable ASCII only; anything else would
    # fail on the first call as a "gateway failure" although nothing was sent. The message
    # names where the key came from and the position, never the key.
    for position, char in enumerate(key, start=1):
        if not " " < char <= "~":
            if args.api_key is not None:
                source = "--api-key"
            elif args.api_key_env:
                source = f"environment variable {args.api_key_env}"
            else:
                source = f"--api-key-file {args.api_key_file}"
            what = "white space" if char.isspace() else f"U+{ord(char):04X}"
            raise UsageError(
                f"the API key from {source} holds {what} at character {position}: "
                "a key is printable ASCII without spaces"
            )


def client_options(args: argparse.Namespace) -> ClientOptions:
    """ClientOptions from the common flags (UsageError for a bad combination or value)."""
    key = resolve_api_key(args)
    try:
        return ClientOptions(
            endpoint=args.endpoint,
            api_key=key,
            plaintext=args.plaintext,
            ca_file=args.ca_file,
            server_name_override=args.server_name_override,
            timeout=args.timeout or DEFAULT_TIMEOUT_S,
            max_receive_message_bytes=getattr(args, "max_receive_bytes", None),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


@asynccontextmanager
async def gateway_client(args: argparse.Namespace) -> AsyncIterator[GatewayClient]:
    """A GatewayClient from the common flags, closed on exit."""
    options = client_options(args)
    async with await GatewayClient.connect(options=options) as client:
        yield client


@asynccontextmanager
async def galaxy_client(args: argparse.Namespace) -> AsyncIterator[GalaxyRepositoryClient]:
    """A GalaxyRepositoryClient from the common flags, closed on exit."""
    options = client_options(args)
    async with await GalaxyRepositoryClient.connect(options=options) as client:
        yield client


async def connected(
    client: GatewayClient | GalaxyRepositoryClient, args: argparse.Namespace
) -> None:
    """Wait until the channel is up (MxGatewayTransportError otherwise).

    Streams call this first: a stream bounded by ``--timeout`` must still fail (exit 3) when
    the gateway cannot be reached, rather than end quietly at the bound.
    """
    await client.wait_ready(args.timeout or DEFAULT_TIMEOUT_S)


def attach_session(client: GatewayClient, session_id: str) -> Session:
    """A ``Session`` for a session opened earlier (by ``open-session``, in another process).

    The session lives on the gateway; this only names it. Never ``close()`` it here unless the
    command is ``close-session``.
    """
    if not session_id.strip():
        raise UsageError("--session-id is empty")
    return Session(client, pb.OpenSessionReply(session_id=session_id))
