"""``consume_columns``: a bridge's stream read back as EventColumns, row for row what
``consume`` gives, by either codec; markers in ``others``; acknowledged like ``consume``."""

from __future__ import annotations

import asyncio

import pytest

from mxgateway import ClientOptions, _codec
from mxgateway.bridge import Bridge, BridgeConfig, NatsOptions, consume_columns
from mxgateway.columns import EventColumns
from mxgateway.sim import SimulatedGateway
from tests.bridge._check import read_columns, read_events
from tests.bridge._servers import NatsServer
from tests.bridge.conftest import nats_client
from tests.conftest import CODEC_MODULES

pytest.importorskip("numpy")


@pytest.mark.parametrize("layout", ["batch", "items"])
async def test_columns_are_the_events_row_for_row(
    sim: SimulatedGateway, nats_server: NatsServer, layout: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs = sim.sample_references(12)
    config = BridgeConfig(stream="COL", items=tuple(refs), layout=layout)  # type: ignore[arg-type]
    bridge = Bridge(
        ClientOptions(endpoint=sim.endpoint, plaintext=True),
        NatsOptions(servers=(nats_server.url,)),
        config,
    )
    await bridge.run(duration=2.0)
    total = bridge.stats.events
    assert total > 50
    async with nats_client([nats_server.url]) as nc:
        for codec in CODEC_MODULES:  # the columns decoder of each implementation
            monkeypatch.setattr(_codec, "impl", codec)
            events = await read_events(nc, "COL", total)
            units = await read_columns(nc, "COL", total, batch=40)
            rows = [event for unit in units for event in unit.to_events()]
            assert rows == events, codec.__name__
            assert [e.worker_sequence for e in rows] == list(range(1, total + 1))
            assert {e.tag for e in rows} <= set(refs) and all(e.tag for e in rows)
            tags = set().union(*(set(unit.tag_values().tolist()) for unit in units))
            assert tags == {e.tag for e in rows}
            # A fetch is decoded together: far fewer EventColumns than messages.
            if layout == "items":
                assert len(units) <= total // 10


async def test_durable_columns_are_acknowledged(
    sim: SimulatedGateway, nats_server: NatsServer
) -> None:
    """What a durable reader took is acknowledged once it asks for what follows: the same
    name gets nothing again."""
    config = BridgeConfig(stream="ACK", items=tuple(sim.sample_references(6)))
    bridge = Bridge(
        ClientOptions(endpoint=sim.endpoint, plaintext=True),
        NatsOptions(servers=(nats_server.url,)),
        config,
    )
    await bridge.run(duration=1.5)
    total = bridge.stats.events
    async with nats_client([nats_server.url]) as nc:
        rows = 0
        with pytest.raises(TimeoutError):  # reading on past the last: it is acknowledged
            async with asyncio.timeout(6):
                async for unit in consume_columns(
                    nc, "ACK", durable="hist", from_start=True, batch=8
                ):
                    rows += len(unit)
        assert rows == total
        info = await nc.jetstream().consumer_info("ACK", "hist")
        assert info.num_ack_pending == 0 and info.num_pending == 0
        again: list[EventColumns] = []
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1.5):
                async for unit in consume_columns(nc, "ACK", durable="hist"):
                    again.append(unit)
        assert again == []
