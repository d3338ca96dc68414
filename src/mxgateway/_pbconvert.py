"""Generated protobuf messages to the structs of mxgateway.types, the straightforward way.

This is what a user would write by hand on the generated stubs: read each field of a parsed
message with ``HasField`` / ``WhichOneof`` and build the struct. It is

- the oracle of the codec's differential tests (an independent reading of docs/codec.md,
  on top of protobuf's own parser),
- the baseline the benchmarks compare the codec with,
- what the library uses for protobuf events it already holds (DrainEvents replies).

It works on any message classes built from ``mxaccess_gateway.proto`` (the generated ones or
those of a renumbered copy): fields are read by name.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import IntEnum
from typing import Any, TypeVar

from mxgateway._errors import MxGatewayDecodeError
from mxgateway.types import (
    AlarmConditionState,
    AlarmTransition,
    AlarmTransitionKind,
    BufferedSample,
    MxDataType,
    MxEvent,
    MxEventFamily,
    MxSparseArray,
    MxStatus,
    MxStatusCategory,
    MxStatusSource,
    MxValue,
    ReadResult,
    ReplayGap,
)

__all__ = [
    "alarm_transition_from_pb",
    "array_from_pb",
    "duration_to_timedelta",
    "event_from_pb",
    "events_from_pb",
    "native_from_pb",
    "read_result_from_pb",
    "replay_gap_from_pb",
    "sample_from_pb",
    "sparse_array_from_pb",
    "status_from_pb",
    "timestamp_to_datetime",
    "timestamp_to_ns",
    "value_from_pb",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_E = TypeVar("_E", bound=IntEnum)


def _enum(cls: type[_E], value: int) -> Any:
    """The member for a value the enum names, else the plain int (proto3 enums are open).

    Typed ``Any`` because the structs annotate the enum while also holding unknown numbers.
    """
    try:
        return cls(value)
    except ValueError:
        return value


def timestamp_to_ns(ts: Any) -> int:
    """A ``google.protobuf.Timestamp`` as integer nanoseconds since the epoch (no range check)."""
    return int(ts.seconds) * 1_000_000_000 + int(ts.nanos)


def timestamp_to_datetime(ts: Any) -> datetime:
    """A Timestamp as an aware UTC datetime, nanoseconds floored to microseconds.

    Outside datetime's range: MxGatewayDecodeError.
    """
    micros = timestamp_to_ns(ts) // 1000
    try:
        return _EPOCH + timedelta(microseconds=micros)
    except OverflowError as exc:
        raise MxGatewayDecodeError(f"timestamp {ts.seconds}s {ts.nanos}ns out of range") from exc


def duration_to_timedelta(duration: Any) -> timedelta:
    """A ``google.protobuf.Duration`` as a timedelta floored to microseconds.

    Outside timedelta's range: MxGatewayDecodeError.
    """
    micros = (int(duration.seconds) * 1_000_000_000 + int(duration.nanos)) // 1000
    try:
        return timedelta(microseconds=micros)
    except OverflowError as exc:
        raise MxGatewayDecodeError(
            f"duration {duration.seconds}s {duration.nanos}ns out of range"
        ) from exc


def _reshape(values: list[Any], dims: list[int]) -> list[Any]:
    """Nest ``values`` row-major by ``dims`` when that is what the spec asks for."""
    if len(dims) < 2 or 0 in dims:
        return values
    product = 1
    for d in dims:
        product *= d
    if product != len(values):
        return values
    # Build from the innermost dimension outwards (no recursion, whatever the rank).
    nested = values
    for d in dims[:0:-1]:
        nested = [nested[start : start + d] for start in range(0, len(nested), d)]
    return nested


def array_from_pb(array: Any) -> list[Any]:
    """An ``MxArray`` as the native (possibly nested) list docs/codec.md describes."""
    element = array.element_data_type
    values: list[Any]
    if element == MxDataType.BOOLEAN:
        values = list(array.bool_values)
    elif element == MxDataType.INTEGER:
        values = list(array.int32_values) if len(array.int32_values) else list(array.int64_values)
    elif element == MxDataType.FLOAT:
        values = list(array.float_values)
    elif element == MxDataType.DOUBLE:
        values = list(array.double_values)
    elif element in (
        MxDataType.STRING,
        MxDataType.BIG_STRING,
        MxDataType.INTERNATIONALIZED_STRING,
        MxDataType.REFERENCE,
    ):
        values = list(array.string_values)
    elif element == MxDataType.TIME:
        values = [timestamp_to_datetime(t) for t in array.timestamp_values]
    elif element == MxDataType.ELAPSED_TIME:
        values = [duration_to_timedelta(d) for d in array.elapsed_values]
    else:
        values = []
        for name in (
            "bool_values",
            "int32_values",
            "int64_values",
            "float_values",
            "double_values",
            "string_values",
            "timestamp_values",
            "elapsed_values",
        ):
            items = getattr(array, name)
            if len(items):
                if name == "timestamp_values":
                    values = [timestamp_to_datetime(t) for t in items]
                elif name == "elapsed_values":
                    values = [duration_to_timedelta(d) for d in items]
                else:
                    values = list(items)
                break
    return _reshape(values, list(array.dimensions))


def sparse_array_from_pb(sparse: Any) -> MxSparseArray:
    """An ``MxSparseArray`` message as the struct (element values as native values)."""
    elements = tuple(
        (int(e.index), native_from_pb(e.value) if e.HasField("value") else None)
        for e in sparse.elements
    )
    return MxSparseArray(
        _enum(MxDataType, sparse.element_data_type), int(sparse.total_length), elements
    )


def native_from_pb(value: Any) -> Any:
    """The native Python value of an ``MxValue`` message (its set ``kind`` arm)."""
    arm = value.WhichOneof("kind")
    if arm is None:
        return value.raw_value if value.raw_value else None
    if arm == "timestamp_value":
        return timestamp_to_datetime(value.timestamp_value)
    if arm == "elapsed_value":
        return duration_to_timedelta(value.elapsed_value)
    if arm == "array_value":
        return array_from_pb(value.array_value)
    if arm == "sparse_array_value":
        return sparse_array_from_pb(value.sparse_array_value)
    if arm == "bool_value":
        return bool(value.bool_value)
    native = getattr(value, arm)
    return native


def value_from_pb(value: Any) -> MxValue:
    """An ``MxValue`` message as the :class:`mxgateway.types.MxValue` struct."""
    return MxValue(
        native_from_pb(value),
        _enum(MxDataType, value.data_type),
        value.variant_type,
        bool(value.is_null),
        value.raw_diagnostic,
        int(value.raw_data_type),
        bytes(value.raw_value),
    )


def status_from_pb(status: Any) -> MxStatus:
    """An ``MxStatusProxy`` message as an :class:`MxStatus`."""
    return MxStatus(
        int(status.success),
        _enum(MxStatusCategory, status.category),
        _enum(MxStatusSource, status.detected_by),
        int(status.detail),
        int(status.raw_category),
        int(status.raw_detected_by),
        status.diagnostic_text,
    )


def replay_gap_from_pb(gap: Any) -> ReplayGap:
    """A ``ReplayGap`` message as the struct."""
    return ReplayGap(int(gap.requested_after_sequence), int(gap.oldest_available_sequence))


def sample_from_pb(sample: Any) -> BufferedSample:
    """A ``BufferedSample`` message as the struct."""
    return BufferedSample(
        value_from_pb(sample.value) if sample.HasField("value") else None,
        int(sample.quality),
        timestamp_to_ns(sample.source_timestamp) if sample.HasField("source_timestamp") else None,
    )


def alarm_transition_from_pb(alarm: Any) -> AlarmTransition:
    """An ``OnAlarmTransitionEvent`` message as an :class:`AlarmTransition`."""
    return AlarmTransition(
        alarm.alarm_full_reference,
        alarm.source_object_reference,
        alarm.alarm_type_name,
        _enum(AlarmTransitionKind, alarm.transition_kind),
        int(alarm.severity),
        timestamp_to_ns(alarm.original_raise_timestamp)
        if alarm.HasField("original_raise_timestamp")
        else None,
        timestamp_to_ns(alarm.transition_timestamp)
        if alarm.HasField("transition_timestamp")
        else None,
        alarm.operator_user,
        alarm.operator_comment,
        alarm.category,
        alarm.description,
        value_from_pb(alarm.current_value) if alarm.HasField("current_value") else None,
        value_from_pb(alarm.limit_value) if alarm.HasField("limit_value") else None,
        bool(alarm.degraded),
        _enum(AlarmConditionState, alarm.current_state),
    )


def event_from_pb(event: Any) -> MxEvent:
    """An ``MxEvent`` message as the :class:`MxEvent` struct (the value fields flattened)."""
    has_value = event.HasField("value")
    v = (
        value_from_pb(event.value)
        if has_value
        else MxValue(None, MxDataType.UNSPECIFIED, "", False, "", 0, b"")
    )
    body: Any = event.WhichOneof("body") or ""  # an EventBody literal
    if body == "on_buffered_data_change":
        buffered = event.on_buffered_data_change
        buffered_data_type = _enum(MxDataType, buffered.data_type)
        samples = tuple(sample_from_pb(s) for s in buffered.samples)
    else:
        buffered_data_type = MxDataType.UNSPECIFIED
        samples = ()
    alarm = (
        alarm_transition_from_pb(event.on_alarm_transition)
        if body == "on_alarm_transition"
        else None
    )
    return MxEvent(
        event.session_id,
        _enum(MxEventFamily, event.family),
        int(event.worker_sequence),
        int(event.server_handle),
        int(event.item_handle),
        v.value,
        v.data_type,
        v.variant_type,
        v.is_null,
        v.raw_diagnostic,
        v.raw_data_type,
        v.raw_value,
        has_value,
        int(event.quality),
        timestamp_to_ns(event.source_timestamp) if event.HasField("source_timestamp") else None,
        tuple(status_from_pb(s) for s in event.statuses),
        timestamp_to_ns(event.worker_timestamp) if event.HasField("worker_timestamp") else None,
        timestamp_to_ns(event.gateway_receive_timestamp)
        if event.HasField("gateway_receive_timestamp")
        else None,
        int(event.hresult) if event.HasField("hresult") else None,
        event.raw_status,
        replay_gap_from_pb(event.replay_gap) if event.HasField("replay_gap") else None,
        body,
        buffered_data_type,
        samples,
        alarm,
    )


def events_from_pb(batch: Any) -> list[MxEvent]:
    """Every event of an ``MxEventBatch`` (or ``DrainEventsReply``) message, in order."""
    return [event_from_pb(e) for e in batch.events]


def read_result_from_pb(result: Any) -> ReadResult:
    """A BulkReadResult message as a :class:`mxgateway.types.ReadResult` (it keeps the
    message as ``raw``)."""
    value = value_from_pb(result.value) if result.HasField("value") else None
    stamp = result.source_timestamp
    return ReadResult(
        tag_address=result.tag_address,
        item_handle=result.item_handle,
        was_successful=result.was_successful,
        was_cached=result.was_cached,
        value=None if value is None else value.value,
        data_type=MxDataType.UNSPECIFIED if value is None else value.data_type,
        quality=result.quality,
        source_timestamp_ns=(
            int(stamp.seconds) * 1_000_000_000 + int(stamp.nanos)
            if result.HasField("source_timestamp")
            else None
        ),
        error_message=result.error_message,
        hresult=result.hresult,
        statuses=tuple(status_from_pb(s) for s in result.statuses),
        raw=result,
    )
