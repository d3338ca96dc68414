"""A 3-node JetStream cluster, the stream with 3 replicas: the node leading the stream is
killed while the bridge forwards; the bridge fails over to another node, resynchronises with
the new leader and goes on. Ends with the stream checked (every worker_sequence once)."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from mxgateway.sim import SimConfig, SimulatedGateway
from tests.bridge._check import check_stream
from tests.bridge._servers import NatsCluster
from tests.bridge.conftest import (
    assert_tail_is_exact,
    bridge_process,
    gateway_flags,
    nats_client,
    tail_sequences,
    wait_stored,
)

# The bridge's crash, standby and cluster behaviour runs in child processes; what it
# checks (exactly once in JetStream) does not depend on the codec or this process's loop.
pytestmark = pytest.mark.once


async def test_stream_leader_killed_while_forwarding(
    tmp_path: Path, nats_cluster: NatsCluster
) -> None:
    async with SimulatedGateway(
        SimConfig(galaxy_size=60, rate=10.0, replay_capacity=100_000)
    ) as sim:
        items = tmp_path / "items.txt"
        items.write_text("\n".join(sim.sample_references(20)) + "\n", encoding="utf-8")
        args = [*gateway_flags(sim), "--items-file", str(items)]
        for url in nats_cluster.urls:
            args += ["--nats", url]
        args += ["--stream", "R3", "--replicas", "3", "--ack-timeout", "3"]
        async with bridge_process(args, tmp_path / "bridge.log") as bridge:
            await bridge.wait_for("active", timeout=90)
            async with nats_client(nats_cluster.urls) as nc:
                before = await wait_stored(nc, "R3", 100)
                info = await nc.jetstream().stream_info("R3")
                assert info.config.num_replicas == 3
                assert info.cluster is not None and info.cluster.leader
                leader = info.cluster.leader
            nats_cluster.node(leader).kill()
            survivors = [n.url for n in nats_cluster.nodes if n.name != leader]
            async with nats_client(survivors) as nc:
                # A new leader is elected and the bridge goes on writing through it.
                await wait_stored(nc, "R3", before + 300, timeout=90)
                info = await nc.jetstream(timeout=10).stream_info("R3")
                assert info.cluster is not None and info.cluster.leader != leader
            bridge.signal(signal.SIGTERM)
            assert await bridge.wait() == 0, bridge.stderr
            stopped = await bridge.wait_for("stopped")
        await asyncio.sleep(0)
        async with nats_client(survivors) as nc:
            check = await check_stream(nc, "R3", "mxgw.R3")
    assert len(check.sessions) == 1 and check.gaps == [] and check.recovered == []
    assert check.last(check.sessions[0]) == int(stopped["lastSequence"])
    assert check.events > 400
    assert_tail_is_exact(await tail_sequences(survivors, "R3", check.events), check.events)
