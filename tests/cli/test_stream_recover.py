"""``stream-events --recover``: a session the gateway lost (a restart) is reopened with the
--item references, a sessionRecovered line says so, and the stream goes on; without it, exit 1."""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any

import pytest

from mxgateway import GatewayClient
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.cli.conftest import MXGW, SECRETS


async def _start(
    endpoint: str, session_id: str, *extra: str, env: dict[str, str] | None = None
) -> asyncio.subprocess.Process:
    assert MXGW is not None
    return await asyncio.create_subprocess_exec(
        MXGW,
        "stream-events",
        "--endpoint",
        endpoint,
        "--plaintext",
        "--session-id",
        session_id,
        "--json",
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )


async def _line(process: asyncio.subprocess.Process) -> Any:
    assert process.stdout is not None
    raw = await asyncio.wait_for(process.stdout.readline(), 20)
    assert raw, "the command ended early"
    return json.loads(raw)


@pytest.fixture
async def advised() -> Any:
    async with (
        SimulatedGateway(SimConfig(rate=20.0, galaxy_size=60)) as sim,
        await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True) as client,
    ):
        session = await client.open_session("owner")
        server = await session.register("owner")
        refs = sim.sample_references(3)
        await session.subscribe_bulk(server, refs)
        yield sim, session.session_id, refs


async def test_recover_reopens_with_the_items(advised: Any) -> None:
    sim, session_id, refs = advised
    args = ["--recover", "--retry-budget", "20"] + [a for r in refs for a in ("--item", r)]
    process = await _start(sim.endpoint, session_id, *args)
    try:
        first = await _line(process)
        assert first["sessionId"] == session_id
        await sim.restart()
        line = await _line(process)
        while "sessionRecovered" not in line:
            line = await _line(process)
        recovered = line["sessionRecovered"]
        assert recovered["oldSessionId"] == session_id
        new_id = recovered["newSessionId"]
        assert new_id != session_id and recovered["failed"] == []
        after = [await _line(process) for _ in range(10)]
        assert {e["sessionId"] for e in after} == {new_id}
        assert new_id in sim.session_ids()  # left open for the process that owns it
    finally:
        process.terminate()
        out, err = await process.communicate()
    assert not any(s in (out + err).decode() for s in SECRETS)


async def test_without_recover_a_lost_session_exits_1(advised: Any) -> None:
    sim, session_id, _ = advised
    process = await _start(sim.endpoint, session_id, "--retry-budget", "20")
    await _line(process)
    await sim.restart()
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 1
    assert "SESSION" in (out + err).decode().upper()


async def test_item_needs_recover(advised: Any) -> None:
    sim, session_id, refs = advised
    process = await _start(sim.endpoint, session_id, "--item", refs[0])
    await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 2


_CORE_LOG = re.compile(r"^[DIWEF]\d{4} \d\d:\d\d:\d\d", re.MULTILINE)


@pytest.mark.parametrize("verbosity", [None, "debug"])
async def test_grpc_core_lines_stay_out_of_cli_output(advised: Any, verbosity: str | None) -> None:
    sim, session_id, _ = advised
    env = {k: v for k, v in os.environ.items() if k != "GRPC_VERBOSITY"}
    if verbosity is not None:
        env["GRPC_VERBOSITY"] = verbosity  # the user's own choice is kept
    process = await _start(sim.endpoint, session_id, "--retry-budget", "20", env=env)
    await _line(process)
    await sim.restart()  # connections end; gRPC's core logs about them when allowed to
    out, err = await asyncio.wait_for(process.communicate(), 30)
    text = (out + err).decode()
    assert bool(_CORE_LOG.search(text)) == (verbosity is not None), text


def test_log_level_debug_leaves_grpc_verbosity_alone() -> None:
    from mxgateway_cli import _debug_requested

    assert _debug_requested(["stream-events", "--log-level", "DEBUG"])
    assert _debug_requested(["stream-events", "--log-level=debug"])
    assert not _debug_requested(["stream-events", "--log-level", "info"])
    assert not _debug_requested(["stream-events", "--log-level"])


async def test_stats_lines_go_to_stderr(advised: Any) -> None:
    sim, session_id, _ = advised
    process = await _start(sim.endpoint, session_id, "--stats", "0.3", "--duration", "1.2")
    out, err = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode == 0
    stats = [json.loads(line)["stats"] for line in err.decode().splitlines() if '"stats"' in line]
    assert len(stats) >= 3  # every 0.3 s, and one at the end
    assert stats[-1]["events"] == len(out.decode().splitlines()) > 0  # stdout: events only
    assert stats[-1]["sessionId"] == session_id
    assert stats[-1]["events"] >= stats[0]["events"]
