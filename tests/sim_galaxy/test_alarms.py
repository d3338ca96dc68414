"""The alarm feed, QueryActiveAlarms and AcknowledgeAlarm over loopback gRPC.

Alarms are driven through AlarmManager.observe(), as the simulator's value generators do.
"""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest
from grpc import aio

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim._alarms import AlarmManager
from mxgateway.sim._galaxy import Galaxy
from tests.sim_galaxy._harness import Sim, eventually, read, serve

S = pb.AlarmConditionState
K = pb.AlarmTransitionKind
NORMAL = S.ALARM_CONDITION_STATE_UNSPECIFIED
ACTIVE = S.ALARM_CONDITION_STATE_ACTIVE
ACKED = S.ALARM_CONDITION_STATE_ACTIVE_ACKED
UNACKED = S.ALARM_CONDITION_STATE_INACTIVE_UNACKED


# The simulated Galaxy and alarm model: no event decoding, nothing loop-specific.
pytestmark = pytest.mark.once


def _analog(galaxy: Galaxy, n: int = 1) -> list[tuple[str, float]]:
    """``n`` analog alarm references on distinct objects, with their limits."""
    out: list[tuple[str, float]] = []
    tags: set[str] = set()
    for ref in galaxy.alarm_references():
        info = galaxy.resolve(ref)
        assert info is not None and info.alarm_limit is not None
        if info.data_type != pb.MX_DATA_TYPE_BOOLEAN and info.tag_name not in tags:
            out.append((ref, info.alarm_limit))
            tags.add(info.tag_name)
            if len(out) == n:
                return out
    raise AssertionError("not enough analog alarms")


def _now() -> int:
    return time.time_ns()


async def _feed(sim: Sim, prefix: str = "") -> tuple[Any, list[pb.AlarmFeedMessage]]:
    """Open StreamAlarms and read up to and including the first provider_status."""
    call = sim.gateway.StreamAlarms(pb.StreamAlarmsRequest(alarm_filter_prefix=prefix))
    head: list[pb.AlarmFeedMessage] = []
    while True:
        message = await read(call)
        head.append(message)
        if message.WhichOneof("payload") == "provider_status":
            return call, head


async def _query(sim: Sim, prefix: str = "") -> list[pb.ActiveAlarmSnapshot]:
    request = pb.QueryActiveAlarmsRequest(session_id="ignored", alarm_filter_prefix=prefix)
    return [snapshot async for snapshot in sim.gateway.QueryActiveAlarms(request)]


async def _ack(sim: Sim, reference: str, **fields: Any) -> pb.AcknowledgeAlarmReply:
    request = pb.AcknowledgeAlarmRequest(alarm_full_reference=reference, **fields)
    reply: pb.AcknowledgeAlarmReply = await sim.gateway.AcknowledgeAlarm(request)
    return reply


async def test_raise_acknowledge_clear(sim: Sim) -> None:
    ((ref, limit),) = _analog(sim.galaxy)
    call, head = await _feed(sim)
    assert [m.WhichOneof("payload") for m in head] == ["snapshot_complete", "provider_status"]
    assert head[0].snapshot_complete.active_alarm_count == 0
    status = head[1].provider_status
    assert status.mode == pb.ALARM_PROVIDER_MODE_ALARMMGR and not status.degraded

    sim.alarms.observe(ref, limit - 1.0, _now())  # below the limit: nothing happens
    raised_at = _now()
    sim.alarms.observe(ref, limit + 1.0, raised_at)
    sim.alarms.observe(ref, limit + 2.0, _now())  # still above: no second RAISE
    raised = (await read(call)).transition
    assert raised.transition_kind == K.ALARM_TRANSITION_KIND_RAISE
    assert raised.alarm_full_reference == ref and raised.current_state == ACTIVE
    assert raised.source_object_reference == ref.split(".")[0]
    assert raised.original_raise_timestamp.ToNanoseconds() == raised_at
    assert raised.transition_timestamp.ToNanoseconds() == raised_at
    assert raised.current_value.double_value == pytest.approx(limit + 1.0, abs=1e-3) or (
        raised.current_value.float_value == pytest.approx(limit + 1.0, abs=1e-3)
    )
    assert raised.limit_value.WhichOneof("kind") in ("double_value", "float_value")
    assert 1 <= raised.severity <= 999 and raised.alarm_type_name == "HI"
    assert raised.category and raised.description and not raised.degraded

    (active,) = await _query(sim)
    assert active.alarm_full_reference == ref and active.current_state == ACTIVE
    assert active.area == sim.galaxy.area_tag_name(ref.split(".")[0]) != ""
    assert active.severity == raised.severity

    reply = await _ack(sim, ref, operator_comment="seen", operator_user="alice")
    assert reply.protocol_status.code == pb.PROTOCOL_STATUS_CODE_OK
    assert reply.resulting_state == ACKED and reply.alarm_full_reference == ref
    assert reply.hresult == 0 and reply.statuses[0].success == 1
    acked = (await read(call)).transition
    assert acked.transition_kind == K.ALARM_TRANSITION_KIND_ACKNOWLEDGE
    assert (acked.current_state, acked.operator_user, acked.operator_comment) == (
        ACKED,
        "alice",
        "seen",
    )
    (snapshot,) = await _query(sim)
    assert snapshot.current_state == ACKED and snapshot.operator_user == "alice"

    again = await _ack(sim, ref)
    assert again.protocol_status.code == pb.PROTOCOL_STATUS_CODE_OK
    assert again.resulting_state == ACKED
    assert again.statuses[0].category == pb.MX_STATUS_CATEGORY_WARNING

    sim.alarms.observe(ref, limit - 5.0, _now())
    cleared = (await read(call)).transition
    assert cleared.transition_kind == K.ALARM_TRANSITION_KIND_CLEAR
    assert cleared.current_state == NORMAL
    assert await _query(sim) == []
    call.cancel()


async def test_clear_unacked_retrigger_then_acknowledge(sim: Sim) -> None:
    ((ref, limit),) = _analog(sim.galaxy)
    call, _ = await _feed(sim)
    alarms = sim.alarms
    alarms.observe(ref, limit + 1, _now())
    alarms.observe(ref, limit - 1, _now())
    alarms.observe(ref, limit + 1, _now())
    alarms.observe(ref, limit - 1, _now())
    kinds = [(await read(call)).transition for _ in range(4)]
    assert [(t.transition_kind, t.current_state) for t in kinds] == [
        (K.ALARM_TRANSITION_KIND_RAISE, ACTIVE),
        (K.ALARM_TRANSITION_KIND_CLEAR, UNACKED),
        (K.ALARM_TRANSITION_KIND_RETRIGGER, ACTIVE),
        (K.ALARM_TRANSITION_KIND_CLEAR, UNACKED),
    ]
    assert len({t.original_raise_timestamp.ToNanoseconds() for t in kinds}) == 1
    (snapshot,) = await _query(sim)
    assert snapshot.current_state == UNACKED  # returned to normal, still unacknowledged
    reply = await _ack(sim, ref, operator_user="bob")
    assert reply.resulting_state == NORMAL
    acked = (await read(call)).transition
    assert acked.transition_kind == K.ALARM_TRANSITION_KIND_ACKNOWLEDGE
    assert acked.current_state == NORMAL
    assert await _query(sim) == []
    # Raised again later: a fresh RAISE.
    alarms.observe(ref, limit + 3, _now())
    assert (await read(call)).transition.transition_kind == K.ALARM_TRANSITION_KIND_RAISE
    call.cancel()


async def test_feed_order_snapshot_complete_status_then_live(sim: Sim) -> None:
    alarms = sim.alarms
    refs = _analog(sim.galaxy, 4)
    for ref, limit in refs:
        alarms.observe(ref, limit + 1, _now())
    alarms.acknowledge(refs[1][0], "ok", "carol")
    alarms.observe(refs[2][0], refs[2][1] - 1, _now())  # INACTIVE_UNACKED: still listed
    alarms.acknowledge(refs[3][0], "", "")
    alarms.observe(refs[3][0], refs[3][1] - 1, _now())  # acked and back: gone
    call, head = await _feed(sim)
    kinds = [m.WhichOneof("payload") for m in head]
    assert kinds == ["active_alarm"] * 3 + ["snapshot_complete", "provider_status"]
    snapshots = [m.active_alarm for m in head[:3]]
    assert [s.alarm_full_reference for s in snapshots] == [r for r, _ in refs[:3]]
    assert [s.current_state for s in snapshots] == [ACTIVE, ACKED, UNACKED]
    assert snapshots[1].operator_user == "carol" and snapshots[1].operator_comment == "ok"
    assert head[3].snapshot_complete.active_alarm_count == 3
    alarms.observe(refs[3][0], refs[3][1] + 1, _now())
    live = await read(call)
    assert live.WhichOneof("payload") == "transition"
    assert live.transition.alarm_full_reference == refs[3][0]
    call.cancel()


async def test_prefix_filters(sim: Sim) -> None:
    alarms = sim.alarms
    (a, a_limit), (b, b_limit) = _analog(sim.galaxy, 2)
    alarms.observe(a, a_limit + 1, _now())
    alarms.observe(b, b_limit + 1, _now())
    tag_a = a.split(".")[0]
    assert [s.alarm_full_reference for s in await _query(sim, tag_a + ".")] == [a]
    assert [s.alarm_full_reference for s in await _query(sim, tag_a.upper())] == [a]
    assert len(await _query(sim)) == 2
    assert await _query(sim, "NoSuchTag") == []

    call, head = await _feed(sim, prefix=tag_a + ".")
    assert [m.active_alarm.alarm_full_reference for m in head[:-2]] == [a]
    assert head[-2].snapshot_complete.active_alarm_count == 1
    alarms.acknowledge(b, "", "")  # another tag: filtered out of this feed
    alarms.acknowledge(a, "", "")
    message = await read(call)
    assert message.transition.alarm_full_reference == a
    assert message.transition.transition_kind == K.ALARM_TRANSITION_KIND_ACKNOWLEDGE
    call.cancel()


async def test_boolean_alarm(sim: Sim) -> None:
    ref = next(
        r
        for r in sim.galaxy.alarm_references()
        if (info := sim.galaxy.resolve(r)) and info.data_type == pb.MX_DATA_TYPE_BOOLEAN
    )
    call, _ = await _feed(sim)
    sim.alarms.observe(ref, False, _now())
    sim.alarms.observe(ref, True, _now())
    raised = (await read(call)).transition
    assert raised.alarm_type_name == "DSC" and raised.current_value.bool_value is True
    assert raised.limit_value.bool_value is True
    sim.alarms.observe(ref, False, _now())
    assert (await read(call)).transition.transition_kind == K.ALARM_TRANSITION_KIND_CLEAR
    call.cancel()


async def test_observe_ignores_what_is_not_an_alarm_value(sim: Sim) -> None:
    alarms = sim.alarms
    ((ref, limit),) = _analog(sim.galaxy)
    alarms.observe("Pump_001.SpeedSP", 1e9, _now())  # not an alarm attribute
    alarms.observe("Nope_001.X", 1e9, _now())
    alarms.observe(ref, "high", _now())  # not a number
    alarms.observe(ref, float("nan"), _now())
    assert await _query(sim) == []
    alarms.observe(ref.lower(), limit + 1, _now())  # references are case-insensitive
    (snapshot,) = await _query(sim)
    assert snapshot.alarm_full_reference == ref


async def test_acknowledge_errors(sim: Sim) -> None:
    empty = await _ack(sim, "")
    assert empty.protocol_status.code == pb.PROTOCOL_STATUS_CODE_INVALID_REQUEST
    blank = await _ack(sim, "   ")
    assert blank.protocol_status.code == pb.PROTOCOL_STATUS_CODE_INVALID_REQUEST
    for reference in ("Nope_001.Level", "Pump_001.SpeedSP", "Pump_001.Speed.InAlarm"):
        reply = await _ack(sim, reference, operator_user="x")
        assert reply.protocol_status.code == pb.PROTOCOL_STATUS_CODE_MXACCESS_FAILURE, reference
        assert reply.hresult < 0
        (status,) = reply.statuses
        assert status.success == 0
        assert status.category == pb.MX_STATUS_CATEGORY_CONFIGURATION_ERROR
        assert status.raw_category == 4 and status.diagnostic_text
    ((ref, _),) = _analog(sim.galaxy)
    idle = await _ack(sim, ref)  # a known alarm that is not active: nothing to acknowledge
    assert idle.protocol_status.code == pb.PROTOCOL_STATUS_CODE_OK
    assert idle.resulting_state == NORMAL
    assert idle.statuses[0].success == 1
    assert idle.statuses[0].category == pb.MX_STATUS_CATEGORY_WARNING


async def test_provider_failover(sim: Sim) -> None:
    ((ref, limit),) = _analog(sim.galaxy)
    call, head = await _feed(sim)
    assert not head[-1].provider_status.degraded
    sim.alarms.provider_failover()
    status = (await read(call)).provider_status
    assert status.degraded and status.mode == pb.ALARM_PROVIDER_MODE_ALARMMGR and status.reason
    assert status.since.ToNanoseconds() > head[-1].provider_status.since.ToNanoseconds()
    sim.alarms.observe(ref, limit + 1, _now())
    assert (await read(call)).transition.degraded
    (snapshot,) = await _query(sim)
    assert snapshot.degraded
    late, late_head = await _feed(sim)
    assert late_head[-1].provider_status.degraded
    call.cancel()
    late.cancel()


async def test_each_subscriber_gets_every_transition(sim: Sim) -> None:
    ((ref, limit),) = _analog(sim.galaxy)
    calls = [(await _feed(sim))[0] for _ in range(3)]
    assert sim.alarms.subscriber_count == 3
    sim.alarms.observe(ref, limit + 1, _now())
    for call in calls:
        assert (await read(call)).transition.transition_kind == K.ALARM_TRANSITION_KIND_RAISE
        call.cancel()
    await eventually(lambda: sim.alarms.subscriber_count == 0)


async def test_cancelled_feed_closes_cleanly(sim: Sim) -> None:
    call, _ = await _feed(sim)
    assert sim.alarms.subscriber_count == 1
    call.cancel()
    await eventually(lambda: sim.alarms.subscriber_count == 0)
    assert await call.code() == grpc.StatusCode.CANCELLED
    ((ref, limit),) = _analog(sim.galaxy)
    sim.alarms.observe(ref, limit + 1, _now())  # no subscriber left: nothing breaks


async def test_a_slow_feed_overflows_with_resource_exhausted(galaxy: Galaxy) -> None:
    async with serve(galaxy, queue_capacity=4) as sim:
        ((ref, limit),) = _analog(galaxy)
        call, _ = await _feed(sim)
        for _ in range(5):  # ten transitions at once, before the stream can take any
            sim.alarms.observe(ref, limit + 1, _now())
            sim.alarms.observe(ref, limit - 1, _now())
        with pytest.raises(aio.AioRpcError) as caught:
            while True:
                await read(call)
        assert caught.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert caught.value.details() == "EventQueueOverflow"
        await eventually(lambda: sim.alarms.subscriber_count == 0)


def test_sub_attribute_values_and_listeners(galaxy: Galaxy) -> None:
    alarms = AlarmManager(galaxy)
    seen: list[pb.OnAlarmTransitionEvent] = []
    alarms.add_transition_listener(seen.append)
    ((ref, limit),) = _analog(galaxy)
    assert alarms.sub_attribute_value(ref + ".InAlarm") is False
    assert alarms.sub_attribute_value(ref + ".Acked") is True
    priority = alarms.sub_attribute_value(ref + ".Priority")
    assert isinstance(priority, int) and 1 <= priority <= 999
    alarms.observe(ref, limit + 1, 1)
    assert alarms.sub_attribute_value(ref + ".InAlarm") is True
    assert alarms.sub_attribute_value(ref + ".Acked") is False
    alarms.acknowledge(ref, "checked", "dave")
    assert alarms.sub_attribute_value(ref + ".ackmsg") == "checked"
    assert alarms.sub_attribute_value(ref + ".Acked") is True
    assert alarms.sub_attribute_value(ref + ".Nope") is None
    assert alarms.sub_attribute_value("Pump_001.SpeedSP.InAlarm") is None
    assert alarms.sub_attribute_value("nodot") is None
    assert [e.transition_kind for e in seen] == [
        K.ALARM_TRANSITION_KIND_RAISE,
        K.ALARM_TRANSITION_KIND_ACKNOWLEDGE,
    ]


def test_alarm_metadata_is_deterministic() -> None:
    def snapshot() -> list[bytes]:
        galaxy = Galaxy(300, 9)
        alarms = AlarmManager(galaxy)
        for ref in galaxy.alarm_references()[:20]:
            alarms.observe(ref, 1e6, 5)
        return [s.SerializeToString(deterministic=True) for s in alarms.active_alarms()]

    first = snapshot()
    assert len(first) == 20 and first == snapshot()


async def test_many_alarms_stream_in_order(sim: Sim) -> None:
    refs = sim.galaxy.alarm_references()
    for ref in refs:
        info = sim.galaxy.resolve(ref)
        assert info is not None
        sim.alarms.observe(ref, True if info.data_type == pb.MX_DATA_TYPE_BOOLEAN else 1e6, 7)
    call, head = await _feed(sim)
    assert [m.active_alarm.alarm_full_reference for m in head[:-2]] == refs
    assert head[-2].snapshot_complete.active_alarm_count == len(refs)
    call.cancel()


async def test_close_ends_feeds_cleanly(sim: Sim) -> None:
    ((ref, limit),) = _analog(sim.galaxy)
    call, _ = await _feed(sim)
    sim.alarms.observe(ref, limit + 1, _now())
    sim.alarms.close()
    # What was queued before the close is still delivered, then the stream ends with OK.
    assert (await read(call)).transition.transition_kind == K.ALARM_TRANSITION_KIND_RAISE
    assert await call.read() is aio.EOF
    assert await call.code() == grpc.StatusCode.OK
    await eventually(lambda: sim.alarms.subscriber_count == 0)
    late, head = await _feed(sim)  # a feed opened after close: snapshot, then the end
    assert head[0].active_alarm.alarm_full_reference == ref
    assert await late.read() is aio.EOF
    assert await late.code() == grpc.StatusCode.OK
