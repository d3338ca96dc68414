"""The hostile user's attempts, replayed against ``mxgw-py sim`` in its own process.

Each attempt used to exhaust the simulator or lock others out: a sparse write with
``total_length`` 50,000,000 (5.1 s of CPU, 55 -> 818 MiB, never answered) or 2**32-1 (a 32 GiB
list), a 1,000,000-element write to the 5-element ``Diag_001.Values[]`` (stored, then
published: every subscriber lost its stream), 1,000 concurrent OpenSession calls from one key
(a second client then got "session limit reached (64)"), a lease of 2**31-1 s, and a key file
saved by PowerShell 5.1 (UTF-8 with a BOM). Each now gets a typed answer, the simulator's
resident memory (``/proc/<pid>/status`` VmRSS of the simulator process) stays within 100 MiB
of what it was before the attempt, and the simulator counts what it refused (its metrics
and the ``{"stopped": ...}`` line). Run with ``-s`` to see the figures.

Child processes are started with ``subprocess.Popen`` (vfork, from a worker thread), not the
event loop's subprocess support: uvloop forks and runs Python's after-fork hooks in the child,
and with gRPC's threads busy the child can spin in ``threading._after_fork`` before it ever
execs (seen here: the child at 50 % CPU for minutes, the test waiting for it).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import pytest

from mxgateway import (
    ClientOptions,
    GatewayClient,
    MxAccessError,
    MxDataType,
    MxGatewayProtocolError,
    MxSparseArray,
)

pytestmark = pytest.mark.skipif(
    not sys.platform.startswith("linux"), reason="reads the simulator's RSS from /proc"
)

HOSTILE = "mxgw_hostile_H0stileS3cret"
OTHER = "mxgw_other_0therS3cret"
VALUES = "Diag_001.Values[]"  # DOUBLE[5]
E_INVALIDARG = 0x80070057 - (1 << 32)
RSS_SLACK_MIB = 100.0
_FLOOD = importlib.util.find_spec("mxgateway._speedups") is not None
MODES = ["grpc", pytest.param("flood", marks=pytest.mark.skipif(not _FLOOD, reason="no codec"))]


def _root() -> str:
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    existing = os.environ.get("PYTHONPATH", "")
    return root + (os.pathsep + existing if existing else "")


class SimCli:
    """``mxgw-py sim`` in a child process: its endpoint, its RSS, and its last line."""

    def __init__(self, *args: str, key_file: Path | None = None) -> None:
        self._args = args
        self._key_file = key_file
        self.process: subprocess.Popen[bytes] | None = None
        self.endpoint = ""
        self.stopped: dict[str, Any] = {}

    async def __aenter__(self) -> Self:
        env = {**os.environ, "PYTHONPATH": _root()}
        env.pop("MXGATEWAY_NO_EXTENSIONS", None)  # the simulator is the fixture: compiled codec
        keys = ["--api-key-file", str(self._key_file)] if self._key_file is not None else []
        command = [
            sys.executable,
            "-m",
            "mxgateway_cli",
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--plaintext",
            "--rate",
            "0",
            "--log-level",
            "ERROR",
            *keys,
            *self._args,
        ]
        self.process = process = await asyncio.to_thread(
            subprocess.Popen,
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )
        assert process.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(process.stdout.readline), 60)
        if not line:
            await asyncio.to_thread(process.communicate)
            raise RuntimeError(f"the simulator exited ({process.returncode})")
        self.endpoint = json.loads(line)["listening"]
        return self

    def rss_mib(self) -> float:
        """The simulator's resident set, MiB."""
        assert self.process is not None
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        raise AssertionError("no VmRSS")

    async def stop(self) -> dict[str, Any]:
        """SIGTERM; the simulator must exit 0 with its ``{"stopped": ...}`` line, which is
        returned (once stopped, the same again)."""
        process = self.process
        assert process is not None
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                stdout, stderr = await asyncio.to_thread(process.communicate, timeout=30)
            except subprocess.TimeoutExpired:  # pragma: no cover - a hung simulator
                process.kill()
                await asyncio.to_thread(process.communicate)
                raise
            assert process.returncode == 0, stderr.decode()
            for secret in (HOSTILE, OTHER):
                assert secret.encode() not in stdout + stderr
            self.stopped = json.loads(stdout.decode().splitlines()[-1])["stopped"]
        return self.stopped

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        if exc_type is None:
            await self.stop()
            return
        process.kill()  # the test failed: no need for a clean stop
        await asyncio.to_thread(process.communicate)


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys.txt"
    path.write_text(f"{HOSTILE}\n{OTHER}\n")
    return path


@pytest.fixture(params=MODES)
async def sim(request: pytest.FixtureRequest, key_file: Path) -> AsyncIterator[SimCli]:
    flood = ["--flood"] if request.param == "flood" else []
    async with SimCli(*flood, key_file=key_file) as simulator:
        yield simulator


def client_of(sim: SimCli, key: str = HOSTILE) -> GatewayClient:
    return GatewayClient(
        ClientOptions(endpoint=sim.endpoint, plaintext=True, api_key=key, timeout=30)
    )


def within_slack(sim: SimCli, name: str, before: float) -> float:
    after = sim.rss_mib()
    print(f"\nfault-injection {name}: simulator RSS {before:.1f} -> {after:.1f} MiB")
    assert after - before < RSS_SLACK_MIB, f"{name}: RSS {before:.1f} -> {after:.1f} MiB"
    return after


async def advised_values(client: GatewayClient) -> tuple[Any, int, int]:
    session = await client.open_session(client_session_name="hostile")
    server = await session.register("hostile")
    item = await session.add_item(server, VALUES)
    await session.advise(server, item)
    return session, server, item


@pytest.mark.parametrize("total", [50_000_000, 2**32 - 1])
async def test_sparse_writes_with_a_huge_total(sim: SimCli, total: int) -> None:
    async with client_of(sim) as client:
        session, server, item = await advised_values(client)
        before = sim.rss_mib()
        value = MxSparseArray(MxDataType.DOUBLE, total, ((0, 1.0),))
        with pytest.raises(MxAccessError) as info:
            await session.write(server, item, value, data_type=MxDataType.DOUBLE)
        assert info.value.hresult == E_INVALIDARG
        assert f"total_length {total}" in str(info.value)
        within_slack(sim, f"sparse total_length={total}", before)
        await session.close()
    assert (await sim.stop())["refused"] == {"sparse_total_length": 1}


async def test_a_million_elements_to_a_five_element_array(sim: SimCli) -> None:
    async with client_of(sim) as client, client_of(sim, OTHER) as watcher_client:
        session, server, item = await advised_values(client)
        watcher, _, _ = await advised_values(watcher_client)
        events: list[Any] = []
        got = asyncio.Event()

        async def watch() -> None:
            async for event in watcher.stream_events():
                if event.data_type == MxDataType.DOUBLE:
                    events.append(event)
                    got.set()

        task = asyncio.get_running_loop().create_task(watch())
        try:
            await asyncio.wait_for(got.wait(), 30)  # the advise value
            before = sim.rss_mib()
            with pytest.raises(MxAccessError) as info:
                await session.write(server, item, [1.0] * 1_000_000, data_type=MxDataType.DOUBLE)
            assert info.value.hresult == E_INVALIDARG
            assert "1000000 elements" in str(info.value)
            within_slack(sim, "1,000,000-element write", before)
            got.clear()
            await session.write(server, item, [2.0] * 5, data_type=MxDataType.DOUBLE)
            await asyncio.wait_for(got.wait(), 30)  # the subscriber's stream lives on
            assert list(events[-1].value) == [2.0] * 5
            assert not task.done()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        await session.close()
        await watcher.close()
    assert (await sim.stop())["refused"] == {"value_elements": 1}


async def test_a_thousand_concurrent_opens_then_another_key_opens(sim: SimCli) -> None:
    before = sim.rss_mib()
    async with client_of(sim) as client:
        results = await asyncio.gather(
            *(client.open_session(client_session_name=f"h{i}") for i in range(1000)),
            return_exceptions=True,
        )
        refused = [r for r in results if isinstance(r, BaseException)]
        opened = [r for r in results if not isinstance(r, BaseException)]
        assert len(opened) == 16
        assert all(isinstance(r, MxGatewayProtocolError) for r in refused), refused[:3]
        assert {r.grpc_code for r in refused} == {"RESOURCE_EXHAUSTED"}  # type: ignore[attr-defined]
        assert "per API key" in str(refused[0])
        async with client_of(sim, OTHER) as other:
            session = await other.open_session(client_session_name="bystander")
            await session.close()
        within_slack(sim, "1,000 concurrent OpenSession", before)
    assert (await sim.stop())["refused"] == {"sessions_per_key": 984}


async def test_a_huge_lease_is_capped_through_the_cli(sim: SimCli, key_file: Path) -> None:
    before = sim.rss_mib()
    env = {**os.environ, "FAULT_KEY": HOSTILE}
    command = [
        sys.executable,
        "-m",
        "mxgateway_cli",
        "open-session",
        "--endpoint",
        sim.endpoint,
        "--plaintext",
        "--api-key-env",
        "FAULT_KEY",
        "--lease-seconds",
        str(2**31 - 1),
        "--json",
    ]
    result = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, env=env, timeout=60, check=False
    )
    stdout, stderr = result.stdout, result.stderr
    assert result.returncode == 0, stderr.decode()
    reply = json.loads(stdout)
    assert "lease-seconds=3600" in reply["capabilities"]
    assert "granted 3600" in reply["protocolStatus"]["message"]
    assert HOSTILE.encode() not in stdout + stderr
    within_slack(sim, "lease_seconds=2**31-1", before)


async def test_a_key_file_with_a_bom_through_mxgw_py(tmp_path: Path) -> None:
    keys = tmp_path / "keys-ps51.txt"
    keys.write_bytes(f"{HOSTILE}\r\n{OTHER}\r\n".encode("utf-8-sig"))
    async with SimCli(key_file=keys) as sim:
        before = sim.rss_mib()
        async with client_of(sim) as client:  # the first key, right after the BOM
            session = await client.open_session()
            await session.close()
        within_slack(sim, "BOM key file", before)
        assert (await sim.stop())["refused"] == {}


async def test_a_client_key_file_with_a_bom_through_mxgw_py(tmp_path: Path) -> None:
    keys = tmp_path / "keys-ps51.txt"
    keys.write_bytes(f"{HOSTILE}\r\n".encode("utf-8-sig"))
    async with SimCli(key_file=keys) as sim:
        command = [
            sys.executable,
            "-m",
            "mxgateway_cli",
            "open-session",
            "--endpoint",
            sim.endpoint,
            "--plaintext",
        ]
        # Before: the BOM stayed in the key, gRPC refused the metadata, untyped exit 1.
        for where in (["--api-key-file", str(keys)], ["--api-key-env", "FAULT_KEY"]):
            env = {**os.environ, "FAULT_KEY": "\ufeff" + HOSTILE}
            result = await asyncio.to_thread(
                subprocess.run,
                [*command, *where, "--json"],
                capture_output=True,
                env=env,
                timeout=60,
                check=False,
            )
            assert HOSTILE.encode() not in result.stdout + result.stderr
            assert result.returncode == 0, (where[0], result.stderr.decode())
            assert json.loads(result.stdout)["sessionId"]
        assert (await sim.stop())["refused"] == {}
