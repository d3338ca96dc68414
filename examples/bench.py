"""Run the event-stream benchmark (``mxgw-py bench-stream-events``) and judge its report.

    python examples/bench.py --flood-simulator --duration 5          # the built-in flood sim
    python examples/bench.py --endpoint gw:5000 --api-key-env KEY    # a real gateway

The benchmark advises items, streams their events for ``--duration`` seconds and reports
events/s, MB/s, latency percentiles, the decoder and event loop used, and the sequences it
found dropped or duplicated. This script runs it as a command (its ``--json`` report is the
stable interface), prints a summary, and exits 1 if a single event was lost or doubled: the
check to put in a deployment pipeline. ``--flood-simulator`` leaves out ``--endpoint`` so the
benchmark starts its own flood simulator in a child process (the number to compare machines).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from typing import Any


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="127.0.0.1:5000", help="gateway HOST:PORT")
    parser.add_argument("--plaintext", action="store_true", help="no TLS (the simulator)")
    parser.add_argument("--api-key-env", metavar="NAME", help="env variable holding the API key")
    parser.add_argument(
        "--flood-simulator", action="store_true", help="measure the built-in flood simulator"
    )
    parser.add_argument("--duration", type=float, default=5.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds before measuring")
    parser.add_argument("--path", choices=("batches", "single"), default="batches")
    parser.add_argument("--setup-timeout", type=float, default=10.0, help="deadline to connect")
    parser.add_argument("--timeout", type=float, default=120.0, help="give up after N seconds")
    return parser.parse_args(argv)


def command(args: argparse.Namespace) -> list[str]:
    """The mxgw-py command line (this interpreter, so the same installation)."""
    cmd = [sys.executable, "-m", "mxgateway_cli", "bench-stream-events", "--json"]
    cmd += ["--duration", str(args.duration), "--warmup", str(args.warmup), "--path", args.path]
    if not args.flood_simulator:
        cmd += ["--endpoint", args.endpoint, "--timeout", str(args.setup_timeout)]
        if args.plaintext:
            cmd.append("--plaintext")
        if args.api_key_env:
            cmd += ["--api-key-env", args.api_key_env]  # the key itself never goes on a command
    return cmd


def summary(report: dict[str, Any]) -> str:
    latency = report.get("latencyMs") or {}
    return (
        f"{report['events']} events in {report['durationSeconds']} s: "
        f"{report['eventsPerSecond']:,.0f} events/s, {report['mbPerSecond']} MB/s, "
        f"latency p50 {latency.get('p50')} ms p99 {latency.get('p99')} ms "
        f"({report['path']} path, {report['decoder']} decoder, {report['loop']}); "
        f"dropped {report['droppedSequences']}, duplicated {report['duplicateSequences']}"
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        done = subprocess.run(
            command(args), capture_output=True, text=True, timeout=args.timeout, check=False
        )
    except subprocess.TimeoutExpired:
        print(f"the benchmark did not finish within {args.timeout:g} s", file=sys.stderr)
        return 3
    if done.returncode != 0:
        print(f"mxgw-py bench-stream-events failed ({done.returncode}):", file=sys.stderr)
        print(done.stdout.strip() or done.stderr.strip(), file=sys.stderr)
        return done.returncode
    report = json.loads(done.stdout)
    print(summary(report))
    if report["droppedSequences"] or report["duplicateSequences"]:
        print("integrity check FAILED: events were lost or doubled", file=sys.stderr)
        return 1
    print("integrity check passed: every sequence exactly once")
    return 0


if __name__ == "__main__":
    sys.exit(main())
