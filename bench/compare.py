"""Compare a benchmark run with a baseline by each benchmark's ratio to its in-run reference.

``python -m bench.compare BASELINE.json RUN.json [--threshold 25]``

Both files are pytest-benchmark JSON (``--benchmark-json`` or ``make bench-save``). For every
benchmark of a group with a reference (bench/conftest.py), the ratio is the reference's median
time divided by the benchmark's: how many times faster than the reference it ran, measured in
the same run the same way, so load and machine speed largely cancel out. The table shows the
ratio then and now and the change; the exit status is 1 when a ratio fell by more than the
threshold (in percent) both by the medians and by the best rounds, naming each: a real
slowdown moves both, while a burst of load on a shared machine mostly moves the medians of a
few benchmarks and not their best rounds. Benchmarks on one side only, or without a reference, are
listed and never fail. Absolute figures: pytest-benchmark's own ``--benchmark-compare``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.conftest import add_ratios

__all__ = ["Row", "compare", "fmt_ratio", "load_ratios", "main", "render"]


Ratios = dict[str, tuple[float, float] | None]
"""``{fullname: (ratio of the medians, ratio of the best rounds)}``; None without a reference."""


def load_ratios(path: Path) -> tuple[Ratios, dict[str, Any]]:
    """The ratios of a pytest-benchmark JSON file, and its machine info.

    Ratios are recomputed from the timings (so files saved before the ratio hook, or edited
    by hand, are read the same way)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    benchmarks = data.get("benchmarks")
    if not isinstance(benchmarks, list):
        raise ValueError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list)")
    add_ratios(benchmarks)
    ratios: Ratios = {}
    for bench in benchmarks:
        info = bench.get("extra_info", {})
        median = info.get("ratio_to_reference")
        ratios[str(bench["fullname"])] = (
            None if median is None else (median, info["ratio_to_reference_min"])
        )
    return ratios, data.get("machine_info", {})


@dataclass(frozen=True)
class Row:
    """One benchmark of the comparison."""

    name: str
    before: float | None
    after: float | None
    change: float | None  # after / before - 1, by the medians
    change_min: float | None  # the same by the best rounds
    verdict: str  # ok | WORSE | better | only in baseline | only in run | no reference


def compare(baseline: Ratios, run: Ratios, threshold: float) -> list[Row]:
    """A row per benchmark of either side; ``threshold`` a fraction (0.25 = 25 %)."""
    rows = []
    for name in sorted(baseline.keys() | run.keys()):
        before, after = baseline.get(name), run.get(name)
        if name not in run:
            rows.append(Row(name, before and before[0], None, None, None, "only in baseline"))
        elif name not in baseline:
            rows.append(Row(name, None, after and after[0], None, None, "only in run"))
        elif before is None or after is None:
            rows.append(
                Row(name, before and before[0], after and after[0], None, None, "no reference")
            )
        else:
            change = after[0] / before[0] - 1
            change_min = after[1] / before[1] - 1
            if change < -threshold and change_min < -threshold:
                verdict = "WORSE"
            elif change > threshold and change_min > threshold:
                verdict = "better"
            else:
                verdict = "ok"
            rows.append(Row(name, before[0], after[0], change, change_min, verdict))
    return rows


def fmt_ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}x"


def render(rows: list[Row]) -> str:
    """The table, one line per benchmark."""
    width = max([len(row.name) for row in rows] + [9])
    lines = [
        f"{'benchmark':<{width}}  {'baseline':>9}  {'run':>9}  {'change':>7}  {'best':>7}  verdict"
    ]
    for row in rows:
        change = "-" if row.change is None else f"{row.change:+.1%}"
        best = "-" if row.change_min is None else f"{row.change_min:+.1%}"
        lines.append(
            f"{row.name:<{width}}  {fmt_ratio(row.before):>9}  {fmt_ratio(row.after):>9}  "
            f"{change:>7}  {best:>7}  {row.verdict}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """Print the comparison; 1 when a ratio got worse than the threshold, 2 on bad input."""
    parser = argparse.ArgumentParser(
        prog="python -m bench.compare", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("baseline", type=Path)
    parser.add_argument("run", type=Path)
    parser.add_argument(
        "--threshold",
        type=float,
        default=25.0,
        help="percent a ratio may fall before it fails (default 25)",
    )
    args = parser.parse_args(argv)
    if not 0 < args.threshold < 100:
        parser.error("--threshold must be a percentage between 0 and 100")
    try:
        baseline, machine = load_ratios(args.baseline)
        run, _ = load_ratios(args.run)
    except (OSError, ValueError, KeyError, TypeError) as error:
        print(f"bench.compare: {error}", file=sys.stderr)
        return 2
    rows = compare(baseline, run, args.threshold / 100)
    info = machine.get("mxgateway", {})
    print(
        f"baseline {args.baseline} ({info.get('codec', '?')} codec, "
        f"python {machine.get('python_version', '?')}, grpcio {info.get('grpcio', '?')})"
    )
    print(render(rows))
    worse = [row for row in rows if row.verdict == "WORSE"]
    if worse:
        for row in worse:
            print(
                f"REGRESSION: {row.name}: ratio to its reference {fmt_ratio(row.before)} -> "
                f"{fmt_ratio(row.after)} ({row.change:+.1%} by the medians, "
                f"{row.change_min:+.1%} by the best rounds; threshold -{args.threshold:g}%)",
                file=sys.stderr,
            )
        return 1
    print(f"no ratio fell by more than {args.threshold:g}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
