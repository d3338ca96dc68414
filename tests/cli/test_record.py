"""``mxgw-py record``: a session's events into rotating Parquet / Arrow IPC files that pyarrow
reads back, every worker_sequence once, with continuity in each file's metadata."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from mxgateway_cli._record import RECORDING_KEY, SUMMARY_KEY, read_summaries
from tests.cli.conftest import ENV, MXGW, Gateway, assert_error, start_sim, stop_sim

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")
ipc = pytest.importorskip("pyarrow.ipc")


def _refs(gateway: Gateway, n: int) -> list[str]:
    result = gateway.run("galaxy-discover", "--json")
    assert result.code == 0, result
    refs = [a["fullTagReference"] for obj in result.lines() for a in obj["attributes"]]
    return [r for r in refs if not r.endswith("[]")][:n]


def _sequences(out: Path) -> tuple[np.ndarray, list[tuple[Path, Any, Any]]]:
    files = read_summaries(out)
    parts = []
    for path, _, _ in files:
        if path.suffix == ".parquet":
            table = pq.read_table(path)
        else:
            with ipc.open_file(path) as reader:
                table = reader.read_all()
        parts.append(table.column("worker_sequence").to_numpy())
    return (np.concatenate(parts) if parts else np.zeros(0, np.uint64)), files


def _once_in_order(sequences: np.ndarray) -> bool:
    return bool(len(sequences)) and bool((np.diff(sequences.astype(np.int64)) == 1).all())


def test_records_items_to_parquet(gateway: Gateway, tmp_path: Path) -> None:
    refs = _refs(gateway, 3)
    items = [arg for ref in refs for arg in ("--item", ref)]
    data = gateway.ok("record", *items, "--out", str(tmp_path), "--max-events", "30")
    assert data["rows"] == 30 and data["format"] == "parquet"
    [written] = data["files"]
    assert written["reason"] == "max-events" and written["rows"] == 30
    sequences, files = _sequences(tmp_path)
    assert len(sequences) == 30 and _once_in_order(sequences)
    path, recording, summary = files[0]
    assert str(path) == written["path"]
    assert recording["file"] == 0 and recording["previousFile"] is None
    assert recording["sessionId"] == data["sessionId"]
    assert summary["rows"] == 30 and summary["reason"] == "max-events"
    assert summary["firstSequence"] == int(sequences[0])
    assert summary["lastSequence"] == int(sequences[-1])
    table = pq.read_table(path)
    assert set(table.column("tag").to_pylist()) <= set(refs)
    assert table.column("gateway_receive_timestamp").type == pa.timestamp("ns", tz="UTC")
    meta = pq.read_metadata(path).metadata
    assert RECORDING_KEY.encode() in meta and SUMMARY_KEY.encode() in meta
    assert not list(tmp_path.glob("*.partial"))


def test_arrow_files_rotate_with_continuity(gateway: Gateway, tmp_path: Path) -> None:
    items = [arg for ref in _refs(gateway, 4) for arg in ("--item", ref)]
    data = gateway.ok(
        "record",
        *items,
        "--out",
        str(tmp_path),
        "--format",
        "arrow",
        "--compression",
        "zstd",
        "--rotate-seconds",
        "1",
        "--flush-seconds",
        "0.3",
        "--duration",
        "3.5",
    )
    assert len(data["files"]) >= 2
    sequences, files = _sequences(tmp_path)
    assert _once_in_order(sequences) and len(sequences) == data["rows"]
    previous = None
    for index, (path, recording, summary) in enumerate(files):
        assert path.suffix == ".arrow" and recording["file"] == index
        if previous is not None:
            assert recording["previousFile"] == previous[0].name
            assert recording["previousLastSequence"] == previous[2]["lastSequence"]
            assert summary["firstSequence"] == previous[2]["lastSequence"] + 1
        previous = (path, recording, summary)
    assert [s["reason"] for _, _, s in files][-1] == "duration"


def test_interrupt_closes_the_file(gateway: Gateway, tmp_path: Path) -> None:
    assert MXGW is not None
    items = [arg for ref in _refs(gateway, 4) for arg in ("--item", ref)]
    process = subprocess.Popen(
        [MXGW, "record", *items, "--out", str(tmp_path), "--json", *gateway.flags()],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    try:
        time.sleep(3)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    finally:
        if process.poll() is None:  # pragma: no cover - only when it hangs
            process.kill()
            process.communicate()
    assert process.returncode == 130, (out, err)
    data = json.loads(out)
    assert data["files"] and data["files"][-1]["reason"] == "interrupted"
    assert not list(tmp_path.glob("*.partial"))
    sequences, _ = _sequences(tmp_path)
    assert _once_in_order(sequences) and len(sequences) == data["rows"]


def test_resume_continues_a_session_recording(gateway: Gateway, tmp_path: Path) -> None:
    opened = gateway.ok("open-session", "--name", "record-resume")
    session_id = opened["sessionId"]
    try:
        server = gateway.ok("register", "--session-id", session_id)["serverHandle"]
        items = [arg for ref in _refs(gateway, 3) for arg in ("--item", ref)]
        gateway.ok(
            "subscribe-bulk", "--session-id", session_id, "--server-handle", str(server), *items
        )
        args = ("record", "--session-id", session_id, "--out", str(tmp_path), "--max-events")
        first = gateway.ok(*args, "10")
        second = gateway.ok(*args, "10", "--resume")
        assert first["sessionId"] == second["sessionId"] == session_id
        sequences, files = _sequences(tmp_path)
        assert len(files) == 2 and len(sequences) == 20 and _once_in_order(sequences)
    finally:
        gateway.ok("close-session", "--session-id", session_id)


@pytest.mark.parametrize(
    "args",
    [
        pytest.param([], id="neither-items-nor-session"),
        pytest.param(["--item", "A.B", "--session-id", "s"], id="both"),
        pytest.param(["--item", "A.B", "--format", "arrow", "--compression", "snappy"], id="codec"),
        pytest.param(["--item", "A.B", "--resume"], id="resume-without-session"),
        pytest.param(["--item", "A.B", "--rotate-bytes", "1000"], id="rotate-bytes"),
        pytest.param(["--item", "A.B", "--row-group-rows", "0"], id="row-group"),
        pytest.param(["--item", "A.B", "--prefix", "../x"], id="prefix"),
        pytest.param(["--item", "A.B", "--batch-size", str(2**32)], id="batch-size"),
    ],
)
def test_usage_errors(gateway: Gateway, tmp_path: Path, args: list[str]) -> None:
    result = gateway.run("record", "--out", str(tmp_path), *args, "--json")
    assert_error(result, 2)
    assert not list(tmp_path.glob("*.parquet"))


def test_without_pyarrow_the_error_names_the_extra(tmp_path: Path) -> None:
    # A child interpreter where pyarrow cannot be imported (None in sys.modules).
    code = (
        "import sys; sys.modules['pyarrow'] = None; "
        "from mxgateway_cli.main import main; "
        f"sys.exit(main(['record', '--item', 'A.B', '--out', {str(tmp_path)!r}, '--json']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result
    message = json.loads(result.stdout)["error"]
    assert "mxgateway[arrow" in message and "pyarrow" in message


def test_flood_rate_every_sequence_once(tmp_path: Path) -> None:
    # The flood simulator produces as fast as the recorder reads (the 60 s figure is in the
    # README; the suite keeps it short).
    process, endpoint = start_sim(tmp_path, "--plaintext", "--flood", "--rate", "0")
    try:
        assert MXGW is not None
        out = tmp_path / "out"
        result = subprocess.run(
            [
                MXGW,
                "record",
                "--endpoint",
                endpoint,
                "--plaintext",
                "--api-key-env",
                "MXGW_CLI_TEST_KEY",
                "--item",
                "Pump_001.Speed",
                "--item",
                "Pump_002.Speed",
                "--out",
                str(out),
                "--duration",
                "3",
                "--rotate-seconds",
                "1",
                "--row-group-rows",
                "65536",
                "--json",
            ],
            capture_output=True,
            text=True,
            env=ENV,
            timeout=120,
            check=False,
        )
    finally:
        stop_sim(process)
    assert result.returncode == 0, result
    data = json.loads(result.stdout)
    sequences, files = _sequences(out)
    assert files and data["rows"] > 1000
    assert len(sequences) == data["rows"] and _once_in_order(sequences)
