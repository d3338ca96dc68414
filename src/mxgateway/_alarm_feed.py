"""Generated alarm messages (AlarmFeedMessage, ActiveAlarmSnapshot, ...) to typed structs."""

from __future__ import annotations

from typing import Any

from mxgateway._pbconvert import alarm_transition_from_pb, status_from_pb, value_from_pb
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.types import (
    AcknowledgeResult,
    ActiveAlarm,
    AlarmConditionState,
    AlarmProviderMode,
    AlarmProviderStatus,
    AlarmSnapshotComplete,
    AlarmTransition,
)

__all__ = [
    "AlarmFeedItem",
    "acknowledge_result_from_pb",
    "active_alarm_from_pb",
    "feed_item_from_pb",
]

AlarmFeedItem = ActiveAlarm | AlarmSnapshotComplete | AlarmTransition | AlarmProviderStatus
"""One item of the central alarm feed."""


def _enum(enum_type: Any, value: int) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        return value


def _ts(message: Any, field: str) -> int | None:
    if not message.HasField(field):
        return None
    ts = getattr(message, field)
    return int(ts.seconds) * 1_000_000_000 + int(ts.nanos)


def active_alarm_from_pb(snapshot: pb.ActiveAlarmSnapshot) -> ActiveAlarm:
    """An ActiveAlarmSnapshot message as an ActiveAlarm struct."""
    return ActiveAlarm(
        alarm_full_reference=snapshot.alarm_full_reference,
        source_object_reference=snapshot.source_object_reference,
        alarm_type_name=snapshot.alarm_type_name,
        severity=snapshot.severity,
        current_state=_enum(AlarmConditionState, snapshot.current_state),
        category=snapshot.category,
        description=snapshot.description,
        original_raise_timestamp_ns=_ts(snapshot, "original_raise_timestamp"),
        last_transition_timestamp_ns=_ts(snapshot, "last_transition_timestamp"),
        operator_user=snapshot.operator_user,
        operator_comment=snapshot.operator_comment,
        current_value=(
            value_from_pb(snapshot.current_value) if snapshot.HasField("current_value") else None
        ),
        limit_value=(
            value_from_pb(snapshot.limit_value) if snapshot.HasField("limit_value") else None
        ),
        degraded=snapshot.degraded,
        area=snapshot.area,
    )


def feed_item_from_pb(message: pb.AlarmFeedMessage) -> AlarmFeedItem | None:
    """One AlarmFeedMessage as its typed item (None for an empty message)."""
    arm = message.WhichOneof("payload")
    if arm == "active_alarm":
        return active_alarm_from_pb(message.active_alarm)
    if arm == "snapshot_complete":
        return AlarmSnapshotComplete(message.snapshot_complete.active_alarm_count)
    if arm == "transition":
        return alarm_transition_from_pb(message.transition)
    if arm == "provider_status":
        status = message.provider_status
        return AlarmProviderStatus(
            mode=_enum(AlarmProviderMode, status.mode),
            degraded=status.degraded,
            reason=status.reason,
            since_ns=_ts(status, "since"),
        )
    return None


def acknowledge_result_from_pb(reply: pb.AcknowledgeAlarmReply) -> AcknowledgeResult:
    """An AcknowledgeAlarmReply as an AcknowledgeResult struct."""
    return AcknowledgeResult(
        alarm_full_reference=reply.alarm_full_reference,
        resulting_state=_enum(AlarmConditionState, reply.resulting_state),
        hresult=reply.hresult,
        statuses=tuple(status_from_pb(s) for s in reply.statuses),
    )
