"""``mxgw-py sim``: run the simulated gateway until SIGINT/SIGTERM.

When it is ready it prints exactly one JSON line ``{"listening": "HOST:PORT"}`` on stdout (so
scripts and tests can start it on port 0), and when it stops one last line ``{"stopped": STATS}``
(``SimulatedGateway.stats()``: messages and events sent per event rpc, the process's CPU
seconds, so a benchmark can report the server's CPU per message); logs go to stderr. API keys
are read from an environment variable or a file and never printed or logged.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from mxgateway_cli._exit_codes import EXIT_OK, UsageError
from mxgateway_cli._output import emit_json

if TYPE_CHECKING:
    from mxgateway.sim import SimConfig

# mxgateway.sim is imported when the command runs, so other commands start fast.

__all__ = ["add_sim_parser", "cmd_sim"]


def add_sim_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``sim`` command to the ``mxgw-py`` parser."""
    sim = commands.add_parser(
        "sim",
        help="run a simulated MXAccess Gateway (for tests, demos and benchmarks)",
        description=(
            "Serve a simulated MXAccess Gateway and GalaxyRepository. Prints one JSON line "
            '{"listening": "HOST:PORT"} on stdout when ready; stops on SIGINT/SIGTERM, then '
            'prints {"stopped": {...}} (messages and events sent, CPU seconds).'
        ),
    )
    sim.add_argument(
        "--listen",
        default="127.0.0.1:5000",
        metavar="HOST:PORT",
        help="address to listen on (default 127.0.0.1:5000; port 0 picks a free port)",
    )
    sim.add_argument("--plaintext", action="store_true", help="serve without TLS")
    sim.add_argument("--tls-cert", metavar="PEM", help="server certificate chain (PEM file)")
    sim.add_argument("--tls-key", metavar="PEM", help="server private key (PEM file)")
    sim.add_argument(
        "--api-key-env",
        metavar="NAME",
        help="environment variable holding one accepted API key (all scopes)",
    )
    sim.add_argument(
        "--api-key-file",
        metavar="PATH",
        help="file of accepted API keys, one per line: key[ scope,scope...] (none = all scopes)",
    )
    sim.add_argument("--galaxy-size", type=int, default=200, help="objects in the Galaxy")
    sim.add_argument("--seed", type=int, default=1, help="seed of the Galaxy and the values")
    sim.add_argument(
        "--rate", type=float, default=1.0, help="value changes per second per advised item"
    )
    sim.add_argument(
        "--flood",
        action="store_true",
        help="advised items produce events as fast as the client reads (throughput runs)",
    )
    sim.add_argument(
        "--flood-rate",
        type=float,
        default=0.0,
        metavar="EVENTS_PER_S",
        help="with --flood: flood events per second per session, produced when due "
        "(default 0 = as fast as the client reads)",
    )
    sim.add_argument(
        "--no-event-batches",
        dest="event_batches",
        action="store_false",
        help="the genuine gateway: no StreamEventBatches rpc (UNIMPLEMENTED), only StreamEvents",
    )
    sim.add_argument(
        "--min-ping-interval",
        type=float,
        default=None,
        metavar="SECONDS",
        help="gRPC server ping policy: least interval between client pings without data "
        "(default grpc-core's, 300 s; the --flood front door does not enforce it)",
    )
    sim.add_argument(
        "--max-ping-strikes",
        type=int,
        default=None,
        metavar="N",
        help="gRPC server ping policy: bad pings before GOAWAY (default grpc-core's, 2; "
        "0 = unlimited)",
    )
    sim.add_argument(
        "--queue-policy",
        choices=("fail_fast", "disconnect_subscriber"),
        default="fail_fast",
        help="what a subscriber queue overflow does (default fail_fast)",
    )
    sim.add_argument("--log-level", default="INFO", help="stderr log level (default INFO)")
    sim.set_defaults(handler=cmd_sim)


def _split_listen(listen: str) -> tuple[str, int]:
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdigit():
        raise UsageError(f"--listen must be HOST:PORT, not {listen!r}")
    host = host.removeprefix("[").removesuffix("]")
    return host, int(port_text)


def _api_keys(args: argparse.Namespace) -> dict[str, frozenset[str] | None]:
    from mxgateway.sim import parse_api_key_lines

    keys: dict[str, frozenset[str] | None] = {}
    if args.api_key_env:
        value = os.environ.get(args.api_key_env, "").strip()
        if not value:
            raise UsageError(f"environment variable {args.api_key_env} is not set or empty")
        try:
            keys.update(parse_api_key_lines([value]))
        except ValueError as exc:
            raise UsageError(f"{args.api_key_env}: {exc}") from None
    if args.api_key_file:
        try:
            text = Path(args.api_key_file).read_text(encoding="utf-8")
        except OSError as exc:
            raise UsageError(f"cannot read --api-key-file: {exc.strerror}") from None
        try:
            keys.update(parse_api_key_lines(text.splitlines()))
        except ValueError as exc:
            raise UsageError(f"--api-key-file {exc}") from None
        if not keys:
            raise UsageError("--api-key-file holds no key")
    return keys


def _read_pem(path: str, flag: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {flag}: {exc.strerror}") from None


def build_config(args: argparse.Namespace) -> SimConfig:
    """SimConfig from the flags (UsageError on a bad combination or value)."""
    from mxgateway.sim import SimConfig

    host, port = _split_listen(args.listen)
    if args.plaintext and (args.tls_cert or args.tls_key):
        raise UsageError("--plaintext cannot be combined with --tls-cert/--tls-key")
    cert = key = None
    if not args.plaintext:
        if not (args.tls_cert and args.tls_key):
            raise UsageError("TLS is the default: give --tls-cert and --tls-key, or --plaintext")
        cert = _read_pem(args.tls_cert, "--tls-cert")
        key = _read_pem(args.tls_key, "--tls-key")
    try:
        return SimConfig(
            host=host,
            port=port,
            tls_cert_pem=cert,
            tls_key_pem=key,
            api_keys=_api_keys(args),
            galaxy_size=args.galaxy_size,
            seed=args.seed,
            rate=args.rate,
            flood=args.flood,
            queue_policy=args.queue_policy,
            event_batches=args.event_batches,
            flood_rate=args.flood_rate,
            min_ping_interval_s=args.min_ping_interval,
            max_ping_strikes=args.max_ping_strikes,
        )
    except ValueError as exc:
        raise UsageError(_flag_names(str(exc))) from None


# SimConfig's errors name its fields; the command's user knows the flags.
_FLAGS = {
    "flood_rate": "--flood-rate",
    "flood=True": "--flood",
    "min_ping_interval_s": "--min-ping-interval",
    "max_ping_strikes": "--max-ping-strikes",
    "galaxy_size": "--galaxy-size",
    "rate": "--rate",
}


def _flag_names(message: str) -> str:
    for field, flag in _FLAGS.items():
        message = re.sub(rf"(?<![\w-]){re.escape(field)}(?![\w=])", flag, message)
    return message


def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> list[int]:
    """Call ``stop`` on SIGINT and SIGTERM where the loop takes signal handlers; return the
    signals it took.

    Windows' event loops take none (NotImplementedError), nor does a loop outside the main
    thread (RuntimeError, ValueError). There Ctrl+C reaches ``asyncio.Runner``, which cancels
    the main task: ``_serve`` treats that cancellation as the stop request.
    """
    installed: list[int] = []
    for signum in (signal.SIGINT, signal.SIGTERM):
        try:
            loop.add_signal_handler(signum, stop)
        except (NotImplementedError, RuntimeError, ValueError):
            break
        installed.append(signum)
    return installed


async def _serve(config: SimConfig) -> None:
    from mxgateway.sim import SimulatedGateway

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    installed = _stop_on_signals(loop, stop.set)
    gateway = SimulatedGateway(config)
    try:
        async with gateway:
            emit_json({"listening": gateway.endpoint})
            try:
                await stop.wait()
            except asyncio.CancelledError:
                if installed:
                    raise  # a real cancellation: signals arrive through ``stop``
                # Ctrl+C without signal handlers (Windows): asyncio.Runner cancelled us.
                # Stop as on SIGINT; the runner then returns normally (exit 0).
                task = asyncio.current_task()
                if task is not None:
                    task.uncancel()
            logging.getLogger("mxgateway.sim").info("signal received, stopping")
        emit_json({"stopped": gateway.stats()})
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)


def cmd_sim(args: argparse.Namespace) -> int:
    """Run the simulator until SIGINT/SIGTERM (Ctrl+C on Windows); 0 on a clean stop.

    A bad flag raises UsageError (exit 2) and a failure to listen OSError (exit 3); ``main``
    reports them.
    """
    import mxgateway

    config = build_config(args)
    logging.basicConfig(
        level=str(args.log_level).upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        mxgateway.run(_serve(config))
    except RuntimeError as exc:  # e.g. flood mode without the codec's flood encoder
        raise UsageError(str(exc)) from None
    return EXIT_OK
