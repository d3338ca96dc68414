"""Compare a benchmark run with a baseline by each benchmark's ratio to its in-run reference.

``python -m bench.compare BASELINE.json RUN.json [--threshold 25]``

Both files are pytest-benchmark JSON (``--benchmark-json`` or ``make bench-save``). For every
benchmark of a group with a reference (bench/conftest.py), the ratio is the reference's median
time divided by the benchmark's: how many times faster than the reference it ran, measured in
the same run the same way, so load and machine speed largely cancel out. The table shows the
ratio then and now and the change; the exit status is 1 when any ratio fell by more than the
threshold (in percent), naming each. Benchmarks on one side only, or without a reference, are
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

__all__ = ["Row", "compare", "load_ratios", "main"]


def load_ratios(path: Path) -> tuple[dict[str, float | None], dict[str, Any]]:
    """``{fullname: ratio or None}`` of a pytest-benchmark JSON file, and its machine info.

    Ratios are recomputed from the medians (so files saved before the ratio hook, or edited
    by hand, are read the same way)."""
    data = json.loads(path.read_text(encoding="utf-8"))
    benchmarks = data.get("benchmarks")
    if not isinstance(benchmarks, list):
        raise ValueError(f"{path}: not a pytest-benchmark JSON file (no 'benchmarks' list)")
    for bench in benchmarks:
        bench.get("extra_info", {}).pop("ratio_to_reference", None)
    add_ratios(benchmarks)
    ratios = {
        str(bench["fullname"]): bench.get("extra_info", {}).get("ratio_to_reference")
        for bench in benchmarks
    }
    return ratios, data.get("machine_info", {})


@dataclass(frozen=True)
class Row:
    """One benchmark of the comparison."""

    name: str
    before: float | None
    after: float | None
    change: float | None  # after / before - 1
    verdict: str  # ok | WORSE | better | only in baseline | only in run | no reference


def compare(
    baseline: dict[str, float | None], run: dict[str, float | None], threshold: float
) -> list[Row]:
    """A row per benchmark of either side; ``threshold`` a fraction (0.25 = 25 %)."""
    rows = []
    for name in sorted(baseline.keys() | run.keys()):
        before, after = baseline.get(name), run.get(name)
        if name not in run:
            rows.append(Row(name, before, None, None, "only in baseline"))
        elif name not in baseline:
            rows.append(Row(name, None, after, None, "only in run"))
        elif before is None or after is None:
            rows.append(Row(name, before, after, None, "no reference"))
        else:
            change = after / before - 1
            verdict = "WORSE" if change < -threshold else "better" if change > threshold else "ok"
            rows.append(Row(name, before, after, change, verdict))
    return rows


def _ratio(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}x"


def render(rows: list[Row]) -> str:
    """The table, one line per benchmark."""
    width = max([len(row.name) for row in rows] + [9])
    lines = [f"{'benchmark':<{width}}  {'baseline':>9}  {'run':>9}  {'change':>7}  verdict"]
    for row in rows:
        change = "-" if row.change is None else f"{row.change:+.1%}"
        lines.append(
            f"{row.name:<{width}}  {_ratio(row.before):>9}  {_ratio(row.after):>9}  "
            f"{change:>7}  {row.verdict}"
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
                f"REGRESSION: {row.name}: ratio to its reference {_ratio(row.before)} -> "
                f"{_ratio(row.after)} ({row.change:+.1%}, threshold -{args.threshold:g}%)",
                file=sys.stderr,
            )
        return 1
    print(f"no ratio fell by more than {args.threshold:g}%")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
