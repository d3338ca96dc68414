"""Server statistics (``stats()``) and the gRPC server's ping policy knobs."""

from __future__ import annotations

import asyncio
import math

import grpc
import pytest
from grpc_health.v1 import health_pb2

from mxgateway.sim import SimConfig, SimulatedGateway
from mxgateway.sim._feed import BATCHES_PATH, EVENTS_PATH
from tests.sim.helpers import Client, channel_options, health_stub, take

# ----- stats -----


async def test_stats_count_messages_and_events_per_rpc(
    gw: SimulatedGateway, client: Client
) -> None:
    empty = gw.stats()
    assert empty["rpcs"] == {}
    assert 0 < empty["started_cpu_seconds"] <= empty["cpu_seconds"]
    gw.emit_burst(client.session_id, 7)
    call = client.stream()
    assert len(await take(call, 7)) == 7
    call.cancel()
    await asyncio.sleep(0)
    stats = gw.stats()
    assert stats["rpcs"] == {EVENTS_PATH: {"events": 7, "messages": 7}}
    other = Client(client.stub)
    await other.open()
    gw.emit_burst(other.session_id, 5)
    batches = other.stream_batches(max_batch=2)
    assert [len(b.events) for b in await take(batches, 3)] == [2, 2, 1]
    batches.cancel()
    stats = gw.stats()
    assert stats["rpcs"][BATCHES_PATH] == {"events": 5, "messages": 3}
    assert stats["cpu_seconds"] >= empty["cpu_seconds"]


async def test_stats_survive_a_restart(gw: SimulatedGateway, client: Client) -> None:
    gw.emit_burst(client.session_id, 2)
    call = client.stream()
    await take(call, 2)
    call.cancel()
    started = gw.stats()["started_cpu_seconds"]
    await gw.restart()
    stats = gw.stats()
    assert stats["rpcs"][EVENTS_PATH]["messages"] == 2
    assert stats["started_cpu_seconds"] == started


# ----- ping policy -----


def test_ping_options_reach_the_server_options() -> None:
    options = dict(SimConfig(min_ping_interval_s=1.5, max_ping_strikes=3).grpc_server_options())
    assert options["grpc.http2.min_ping_interval_without_data_ms"] == 1500
    assert options["grpc.http2.max_ping_strikes"] == 3
    defaults = dict(SimConfig().grpc_server_options())  # grpc-core's own defaults stay
    assert "grpc.http2.min_ping_interval_without_data_ms" not in defaults
    assert "grpc.http2.max_ping_strikes" not in defaults


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"min_ping_interval_s": -1.0}, "min_ping_interval_s"),
        ({"min_ping_interval_s": math.nan}, "min_ping_interval_s"),
        ({"min_ping_interval_s": 1e9}, "min_ping_interval_s"),
        ({"max_ping_strikes": -1}, "max_ping_strikes"),
        ({"max_ping_strikes": 1.5}, "max_ping_strikes"),
        ({"max_ping_strikes": 10_000}, "max_ping_strikes"),
    ],
)
def test_ping_knobs_are_validated(overrides: dict[str, object], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        SimConfig(**overrides)  # type: ignore[arg-type]


async def _watch_survives(gw: SimulatedGateway, seconds: float) -> bool:
    # A client that pings every 100 ms on a quiet stream (a health Watch sends nothing after
    # its first message): a strict server ends the connection with GOAWAY (too_many_pings).
    options = [
        ("grpc.keepalive_time_ms", 100),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        *channel_options(),
    ]
    async with grpc.aio.insecure_channel(gw.endpoint, options=options) as channel:
        watch = health_stub(channel).Watch(health_pb2.HealthCheckRequest())
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        try:
            await asyncio.wait_for(watch.read(), seconds)
        except TimeoutError:
            watch.cancel()
            return True
        except grpc.aio.AioRpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            return False
        raise AssertionError("the watch got an unexpected message")


async def test_strict_ping_policy_ends_a_fast_pinging_client(gateway_factory) -> None:
    async with gateway_factory(min_ping_interval_s=60.0, max_ping_strikes=1) as gw:
        assert not await _watch_survives(gw, 10.0)


async def test_permissive_ping_policy_keeps_it(gateway_factory) -> None:
    async with gateway_factory(min_ping_interval_s=0.0, max_ping_strikes=0) as gw:
        assert await _watch_survives(gw, 1.5)


async def test_default_ping_policy_is_grpc_cores(gateway_factory) -> None:
    # 5 minutes without data, 2 strikes: the same client is ended (so the permissive case
    # above holds because its options reached the server).
    async with gateway_factory() as gw:
        assert not await _watch_survives(gw, 10.0)
