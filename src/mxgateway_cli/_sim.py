"""``mxgw-py sim``: run the simulated gateway until SIGINT/SIGTERM.

When it is ready it prints exactly one JSON line ``{"listening": "HOST:PORT"}`` on stdout (so
scripts and tests can start it on port 0; with ``--metrics-port`` the same line also has
``"metrics": "http://127.0.0.1:PORT/metrics"``), and when it stops one last line
``{"stopped": STATS}`` (``SimulatedGateway.stats()``: messages and events sent per event rpc,
requests refused by reason, the process's CPU seconds, so a benchmark can report the server's
CPU per message); logs go to stderr. API keys are read from an environment variable or a file
(UTF-8, with or without a byte order mark, as PowerShell 5.1 writes it) and never printed or
logged.

It stops on SIGINT (Ctrl+C) and SIGTERM. Where the event loop cannot take signal handlers
(``add_signal_handler`` raises NotImplementedError: Windows' event loops), it sets them with
``signal.signal`` and hands the stop to the loop with ``call_soon_threadsafe``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import re
import signal
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

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
        help="environment variable holding one accepted API key (all scopes); keys have the "
        "gateway's form mxgw_<keyId>_<secret> (key id: letters, digits, '-'; secret: letters, "
        "digits, '_', '-')",
    )
    sim.add_argument(
        "--api-key-file",
        metavar="PATH",
        help="file of accepted API keys, one per line: key[ scope,scope...] (none = all "
        "scopes; '#' starts a comment); same key form. Without either, any caller is "
        "accepted. Health and reflection answer without a key either way",
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
        "--max-sessions-per-key",
        type=int,
        default=16,
        metavar="N",
        help="sessions one API key may hold at once (default 16; without API keys only the "
        "gateway's limit of 64 applies, to every client together)",
    )
    sim.add_argument(
        "--max-lease-seconds",
        type=int,
        default=3600,
        metavar="SECONDS",
        help="longest session lease granted (default 3600); a longer one asked for is granted "
        "this, and OpenSession says so",
    )
    sim.add_argument(
        "--metrics-port",
        type=int,
        default=None,
        metavar="PORT",
        help="serve Prometheus metrics on http://127.0.0.1:PORT/metrics (0 picks a free port; "
        "needs the mxgateway[prometheus] extra)",
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


def _without_bom(text: str) -> str:
    # A byte order mark is not part of a key: PowerShell 5.1 writes one by default, and a
    # value copied from such a file into an environment variable can carry it too.
    return text.replace("\ufeff", "").strip()


def _api_keys(args: argparse.Namespace) -> dict[str, frozenset[str] | None]:
    from mxgateway.sim import parse_api_key_lines

    keys: dict[str, frozenset[str] | None] = {}
    if args.api_key_env:
        value = _without_bom(os.environ.get(args.api_key_env, ""))
        if not value:
            raise UsageError(f"environment variable {args.api_key_env} is not set or empty")
        try:
            keys.update(parse_api_key_lines([value]))
        except ValueError:
            raise UsageError(
                f"environment variable {args.api_key_env} does not hold an API key of the "
                "form mxgw_<keyId>_<secret>"
            ) from None
    if args.api_key_file:
        try:
            text = _without_bom(Path(args.api_key_file).read_bytes().decode("utf-8-sig"))
        except OSError as exc:
            raise UsageError(f"cannot read --api-key-file: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise UsageError("--api-key-file is not UTF-8 text") from None
        try:
            keys.update(parse_api_key_lines(text.splitlines()))
        except ValueError as exc:
            raise UsageError(f"--api-key-file {args.api_key_file}: {exc}") from None
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
    from mxgateway.sim._metrics import METRICS_EXTRA, metrics_available

    host, port = _split_listen(args.listen)
    if args.metrics_port is not None and not metrics_available():
        raise UsageError(f"--metrics-port needs prometheus_client: pip install '{METRICS_EXTRA}'")
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
            max_sessions_per_key=args.max_sessions_per_key,
            max_lease_seconds=args.max_lease_seconds,
            metrics_port=args.metrics_port,
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
    "max_sessions_per_key": "--max-sessions-per-key",
    "max_lease_seconds": "--max-lease-seconds",
    "metrics_port": "--metrics-port",
}


def _flag_names(message: str) -> str:
    for field, flag in _FLAGS.items():
        message = re.sub(rf"(?<![\w-]){re.escape(field)}(?![\w=])", flag, message)
    return message


_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def _stop_on_signals(loop: asyncio.AbstractEventLoop, stop: Callable[[], None]) -> Iterator[None]:
    """Call ``stop`` on the loop at SIGINT or SIGTERM, for as long as the block runs.

    The loop's own signal handlers where it has them; else (Windows' event loops raise
    NotImplementedError) ``signal.signal``, whose handler runs in the main thread between
    bytecodes and hands the stop to the loop thread-safely.
    """
    via_loop: list[signal.Signals] = []
    previous: dict[signal.Signals, Any] = {}

    def handler(signum: int, frame: FrameType | None) -> None:
        loop.call_soon_threadsafe(stop)

    try:
        for signum in _STOP_SIGNALS:
            try:
                loop.add_signal_handler(signum, stop)
            except (NotImplementedError, RuntimeError):
                # Windows' loops (NotImplementedError), or a loop that cannot take them.
                with contextlib.suppress(ValueError):  # not the main thread: Ctrl+C cancels
                    previous[signum] = signal.signal(signum, handler)
            else:
                via_loop.append(signum)
        yield
    finally:
        for signum in via_loop:
            loop.remove_signal_handler(signum)
        for signum, old in previous.items():
            signal.signal(signum, old)


async def _serve(config: SimConfig) -> None:
    from mxgateway.sim import SimulatedGateway

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    gateway = SimulatedGateway(config)
    with _stop_on_signals(loop, stop.set):
        async with gateway:
            listening: dict[str, str] = {"listening": gateway.endpoint}
            if gateway.metrics_endpoint is not None:
                listening["metrics"] = gateway.metrics_endpoint
            emit_json(listening)
            await stop.wait()
            logging.getLogger("mxgateway.sim").info("signal received, stopping")
        emit_json({"stopped": gateway.stats()})


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
