"""The client never pings faster than the gateway allows: against a simulator with a strict ping
policy, quiet streams of every kind stay open with a keepalive it allows, and one it does not
allow gets GOAWAY (the control, so the test can fail). The default keepalive is checked against
grpc-core's default policy; the 15-minute run is ``bench/hardening/quiet_streams.py``."""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mxgateway import ClientOptions, GalaxyRepositoryClient, GatewayClient
from mxgateway._channel import channel_args
from mxgateway._options import DEFAULT_KEEPALIVE_S
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.hardening.proxy import TcpProxy

# grpc-core's default server policy: a ping without data at most every 5 minutes.
GRPC_CORE_MIN_PING_INTERVAL_S = 300.0
# gRPC clients ping no faster than every 10 s whatever they are told, so a strict server's
# interval must be above that for the control (a keepalive it does not allow) to meet GOAWAY.
STRICT_INTERVAL_S = 20.0
HOLD_S = 40.0


def test_the_default_keepalive_respects_grpc_cores_default_policy() -> None:
    assert DEFAULT_KEEPALIVE_S >= GRPC_CORE_MIN_PING_INTERVAL_S * 1.1  # room for timer jitter
    args = dict(channel_args(ClientOptions(endpoint="gw:5001")))
    assert args["grpc.keepalive_time_ms"] == DEFAULT_KEEPALIVE_S * 1000
    assert args["grpc.keepalive_permit_without_calls"] == 0  # no pings without calls
    assert args["grpc.http2.ping_timeout_ms"] == 10_000
    assert "grpc.keepalive_time_ms" not in dict(
        channel_args(ClientOptions(endpoint="gw:5001", keepalive_seconds=None))
    )


async def _ends_within(stream: AsyncIterator[Any], seconds: float) -> str | None:
    """Why ``stream`` ended within ``seconds``, or None when it was still open."""
    try:
        async with asyncio.timeout(seconds):
            async for _ in stream:
                pass
    except TimeoutError:
        return None
    except Exception as exc:
        return str(exc)
    return "the stream ended"


async def _quiet_streams(endpoint: str, keepalive: float) -> list[str | None]:
    """The four kinds of quiet stream for ``HOLD_S``: why each ended, or None if open."""
    options = ClientOptions(endpoint=endpoint, plaintext=True, keepalive_seconds=keepalive)
    async with GatewayClient(options) as client, GalaxyRepositoryClient(options) as galaxy:
        batches = await client.open_session("quiet")
        single = await client.open_session("quiet")
        return list(
            await asyncio.gather(
                _ends_within(client.stream_alarms("NoSuchArea_", resume=False), HOLD_S),
                _ends_within(galaxy.watch_deploy_events(resume=False), HOLD_S),
                _ends_within(batches.stream_events(resume=False), HOLD_S),
                _ends_within(single.stream_events(resume=False, path="single"), HOLD_S),
            )
        )


def _closest(pings: list[list[float]], start: float, end: float) -> float:
    """The shortest time between two keepalive pings of one connection (inf without two).

    Only the pings while the streams were quiet count: not the flow-control pings of their
    first seconds (answers to data, which a server does not hold against a client), nor those
    of their closing.
    """
    quiet = [[t for t in connection if start + 2.0 < t < end - 0.5] for connection in pings]
    gaps = [b - a for connection in quiet for a, b in itertools.pairwise(connection)]
    return min(gaps, default=math.inf)


@pytest.mark.once  # grpc-core's pings, not the codec
async def test_the_client_never_pings_faster_than_a_strict_gateway_allows() -> None:
    """Through a proxy that notes every PING a client sends: a client whose keepalive the
    gateway allows never pings closer than the gateway's interval, and its quiet streams stay
    open; a client told to ping faster does (the control: the observation can fail)."""
    config = SimConfig(min_ping_interval_s=STRICT_INTERVAL_S, max_ping_strikes=1)
    async with (
        SimulatedGateway(config) as strict,
        TcpProxy(strict.endpoint) as allowed_proxy,
        TcpProxy(strict.endpoint) as fast_proxy,
    ):
        start = time.monotonic()
        allowed, _ = await asyncio.gather(
            _quiet_streams(allowed_proxy.endpoint, keepalive=STRICT_INTERVAL_S * 1.25),
            _quiet_streams(fast_proxy.endpoint, keepalive=STRICT_INTERVAL_S / 2),
        )
        end = start + HOLD_S
        assert allowed == [None, None, None, None]  # open for the whole hold: no GOAWAY
        assert _closest(allowed_proxy.client_pings, start, end) >= STRICT_INTERVAL_S
        # The control: told to ping every 10 s, a client does (the observation can fail).
        assert _closest(fast_proxy.client_pings, start, end) < STRICT_INTERVAL_S
