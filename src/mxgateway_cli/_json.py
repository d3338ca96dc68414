"""Protobuf JSON for everything the CLI prints.

Generated messages go through ``google.protobuf.json_format.MessageToDict`` with camelCase
field names and enum value names, and with every field printed (a script can rely on
``wasSuccessful`` being present even when false). The library's msgspec structs are first
turned back into their protobuf messages (events through the codec's own ``encode_event``),
so a struct and the message it came from print the same JSON: one shape everywhere.
"""

from __future__ import annotations

import enum
from typing import Any, cast

import msgspec
from google.protobuf.duration_pb2 import Duration
from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp

from mxgateway import (
    AcknowledgeResult,
    ActiveAlarm,
    AlarmFeedItem,
    AlarmFeedResync,
    AlarmProviderStatus,
    AlarmResyncClear,
    AlarmSnapshotComplete,
    AlarmTransition,
    MxDataType,
    MxEvent,
    MxValue,
    encode_event,
    to_mx_value,
)
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.types import EMPTY_EVENT

__all__ = [
    "acknowledge_dict",
    "active_alarm_dict",
    "alarm_feed_dict",
    "event_dict",
    "message_dict",
    "value_dict",
]

_NS = 1_000_000_000

# A struct value is encoded as the value of an otherwise empty event (by the codec's
# encode_event, the exact inverse of decoding) and read back as a pb.MxValue.
_EMPTY_EVENT = EMPTY_EVENT


def message_dict(message: Message) -> dict[str, Any]:
    """A generated message as protobuf JSON (camelCase names, enum names, all fields)."""
    data: dict[str, Any] = MessageToDict(
        message,
        preserving_proto_field_name=False,
        always_print_fields_with_no_presence=True,
    )
    return data


def event_dict(event: MxEvent) -> dict[str, Any]:
    """An MxEvent struct as the protobuf JSON of the MxEvent it was decoded from."""
    return message_dict(pb.MxEvent.FromString(encode_event(event)))


def _value_message(value: MxValue) -> pb.MxValue:
    event = msgspec.structs.replace(
        _EMPTY_EVENT,
        value=value.value,
        data_type=value.data_type,
        variant_type=value.variant_type,
        is_null=value.is_null,
        raw_diagnostic=value.raw_diagnostic,
        raw_data_type=value.raw_data_type,
        raw_value=value.raw_value,
        has_value=True,
    )
    return pb.MxEvent.FromString(encode_event(event)).value


def value_dict(value: Any, data_type: MxDataType) -> dict[str, Any]:
    """The protobuf JSON of the MxValue a write sends for ``value`` of ``data_type``."""
    return message_dict(to_mx_value(value, data_type))


def _fill(message: Message, struct: msgspec.Struct) -> Message:
    """Copy a struct into the message of the same field names (``x_ns`` → Timestamp ``x``)."""
    for name in struct.__struct_fields__:
        value = getattr(struct, name)
        if value is None:
            continue
        if name.endswith("_ns"):
            seconds, nanos = divmod(int(value), _NS)
            stamp = getattr(message, name.removesuffix("_ns"))
            stamp.SetInParent()  # present even at the epoch
            stamp.seconds, stamp.nanos = seconds, nanos
        elif isinstance(value, MxValue):
            getattr(message, name).CopyFrom(_value_message(value))
        elif isinstance(value, tuple):
            repeated = getattr(message, name)
            for element in value:
                _fill(repeated.add(), element)
        elif isinstance(value, enum.IntEnum):
            setattr(message, name, int(value))
        else:
            setattr(message, name, value)
    return message


def active_alarm_dict(alarm: ActiveAlarm) -> dict[str, Any]:
    """An ActiveAlarm as the protobuf JSON of ActiveAlarmSnapshot."""
    return message_dict(_fill(pb.ActiveAlarmSnapshot(), alarm))


def _timestamp_json(ns: int) -> str:
    stamp = Timestamp()
    stamp.FromNanoseconds(ns)
    return stamp.ToJsonString()


def _duration_json(ns: int) -> str:
    duration = Duration()
    duration.FromNanoseconds(ns)
    return duration.ToJsonString()


def _state_json(state: int) -> str | int:
    try:
        return pb.AlarmConditionState.Name(cast(pb.AlarmConditionState, int(state)))
    except ValueError:
        return int(state)  # protobuf JSON prints an enum value it does not know as a number


def _resync_dict(item: AlarmFeedResync) -> dict[str, Any]:
    """The reconnect marker, shaped like a feed message arm: ``{"resync": {...}}``."""
    return {
        "resync": {
            "activeAlarmCount": item.active_alarm_count,
            "appeared": item.appeared,
            "attempts": item.attempts,
            "changed": item.changed,
            "cleared": item.cleared,
            "downSince": _timestamp_json(item.down_since_ns),
            "outage": _duration_json(item.outage_ns),
            "reason": item.reason,
        }
    }


def _resync_clear_dict(item: AlarmResyncClear) -> dict[str, Any]:
    """An alarm found gone by a reconnect: ``{"resyncClear": {...}}``."""
    data: dict[str, Any] = {
        "alarmFullReference": item.alarm_full_reference,
        "alarmTypeName": item.alarm_type_name,
        "category": item.category,
        "description": item.description,
        "previousState": _state_json(item.previous_state),
        "resyncTimestamp": _timestamp_json(item.resync_timestamp_ns),
        "severity": item.severity,
        "sourceObjectReference": item.source_object_reference,
    }
    if item.original_raise_timestamp_ns is not None:
        data["originalRaiseTimestamp"] = _timestamp_json(item.original_raise_timestamp_ns)
    return {"resyncClear": data}


def alarm_feed_dict(item: AlarmFeedItem) -> dict[str, Any]:
    """An alarm feed item as the protobuf JSON of its AlarmFeedMessage (one arm set).

    The two items of a reconnect, which the gateway never sends, take the same shape with
    arms of their own: ``{"resync": {...}}`` and ``{"resyncClear": {...}}``.
    """
    if isinstance(item, AlarmFeedResync):
        return _resync_dict(item)
    if isinstance(item, AlarmResyncClear):
        return _resync_clear_dict(item)
    message = pb.AlarmFeedMessage()
    arm: Message
    if isinstance(item, ActiveAlarm):
        arm = message.active_alarm
    elif isinstance(item, AlarmSnapshotComplete):
        arm = message.snapshot_complete
    elif isinstance(item, AlarmTransition):
        arm = message.transition
    elif isinstance(item, AlarmProviderStatus):
        arm = message.provider_status
    else:  # pragma: no cover - the feed yields only the four kinds above
        raise TypeError(f"not an alarm feed item: {type(item).__name__}")
    arm.SetInParent()  # the arm is set even when all its fields are defaults
    _fill(arm, item)
    return message_dict(message)


def acknowledge_dict(result: AcknowledgeResult) -> dict[str, Any]:
    """An AcknowledgeResult as the protobuf JSON of AcknowledgeAlarmReply."""
    return message_dict(_fill(pb.AcknowledgeAlarmReply(), result))
