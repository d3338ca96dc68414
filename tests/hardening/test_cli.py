"""The command line under adversity: ``mxgw-py stream-events`` exits 3 when the gateway is
gone and 1 when a restart lost the session; failing commands print no secret (API key or
AuthenticateUser password); bad values exit 2 with a message naming the flag.

tests/cli covers the usage errors of every command (tests/cli/test_errors.py), exit 3 for a
gateway unreachable from the start, exit 4, and API keys in any output. The gateway-loss run
waits out the library's 30 s retry budget: conftest.py runs the test that starts it first and
the test that checks it last, so the rest of the suite runs meanwhile.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.hardening.cli_run import (
    ENV,
    KEY,
    MXGW,
    PASSWORD,
    LostGateway,
    advised_session,
    assert_clean,
    flags,
    mxgw,
    sim_call,
    simulator,
)

RETRY_BUDGET_S = 30.0  # the library's default, which the CLI uses

# once: exit codes, retry budgets and masking of the CLI layer, the same with either codec.
pytestmark = [
    pytest.mark.skipif(MXGW is None, reason="the mxgw-py console script is not installed"),
    pytest.mark.once,
]


def test_stream_events_is_running_when_the_gateway_dies(lost_gateway: LostGateway) -> None:
    assert lost_gateway.first_line.startswith("#1 ON_DATA_CHANGE"), lost_gateway.first_line
    assert lost_gateway.stream.poll() is None  # still retrying: the budget is not spent yet


def _stream(endpoint: str, sid: str, *extra: str) -> subprocess.Popen[str]:
    assert MXGW is not None
    return subprocess.Popen(
        [MXGW, "stream-events", "--session-id", sid, *flags(endpoint), *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )


def test_a_restart_that_loses_the_session_exits_1() -> None:
    with simulator(rate=20.0, galaxy_size=60, api_keys={KEY: None}) as (sim, endpoint):
        stream = _stream(endpoint, advised_session(endpoint), "--json")
        assert stream.stdout is not None
        assert json.loads(stream.stdout.readline())["workerSequence"] == "1"
        sim_call(sim, "restart")  # same port, every session gone
        started = time.monotonic()
        stdout, stderr = stream.communicate(timeout=30)
    assert_clean(stdout, stderr, ("stream-events",))
    assert stream.returncode == 1, (stdout, stderr)  # the gateway said: no such session
    assert time.monotonic() - started < 20
    error = json.loads(stdout.splitlines()[-1])
    assert error["type"] == "error" and "NOT_FOUND" in error["error"], error


def test_a_bounded_stream_still_reports_the_lost_gateway() -> None:
    with simulator(rate=20.0, galaxy_size=60, api_keys={KEY: None}) as (sim, endpoint):
        stream = _stream(endpoint, advised_session(endpoint), "--timeout", "3")
        assert stream.stdout is not None
        stream.stdout.readline()
        sim_call(sim, "stop")  # nothing listens any more
        stdout, stderr = stream.communicate(timeout=30)
    assert_clean(stdout, stderr, ("stream-events",))
    assert stream.returncode == 3


def test_retry_budget_bounds_the_reconnecting() -> None:
    with simulator(rate=20.0, galaxy_size=60, api_keys={KEY: None}) as (sim, endpoint):
        stream = _stream(endpoint, advised_session(endpoint), "--retry-budget", "2")
        assert stream.stdout is not None
        stream.stdout.readline()
        sim_call(sim, "stop")
        stopped = time.monotonic()
        stdout, stderr = stream.communicate(timeout=30)
    elapsed = time.monotonic() - stopped
    assert_clean(stdout, stderr, ("stream-events",))
    assert stream.returncode == 3, (stdout, stderr)
    # Not the default's 30 s; the floor is the budget (less the time to notice the loss).
    assert 1.0 < elapsed < 15, elapsed
    assert "lost" in stderr, stderr


def test_failing_commands_print_no_key_and_no_password(tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD + "\n", encoding="utf-8")
    with simulator(galaxy_size=60, api_keys={KEY: None}) as (_, endpoint):
        connection = flags(endpoint)
        sid = mxgw("open-session", *connection).stdout.strip()
        server = mxgw("register", "--session-id", sid, *connection).stdout.strip()
        base = ["--session-id", sid, "--server-handle", server]
        for source in (
            ["--password-env", "MXGW_HARD_PASSWORD"],
            ["--password-file", str(password_file)],
        ):
            for mode in ([], ["--json"]):
                refused = mxgw(
                    "authenticate-user", *base, "--user", "operator", *source, *mode, *connection
                )
                assert refused.code == 1, refused  # MXAccess refused the password
        denied = mxgw(
            "write-secured", *base, "--item-handle", "1", "--type", "double", "--value", "1",
            "--current-user-id", "4242", *connection,
        )  # fmt: skip
        assert denied.code == 1, denied
        wrong_key = mxgw(
            "open-session", "--endpoint", endpoint, "--plaintext", "--api-key",
            "mxgw_clihard_WrongS3cret", "--json",
        )  # fmt: skip
        assert wrong_key.code == 4, wrong_key
        assert "WrongS3cret" not in wrong_key.stdout + wrong_key.stderr
        mxgw("close-session", "--session-id", sid, *connection)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["open-session", "--endpoint", "127.0.0.1:99999"], "outside 1..65535"),
        (["open-session", "--endpoint", "[::1]:0"], "outside 1..65535"),
        (["open-session", "--lease-seconds", "-1"], "--lease-seconds"),
        (["stream-events", "--session-id", "s", "--after-sequence", "-1"], "--after-sequence"),
        (
            ["stream-events", "--session-id", "s", "--after-sequence", str(2**64)],
            "--after-sequence",
        ),
        (["stream-events", "--session-id", "s", "--max-events", "many"], "--max-events"),
        (["stream-events", "--session-id", "s", "--timeout", "inf"], "--timeout"),
        (["stream-events", "--session-id", "s", "--retry-budget", "0"], "--retry-budget"),
        (["stream-events", "--session-id", "s", "--retry-budget", "nan"], "--retry-budget"),
        (["stream-events", "--session-id", " "], "session-id"),
    ],
    ids=lambda value: " ".join(value) if isinstance(value, list) else None,
)
def test_bad_values_exit_2_naming_the_flag(args: list[str], words: str) -> None:
    result = (
        mxgw(*args, "--plaintext", "--timeout", "2")
        if "--timeout" not in args
        else mxgw(*args, "--plaintext")
    )
    assert result.code == 2, result
    assert words in result.stderr, result
    assert result.stdout == ""


def test_stream_events_exits_3_when_the_gateway_is_gone(lost_gateway: LostGateway) -> None:
    lost_gateway.wait(RETRY_BUDGET_S + 30)
    assert lost_gateway.exited_at is not None
    elapsed = lost_gateway.exited_at - lost_gateway.killed_at
    assert_clean(lost_gateway.stdout, lost_gateway.stderr, ("stream-events",))
    assert lost_gateway.stream.returncode == 3, (lost_gateway.stdout, lost_gateway.stderr)
    assert RETRY_BUDGET_S - 1 < elapsed < RETRY_BUDGET_S + 20
    assert "lost" in lost_gateway.stderr and "30" in lost_gateway.stderr  # the reason, on stderr
