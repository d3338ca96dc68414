"""The alarm feed and the deploy watch under cuts, outages and gateway restarts: the consumer of
the feed ends up holding exactly the gateway's active alarms without any alarm reported active
twice; the deploy watch yields every deploy once, one that happened during an outage included;
budgets end in MxGatewayStreamLostError and authentication failures are never retried."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC

import pytest

from mxgateway import (
    ActiveAlarm,
    AlarmConditionState,
    AlarmProviderStatus,
    AlarmResyncClear,
    AlarmSnapshotComplete,
    AlarmTransition,
    DeployEvent,
    GalaxyRepositoryClient,
    GatewayClient,
    MxGatewayAuthenticationError,
    MxGatewayStreamLostError,
    MxGatewayTransportError,
)
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.hardening.conftest import assert_no_new_tasks
from tests.hardening.feeds import (
    ACKED,
    ACTIVE,
    NORMAL,
    UNACKED,
    AlarmConsumer,
    AlarmDriver,
    wait_for,
)
from tests.hardening.proxy import TcpProxy

CUTS = 10
KEY = "mxgw_feeds_Res0meSecretValue"
OTHER_KEY = "mxgw_feeds_An0therSecretValue"


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedGateway]:
    """Rate 0: alarms change only when a test drives them (raise, clear, acknowledge)."""
    async with SimulatedGateway(SimConfig(rate=0.0, galaxy_size=60)) as gateway:
        yield gateway


@pytest.fixture
async def proxy(sim: SimulatedGateway) -> AsyncIterator[TcpProxy]:
    async with TcpProxy(sim.endpoint) as tcp_proxy:
        yield tcp_proxy


async def _gateway_view(sim: SimulatedGateway) -> dict[str, int]:
    """QueryActiveAlarms from a client that no cut touches: reference → state."""
    async with await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True) as direct:
        return {
            a.alarm_full_reference: int(a.current_state) for a in await direct.query_active_alarms()
        }


async def _settled(consumer: AlarmConsumer, sim: SimulatedGateway) -> dict[str, int]:
    """Once nothing changes any more: wait until the consumer holds what the gateway lists."""
    expected = await _gateway_view(sim)
    await wait_for(lambda: consumer.states() == expected)
    return expected


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


# -- the alarm feed ----------------------------------------------------------------------------


async def test_ten_cuts_under_churn_leave_the_consumer_holding_the_gateways_alarms(
    sim: SimulatedGateway, proxy: TcpProxy
) -> None:
    before = asyncio.all_tasks()
    driver = AlarmDriver(sim)
    driver.ensure(ACTIVE, 5)
    consumer = AlarmConsumer()
    client = await GatewayClient.connect(endpoint=proxy.endpoint, plaintext=True)
    follower = asyncio.create_task(consumer.follow(client.stream_alarms(retry_budget_s=20)))
    await wait_for(lambda: consumer.snapshot_completes == 1)
    churn = asyncio.create_task(driver.churn())
    for cut in range(CUTS):
        # Each cut lands on a live feed: back after the previous cut, transitions flowing.
        mark = consumer.transitions() + 20
        await wait_for(lambda m=mark: consumer.transitions() >= m)
        assert proxy.cut() >= 1
        await wait_for(lambda n=cut + 1: len(consumer.resyncs) == n)
    mark = consumer.transitions() + 20
    await wait_for(lambda: consumer.transitions() >= mark)
    await _stop(churn)
    expected = await _settled(consumer, sim)
    await _stop(follower)
    await client.close()
    assert consumer.violations == []
    assert consumer.snapshot_completes == 1  # the first connection only
    assert len(consumer.resyncs) == CUTS  # one per cut
    assert proxy.connections >= CUTS + 1
    assert driver.operations > 200
    assert expected  # some alarms are active: the comparison is not vacuous
    for marker in consumer.resyncs:
        assert marker.reason.startswith("UNAVAILABLE"), marker
        assert marker.attempts >= 1 and marker.outage_ns > 0
    await assert_no_new_tasks(before)


async def test_each_outage_yields_exactly_the_difference(
    sim: SimulatedGateway, proxy: TcpProxy
) -> None:
    driver = AlarmDriver(sim)
    consumer = AlarmConsumer()
    troubles: list[str | None] = []
    async with await GatewayClient.connect(endpoint=proxy.endpoint, plaintext=True) as client:
        feed = client.stream_alarms(retry_budget_s=20, on_trouble=troubles.append)
        follower = asyncio.create_task(consumer.follow(feed))
        await wait_for(lambda: consumer.snapshot_completes == 1)
        for outage in range(CUTS):
            active = driver.ensure(ACTIVE, 3)
            acked = driver.ensure(ACKED, 2)
            normal = driver.with_state(NORMAL)[0]
            await _settled(consumer, sim)  # the preparation reached the consumer live
            proxy.refuse()  # cut, and the gateway is unreachable until accept()
            await wait_for(lambda: consumer_troubled(troubles))
            driver.ack(active[0])  # changed: ACTIVE → ACTIVE_ACKED
            driver.back(acked[0])  # cleared: ACTIVE_ACKED → normal
            driver.back(acked[1])  # a new occurrence: cleared, then raised again
            driver.over(acked[1])
            driver.over(normal)  # appeared
            driver.back(active[1])  # round trip: CLEAR then RETRIGGER, ACTIVE again: unchanged
            driver.over(active[1])
            driver.back(active[2])  # ACTIVE → INACTIVE_UNACKED: changed, still held
            if outage == CUTS - 1:
                sim.alarms.provider_failover()
            proxy.accept()
            await wait_for(lambda n=outage + 1: len(consumer.resyncs) == n)
            await wait_for(lambda: len(consumer.after_last_resync()) >= 6)
            marker = consumer.resyncs[-1]
            assert (marker.appeared, marker.changed, marker.cleared) == (2, 2, 2), marker
            diff = consumer.after_last_resync()
            clears = [i for i in diff[:2] if isinstance(i, AlarmResyncClear)]
            assert {c.alarm_full_reference for c in clears} == {acked[0], acked[1]}
            assert all(c.previous_state == AlarmConditionState.ACTIVE_ACKED for c in clears)
            updates = {
                i.alarm_full_reference: i.current_state
                for i in diff[2:6]
                if isinstance(i, ActiveAlarm)
            }
            assert updates == {
                active[0]: ACKED,
                acked[1]: ACTIVE,
                normal: ACTIVE,
                active[2]: UNACKED,
            }
            assert active[1] not in updates
            assert troubles[-1] is None  # healthy again
            await _settled(consumer, sim)
        await wait_for(
            lambda: any(isinstance(i, AlarmProviderStatus) for i in consumer.after_last_resync())
        )
        status = consumer.after_last_resync()[-1]
        assert isinstance(status, AlarmProviderStatus) and status.degraded
        statuses = [i for i in consumer.items if isinstance(i, AlarmProviderStatus)]
        assert (
            len(statuses) == 2
        )  # the first connection's, and the changed one: unchanged ones are not repeated
        await _stop(follower)
    assert consumer.violations == []


def consumer_troubled(troubles: list[str | None]) -> bool:
    return bool(troubles) and troubles[-1] is not None


async def test_restart_under_both_streams(sim: SimulatedGateway) -> None:
    before = asyncio.all_tasks()
    driver = AlarmDriver(sim)
    active = driver.ensure(ACTIVE, 2)
    normal = driver.with_state(NORMAL)[0]
    consumer = AlarmConsumer()
    deploys: list[DeployEvent] = []

    async def watch(galaxy: GalaxyRepositoryClient) -> None:
        async for event in galaxy.watch_deploy_events(retry_budget_s=20):
            deploys.append(event)

    async with (
        await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True) as client,
        await GalaxyRepositoryClient.connect(endpoint=sim.endpoint, plaintext=True) as galaxy,
    ):
        follower = asyncio.create_task(consumer.follow(client.stream_alarms(retry_budget_s=20)))
        watcher = asyncio.create_task(watch(galaxy))
        await wait_for(lambda: consumer.snapshot_completes == 1 and len(deploys) == 1)
        assert deploys[0].sequence == 1

        # A restart with nothing changed: an empty resync, no deploy event.
        await sim.restart()
        await wait_for(lambda: len(consumer.resyncs) == 1)
        assert (consumer.resyncs[0].appeared, consumer.resyncs[0].changed) == (0, 0)
        assert consumer.resyncs[0].cleared == 0

        # A restart with changes while the gateway is down (stop, change, start = restart).
        await sim.stop()
        driver.back(active[0])
        driver.ack(active[0])  # cleared and acknowledged: normal
        driver.over(normal)
        sim.redeploy()
        await sim.start()
        await wait_for(lambda: len(consumer.resyncs) == 2 and len(deploys) == 2)
        marker = consumer.resyncs[1]
        assert (marker.appeared, marker.changed, marker.cleared) == (1, 0, 1), marker
        assert deploys[1].time_of_last_deploy.ToNanoseconds() == sim.galaxy.deploy_time_ns
        assert deploys[1].sequence == 1  # counted from 1 again by the restarted gateway

        # Live again on both streams.
        driver.ack(active[1])
        sim.redeploy()
        await wait_for(lambda: len(deploys) == 3)
        assert deploys[2].sequence == 2
        await _settled(consumer, sim)
        await asyncio.sleep(0.2)  # nothing late or doubled
        assert len(deploys) == 3
        assert len({d.time_of_last_deploy.ToNanoseconds() for d in deploys}) == 3
        await _stop(follower)
        await _stop(watcher)
    assert consumer.violations == []
    # The restarted simulator's ticker and reaper are its own, not something the client left.
    before |= {t for t in asyncio.all_tasks() if t.get_name().startswith("mxgateway-sim-")}
    await assert_no_new_tasks(before)


# -- the deploy watch --------------------------------------------------------------------------


async def test_deploys_during_outages_are_delivered_exactly_once(
    sim: SimulatedGateway, proxy: TcpProxy
) -> None:
    deploys: list[DeployEvent] = []
    troubles: list[str | None] = []

    async def watch(galaxy: GalaxyRepositoryClient) -> None:
        feed = galaxy.watch_deploy_events(retry_budget_s=20, on_trouble=troubles.append)
        async for event in feed:
            deploys.append(event)

    async with await GalaxyRepositoryClient.connect(
        endpoint=proxy.endpoint, plaintext=True
    ) as galaxy:
        watcher = asyncio.create_task(watch(galaxy))
        await wait_for(lambda: len(deploys) == 1)
        expected = [sim.galaxy.deploy_time_ns]
        for outage in range(CUTS):
            proxy.refuse()
            await wait_for(lambda: consumer_troubled(troubles))
            if outage % 2 == 0:
                sim.redeploy()  # during the outage
                if outage == 4:
                    sim.redeploy()  # two in one outage: the current state arrives, once
                expected.append(sim.galaxy.deploy_time_ns)
            proxy.accept()
            await wait_for(lambda: troubles[-1] is None)  # back (GetLastDeployTime answered)
            await wait_for(lambda: len(deploys) == len(expected))
        sim.redeploy()  # live
        expected.append(sim.galaxy.deploy_time_ns)
        await wait_for(lambda: len(deploys) == len(expected))
        await asyncio.sleep(0.2)  # nothing late or doubled
        await _stop(watcher)
    assert [d.time_of_last_deploy.ToNanoseconds() for d in deploys] == expected
    assert proxy.cuts >= CUTS


async def test_a_watch_started_from_a_known_deploy_resumes_from_it(
    sim: SimulatedGateway, proxy: TcpProxy
) -> None:
    async with await GalaxyRepositoryClient.connect(
        endpoint=proxy.endpoint, plaintext=True
    ) as galaxy:
        known = await galaxy.get_last_deploy_time()
        assert known is not None and known.tzinfo == UTC
        deploys: list[DeployEvent] = []
        troubles: list[str | None] = []

        async def watch() -> None:
            feed = galaxy.watch_deploy_events(
                last_seen_deploy_time=known, retry_budget_s=20, on_trouble=troubles.append
            )
            async for event in feed:
                deploys.append(event)

        watcher = asyncio.create_task(watch())
        await wait_for(lambda: sim.galaxy.watcher_count == 1)
        proxy.cut()
        await wait_for(lambda: any(troubles) and troubles[-1] is None)  # lost, then back
        assert deploys == []  # the bootstrap stays suppressed after the reconnect
        sim.redeploy()
        await wait_for(lambda: len(deploys) == 1)
        await _stop(watcher)


# -- budgets and authentication ----------------------------------------------------------------


async def test_a_gateway_gone_for_good_ends_both_streams_after_their_budget() -> None:
    before = asyncio.all_tasks()
    sim = SimulatedGateway(SimConfig(rate=0.0, galaxy_size=60))
    await sim.start()
    try:
        async with (
            await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True) as client,
            await GalaxyRepositoryClient.connect(endpoint=sim.endpoint, plaintext=True) as galaxy,
        ):
            consumer = AlarmConsumer()
            deploys: list[DeployEvent] = []

            async def watch() -> None:
                async for event in galaxy.watch_deploy_events(retry_budget_s=1.0):
                    deploys.append(event)

            tasks = [
                asyncio.create_task(consumer.follow(client.stream_alarms(retry_budget_s=1.0))),
                asyncio.create_task(watch()),
            ]
            await wait_for(lambda: consumer.snapshot_completes == 1 and len(deploys) == 1)
            await sim.stop()  # for good
            results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
            for result, what in zip(results, ("alarm feed", "deploy watch"), strict=True):
                assert isinstance(result, MxGatewayStreamLostError), repr(result)
                assert f"{what} lost" in str(result) and "within 1 s" in str(result)
    finally:
        await sim.stop()
    await assert_no_new_tasks(before)


async def test_a_key_revoked_by_a_restart_fails_at_once_without_retrying() -> None:
    config = SimConfig(rate=0.0, galaxy_size=60, api_keys={KEY: None, OTHER_KEY: None})
    async with (
        SimulatedGateway(config) as sim,
        await GatewayClient.connect(endpoint=sim.endpoint, api_key=KEY, plaintext=True) as client,
        await GalaxyRepositoryClient.connect(
            endpoint=sim.endpoint, api_key=KEY, plaintext=True
        ) as galaxy,
    ):
        consumer = AlarmConsumer()
        deploys: list[DeployEvent] = []
        troubles: list[str | None] = []

        async def watch() -> None:
            feed = galaxy.watch_deploy_events(retry_budget_s=600, on_trouble=troubles.append)
            async for event in feed:
                deploys.append(event)

        feed = client.stream_alarms(retry_budget_s=600, on_trouble=troubles.append)
        tasks = [asyncio.create_task(consumer.follow(feed)), asyncio.create_task(watch())]
        await wait_for(lambda: consumer.snapshot_completes == 1 and len(deploys) == 1)
        sim.config = dataclasses.replace(config, api_keys={OTHER_KEY: None})
        await sim.restart()  # the gateway comes back without this key
        # A 600 s budget: only an error raised at once ends these within the guard.
        results = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        for result in results:
            assert isinstance(result, MxGatewayAuthenticationError), repr(result)
            assert result.grpc_code == "UNAUTHENTICATED"
        # Each stream reconnected after the restart; the refusal itself was never retried.
        reasons = [t for t in troubles if t is not None]
        assert len(reasons) >= 2, troubles
        assert not any("UNAUTHENTICATED" in t for t in reasons), troubles


async def test_the_first_connection_is_unchanged_and_resume_false_ends_at_a_cut(
    sim: SimulatedGateway, proxy: TcpProxy
) -> None:
    AlarmDriver(sim).ensure(ACTIVE, 3)
    async with await GatewayClient.connect(endpoint=proxy.endpoint, plaintext=True) as client:
        items = []
        feed = client.stream_alarms(resume=False)
        async for item in feed:
            items.append(item)
            if isinstance(item, AlarmProviderStatus):
                break
        kinds = [type(i) for i in items]
        count = len(await client.query_active_alarms())
        assert kinds == [ActiveAlarm] * count + [AlarmSnapshotComplete, AlarmProviderStatus]
        proxy.cut()
        with pytest.raises(MxGatewayTransportError):
            async for item in feed:
                assert isinstance(item, AlarmTransition)
