"""Fixtures of the bridge tests: nats-server processes, the simulator, bridges as processes."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from nats.aio.client import Client as NATS

from mxgateway.bridge import NatsOptions, connect_nats
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.bridge._servers import NatsCluster, NatsServer, start_cluster, start_server

NATS_PASSWORD = "n4ts-Secret-Pw-31"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """One JetStream server on a port of its choosing, store in tmp_path."""
    server = start_server(tmp_path)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def nats_cluster(tmp_path: Path) -> Iterator[NatsCluster]:
    """Three JetStream nodes in one cluster."""
    cluster = start_cluster(tmp_path)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedGateway]:
    """The simulator in this process (20 value changes/s per item; short detach grace)."""
    config = SimConfig(galaxy_size=60, rate=20.0, detach_grace_s=30.0)
    async with SimulatedGateway(config) as gateway:
        yield gateway


@contextlib.asynccontextmanager
async def nats_client(urls: list[str]) -> AsyncIterator[NATS]:
    nc = await connect_nats(NatsOptions(servers=tuple(urls)))
    try:
        yield nc
    finally:
        await nc.close()


class BridgeProcess:
    """``python -m mxgateway_cli bridge ... --json`` as a real process."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args = args
        self.log = log
        self.process: asyncio.subprocess.Process | None = None
        self.lines: list[dict[str, Any]] = []
        self._reader: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()

    async def start(self) -> None:
        stderr = self.log.open("ab")
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mxgateway_cli",
            "bridge",
            *self.args,
            "--json",
            stdout=asyncio.subprocess.PIPE,
            stderr=stderr,
            env=env,
        )
        stderr.close()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for raw in self.process.stdout:
            self.lines.append(json.loads(raw))
            self._changed.set()
        self._changed.set()

    async def wait_for(self, kind: str, timeout: float = 60.0, count: int = 1) -> dict[str, Any]:
        """The ``count``-th line of ``kind`` (``active``, ``standby``, ``stopped`` ...)."""
        async with asyncio.timeout(timeout):
            while True:
                found = [line[kind] for line in self.lines if kind in line]
                if len(found) >= count:
                    return dict(found[count - 1])
                if self.process is not None and self.process.returncode is not None:
                    raise AssertionError(
                        f"bridge exited: {self.process.returncode}\n{self.lines}\n{self.stderr}"
                    )
                self._changed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._changed.wait(), 0.5)

    @property
    def stderr(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    async def wait(self, timeout: float = 60.0) -> int:
        assert self.process is not None
        code = await asyncio.wait_for(self.process.wait(), timeout)
        if self._reader is not None:
            await self._reader
        return code

    async def kill(self) -> None:
        assert self.process is not None
        if self.process.returncode is None:
            self.process.kill()
        await self.wait()


@contextlib.asynccontextmanager
async def bridge_process(args: list[str], log: Path) -> AsyncIterator[BridgeProcess]:
    """A running bridge process, killed at the end if still running."""
    bridge = BridgeProcess(args, log)
    await bridge.start()
    try:
        yield bridge
    finally:
        if bridge.process is not None and bridge.process.returncode is None:
            await bridge.kill()


async def wait_stored(nc: NATS, stream: str, at_least: int, timeout: float = 60.0) -> int:
    """Wait until ``stream`` holds at least ``at_least`` messages; returns how many."""
    from nats.errors import Error as NatsError

    js = nc.jetstream(timeout=2.0)
    async with asyncio.timeout(timeout):
        while True:
            try:
                info = await js.stream_info(stream)
            except NatsError:  # electing a leader, or the server restarting: ask again
                await asyncio.sleep(0.2)
                continue
            if info.state.messages >= at_least:
                return int(info.state.messages)
            await asyncio.sleep(0.1)


async def tail_sequences(urls: list[str], stream: str, events: int) -> dict[str, list[int]]:
    """``mxgw-py bridge-tail --from-start --json`` as a process, for ``events`` events: the
    worker_sequences it printed, per session id (markers and gap records included as what
    they are: a line without ``workerSequence`` fails the caller's check)."""
    nats = [flag for url in urls for flag in ("--nats", url)]
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mxgateway_cli",
        "bridge-tail",
        *nats,
        "--stream",
        stream,
        "--from-start",
        "--json",
        "--max-events",
        str(events),
        "--timeout",
        "60",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 90)
    assert process.returncode == 0, err.decode(errors="replace")
    sequences: dict[str, list[int]] = {}
    for line in out.decode().splitlines():
        event = json.loads(line)
        assert "workerSequence" in event and not event.get("replayGap"), line
        sequences.setdefault(event["sessionId"], []).append(int(event["workerSequence"]))
    return sequences


def assert_tail_is_exact(sequences: dict[str, list[int]], events: int) -> None:
    """What the Done-when asks of ``bridge-tail``: one session id, every worker_sequence
    once, contiguous from 1 (the stream check has shown nothing follows them)."""
    assert len(sequences) == 1, list(sequences)
    (seqs,) = sequences.values()
    assert seqs == list(range(1, events + 1))


def gateway_flags(sim: SimulatedGateway) -> list[str]:
    return ["--endpoint", sim.endpoint, "--plaintext"]
