"""The bridge against one JetStream server: both layouts, reading back, restarts in process."""

from __future__ import annotations

import asyncio

import pytest

from mxgateway import ClientOptions
from mxgateway.bridge import Bridge, BridgeConfig, NatsOptions, consume, tag_tokens
from mxgateway.sim import SimulatedGateway
from tests.bridge._check import check_stream
from tests.bridge._servers import NatsServer
from tests.bridge.conftest import nats_client, wait_stored


def _gateway(sim: SimulatedGateway) -> ClientOptions:
    return ClientOptions(endpoint=sim.endpoint, plaintext=True)


async def _run_for(bridge: Bridge, seconds: float) -> None:
    await bridge.run(duration=seconds)


@pytest.mark.parametrize("layout", ["batch", "items"])
async def test_forwards_every_event_once(
    sim: SimulatedGateway, nats_server: NatsServer, layout: str
) -> None:
    refs = sim.sample_references(20)
    config = BridgeConfig(stream="PLANT", items=tuple(refs), layout=layout)  # type: ignore[arg-type]
    bridge = Bridge(_gateway(sim), NatsOptions(servers=(nats_server.url,)), config)
    await bridge.run(duration=3.0)
    assert bridge.stats.drained
    async with nats_client([nats_server.url]) as nc:
        check = await check_stream(nc, "PLANT", "mxgw.PLANT")
    assert check.events == bridge.stats.events > 100
    assert len(check.sessions) == 1 and check.gaps == [] and check.recovered == []
    assert check.tags and check.tags <= set(refs), "events carry their tag names"
    if layout == "items":
        assert check.kinds == {"item": check.events}
        assert all(s.startswith("mxgw.PLANT.items.") for s in check.subjects)
        assert {s.removeprefix("mxgw.PLANT.items.") for s in check.subjects} == {
            tag_tokens(t) for t in check.tags
        }
    else:
        assert set(check.kinds) == {"batch"} and check.subjects == {"mxgw.PLANT.events"}


async def test_restart_resumes_after_the_stream_tail(
    sim: SimulatedGateway, nats_server: NatsServer
) -> None:
    """Three runs of a bridge on one session: each resumes where the stream ends."""
    refs = sim.sample_references(10)
    config = BridgeConfig(stream="S", items=tuple(refs))
    nats = NatsOptions(servers=(nats_server.url,))
    sessions = set()
    for _ in range(3):
        bridge = Bridge(_gateway(sim), nats, config)
        await bridge.run(duration=1.5)
        sessions.update(bridge.stats.sessions)
        await asyncio.sleep(0.3)  # events pile up in the gateway meanwhile
    assert len(sessions) == 1
    async with nats_client([nats_server.url]) as nc:
        check = await check_stream(nc, "S", "mxgw.S")
    assert check.sessions == list(sessions) and check.gaps == []
    assert check.events > 50


async def test_items_subjects_filter_by_wildcard(
    sim: SimulatedGateway, nats_server: NatsServer
) -> None:
    refs = [r for r in sim.sample_references(20) if r.startswith("Pump_001.")]
    others = [r for r in sim.sample_references(20) if not r.startswith("Pump_001.")]
    config = BridgeConfig(stream="UNS", items=tuple(refs + others), layout="items")
    bridge = Bridge(_gateway(sim), NatsOptions(servers=(nats_server.url,)), config)
    await bridge.run(duration=2.0)
    async with nats_client([nats_server.url]) as nc:
        js = nc.jetstream()
        sub = await js.subscribe("mxgw.UNS.items.Pump_001.>", ordered_consumer=True)
        seen = set()
        total = (await js.stream_info("UNS", subjects_filter="mxgw.UNS.items.Pump_001.>")).state
        want = sum((total.subjects or {}).values())
        assert want > 0
        for _ in range(want):
            msg = await sub.next_msg(timeout=5)
            seen.add(msg.subject.removeprefix("mxgw.UNS.items."))
        await sub.unsubscribe()
    assert seen and all(s.startswith("Pump_001.") for s in seen)


async def test_consume_yields_what_the_gateway_gave(
    sim: SimulatedGateway, nats_server: NatsServer
) -> None:
    refs = sim.sample_references(8)
    config = BridgeConfig(stream="C", items=tuple(refs))
    bridge = Bridge(_gateway(sim), NatsOptions(servers=(nats_server.url,)), config)
    await bridge.run(duration=2.0)
    async with nats_client([nats_server.url]) as nc:
        await wait_stored(nc, "C", 1)
        events = []
        async with asyncio.timeout(20):
            async for event in consume(nc, "C", from_start=True):
                events.append(event)
                if len(events) == bridge.stats.events:
                    break
    sequences = [e.worker_sequence for e in events]
    assert sequences == list(range(1, len(events) + 1))
    assert {e.tag for e in events} <= set(refs) and all(e.tag for e in events)
