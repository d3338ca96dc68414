"""The benchmark guard: the ratio benchmarks, timed in CPU time, compared with a baseline.

``python -m bench.guard``          run them and compare with bench/baselines/KIND.json
``python -m bench.guard --save``   run them three times and write that baseline from each
                                   benchmark's least disturbed run (``make bench-save``)

KIND is this machine's system and architecture (``linux-x86_64``). The benchmarks are the
CPU-bound groups with an in-run reference (``GUARDED``): codec decode and encode, value
conversion, command encoding, statistics. They are timed with ``time.process_time`` because
CPU time moves far less with load than wall time, and compared by their ratio to their group's
reference (``bench.compare``), which cancels most of what remains. A ratio that fell by more
than ``--threshold`` percent (default 25) is timed again, with its reference, ``--confirm``
times (default 2); exit 1 names each that fell in every one of those runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import compare
from bench.conftest import REFERENCES, add_ratios

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
    # Rounds of at least 0.5 ms: the process CPU clock of a virtual machine ticks coarsely,
    # and a round of one 10 us call could read half its time (a best round that never was).
    "--benchmark-min-time=0.0005",
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


Runner = Callable[[Path, Sequence[str]], int]
"""Runs the guarded benchmarks (all, or only the given node ids) into a JSON file; exit status."""


def run(json_path: Path, only: Sequence[str] = ()) -> int:
    """Run the guarded benchmarks, or only the node ids in ``only``; pytest's exit status."""
    command = [sys.executable, "-m", "pytest", *(only or GUARDED), *PYTEST_ARGS]
    return subprocess.call([*command, f"--benchmark-json={json_path}"], cwd=HERE.parent)


def _with_references(names: Sequence[str], run_json: Path) -> list[str]:
    """``names`` and their groups' references, as pytest node ids (their fullnames)."""
    benchmarks = json.loads(run_json.read_text(encoding="utf-8"))["benchmarks"]
    group_of = {b["fullname"]: b["group"] for b in benchmarks}
    by_name = {(b["group"], b["name"]): b["fullname"] for b in benchmarks}
    ids = list(names)
    for name in names:
        group = group_of[name]
        reference = by_name.get((group, REFERENCES.get(group, "")))
        if reference and reference not in ids:
            ids.append(reference)
    return ids


def save(target: Path, runs: int, runner: Runner = run) -> int:
    """Write a baseline from the least disturbed of ``runs`` runs of each benchmark.

    A baseline is what every later run is held to, so one taken during a neighbour's burst
    would make ordinary runs look like regressions: each benchmark keeps the run in which its
    median was lowest (with its ratios recomputed from the kept timings)."""
    kept: dict[str, Any] | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for index in range(runs):
            path = Path(tmp) / f"save-{index + 1}.json"
            status = runner(path, ())
            if status != 0:
                return status
            data = json.loads(path.read_text(encoding="utf-8"))
            if kept is None:
                kept = data
                continue
            best = {b["fullname"]: b for b in data["benchmarks"]}
            kept["benchmarks"] = [
                best[b["fullname"]]
                if b["fullname"] in best
                and best[b["fullname"]]["stats"]["median"] < b["stats"]["median"]
                else b
                for b in kept["benchmarks"]
            ]
    assert kept is not None
    add_ratios(kept["benchmarks"])
    kept["mxgateway_baseline"] = {"runs": runs, "kept": "each benchmark's lowest median"}
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(kept, indent=4) + "\n", encoding="utf-8")
    return 0


def guard(baseline: Path, threshold: float, confirm: int, runner: Runner = run) -> int:
    """Run, compare with ``baseline``; time whatever fell again, up to ``confirm`` more times.

    A ratio counts as a regression only when it fell beyond ``threshold`` (a fraction) in the
    first run and in every confirmation run: on a shared machine a neighbour's burst can slow
    one benchmark's every round for a moment, but not the same benchmark run after run, while
    a real slowdown is there each time. Returns 0, 1 (regression) or pytest's failing status.
    """
    base, _ = compare.load_ratios(baseline)
    with tempfile.TemporaryDirectory() as tmp:
        first = Path(tmp) / "run-1.json"
        status = runner(first, ())
        if status != 0:
            return status
        rows = compare.compare(base, compare.load_ratios(first)[0], threshold)
        print(compare.render(rows))
        history = {row.name: [row] for row in rows if row.verdict == "WORSE"}
        suspects = list(history)
        for attempt in range(1, confirm + 1):
            if not suspects:
                break
            print(
                f"bench.guard: {len(suspects)} ratio(s) fell beyond -{threshold:.0%}; timing them "
                f"again with their references (confirmation {attempt} of {confirm})",
                flush=True,
            )
            again = Path(tmp) / f"run-{attempt + 1}.json"
            status = runner(again, _with_references(suspects, first))
            if status != 0:
                return status
            rows = compare.compare(base, compare.load_ratios(again)[0], threshold)
            by_name = {row.name: row for row in rows}
            # A suspect always runs again (its node id was selected), so it has a row here.
            print(compare.render([by_name[name] for name in suspects]))
            for name in suspects:
                history[name].append(by_name[name])
            suspects = [name for name in suspects if by_name[name].verdict == "WORSE"]
    for name in suspects:
        changes = ", ".join(f"{row.change:+.1%}" for row in history[name] if row.change is not None)
        first_row, last_row = history[name][0], history[name][-1]
        print(
            f"REGRESSION: {name}: ratio to its reference {compare.fmt_ratio(first_row.before)} -> "
            f"{compare.fmt_ratio(last_row.after)}; fell beyond -{threshold:.0%} in each of "
            f"{len(history[name])} runs ({changes} by the medians)",
            file=sys.stderr,
        )
    if suspects:
        return 1
    passed = [name for name, rows_ in history.items() if len(rows_) > 1]
    if passed:
        print(f"bench.guard: not confirmed (a burst of load, not the code): {', '.join(passed)}")
    print(f"bench.guard: no ratio fell by more than {threshold:.0%}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.guard", description=__doc__)
    parser.add_argument("--save", action="store_true", help="write the baseline instead")
    parser.add_argument("--baseline", type=Path, default=None, help="compare with this file")
    parser.add_argument("--threshold", type=float, default=25.0, help="percent (default 25)")
    parser.add_argument(
        "--confirm",
        type=int,
        default=2,
        help="times a fallen ratio is timed again before it counts (default 2)",
    )
    parser.add_argument(
        "--runs",
        type=int,
        default=3,
        help="with --save: runs to keep each benchmark's least disturbed from (default 3)",
    )
    args = parser.parse_args(argv)
    if args.runs < 1:
        parser.error("--runs must be 1 or more")
    if not 0 < args.threshold < 100:
        parser.error("--threshold must be a percentage between 0 and 100")
    if args.confirm < 0:
        parser.error("--confirm must be 0 or more")
    target = args.baseline or baseline_path()
    if args.save:
        status = save(target, args.runs)
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
    return guard(target, args.threshold / 100, args.confirm)


if __name__ == "__main__":
    raise SystemExit(main())
