"""What the gateway cannot give back is said in the stream, never left as silence: a
ReplayGap becomes a gap record, a gateway restart (the session lost, recovered as a new one)
a session record; the check accepts holes only there."""

from __future__ import annotations

import asyncio

from mxgateway import ClientOptions
from mxgateway.bridge import Bridge, BridgeConfig, NatsOptions
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.bridge._check import check_stream, columns_agree
from tests.bridge._servers import NatsServer
from tests.bridge.conftest import nats_client, wait_stored


async def test_replay_gap_becomes_a_gap_record(nats_server: NatsServer) -> None:
    # A small queue that drops its backlog on overflow and a small replay ring: events the
    # bridge was away for are gone from both, so the resume meets a ReplayGap.
    config = SimConfig(
        galaxy_size=60,
        rate=5.0,
        queue_capacity=100,
        queue_policy="disconnect_subscriber",
        replay_capacity=50,
    )
    async with SimulatedGateway(config) as sim:
        options = ClientOptions(endpoint=sim.endpoint, plaintext=True)
        nats = NatsOptions(servers=(nats_server.url,))
        bridge_config = BridgeConfig(stream="GAP", items=tuple(sim.sample_references(4)))
        first = Bridge(options, nats, bridge_config)
        await first.run(duration=1.5)
        assert first.stats.last_stored is not None
        session_id, last = first.stats.last_stored
        sim.emit_burst(session_id, 500)  # overflows the queue: the backlog is dropped
        second = Bridge(options, nats, bridge_config)
        await second.run(duration=1.5)
        assert second.stats.gaps == 1
    async with nats_client([nats_server.url]) as nc:
        check = await check_stream(nc, "GAP", "mxgw.GAP")
        units = await columns_agree(nc, "GAP", check.events + 1)
    # The gap record is an EventColumns of its own: its sentinel in others, as a stream's.
    (gap_unit,) = [u for u in units if any(e.replay_gap for _, e in u.others)]
    assert len(gap_unit) == 1 and gap_unit.others[0][0] == 0
    assert check.sessions == [session_id]
    ((gap_session, gap_first, gap_last),) = check.gaps
    assert gap_session == session_id and gap_first == last + 1
    assert gap_last - gap_first + 1 >= 300  # most of the burst of 500
    seqs = check.sequences[session_id]
    assert gap_first - 1 in seqs and gap_last + 1 in seqs and gap_first not in seqs


async def test_gateway_restart_is_a_session_record(nats_server: NatsServer) -> None:
    async with SimulatedGateway(SimConfig(galaxy_size=60, rate=20.0)) as sim:
        refs = tuple(sim.sample_references(6))
        bridge = Bridge(
            ClientOptions(endpoint=sim.endpoint, plaintext=True),
            NatsOptions(servers=(nats_server.url,)),
            BridgeConfig(stream="REC", items=refs, retry_budget_s=20.0),
        )
        stop = asyncio.Event()
        task = asyncio.create_task(bridge.run(stop=stop))
        async with nats_client([nats_server.url]) as nc:
            stored = await wait_stored(nc, "REC", 20)
            await sim.restart()  # every session is gone
            await wait_stored(nc, "REC", stored + 40)
        stop.set()
        await asyncio.wait_for(task, 30)
    async with nats_client([nats_server.url]) as nc:
        check = await check_stream(nc, "REC", "mxgw.REC")
        units = await columns_agree(nc, "REC", check.events + 1)
    (marker,) = [u for u in units if any(e.session_recovered for _, e in u.others)]
    assert len(marker) == 1 and marker.session_id == check.sessions[1]
    assert len(check.sessions) == 2 and check.gaps == []
    (recovered,) = check.recovered
    old, new = check.sessions
    assert (recovered.old_session_id, recovered.new_session_id) == (old, new)
    assert recovered.last_sequence == check.last(old)
    assert recovered.failed == ()
    assert check.sequences[new][0] == 1 and len(check.sequences[new]) > 10
    assert bridge.stats.sessions == [old, new]
