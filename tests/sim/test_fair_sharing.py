"""Fair sharing: sessions per API key, leases capped, the slots of a vanished client reaped."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimConfig
from tests.sim.helpers import Client, wait_until

HOG = "mxgw_hog_s3cretHog"
OTHER = "mxgw_other_s3cretOther"
KEYS: dict[str, frozenset[str] | None] = {HOG: None, OTHER: None}


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


def lease_of(reply: pb.OpenSessionReply) -> int:
    (announced,) = [c for c in reply.capabilities if c.startswith("lease-seconds=")]
    return int(announced.partition("=")[2])


async def test_sessions_per_key_are_capped_and_other_keys_still_open(gateway_factory) -> None:
    async with (
        gateway_factory(api_keys=KEYS, max_sessions_per_key=3) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        stub = pb_grpc.MxAccessGatewayStub(channel)
        hogs = [Client(stub, bearer(HOG)) for _ in range(3)]
        for hog in hogs:
            await hog.open()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await Client(stub, bearer(HOG)).open()
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        details = info.value.details() or ""
        assert "per API key" in details and "(3)" in details
        assert HOG not in details and "s3cret" not in details
        await Client(stub, bearer(OTHER)).open()  # another key is not locked out
        await hogs[0].close()
        await Client(stub, bearer(HOG)).open()  # the key's slot is free again
        assert len(gw.session_ids()) == 4
        assert gw.stats()["refused"] == {"sessions_per_key": 1}


async def test_a_thousand_concurrent_opens_from_one_key(gateway_factory) -> None:
    """The hostile user's run: 1,000 concurrent OpenSession calls from one key used to take all
    64 sessions, and a second client got RESOURCE_EXHAUSTED."""
    async with (
        gateway_factory(api_keys=KEYS) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        stub = pb_grpc.MxAccessGatewayStub(channel)
        results = await asyncio.gather(
            *(Client(stub, bearer(HOG)).open() for _ in range(1000)), return_exceptions=True
        )
        opened = [r for r in results if isinstance(r, pb.OpenSessionReply)]
        refused = [r for r in results if isinstance(r, grpc.aio.AioRpcError)]
        assert len(opened) == 16  # the default per-key limit
        assert len(refused) == 984
        assert {r.code() for r in refused} == {grpc.StatusCode.RESOURCE_EXHAUSTED}
        other = await Client(stub, bearer(OTHER)).open()
        assert other.session_id
        assert gw.stats()["refused"] == {"sessions_per_key": 984}


async def test_without_auth_only_the_global_limit_applies(gateway_factory) -> None:
    async with (
        gateway_factory(max_sessions=3, max_sessions_per_key=1) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        stub = pb_grpc.MxAccessGatewayStub(channel)
        for _ in range(3):
            await Client(stub).open()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await Client(stub).open()
        assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "session limit reached (3)" in (info.value.details() or "")
        assert gw.stats()["refused"] == {"sessions": 1}


async def test_the_global_limit_still_holds_over_keys(gateway_factory) -> None:
    async with (
        gateway_factory(api_keys=KEYS, max_sessions=4, max_sessions_per_key=3) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        stub = pb_grpc.MxAccessGatewayStub(channel)
        for key in (HOG, HOG, HOG, OTHER):
            await Client(stub, bearer(key)).open()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await Client(stub, bearer(OTHER)).open()
        assert "session limit reached (4)" in (info.value.details() or "")
        assert gw.stats()["refused"] == {"sessions": 1}


@pytest.mark.parametrize("asked", [2**31 - 1, 2**32 - 1, 3601])
async def test_a_long_lease_is_granted_the_maximum_and_the_reply_says_so(
    gateway_factory, asked: int
) -> None:
    async with gateway_factory() as gw, grpc.aio.insecure_channel(gw.endpoint) as channel:
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        reply = await client.open(lease_seconds=asked)
        assert reply.protocol_status.code == pb.PROTOCOL_STATUS_CODE_OK
        assert lease_of(reply) == 3600
        message = reply.protocol_status.message
        assert f"lease_seconds {asked}" in message and "granted 3600" in message
        assert gw.registry.sessions[client.session_id].lease_seconds == 3600
        assert gw.metrics_snapshot().counters.leases_capped == 1


async def test_leases_within_the_maximum_are_granted_as_asked(gateway_factory) -> None:
    async with (
        gateway_factory(lease_seconds=60, max_lease_seconds=120) as gw,
        grpc.aio.insecure_channel(gw.endpoint) as channel,
    ):
        stub = pb_grpc.MxAccessGatewayStub(channel)
        for asked, granted in ((0, 60), (5, 5), (120, 120), (121, 120)):
            reply = await Client(stub).open(lease_seconds=asked)
            assert lease_of(reply) == granted
            assert bool(reply.protocol_status.message) == (asked > 120)
        assert gw.metrics_snapshot().counters.leases_capped == 1


async def test_a_vanished_clients_sessions_are_reaped_by_their_lease(gateway_factory) -> None:
    async with gateway_factory(api_keys=KEYS, max_sessions_per_key=3) as gw:
        async with grpc.aio.insecure_channel(gw.endpoint) as gone:
            stub = pb_grpc.MxAccessGatewayStub(gone)
            for _ in range(3):
                await Client(stub, bearer(HOG)).open(lease_seconds=1)
        # The client is gone without closing its sessions: the key is full until the leases
        # run out, then the reaper frees its slots.
        async with grpc.aio.insecure_channel(gw.endpoint) as channel:
            stub = pb_grpc.MxAccessGatewayStub(channel)
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await Client(stub, bearer(HOG)).open()
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            await wait_until(lambda: not gw.session_ids(), within=10)
            assert gw.metrics_snapshot().counters.sessions_reaped == 3
            await Client(stub, bearer(HOG)).open()


def test_config_bounds() -> None:
    with pytest.raises(ValueError, match="max_sessions_per_key"):
        SimConfig(max_sessions_per_key=0)
    with pytest.raises(ValueError, match="max_lease_seconds"):
        SimConfig(max_lease_seconds=0)
    with pytest.raises(ValueError, match="must not exceed max_lease_seconds"):
        SimConfig(lease_seconds=7200)
    with pytest.raises(ValueError, match="max_lease_seconds"):
        SimConfig(max_lease_seconds=2**32)
    assert SimConfig().max_sessions_per_key == 16 < SimConfig().max_sessions
