"""``mxgw-py bench-stream-events`` run as a subprocess, with its child flood simulator.

Checks the report's shape and integrity (no dropped or duplicate sequence), that the path,
decoder, loop and receiver reported are the ones asked for, ``--compare`` on both paths,
``--rate``, the simulator's CPU, exit codes, and that the child simulator is gone afterwards
(also after Ctrl-C). Nothing here asserts a speed. Tests that need the simulator's genuine
mode, paced flood or final stats line say so (``_support.need_simulator_flags``).

The command is the installed console script once ``mxgateway_cli.main`` registers it, else
the module's own entry point (``python -m mxgateway_cli._bench``). Every process started
carries a marker in its environment (the child simulator inherits it), so the tests can find
any process of theirs still alive from ``/proc``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ._support import need_simulator_flags

# once: the bench command's flags, reports and exits; its decoders are chosen by flag here
# (test_python_decoder, test_no_extensions_in_the_client_only), so the twin's run repeats them.
pytestmark = [
    pytest.mark.skipif(
        not Path("/proc/self/environ").exists(), reason="finds processes through /proc"
    ),
    pytest.mark.once,
]

MARKER_ENV = "MXGW_BENCH_CLI_TEST_MARKER"
_GRPC_LOG = re.compile(r"[IWE]\d{4} \d\d:\d\d:\d\d")
RUN_TIMEOUT_S = 120
SHORT = ("--duration", "1", "--warmup", "0.2")
KEY = "mxgw_benchcli_BenchSecretValue7"
WRONG_KEY = "mxgw_benchcli_NotTheSecret3"


def _registered() -> bool:
    try:
        from mxgateway_cli.main import build_parser
    except Exception:  # the other commands are being written: fall back to the module
        return False
    for action in build_parser()._actions:
        if isinstance(action, argparse._SubParsersAction):
            return "bench-stream-events" in action.choices
    return False


def _command() -> list[str]:
    if _registered():
        script = shutil.which("mxgw-py")
        if script is not None:
            return [script, "bench-stream-events"]
        return [sys.executable, "-m", "mxgateway_cli", "bench-stream-events"]
    return [sys.executable, "-m", "mxgateway_cli._bench"]


COMMAND = _command()


def _expected_decoder() -> str:
    if os.environ.get("MXGATEWAY_NO_EXTENSIONS", "") == "1":
        return "python"
    import mxgateway

    return mxgateway.codec_implementation()


def _expected_loop() -> str:
    import mxgateway

    return mxgateway.preferred_event_loop()


def _marked_pids(marker: str) -> list[int]:
    """Processes whose environment holds ``marker`` (zombies have none: reaped or not, gone)."""
    needle = f"{MARKER_ENV}={marker}".encode()
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path("/proc", entry, "environ").read_bytes()
        except OSError:
            continue
        if needle in environ.split(b"\0"):
            pids.append(int(entry))
    return pids


@pytest.fixture
def marker() -> Iterator[str]:
    """A fresh marker; afterwards, any process still carrying it fails the test (and dies)."""
    value = uuid.uuid4().hex
    yield value
    left = _marked_pids(value)
    for pid in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    assert not left, f"processes left behind: {left}"


def _env(marker: str, **extra: str) -> dict[str, str]:
    return {**os.environ, MARKER_ENV: marker, **extra}


def bench(marker: str, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the command to completion; afterwards no process of it may be left."""
    result = subprocess.run(
        [*COMMAND, *args],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env=_env(marker, **env),
        stdin=subprocess.DEVNULL,
    )
    assert _marked_pids(marker) == [], "the child simulator outlived the command"
    return result


def report_of(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, (result.returncode, result.stdout, result.stderr)
    assert result.stdout.endswith("\n") and result.stdout.count("\n") == 1, result.stdout
    data: dict[str, Any] = json.loads(result.stdout)
    assert list(data) == sorted(data), "keys are not sorted"
    return data


def needs_genuine_mode() -> None:
    need_simulator_flags("--no-event-batches")


def assert_report(data: dict[str, Any], *, path: str, decoder: str, loop: str) -> None:
    expected_keys = {
        "batchSize",
        "bytes",
        "consumer",
        "cpuPerEventUs",
        "cpuSeconds",
        "decoder",
        "droppedSequences",
        "duplicateSequences",
        "durationSeconds",
        "elapsedSeconds",
        "endpoint",
        "events",
        "eventsPerSecond",
        "items",
        "latencyMs",
        "loop",
        "loopThreadCpuSeconds",
        "mbPerSecond",
        "messages",
        "messagesPerSecond",
        "path",
        "replayGaps",
        "requestedPath",
        "rounds",
        "simulator",
        "simulatorCpuSeconds",
        "simulatorCpuShare",
        "simulatorGenuine",
        "warmupSeconds",
    }
    assert expected_keys <= set(data), expected_keys - set(data)
    assert data["path"] == path
    assert data["decoder"] == decoder
    assert data["loop"] == loop
    assert data["simulator"] is True
    assert data["droppedSequences"] == 0
    assert data["duplicateSequences"] == 0
    assert data["replayGaps"] == 0
    # Every round is a fresh session: every event from the first.
    rounds = [data] if data["rounds"] == 1 else data["perRound"]
    assert len(rounds) == data["rounds"]
    for one in rounds:
        assert one["firstSequence"] == 1
        assert one["lastSequence"] >= one["events"] > 0
    assert data["messages"] > 0 and data["bytes"] > 0
    assert data["eventsPerSecond"] > 0 and data["messagesPerSecond"] > 0
    assert data["mbPerSecond"] > 0
    assert data["durationSeconds"] == 1.0 and data["warmupSeconds"] == 0.2
    assert data["elapsedSeconds"] >= 0.99
    assert data["items"] == 16
    assert data["cpuSeconds"] > 0 and data["cpuPerEventUs"] > 0
    assert data["simulatorCpuSeconds"] >= 0
    assert data["simulatorGenuine"] is (path == "single")
    latency = data["latencyMs"]
    assert set(latency) == {"p50", "p90", "p99", "max"}
    assert 0 <= latency["p50"] <= latency["p90"] <= latency["p99"] <= latency["max"]


def test_batches_json(marker: str) -> None:
    data = report_of(bench(marker, *SHORT, "--json"))
    assert_report(data, path="batches", decoder=_expected_decoder(), loop=_expected_loop())
    assert data["requestedPath"] == "batches"
    assert data["batchSize"] == 1000
    assert data["consumer"] == "stream_event_batches"
    assert data["events"] > data["messages"]  # many events per message
    assert "consumers" not in data and "ratios" not in data
    assert data["rounds"] == 1


def test_single_path(marker: str) -> None:
    needs_genuine_mode()
    data = report_of(bench(marker, *SHORT, "--path", "single", "--json"))
    assert_report(data, path="single", decoder=_expected_decoder(), loop=_expected_loop())
    assert data["consumer"] == "stream_events"
    assert data["receiver"] == "thread"
    assert data["events"] == data["messages"]  # one event per message
    assert data["receiverThreadCpuSeconds"] >= 0


def test_single_path_aio_receiver(marker: str) -> None:
    needs_genuine_mode()
    data = report_of(bench(marker, *SHORT, "--path", "single", "--receiver", "aio", "--json"))
    assert_report(data, path="single", decoder=_expected_decoder(), loop=_expected_loop())
    assert data["receiver"] == "aio"
    assert "receiverThreadCpuSeconds" not in data


@pytest.mark.once  # the --compare harness; the twin decoder has its own case
def test_single_compare(marker: str) -> None:
    needs_genuine_mode()
    data = report_of(
        bench(marker, *SHORT, "--path", "single", "--compare", "--rounds", "2", "--json")
    )
    assert_report(data, path="single", decoder=_expected_decoder(), loop=_expected_loop())
    consumers = data["consumers"]
    assert list(consumers) == ["raw_bytes/aio", "stream_events/aio", "stream_events/thread"]
    for name, part in consumers.items():
        assert part["rounds"] == 2, name
        assert part.get("droppedSequences", 0) == part.get("duplicateSequences", 0) == 0, name
        assert part["bytes"] > 0 and part["events"] == part["messages"] > 0, name
        assert part["cpuPerEventUs"] > 0 and part["simulatorCpuSeconds"] >= 0, name
    assert "receiverThreadCpuSeconds" in consumers["stream_events/thread"]
    assert "droppedSequences" not in consumers["raw_bytes/aio"]  # it checks nothing
    thread_to_aio = data["ratios"][0]
    assert thread_to_aio["numerator"] == "stream_events/thread"
    assert thread_to_aio["denominator"] == "stream_events/aio"
    assert len(thread_to_aio["eventsPerSecond"]) == len(thread_to_aio["cpuPerEvent"]) == 2
    assert thread_to_aio["eventsPerSecondMedian"] > 0
    stats = data["simulatorStats"]
    assert stats["messages"] >= sum(p["messages"] for p in consumers.values())
    assert stats["cpuPerMessageUs"] > 0


def test_python_decoder(marker: str) -> None:
    data = report_of(bench(marker, *SHORT, "--decoder", "python", "--json"))
    assert_report(data, path="batches", decoder="python", loop=_expected_loop())


def test_no_extensions_in_the_client_only(marker: str) -> None:
    # The client decodes with the twin; the child simulator still floods (compiled encoder).
    data = report_of(bench(marker, *SHORT, "--json", MXGATEWAY_NO_EXTENSIONS="1"))
    assert_report(data, path="batches", decoder="python", loop=_expected_loop())


def test_asyncio_loop_and_options(marker: str) -> None:
    args = ("--loop", "asyncio", "--items", "3", "--batch-size", "50", "--json")
    data = report_of(bench(marker, "--duration", "1", "--warmup", "0.2", *args))
    assert data["loop"] == "asyncio"
    assert data["items"] == 3
    assert data["batchSize"] == 50
    assert data["droppedSequences"] == data["duplicateSequences"] == 0
    # Flood batches are full: every measured message carries batch-size events.
    assert data["events"] == 50 * data["messages"]


@pytest.mark.once  # the --compare harness; the twin decoder has its own case
def test_compare_gives_a_ratio(marker: str) -> None:
    data = report_of(bench(marker, *SHORT, "--compare", "--rounds", "2", "--json"))
    assert_report(data, path="batches", decoder=_expected_decoder(), loop=_expected_loop())
    stubs = data["consumers"]["generated_stubs"]
    assert stubs["eventsPerSecond"] > 0 and stubs["bytes"] > 0
    assert stubs["droppedSequences"] == stubs["duplicateSequences"] == 0
    (ratio,) = data["ratios"]
    assert (ratio["numerator"], ratio["denominator"]) == ("stream_event_batches", "generated_stubs")
    ours = data["consumers"]["stream_event_batches"]["perRound"]
    theirs = stubs["perRound"]
    for got, a, b in zip(ratio["eventsPerSecond"], ours, theirs, strict=True):
        assert got == pytest.approx(a["eventsPerSecond"] / b["eventsPerSecond"], rel=0.01)
    assert ratio["eventsPerSecondMedian"] > 0


def test_columns_json(marker: str) -> None:
    pytest.importorskip("numpy")
    data = report_of(bench(marker, *SHORT, "--path", "columns", "--json"))
    assert_report(data, path="columns", decoder=_expected_decoder(), loop=_expected_loop())
    assert data["requestedPath"] == "columns"
    assert data["consumer"] == "stream_event_columns"
    assert data["events"] > data["messages"]  # many events per message
    assert "consumers" not in data and "ratios" not in data


@pytest.mark.once  # the --compare harness; the twin decoder has its own case
def test_columns_compare_beside_batches_and_raw(marker: str) -> None:
    pytest.importorskip("numpy")
    args = ("--path", "columns", "--compare", "--rounds", "2", "--batch-size", "400", "--json")
    data = report_of(bench(marker, *SHORT, *args))
    assert_report(data, path="columns", decoder=_expected_decoder(), loop=_expected_loop())
    consumers = data["consumers"]
    assert list(consumers) == ["raw_bytes", "stream_event_batches", "stream_event_columns"]
    for name, part in consumers.items():
        assert part["rounds"] == 2, name
        assert part.get("droppedSequences", 0) == part.get("duplicateSequences", 0) == 0, name
        assert part["bytes"] > 0 and part["cpuPerEventUs"] > 0, name
        # Flood batches are full: every measured message carries batch-size events.
        assert part["events"] == 400 * part["messages"] > 0, name
    assert consumers["stream_event_batches"]["path"] == "batches"
    assert "droppedSequences" not in consumers["raw_bytes"]  # it checks nothing
    pairs = [(r["numerator"], r["denominator"]) for r in data["ratios"]]
    assert pairs == [
        ("stream_event_columns", "stream_event_batches"),
        ("stream_event_columns", "raw_bytes"),
    ]
    for ratio in data["ratios"]:
        assert len(ratio["eventsPerSecond"]) == len(ratio["cpuPerEvent"]) == 2
        assert ratio["cpuPerEventMedian"] > 0


def test_columns_human_and_python_decoder(marker: str) -> None:
    pytest.importorskip("numpy")
    result = bench(
        marker, *SHORT, "--path", "columns", "--compare", "--rounds", "1", "--decoder", "python"
    )
    assert result.returncode == 0, (result.stdout, result.stderr)
    out = result.stdout
    assert out.startswith("path columns (asked columns), built-in simulator")
    assert "decoder python" in out
    assert re.search(r"^stream_event_columns +[\d,]+ ", out, re.M), out
    assert "stream_event_columns ÷ stream_event_batches: events/s" in out
    assert "stream_event_columns ÷ raw_bytes: events/s" in out
    assert "sequences: 0 dropped, 0 duplicate (not checked by raw_bytes" in out


def test_columns_fixed_rate_has_a_latency_per_event(marker: str) -> None:
    pytest.importorskip("numpy")
    need_simulator_flags("--flood-rate")
    data = report_of(bench(marker, *SHORT, "--path", "columns", "--rate", "2000", "--json"))
    assert_report(data, path="columns", decoder=_expected_decoder(), loop=_expected_loop())
    assert data["rateEventsPerSecond"] == 2000
    assert data["simulatorStats"]["events"] >= data["events"]


def test_fixed_rate(marker: str) -> None:
    need_simulator_flags("--flood-rate")
    data = report_of(bench(marker, *SHORT, "--rate", "2000", "--json"))
    assert_report(data, path="batches", decoder=_expected_decoder(), loop=_expected_loop())
    assert data["rateEventsPerSecond"] == 2000
    assert data["simulatorStats"]["events"] >= data["events"]


def test_fixed_rate_single_human(marker: str) -> None:
    need_simulator_flags("--flood-rate", "--no-event-batches")
    result = bench(marker, *SHORT, "--rate", "2000", "--path", "single")
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    assert "rate-limited source, not by the client" in text
    assert "simulator:" in text and "µs CPU per message" in text


def test_human_summary(marker: str) -> None:
    result = bench(marker, *SHORT)
    assert result.returncode == 0, result.stderr
    assert "events/s" in result.stdout
    assert "path batches" in result.stdout
    assert "0 dropped, 0 duplicate" in result.stdout
    text = " ".join(result.stdout.split())
    assert "gateway_receive_timestamp" in text and "time.time_ns()" in text  # from, to
    assert "this machine, this run" in text
    # Progress only on a terminal. gRPC's C core may log a line of its own (e.g. "Got goaway"
    # when the child simulator stops while the closed channel's connection lingers).
    ours = [line for line in result.stderr.splitlines() if not _GRPC_LOG.match(line)]
    assert ours == [], result.stderr


@pytest.mark.parametrize(
    "args",
    [
        pytest.param(("--duration", "0"), id="duration-0"),
        pytest.param(("--duration", "nan"), id="duration-nan"),
        pytest.param(("--warmup", "-1"), id="warmup-negative"),
        pytest.param(("--items", "0"), id="items-0"),
        pytest.param(("--batch-size", "x"), id="batch-size-x"),
        pytest.param(("--batch-size", "4294967296"), id="batch-size-over-uint32"),
        pytest.param(("--path", "both"), id="path"),
        pytest.param(("--receiver", "pool"), id="receiver"),
        pytest.param(("--rounds", "0"), id="rounds-0"),
        pytest.param(("--rate", "0"), id="rate-0"),
        pytest.param(("--items", "100001"), id="items-over"),
        pytest.param(("--path", "single", "--compare", "--receiver", "aio"), id="receiver-compare"),
        pytest.param(("--decoder", "rust"), id="decoder"),
        pytest.param(("--loop", "trio"), id="loop"),
        pytest.param(("--plaintext", "--tls"), id="plaintext-and-tls"),
        pytest.param(("--no-such-flag",), id="unknown"),
        pytest.param(("--api-key", KEY), id="key-without-endpoint"),
        pytest.param(("--items", "2", "--item", "A.B"), id="items-vs-item"),
        pytest.param(
            ("--endpoint", "127.0.0.1:9", "--plaintext", "--ca-file", "x.pem"),
            id="plaintext-ca-file",
        ),
    ],
)
def test_bad_flags_exit_2(marker: str, args: tuple[str, ...]) -> None:
    result = bench(marker, *args, "--json")
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    assert KEY not in result.stdout + result.stderr


def test_rate_with_an_endpoint_is_a_usage_error(marker: str) -> None:
    result = bench(marker, "--endpoint", "127.0.0.1:9", "--plaintext", "--rate", "1000", "--json")
    assert result.returncode == 2, (result.stdout, result.stderr)
    error = json.loads(result.stdout)
    assert "--rate" in error["error"] and "--endpoint" in error["error"]


def test_unreachable_endpoint_exits_3(marker: str) -> None:
    result = bench(
        marker, "--endpoint", "127.0.0.1:9", "--plaintext", "--timeout", "1", *SHORT, "--json"
    )
    assert result.returncode == 3, (result.stdout, result.stderr)
    error = json.loads(result.stdout)
    assert error["type"] == "error" and error["error"]


def test_ctrl_c_stops_the_child_simulator(marker: str) -> None:
    process = subprocess.Popen(
        [*COMMAND, "--duration", "60", "--warmup", "0", "--json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=_env(marker),
    )
    try:
        deadline = time.monotonic() + 60
        children: list[int] = []
        while not children and time.monotonic() < deadline:
            time.sleep(0.1)
            children = [pid for pid in _marked_pids(marker) if pid != process.pid]
        assert children, "the child simulator never started"
        time.sleep(2.0)  # let it start streaming
        process.send_signal(signal.SIGINT)  # to the command only, not its child
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        assert process.stdout is not None and process.stderr is not None
        process.stdout.close()
        process.stderr.close()
    assert process.returncode == 130
    assert _marked_pids(marker) == []


def _start_keyed_simulator(marker: str) -> tuple[subprocess.Popen[bytes], str]:
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mxgateway_cli",
            "sim",
            "--flood",
            "--plaintext",
            "--listen",
            "127.0.0.1:0",
            "--api-key-env",
            "BENCH_SIM_KEY",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        env=_env(marker, BENCH_SIM_KEY=KEY),
    )
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line, "the simulator exited before it was ready"
    return process, str(json.loads(line)["listening"])


def test_endpoint_with_api_key(marker: str) -> None:
    sim, endpoint = _start_keyed_simulator(marker)
    try:
        base = ("--endpoint", endpoint, "--plaintext", *SHORT, "--json")
        ok = subprocess.run(
            [*COMMAND, *base, "--api-key-env", "BENCH_KEY"],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            env=_env(marker, BENCH_KEY=KEY),
        )
        data = report_of(ok)
        assert data["simulator"] is False
        assert data["endpoint"] == endpoint
        assert data["droppedSequences"] == data["duplicateSequences"] == 0
        denied = subprocess.run(
            [*COMMAND, *base, "--api-key", WRONG_KEY],
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            env=_env(marker),
        )
        assert denied.returncode == 4, (denied.stdout, denied.stderr)
        assert json.loads(denied.stdout)["type"] == "error"
        for result in (ok, denied):
            output = result.stdout + result.stderr
            assert KEY not in output and WRONG_KEY not in output
            assert "BenchSecretValue7" not in output and "NotTheSecret3" not in output
    finally:
        sim.send_signal(signal.SIGTERM)
        sim.wait(timeout=30)
        assert sim.stdout is not None
        sim.stdout.close()


def test_live_progress_on_a_terminal_leaves_stdout_clean(marker: str) -> None:
    """With stderr a terminal (a pty here), one progress line is rewritten in place each
    second (events, events/s, lag); stdout still holds only the JSON report."""
    import pty

    leader, follower = pty.openpty()
    try:
        process = subprocess.Popen(
            [*COMMAND, "--duration", "2.5", "--warmup", "0.5", "--json"],
            stdout=subprocess.PIPE,
            stderr=follower,
            stdin=subprocess.DEVNULL,
            env=_env(marker),
            text=True,
        )
        os.close(follower)
        follower = -1
        terminal = bytearray()
        while True:
            try:
                chunk = os.read(leader, 4096)
            except OSError:  # EIO: the command closed the terminal (it exited)
                break
            if not chunk:
                break
            terminal += chunk
        stdout, _ = process.communicate(timeout=RUN_TIMEOUT_S)
    finally:
        if follower != -1:
            os.close(follower)
        os.close(leader)
    assert _marked_pids(marker) == []
    assert process.returncode == 0, (stdout, terminal)
    data = json.loads(stdout)  # one JSON document and nothing else
    assert stdout.count("\n") == 1 and data["events"] > 0
    text = terminal.decode("utf-8", "replace")
    updates = re.findall(r"\r[^\r\n]*?: (warming up|measuring) [^\r\n]*?events/s, lag ", text)
    assert "measuring" in updates, text
    assert "\x1b[K" in text  # each update clears the rest of the line
