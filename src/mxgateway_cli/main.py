"""Entry point of ``mxgw-py``: argument parsing, dispatch, and the one place errors are reported.

Every command is a function of the parsed arguments (async for those that talk to a gateway)
that returns an exit code or raises; :func:`main` turns what it raises into an exit code with
:func:`mxgateway_cli._exit_codes.exit_code_for` and reports it (JSON on stdout with ``--json``,
text on stderr otherwise, secrets masked).

Exit codes: 0 ok; 1 the gateway/MXAccess reported a failure; 2 usage; 3 transport or timeout;
4 authentication or authorization.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import NoReturn, cast

import mxgateway
from mxgateway._codec import codec_fallback_reason
from mxgateway_cli._alarm_cmds import add_alarm_commands
from mxgateway_cli._bench import add_bench_arguments
from mxgateway_cli._bridge_cmds import add_bridge_commands
from mxgateway_cli._connection import json_parent
from mxgateway_cli._event_cmds import add_event_commands
from mxgateway_cli._exit_codes import (
    EPILOG,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
    exit_code_for,
)
from mxgateway_cli._extras import require_extras
from mxgateway_cli._galaxy_cmds import add_galaxy_commands
from mxgateway_cli._output import emit, emit_error, redact
from mxgateway_cli._record import add_record_command
from mxgateway_cli._session_cmds import add_session_commands
from mxgateway_cli._sim import add_sim_parser

__all__ = ["build_parser", "main"]


class _Parser(argparse.ArgumentParser):
    """argparse with errors in the CLI's format: JSON on stdout when ``--json`` was given."""

    json_requested = False  # set by main() from the raw arguments, before parsing

    def error(self, message: str) -> NoReturn:
        """Report a usage error (exit 2), masking anything that looks like a key."""
        message = redact(message)
        if _Parser.json_requested:
            emit_error(True, self.prog, message)
            raise SystemExit(EXIT_USAGE)
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _version_info() -> dict[str, str | None]:
    return {
        "codec": mxgateway.codec_implementation(),
        # Why the pure-Python codec runs (null with the compiled one): "MXGATEWAY_NO_EXTENSIONS=1"
        # when asked for, else what kept the compiled module from loading.
        "codecFallbackReason": codec_fallback_reason(),
        "eventLoop": mxgateway.preferred_event_loop(),
        "grpcio": _dist_version("grpcio"),
        "msgspec": _dist_version("msgspec"),
        "protobuf": _dist_version("protobuf"),
        "python": ".".join(str(part) for part in sys.version_info[:3]),
        "version": mxgateway.__version__,
    }


def _version_line(info: dict[str, str | None]) -> str:
    codec = str(info["codec"])
    reason = info["codecFallbackReason"]
    if reason is not None:
        codec = f"{codec}: {reason}"
    return (
        f"mxgw-py {info['version']} (codec {codec}, loop {info['eventLoop']}, "
        f"grpcio {info['grpcio']}, protobuf {info['protobuf']}, msgspec {info['msgspec']})"
    )


def cmd_version(args: argparse.Namespace) -> int:
    """Print the package version, codec (and why the twin, if so), event loop and key
    dependency versions."""
    info = _version_info()
    emit(args.json, info, _version_line(info))
    return EXIT_OK


class _VersionAction(argparse.Action):
    """``mxgw-py --version``: the line ``mxgw-py version`` prints, then exit 0."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: object) -> None:
        super().__init__(
            option_strings,
            dest=argparse.SUPPRESS,
            default=argparse.SUPPRESS,
            nargs=0,
            help="show the version line (as the version command) and exit",
        )

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        sys.stdout.write(_version_line(_version_info()) + "\n")
        parser.exit(EXIT_OK)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = _Parser(
        prog="mxgw-py",
        description="Command line for the MXAccess Gateway (mxgateway).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action=_VersionAction)
    # Subcommands are _Parser too (argparse's default parser_class is the parent's class).
    commands = cast(
        "argparse._SubParsersAction[argparse.ArgumentParser]",
        parser.add_subparsers(dest="command", metavar="COMMAND"),
    )
    commands.required = True

    version = commands.add_parser(
        "version", help="show versions of mxgateway and its stack", parents=[json_parent()]
    )
    version.set_defaults(handler=cmd_version)

    add_session_commands(commands)
    add_event_commands(commands)
    add_record_command(commands)
    add_galaxy_commands(commands)
    add_alarm_commands(commands)
    add_bridge_commands(commands)

    bench = commands.add_parser(
        "bench-stream-events",
        help="measure event-stream throughput, latency and integrity",
        description=(
            "Measure events/s, messages/s, MB/s and latency of the event stream, and check "
            "that no sequence is dropped or duplicated. Without --endpoint a flood simulator "
            "is started in a child process and stopped afterwards."
        ),
        parents=[json_parent()],
    )
    add_bench_arguments(bench)

    add_sim_parser(commands)
    return parser


def _describe(error: Exception) -> str:
    if isinstance(error, UsageError | mxgateway.MxGatewayError | ValueError | TypeError):
        return str(error) or type(error).__name__
    return f"{type(error).__name__}: {error}"


def _quiet_stdout() -> None:
    # The reader went away (e.g. `| head -1`): point stdout at /dev/null so the interpreter's
    # final flush does not fail again.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mxgw-py`` with ``argv`` (default: the process arguments); return the exit code."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    _Parser.json_requested = "--json" in arguments
    args = build_parser().parse_args(arguments)  # exits with code 2 on a usage error
    json_mode = bool(getattr(args, "json", False))
    if args.command not in ("sim", "bench-stream-events") and hasattr(args, "log_level"):
        logging.basicConfig(
            level=args.log_level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
        )
    try:
        require_extras(args)
        result = args.handler(args)
        if asyncio.iscoroutine(result):
            result = mxgateway.run(result)
        return int(result)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _quiet_stdout()
        return EXIT_OK
    except Exception as error:  # the one place errors become exit codes (never BaseException)
        emit_error(json_mode, f"mxgw-py {args.command}", _describe(error))
        return exit_code_for(error)


if __name__ == "__main__":
    raise SystemExit(main())
