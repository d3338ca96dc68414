"""``mxgw-py stream-alarms`` and ``galaxy-watch`` reconnect like ``stream-events``: across a
gateway restart (one resync line for the alarm feed, no deploy printed twice), exit 3 once
``--retry-budget`` is spent or when the ``--timeout`` bound finds them still reconnecting, and
exit 2 naming the flag for a bad budget."""

from __future__ import annotations

import json
import subprocess
from typing import Any

import pytest

from tests.cli.conftest import assert_protobuf_json
from tests.hardening.cli_run import ENV, KEY, MXGW, assert_clean, flags, mxgw, sim_call, simulator

# once: the feeds' reconnecting and exit codes in the CLI layer, the same with either codec.
pytestmark = [
    pytest.mark.skipif(MXGW is None, reason="the mxgw-py console script is not installed"),
    pytest.mark.once,
]

SIM = {"rate": 0.0, "galaxy_size": 60, "api_keys": {KEY: None}}  # alarms change only when told


def _start(command: str, endpoint: str, *extra: str) -> subprocess.Popen[str]:
    assert MXGW is not None
    return subprocess.Popen(
        [MXGW, command, *flags(endpoint), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def _read_until(process: subprocess.Popen[str], marker: str) -> list[str]:
    """stdout lines up to the first that contains ``marker``."""
    assert process.stdout is not None
    lines: list[str] = []
    while True:
        line = process.stdout.readline()
        assert line, f"output ended before {marker!r}: {lines}"
        lines.append(line)
        if marker in line:
            return lines


def _finish(process: subprocess.Popen[str], command: str) -> tuple[str, str]:
    stdout, stderr = process.communicate(timeout=60)
    assert_clean(stdout, stderr, (command,))
    return stdout, stderr


def _check_line(line: str) -> Any:
    """One deterministic JSON object: sorted keys, compact, protobuf-JSON names."""
    data = json.loads(line)
    assert line.rstrip("\n") == json.dumps(data, sort_keys=True, separators=(",", ":"))
    assert_protobuf_json(data)
    return data


def test_stream_alarms_reconnects_across_a_restart_with_one_resync_line() -> None:
    with simulator(**SIM) as (sim, endpoint):
        active = len(mxgw("query-alarms", "--json", *flags(endpoint)).stdout.splitlines())
        # The snapshot, its end, the provider status, then the resync: exit 0 at the bound.
        stream = _start(
            "stream-alarms", endpoint, "--json", "--max-messages", str(active + 3),
            "--retry-budget", "20",
        )  # fmt: skip
        before = _read_until(stream, "providerStatus")
        sim_call(sim, "restart")
        stdout, stderr = _finish(stream, "stream-alarms")
        assert stream.returncode == 0, (stdout, stderr)
        text = _start("stream-alarms", endpoint, "--max-messages", str(active + 3))
        _read_until(text, "provider")
        sim_call(sim, "restart")
        text_out, text_err = _finish(text, "stream-alarms")
    assert len(before) == active + 2
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout  # only the marker: nothing changed, nothing repeated
    resync = _check_line(lines[0])["resync"]
    assert set(resync) == {
        "activeAlarmCount", "appeared", "attempts", "changed", "cleared", "downSince",
        "outage", "reason",
    }  # fmt: skip
    assert (resync["appeared"], resync["changed"], resync["cleared"]) == (0, 0, 0)
    assert resync["activeAlarmCount"] == active and resync["attempts"] >= 1
    assert resync["reason"].startswith("UNAVAILABLE")
    assert resync["outage"].endswith("s") and resync["downSince"].endswith("Z")
    assert "lost" in stderr  # the library's warning, on stderr only
    assert text.returncode == 0, (text_out, text_err)
    assert text_out.startswith("resync after "), text_out
    assert "0 appeared, 0 changed, 0 cleared" in text_out


def test_galaxy_watch_reconnects_across_a_restart_and_prints_no_deploy_twice() -> None:
    with simulator(**SIM) as (sim, endpoint):
        watch = _start("galaxy-watch", endpoint, "--json", "--max-events", "2")
        first = _read_until(watch, "timeOfLastDeploy")
        sim_call(sim, "restart")  # the bootstrap must not come again
        sim_call(sim, "redeploy")  # during the outage or after it: printed once either way
        stdout, stderr = _finish(watch, "galaxy-watch")
    assert watch.returncode == 0, (stdout, stderr)
    events = [_check_line(line) for line in first + stdout.splitlines()]
    assert len(events) == 2
    assert events[0]["timeOfLastDeploy"] < events[1]["timeOfLastDeploy"]


@pytest.mark.parametrize("command", ["stream-alarms", "galaxy-watch"])
def test_exit_3_once_the_retry_budget_is_spent(command: str) -> None:
    marker = "providerStatus" if command == "stream-alarms" else "timeOfLastDeploy"
    with simulator(**SIM) as (sim, endpoint):
        stream = _start(command, endpoint, "--json", "--retry-budget", "2")
        _read_until(stream, marker)
        sim_call(sim, "stop")  # for good
        stdout, stderr = _finish(stream, command)
    assert stream.returncode == 3, (stdout, stderr)
    error = json.loads(stdout.splitlines()[-1])
    assert error["type"] == "error"
    assert "lost" in error["error"] and "within 2 s" in error["error"], error


@pytest.mark.parametrize("command", ["stream-alarms", "galaxy-watch"])
def test_a_timeout_bound_while_reconnecting_is_exit_3(command: str) -> None:
    marker = "provider" if command == "stream-alarms" else "deploy="
    with simulator(**SIM) as (sim, endpoint):
        stream = _start(command, endpoint, "--timeout", "3", "--retry-budget", "600")
        _read_until(stream, marker)
        sim_call(sim, "stop")
        stdout, stderr = _finish(stream, command)
    assert stream.returncode == 3, (stdout, stderr)
    assert "still reconnecting" in stderr, stderr


@pytest.mark.parametrize("command", ["stream-alarms", "galaxy-watch"])
@pytest.mark.parametrize("budget", ["0", "-5", "nan", "inf", "1e9", "soon"])
def test_bad_retry_budgets_exit_2_naming_the_flag(command: str, budget: str) -> None:
    result = mxgw(command, "--retry-budget", budget, "--plaintext")
    assert result.code == 2, result
    assert "--retry-budget" in result.stderr, result
    assert result.stdout == ""
