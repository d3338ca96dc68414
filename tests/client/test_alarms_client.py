"""The central alarm feed through GatewayClient: order, query, acknowledge."""

from __future__ import annotations

import asyncio

import pytest

from mxgateway import (
    ActiveAlarm,
    AlarmConditionState,
    AlarmProviderStatus,
    AlarmSnapshotComplete,
    AlarmTransition,
    AlarmTransitionKind,
    GatewayClient,
    MxAccessError,
)
from mxgateway.sim import SimulatedGateway


def _raise_one_alarm(sim: SimulatedGateway) -> str:
    reference: str = sim.galaxy.alarm_references()[0]
    info = sim.galaxy.resolve(reference)
    assert info is not None and info.alarm_limit is not None
    sim.set_value(reference, _over(info))
    return reference


def _over(info: object) -> object:
    limit = info.alarm_limit  # type: ignore[attr-defined]
    data_type = info.data_type  # type: ignore[attr-defined]
    if data_type == 2:  # BOOLEAN alarms raise on True
        return True
    if data_type == 3:
        return int(limit) + 10
    return float(limit) + 10.0


async def test_feed_order_then_transitions(client: GatewayClient, sim: SimulatedGateway) -> None:
    reference = _raise_one_alarm(sim)
    feed = client.stream_alarms()
    items = []
    while True:
        item = await asyncio.wait_for(anext(feed), 10)
        items.append(item)
        if isinstance(item, AlarmProviderStatus):
            break
    snapshots = [i for i in items if isinstance(i, ActiveAlarm)]
    completes = [i for i in items if isinstance(i, AlarmSnapshotComplete)]
    assert len(completes) == 1 and completes[0].active_alarm_count == len(snapshots)
    assert items[len(snapshots)] == completes[0]
    assert reference in {s.alarm_full_reference for s in snapshots}
    result = await client.acknowledge_alarm(reference, comment="seen", operator="op1")
    assert result.resulting_state == AlarmConditionState.ACTIVE_ACKED
    transition = await asyncio.wait_for(anext(feed), 10)
    while not (
        isinstance(transition, AlarmTransition) and transition.alarm_full_reference == reference
    ):
        transition = await asyncio.wait_for(anext(feed), 10)
    assert transition.transition_kind == AlarmTransitionKind.ACKNOWLEDGE
    assert transition.operator_comment == "seen"
    await feed.aclose()  # type: ignore[attr-defined]


async def test_query_active_alarms_with_prefix(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    reference = _raise_one_alarm(sim)
    everything = await client.query_active_alarms()
    assert reference in {a.alarm_full_reference for a in everything}
    prefix = reference.split(".")[0]
    filtered = await client.query_active_alarms(prefix)
    assert filtered and all(a.alarm_full_reference.startswith(prefix) for a in filtered)
    assert await client.query_active_alarms("NoSuchPrefix_zz") == []


async def test_acknowledge_errors(client: GatewayClient) -> None:
    with pytest.raises(ValueError):
        await client.acknowledge_alarm("")
    with pytest.raises(MxAccessError):
        await client.acknowledge_alarm("NoSuch.Alarm")


async def test_states_say_active_and_acked_plainly(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    reference = _raise_one_alarm(sim)
    [alarm] = await client.query_active_alarms(reference)
    assert alarm.is_active and not alarm.is_acked  # ACTIVE: active and unacknowledged
    acked = await client.acknowledge_alarm(reference)
    assert acked.resulting_state == AlarmConditionState.ACTIVE_ACKED
    assert not acked.returned_to_normal
    [alarm] = await client.query_active_alarms(reference)
    assert alarm.is_active and alarm.is_acked
    # Acknowledged while active, it returns to normal once it goes inactive. A fresh one that
    # goes inactive unacknowledged stays listed until it is acknowledged.
    sim.set_value(reference, _under(sim, reference))
    await asyncio.sleep(0.05)
    assert await client.query_active_alarms(reference) == []
    sim.set_value(reference, _over(sim.attribute(reference).info))  # type: ignore[union-attr]
    sim.set_value(reference, _under(sim, reference))
    [alarm] = await client.query_active_alarms(reference)
    assert not alarm.is_active and not alarm.is_acked  # INACTIVE_UNACKED
    normal = await client.acknowledge_alarm(reference)
    assert normal.returned_to_normal  # the state it is in: none (documented)
    assert normal.resulting_state == AlarmConditionState.UNSPECIFIED


def _under(sim: SimulatedGateway, reference: str) -> object:
    info = sim.attribute(reference).info  # type: ignore[union-attr]
    if info.data_type == 2:
        return False
    if info.data_type == 3:
        return int(info.alarm_limit) - 10  # type: ignore[arg-type]
    return float(info.alarm_limit) - 10.0  # type: ignore[arg-type]
