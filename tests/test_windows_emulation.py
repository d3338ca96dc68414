"""Windows' event loop, emulated here: the commands users run on Windows stop cleanly on Ctrl+C.

On Windows there is no uvloop, and ``loop.add_signal_handler`` raises NotImplementedError;
Ctrl+C reaches ``asyncio.Runner`` (which cancels the main task) or the code as
KeyboardInterrupt. Every process here starts with a ``sitecustomize`` that makes this machine
behave so (children such as bench-stream-events' simulator inherit it through PYTHONPATH):
uvloop unimportable, ``add_signal_handler`` raising NotImplementedError. SIGTERM then kills
outright, as ``TerminateProcess`` does on Windows.

The key file hazard (a byte order mark from PowerShell) is tested in tests/cli/test_key_files.py.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="emulates Windows on POSIX (Windows runs the real thing)"
)

EMULATION = """\
import asyncio, sys

sys.modules["uvloop"] = None  # uvloop has no Windows build


def _no_signal_handlers(self, sig, callback, *args):
    raise NotImplementedError  # what Windows' event loops raise


asyncio.SelectorEventLoop.add_signal_handler = _no_signal_handlers
"""

TIMEOUT_S = 60


@pytest.fixture(scope="module")
def windows_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    site = tmp_path_factory.mktemp("windows-emulation")
    (site / "sitecustomize.py").write_text(EMULATION, encoding="utf-8")
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path}


def _mxgw(*args: str) -> list[str]:
    return [sys.executable, "-m", "mxgateway_cli", *args]


def _popen(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _mxgw(*args),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def _readline(process: subprocess.Popen[str]) -> str:
    """The next stdout line, or "" if none came within TIMEOUT_S (the process is then killed,
    so a hang fails the test instead of stalling the suite)."""
    assert process.stdout is not None
    watchdog = threading.Timer(TIMEOUT_S, process.kill)
    watchdog.start()
    try:
        return process.stdout.readline()
    finally:
        watchdog.cancel()


def _interrupt(process: subprocess.Popen[str]) -> tuple[str, str]:
    """Ctrl+C (SIGINT to the process alone); return the rest of its stdout and its stderr."""
    process.send_signal(signal.SIGINT)
    try:
        return process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise


@pytest.fixture
def sim(windows_env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``mxgw-py sim`` under the emulation, and its endpoint."""
    process = _popen(windows_env, "sim", "--plaintext", "--listen", "127.0.0.1:0", "--rate", "20")
    try:
        line = _readline(process)
        assert line, "the simulator exited: " + (process.communicate()[1] or "")
        yield process, json.loads(line)["listening"]
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate()


def test_the_emulation_is_in_force(windows_env: dict[str, str]) -> None:
    code = (
        "import asyncio, mxgateway\n"
        "loop = asyncio.new_event_loop()\n"
        "try:\n"
        "    loop.add_signal_handler(2, print)\n"
        "except NotImplementedError:\n"
        "    print(mxgateway.preferred_event_loop(), 'no signal handlers')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], env=windows_env, capture_output=True, text=True, check=False
    )
    assert result.stdout == "asyncio no signal handlers\n", result.stderr


def test_sim_starts_and_stops_cleanly_on_ctrl_c(sim: tuple[subprocess.Popen[str], str]) -> None:
    process, endpoint = sim
    assert endpoint.startswith("127.0.0.1:")
    stdout, stderr = _interrupt(process)
    assert process.returncode == 0, stderr
    assert "Traceback" not in stderr
    (stopped,) = stdout.splitlines()  # after "listening", the stop statistics as on SIGINT
    assert "rpcs" in json.loads(stopped)["stopped"]


def test_bench_stream_events_runs_with_its_simulator(windows_env: dict[str, str]) -> None:
    # The README's main job: it starts the simulator in a child process (also emulated).
    result = subprocess.run(
        _mxgw("bench-stream-events", "--duration", "1", "--warmup", "0.2", "--json"),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=windows_env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["loop"] == "asyncio"
    assert report["events"] > 0


def test_bench_stream_events_stops_on_ctrl_c(windows_env: dict[str, str]) -> None:
    process = _popen(windows_env, "bench-stream-events", "--duration", "60", "--warmup", "0")
    time.sleep(4.0)  # the simulator starts, the stream runs
    assert process.poll() is None, process.communicate()
    _, stderr = _interrupt(process)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr


def test_stream_alarms_stops_on_ctrl_c(
    windows_env: dict[str, str], sim: tuple[subprocess.Popen[str], str]
) -> None:
    _, endpoint = sim
    process = _popen(windows_env, "stream-alarms", "--endpoint", endpoint, "--plaintext", "--json")
    first = _readline(process)  # streaming: the first message arrived
    assert first, process.communicate()
    json.loads(first)
    _, stderr = _interrupt(process)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr


def test_stream_events_stops_on_ctrl_c(
    windows_env: dict[str, str], sim: tuple[subprocess.Popen[str], str]
) -> None:
    _, endpoint = sim
    flags = ("--endpoint", endpoint, "--plaintext", "--json")
    opened = subprocess.run(
        _mxgw("open-session", *flags),
        capture_output=True,
        text=True,
        env=windows_env,
        timeout=TIMEOUT_S,
        check=True,
    )
    session = json.loads(opened.stdout)["sessionId"]
    process = _popen(windows_env, "stream-events", "--session-id", session, *flags)
    time.sleep(2.0)  # connected and waiting for events
    assert process.poll() is None, process.communicate()
    _, stderr = _interrupt(process)
    assert process.returncode == 130, stderr
    assert "Traceback" not in stderr
