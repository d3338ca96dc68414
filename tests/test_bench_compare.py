"""``python -m bench.compare``: ratios to the in-run reference, then and now."""

from __future__ import annotations

import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from bench import compare, guard

STATS = ("min", "max", "mean", "median", "q1", "q3")


def _bench(group: str, name: str, median: float) -> dict[str, Any]:
    return {
        "group": group,
        "name": name,
        "fullname": f"bench/test_bench_codec.py::{name}",
        "stats": {key: median for key in STATS},
        "extra_info": {},
    }


def _run() -> dict[str, Any]:
    return {
        "machine_info": {"python_version": "3.11.7", "mxgateway": {"codec": "cython"}},
        "benchmarks": [
            _bench("decode-batch", "test_decode_batch[protobuf]", 8e-3),
            _bench("decode-batch", "test_decode_batch[cython]", 3.5e-4),
            _bench("decode-batch", "test_decode_batch[python]", 1.05e-2),
            _bench("no-reference-group", "test_other[x]", 1e-3),
        ],
    }


def _write(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def _doubled(data: dict[str, Any], name: str) -> dict[str, Any]:
    out = copy.deepcopy(data)
    for bench in out["benchmarks"]:
        if bench["name"] == name:
            bench["stats"] = {key: 2 * value for key, value in bench["stats"].items()}
    return out


def test_a_baseline_against_itself_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _write(tmp_path / "base.json", _run())
    assert compare.main([str(base), str(base)]) == 0
    out = capsys.readouterr().out
    assert "22.857x" in out  # 8e-3 / 3.5e-4
    assert "test_other[x]" in out and "no reference" in out


def test_doubled_timings_fail_naming_the_benchmark(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _write(tmp_path / "base.json", _run())
    slow = _write(tmp_path / "slow.json", _doubled(_run(), "test_decode_batch[cython]"))
    assert compare.main([str(base), str(slow)]) == 1
    err = capsys.readouterr().err
    assert "REGRESSION: bench/test_bench_codec.py::test_decode_batch[cython]" in err
    assert "-50.0%" in err
    assert "python]" not in err  # only the slowed one is named


def test_threshold_and_sides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base_data = _run()
    run_data = _doubled(_run(), "test_decode_batch[python]")
    run_data["benchmarks"].append(_bench("decode-batch", "test_decode_batch[new]", 1e-3))
    del run_data["benchmarks"][3]  # the no-reference benchmark: only in the baseline
    base = _write(tmp_path / "base.json", base_data)
    run = _write(tmp_path / "run.json", run_data)
    assert compare.main([str(base), str(run), "--threshold", "60"]) == 0  # -50 % is within 60
    out = capsys.readouterr().out
    assert "only in run" in out and "only in baseline" in out
    assert compare.main([str(base), str(run), "--threshold", "40"]) == 1


def test_a_slower_reference_is_not_a_regression(tmp_path: Path) -> None:
    base = _write(tmp_path / "base.json", _run())
    run = _write(tmp_path / "run.json", _doubled(_run(), "test_decode_batch[protobuf]"))
    assert compare.main([str(base), str(run)]) == 0


def test_bad_input_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    base = _write(tmp_path / "base.json", _run())
    bad = _write(tmp_path / "bad.json", {"not": "benchmarks"})
    assert compare.main([str(base), str(bad)]) == 2
    assert "not a pytest-benchmark JSON file" in capsys.readouterr().err
    assert compare.main([str(base), str(tmp_path / "missing.json")]) == 2
    with pytest.raises(SystemExit):
        compare.main([str(base), str(base), "--threshold", "0"])


def test_a_slower_median_with_the_same_best_round_is_not_a_regression(tmp_path: Path) -> None:
    # A burst of load on a shared machine slows some rounds, not the best one.
    noisy = _run()
    for bench in noisy["benchmarks"]:
        if bench["name"] == "test_decode_batch[cython]":
            bench["stats"]["median"] *= 2
    base = _write(tmp_path / "base.json", _run())
    run = _write(tmp_path / "run.json", noisy)
    assert compare.main([str(base), str(run)]) == 0


# -- the guard: a fallen ratio counts only when it falls again in each confirmation run --------


class _Runs:
    """Stands in for ``bench.guard.run``: writes the next prepared run, keeping the node ids
    it was asked for (a confirmation run times only the suspects and their references)."""

    def __init__(self, *runs: dict[str, Any]) -> None:
        self.runs = list(runs)
        self.asked: list[list[str]] = []

    def __call__(self, path: Path, only: Sequence[str]) -> int:
        self.asked.append(list(only))
        data = copy.deepcopy(self.runs.pop(0))
        if only:
            data["benchmarks"] = [b for b in data["benchmarks"] if b["fullname"] in only]
        _write(path, data)
        return 0


def test_the_guard_passes_a_burst_that_a_confirmation_run_does_not_see(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _write(tmp_path / "base.json", _run())
    runner = _Runs(_doubled(_run(), "test_decode_batch[cython]"), _run())
    assert guard.guard(base, 0.25, confirm=2, runner=runner) == 0
    cython = "bench/test_bench_codec.py::test_decode_batch[cython]"
    reference = "bench/test_bench_codec.py::test_decode_batch[protobuf]"
    assert runner.asked == [[], [cython, reference]]  # stopped once it was not confirmed
    out = capsys.readouterr().out
    assert "not confirmed" in out and cython in out


def test_the_guard_fails_a_slowdown_seen_in_every_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = _write(tmp_path / "base.json", _run())
    slow = _doubled(_run(), "test_decode_batch[cython]")
    runner = _Runs(slow, slow, slow)
    assert guard.guard(base, 0.25, confirm=2, runner=runner) == 1
    assert len(runner.asked) == 3
    err = capsys.readouterr().err
    assert "REGRESSION: bench/test_bench_codec.py::test_decode_batch[cython]" in err
    assert "in each of 3 runs (-50.0%, -50.0%, -50.0% by the medians)" in err
    assert "python]" not in err


def test_the_guard_with_no_confirmation_fails_on_the_first_run(tmp_path: Path) -> None:
    base = _write(tmp_path / "base.json", _run())
    runner = _Runs(_doubled(_run(), "test_decode_batch[cython]"))
    assert guard.guard(base, 0.25, confirm=0, runner=runner) == 1
    assert runner.asked == [[]]


def test_the_guard_hands_on_a_failing_benchmark_run(tmp_path: Path) -> None:
    base = _write(tmp_path / "base.json", _run())
    assert guard.guard(base, 0.25, confirm=2, runner=lambda path, only: 3) == 3


def test_a_baseline_keeps_each_benchmarks_least_disturbed_run(tmp_path: Path) -> None:
    burst_on_cython = _doubled(_run(), "test_decode_batch[cython]")
    burst_on_reference = _doubled(_run(), "test_decode_batch[protobuf]")
    runner = _Runs(burst_on_cython, burst_on_reference, _doubled(burst_on_cython, "test_other[x]"))
    target = tmp_path / "baselines" / "kind.json"
    assert guard.save(target, runs=3, runner=runner) == 0
    assert runner.asked == [[], [], []]
    saved = json.loads(target.read_text(encoding="utf-8"))
    medians = {b["name"]: b["stats"]["median"] for b in saved["benchmarks"]}
    assert medians == {
        "test_decode_batch[protobuf]": 8e-3,
        "test_decode_batch[cython]": 3.5e-4,
        "test_decode_batch[python]": 1.05e-2,
        "test_other[x]": 1e-3,
    }
    ratios, _ = compare.load_ratios(target)
    assert ratios["bench/test_bench_codec.py::test_decode_batch[cython]"] == (22.8571, 22.8571)
    cython = next(b for b in saved["benchmarks"] if b["name"] == "test_decode_batch[cython]")
    assert cython["extra_info"]["ratio_to_reference"] == 22.8571  # from the kept timings
