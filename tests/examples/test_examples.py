"""Every script in examples/ runs against ``mxgw-py sim`` as a user would run it: a subprocess
with ``--endpoint`` and ``--plaintext``, bounded by its ``--duration``/``--max-*`` flags. The
blocking examples also run inside a running event loop (as in a Jupyter cell), and the CSV
recorders are run across a restart of an in-process simulator."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from examples import record_csv, record_csv_sync
from mxgateway.sim import SimConfig, SimulatedGateway

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
RUN_TIMEOUT_S = 60.0


def run_example(
    endpoint: str, script: str, *args: str, in_running_loop: bool = False
) -> subprocess.CompletedProcess[str]:
    """Run ``examples/<script>`` against ``endpoint`` (inside a running event loop if asked)."""
    argv = [str(EXAMPLES / script), "--endpoint", endpoint, "--plaintext", *args]
    if in_running_loop:
        command = [sys.executable, "-c", _IN_RUNNING_LOOP, *argv]
    else:
        command = [sys.executable, *argv]
    env = {**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"}
    return subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, env=env, check=False
    )


# What a notebook kernel does: the cell's code runs while the kernel's event loop is running.
_IN_RUNNING_LOOP = """
import asyncio, runpy, sys

async def cell():
    asyncio.get_running_loop()
    sys.argv = sys.argv[1:]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    except SystemExit as done:
        return done.code
    return 0

sys.exit(asyncio.run(cell()))
"""


def _ok(done: subprocess.CompletedProcess[str]) -> str:
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


# -- each example, as a subprocess ---------------------------------------------------------------


@pytest.mark.parametrize("script", ["watch_tags.py", "watch_tags_sync.py"])
def test_watch_tags(endpoint: str, script: str) -> None:
    out = _ok(
        run_example(
            endpoint,
            script,
            *("--tag", "Tank_001.Level", "--tag", "No.Such.Tag"),
            *("--duration", "10", "--max-changes", "3"),
        )
    )
    assert "Tank_001.Level = " in out and "(good)" in out
    assert "No.Such.Tag: error: unknown item reference" in out
    assert out.rstrip().endswith("3 change(s)")


@pytest.mark.parametrize("script", ["browse_galaxy.py", "browse_galaxy_sync.py"])
def test_browse_galaxy(endpoint: str, script: str) -> None:
    out = _ok(
        run_example(endpoint, script, "--max-objects", "6", "--historized", "--max-tags", "3")
    )
    lines = out.splitlines()
    assert lines[0].startswith("Area_001 [area]")
    assert any(line.startswith("  ") for line in lines[:6])  # children are indented
    picked = next(line for line in lines if line.startswith("picked "))
    assert picked.startswith("picked 3 tag(s): ")
    tags = picked.split(": ", 1)[1].split(", ")
    for tag in tags:
        assert any(line.startswith(f"{tag} = ") for line in lines), tag


@pytest.mark.parametrize("script", ["write_confirm.py", "write_confirm_sync.py"])
def test_write_confirm(endpoint: str, script: str) -> None:
    out = _ok(run_example(endpoint, script, "--tag", "Pump_001.SpeedSP", "--value", "42.5"))
    assert "wrote 42.5 to Pump_001.SpeedSP: confirmed by MXAccess (ok=True)" in out
    assert "Pump_001.SpeedSP is 42.5" in out
    refused = run_example(endpoint, script, "--value", '"text"')
    assert (
        refused.returncode == 1
        and "refused: " in refused.stderr
        and "type mismatch" in (refused.stderr)
    )
    not_sent = run_example(endpoint, script, "--value", "NaN")
    assert not_sent.returncode == 2 and "not sent: " in not_sent.stderr


@pytest.mark.parametrize("script", ["record_csv.py", "record_csv_sync.py"])
@pytest.mark.parametrize("mode", [[], ["--handles"]], ids=["tags", "handles"])
def test_record_csv(endpoint: str, script: str, mode: list[str], tmp_path: Path) -> None:
    output = tmp_path / "recording.csv"
    args = ["--output", str(output), "--duration", "20", "--max-rows", "4", *mode]
    done = run_example(endpoint, script, *args, "--tag", "Tank_001.Level", "--tag", "FT_003.Flow")
    _ok(done)
    rows = list(csv.DictReader(output.open(encoding="utf-8")))
    assert len(rows) == 4
    assert {row["tag"] for row in rows} <= {"Tank_001.Level", "FT_003.Flow"}
    assert all(row["time"] and row["quality"] == "192" for row in rows)
    assert "4 row(s) and 0 notice(s)" in done.stderr


@pytest.mark.parametrize("script", ["alarms.py", "alarms_sync.py"])
def test_alarms(endpoint: str, script: str) -> None:
    args = ["--duration", "1.5", "--ack", "--max-acks", "2", "--operator", "ci"]
    out = _ok(run_example(endpoint, script, *args))
    lines = out.splitlines()
    assert lines[0].endswith("alarm(s) active now")
    assert any(line.startswith("snapshot complete: ") for line in lines)
    assert any(line.startswith("provider ") for line in lines)
    assert sum(line.startswith("acknowledged ") for line in lines) == 2
    assert lines[-1].endswith("feed message(s), 2 acknowledgement(s)")


def test_bench(endpoint: str) -> None:
    out = _ok(run_example(endpoint, "bench.py", "--duration", "1", "--warmup", "0"))
    assert "dropped 0, duplicated 0" in out
    assert "integrity check passed" in out


def test_notebook(endpoint: str) -> None:
    out = _ok(run_example(endpoint, "notebook.py", "--max-changes", "2"))
    for cell in ("[2] ", "[3] ", "[4] awaited on the kernel's loop", "[5] asyncio.run"):
        assert cell in out
    assert out.rstrip().endswith("every cell ran inside a running event loop")


def test_sync_script(endpoint: str) -> None:
    out = _ok(run_example(endpoint, "sync_script.py"))
    assert "confirmed: True" in out and "refused   MxAccessError" in out
    assert "threads   4 reads from 4 threads" in out
    assert out.rstrip().splitlines()[-1].startswith("galaxy    ")


# -- the blocking examples inside a running event loop (a Jupyter cell) --------------------------


@pytest.mark.parametrize(
    ("script", "args", "expected"),
    [
        ("watch_tags_sync.py", ["--max-changes", "2"], "2 change(s)"),
        ("browse_galaxy_sync.py", ["--max-objects", "3"], "picked "),
        ("write_confirm_sync.py", ["--value", "7"], "confirmed by MXAccess"),
        ("alarms_sync.py", ["--duration", "10", "--max-messages", "5"], "5 feed message(s)"),
        ("record_csv_sync.py", ["--output", "-", "--max-rows", "2", "--handles"], "2 row(s)"),
        ("sync_script.py", [], "galaxy    "),
    ],
    ids=lambda value: value if isinstance(value, str) and value.endswith(".py") else "",
)
def test_sync_examples_inside_a_running_loop(
    endpoint: str, script: str, args: list[str], expected: str
) -> None:
    done = run_example(endpoint, script, *args, in_running_loop=True)
    _ok(done)
    assert expected in done.stdout + done.stderr


# -- recording across a gateway restart (in-process simulator, so the test can restart it) ------


def _rows(output: Path) -> int:
    if not output.exists():
        return 0
    with output.open(encoding="utf-8") as csv_file:
        return len(list(csv.DictReader(csv_file)))


async def _rows_when(output: Path, count: int, seconds: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while _rows(output) < count:  # a tiny file: read on the loop
        assert loop.time() < deadline, f"fewer than {count} rows in {seconds:g} s"
        await asyncio.sleep(0.02)


def _check_recovered(output: Path, tags: list[str], words: str) -> None:
    rows = list(csv.DictReader(output.open(encoding="utf-8")))
    notices = [i for i, row in enumerate(rows) if row["tag"] == "*"]
    assert notices, rows
    assert words in rows[notices[0]]["note"]
    after = [row for row in rows[notices[0] + 1 :] if row["tag"] != "*"]
    assert after and all(row["tag"] in tags for row in after)  # recorded on after the restart


@pytest.mark.parametrize("script", ["async", "sync"])
@pytest.mark.parametrize("mode", [[], ["--handles"]], ids=["tags", "handles"])
async def test_record_csv_across_a_gateway_restart(
    tmp_path: Path, script: str, mode: list[str]
) -> None:
    tags = ["Tank_001.Level", "FT_003.Flow"]
    output = tmp_path / "recording.csv"
    async with SimulatedGateway(SimConfig(rate=10.0, galaxy_size=60)) as sim:
        argv = ["--endpoint", sim.endpoint, "--plaintext", "--output", str(output)]
        argv += ["--duration", "30", "--max-rows", "30", *mode]
        argv += [arg for tag in tags for arg in ("--tag", tag)]
        if script == "async":
            recording = asyncio.create_task(record_csv.record(record_csv.parse_args(argv)))
        else:  # the blocking recorder waits in a thread; its client has its own loop
            recording = asyncio.create_task(asyncio.to_thread(record_csv_sync.main, argv))
        try:
            await _rows_when(output, 2)
            await sim.restart()
            async with asyncio.timeout(40):
                assert await recording == 0
        finally:
            recording.cancel()
    words = "session recovered" if mode else "recovered as"
    _check_recovered(output, tags, words)
