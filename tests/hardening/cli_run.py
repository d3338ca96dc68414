"""Running the installed ``mxgw-py`` against a simulator process, for test_cli.py: every run's
output is checked for the test's secrets."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = [
    "ENV",
    "KEY",
    "MXGW",
    "PASSWORD",
    "LostGateway",
    "Run",
    "advised_session",
    "assert_clean",
    "flags",
    "lost_gateway_run",
    "mxgw",
    "sim_call",
    "simulator",
    "start_sim",
]

MXGW = shutil.which("mxgw-py")
KEY = "mxgw_clihard_CliS3cretKeyMaterial77"
PASSWORD = "Cl1-Wr0ng-Passphrase-55"
ENV = {**os.environ, "MXGW_HARD_KEY": KEY, "MXGW_HARD_PASSWORD": PASSWORD}
SECRETS = (KEY, KEY.split("_", 2)[2], PASSWORD)


@dataclass(frozen=True)
class Run:
    """What one ``mxgw-py`` run produced."""

    code: int
    stdout: str
    stderr: str


def assert_clean(stdout: str, stderr: str, args: tuple[str, ...]) -> None:
    """No secret of these tests in the output of ``mxgw-py args``."""
    for secret in SECRETS:
        assert secret not in stdout, f"a secret in the stdout of {args}"
        assert secret not in stderr, f"a secret in the stderr of {args}"


def mxgw(*args: str, timeout: float = 60) -> Run:
    """Run ``mxgw-py args`` (the key and the password in the environment)."""
    assert MXGW is not None, "the mxgw-py console script is not installed"
    done = subprocess.run(
        [MXGW, *args], capture_output=True, text=True, env=ENV, timeout=timeout, check=False
    )
    assert_clean(done.stdout, done.stderr, args)
    return Run(done.returncode, done.stdout, done.stderr)


def flags(endpoint: str) -> list[str]:
    """Connection flags: plaintext, the key from the environment."""
    return ["--endpoint", endpoint, "--plaintext", "--api-key-env", "MXGW_HARD_KEY"]


def advised_session(endpoint: str) -> str:
    """A session opened by the CLI with two advised items; its id."""
    connection = flags(endpoint)
    session = mxgw("open-session", *connection)
    assert session.code == 0, session
    sid = session.stdout.strip()
    server = mxgw("register", "--session-id", sid, *connection)
    assert server.code == 0, server
    subscribed = mxgw(
        "subscribe-bulk", "--session-id", sid, "--server-handle", server.stdout.strip(),
        "--item", "Pump_001.Speed", "--item", "Pump_001.Mode", *connection,
    )  # fmt: skip
    assert subscribed.code == 0, subscribed
    return sid


def start_sim(**config: Any) -> tuple[subprocess.Popen[str], str]:
    """tests.hardening.simproc in a child process; its endpoint."""
    root = str(Path(__file__).resolve().parents[2])
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.hardening.simproc", json.dumps(config)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env={**ENV, "PYTHONPATH": root},
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, "the simulator process did not start"
    return process, str(json.loads(line)["listening"])


class LostGateway:
    """``stream-events`` running against a simulator that was killed under it; a thread
    collects its output and notes when it exits."""

    def __init__(self, stream: subprocess.Popen[str], first_line: str) -> None:
        self.stream = stream
        self.first_line = first_line
        self.killed_at = time.monotonic()
        self.exited_at: float | None = None
        self.stdout = self.stderr = ""
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        self.stdout, self.stderr = self.stream.communicate()
        self.exited_at = time.monotonic()

    def wait(self, timeout: float) -> None:
        """Wait until the command has exited (fails after ``timeout`` seconds)."""
        self._thread.join(timeout)
        assert self.exited_at is not None, f"stream-events still running after {timeout} s"


def sim_call(process: subprocess.Popen[str], name: str, *args: Any) -> Any:
    """Run a test control in a simulator started by ``start_sim``; its result."""
    assert process.stdin is not None and process.stdout is not None
    process.stdin.write(json.dumps({"call": name, "args": list(args)}) + "\n")
    process.stdin.flush()
    answer = json.loads(process.stdout.readline())
    assert "error" not in answer, answer
    return answer["result"]


@contextmanager
def simulator(**config: Any) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``start_sim`` as a context: the simulator process and its endpoint; stopped after."""
    process, endpoint = start_sim(**config)
    try:
        yield process, endpoint
    finally:
        if process.stdin is not None:
            process.stdin.close()  # end of stdin: it stops
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung simulator
            process.kill()
            process.wait(10)


@contextmanager
def lost_gateway_run() -> Iterator[LostGateway]:
    """Start ``stream-events`` on an advised session, then SIGKILL the simulator."""
    assert MXGW is not None, "the mxgw-py console script is not installed"
    sim, endpoint = start_sim(rate=20.0, galaxy_size=60, api_keys={KEY: None})
    stream: subprocess.Popen[str] | None = None
    try:
        sid = advised_session(endpoint)
        stream = subprocess.Popen(
            [MXGW, "stream-events", "--session-id", sid, *flags(endpoint)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        assert stream.stdout is not None
        first = stream.stdout.readline()  # an event: the stream runs
        sim.send_signal(signal.SIGKILL)  # the gateway is gone, with no goodbye
        sim.wait(10)
        yield LostGateway(stream, first)
    finally:
        for process in (stream, sim):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait(10)
