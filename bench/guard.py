"""The benchmark guard: the ratio benchmarks, timed in CPU time, compared with a baseline.

``python -m bench.guard``          run them and compare with bench/baselines/KIND.json
``python -m bench.guard --save``   run them and write that baseline (``make bench-save``)

KIND is this machine's system and architecture (``linux-x86_64``). The benchmarks are the
CPU-bound groups with an in-run reference (``GUARDED``): codec decode and encode, value
conversion, command encoding, statistics. They are timed with ``time.process_time`` because
CPU time moves far less with load than wall time, and compared by their ratio to their group's
reference (``bench.compare``), which cancels most of what remains. Exit 1 names any ratio that
fell by more than ``--threshold`` percent (default 25).
"""

from __future__ import annotations

import argparse
import platform
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import compare

HERE = Path(__file__).parent
GUARDED = (
    "bench/test_bench_codec.py",
    "bench/test_bench_values.py",
    "bench/test_bench_varint.py",
    "bench/test_bench_stats.py",
)
PYTEST_ARGS = (
    "--benchmark-only",
    "--benchmark-timer=time.process_time",
    "--benchmark-min-rounds=15",
    "--benchmark-max-time=0.5",
    "--benchmark-warmup=on",
    "--benchmark-columns=min,median,rounds",
    "--benchmark-sort=fullname",
    "-p",
    "no:randomly",
    "-q",
)


def machine_kind() -> str:
    """``linux-x86_64``, ``windows-amd64``, ...: which committed baseline applies here."""
    return f"{platform.system().lower()}-{platform.machine().lower()}"


def baseline_path() -> Path:
    return HERE / "baselines" / f"{machine_kind()}.json"


def run(json_path: Path) -> int:
    """Run the guarded benchmarks; pytest's exit status."""
    command = [sys.executable, "-m", "pytest", *GUARDED, *PYTEST_ARGS]
    return subprocess.call([*command, f"--benchmark-json={json_path}"], cwd=HERE.parent)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.guard", description=__doc__)
    parser.add_argument("--save", action="store_true", help="write the baseline instead")
    parser.add_argument("--baseline", type=Path, default=None, help="compare with this file")
    parser.add_argument("--threshold", type=float, default=25.0, help="percent (default 25)")
    args = parser.parse_args(argv)
    target = args.baseline or baseline_path()
    if args.save:
        target.parent.mkdir(parents=True, exist_ok=True)
        status = run(target)
        if status == 0:
            print(f"baseline written: {target.relative_to(HERE.parent)}")
        return status
    if not target.exists():
        print(
            f"bench.guard: no baseline for {machine_kind()} ({target}); "
            "write one with `make bench-save` and commit it",
            file=sys.stderr,
        )
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        result = Path(tmp) / "run.json"
        status = run(result)
        if status != 0:
            return status
        return compare.main([str(target), str(result), f"--threshold={args.threshold}"])


if __name__ == "__main__":
    raise SystemExit(main())
