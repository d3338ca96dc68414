"""Entry point of ``mxgw-py``: argument parsing and dispatch to one function per command.

Exit codes: 0 ok; 1 the gateway/MXAccess reported a failure; 2 usage; 3 transport or timeout;
4 authentication or authorization.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from importlib import metadata

import mxgateway
from mxgateway_cli._output import emit_json
from mxgateway_cli._sim import add_sim_parser

EXIT_OK = 0
EXIT_USAGE = 2

EPILOG = """exit codes:
  0  ok
  1  the gateway or MXAccess reported a failure
  2  usage error (bad flags or values)
  3  transport failure or timeout
  4  authentication or authorization failure
"""


def _dist_version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def cmd_version(args: argparse.Namespace) -> int:
    """Print the package version, codec, event loop and key dependency versions."""
    info = {
        "codec": mxgateway.codec_implementation(),
        "eventLoop": mxgateway.preferred_event_loop(),
        "grpcio": _dist_version("grpcio"),
        "msgspec": _dist_version("msgspec"),
        "protobuf": _dist_version("protobuf"),
        "python": ".".join(str(part) for part in sys.version_info[:3]),
        "version": mxgateway.__version__,
    }
    if args.json:
        emit_json(info)
    else:
        print(
            f"mxgw-py {info['version']} (codec {info['codec']}, loop {info['eventLoop']}, "
            f"grpcio {info['grpcio']}, protobuf {info['protobuf']}, msgspec {info['msgspec']})"
        )
    return EXIT_OK


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every command."""
    parser = argparse.ArgumentParser(
        prog="mxgw-py",
        description="Command line for the MXAccess Gateway (mxgateway).",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True

    version = commands.add_parser("version", help="show versions of mxgateway and its stack")
    version.add_argument("--json", action="store_true", help="print deterministic JSON")
    version.set_defaults(handler=cmd_version)

    add_sim_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``mxgw-py`` with ``argv`` (default: the process arguments); return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)  # exits with code 2 on a usage error
    handler = args.handler
    return int(handler(args))


if __name__ == "__main__":
    raise SystemExit(main())
