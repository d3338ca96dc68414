"""The encoder (twin of ext/_encode.pxi): structs back to wire bytes, byte-identical to
protobuf's ``SerializeToString()`` (fields in field-number order, proto3 defaults left out,
present messages and oneof arms written even when empty).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from mxgateway._pycodec._tables import (
    _B_ALARM,
    _B_BUFFERED,
    _B_NONE,
    _BODY_CODES,
    _BODY_NAMES,
    _KEYS,
)
from mxgateway._pycodec._values import (
    _check_int,
    _event_arm,
    _join,
    _len_prefixed,
    _Parts,
    _put_bool,
    _put_int32,
    _put_len,
    _put_str,
    _seconds_nanos_bytes,
    _svarint,
    _uvarint,
    _value_bytes,
)
from mxgateway._pycodec._wire import (
    _I32_MAX,
    _I32_MIN,
    _I64_MAX,
    _I64_MIN,
    _M64,
    _NS,
)
from mxgateway.types import (
    AlarmTransition,
    BufferedSample,
    MxEvent,
    MxStatus,
    MxValue,
    ReplayGap,
)


def _put_uint64(parts: _Parts, key: tuple[int, bytes], value: Any, what: str) -> None:
    if _check_int(value, 0, _M64, what):
        parts.append((key[0], key[1] + _uvarint(value)))


def _timestamp_ns_bytes(ns: Any, what: str) -> bytes:
    if not isinstance(ns, int):
        raise TypeError(f"{what} must be an int (nanoseconds), not {type(ns).__name__}")
    seconds, nanos = divmod(ns, _NS)
    if not _I64_MIN <= seconds <= _I64_MAX:
        raise ValueError(f"{what} {ns!r} is outside the Timestamp range")
    return _seconds_nanos_bytes("Timestamp", seconds, nanos)


# ---- structs ----


def _mx_value_struct_bytes(value: MxValue) -> bytes:
    if not isinstance(value, MxValue):
        raise TypeError(f"expected an MxValue, not {type(value).__name__}")
    return _value_bytes(
        value.data_type,
        value.variant_type,
        value.is_null,
        value.raw_diagnostic,
        value.raw_data_type,
        value.raw_value,
        _event_arm(value.value, value.data_type, value.raw_value),
    )


def _status_bytes(status: MxStatus) -> bytes:
    if not isinstance(status, MxStatus):
        raise TypeError(f"statuses must hold MxStatus, not {type(status).__name__}")
    keys = _KEYS["MxStatusProxy"]
    parts: _Parts = []
    _put_int32(parts, keys["success"], status.success, "MxStatus.success")
    _put_int32(parts, keys["category"], status.category, "MxStatus.category")
    _put_int32(parts, keys["detected_by"], status.detected_by, "MxStatus.detected_by")
    _put_int32(parts, keys["detail"], status.detail, "MxStatus.detail")
    _put_int32(parts, keys["raw_category"], status.raw_category, "MxStatus.raw_category")
    _put_int32(parts, keys["raw_detected_by"], status.raw_detected_by, "MxStatus.raw_detected_by")
    _put_str(parts, keys["diagnostic_text"], status.diagnostic_text, "MxStatus.diagnostic_text")
    return _join(parts)


def _sample_bytes(sample: BufferedSample) -> bytes:
    if not isinstance(sample, BufferedSample):
        raise TypeError(f"samples must hold BufferedSample, not {type(sample).__name__}")
    keys = _KEYS["BufferedSample"]
    parts: _Parts = []
    if sample.value is not None:
        _put_len(parts, keys["value"], _mx_value_struct_bytes(sample.value))
    _put_int32(parts, keys["quality"], sample.quality, "BufferedSample.quality")
    if sample.source_timestamp_ns is not None:
        _put_len(
            parts,
            keys["source_timestamp"],
            _timestamp_ns_bytes(sample.source_timestamp_ns, "source_timestamp_ns"),
        )
    return _join(parts)


def _alarm_bytes(alarm: AlarmTransition | None) -> bytes:
    if alarm is None:
        return b""
    if not isinstance(alarm, AlarmTransition):
        raise TypeError(f"alarm_transition must be an AlarmTransition, not {type(alarm).__name__}")
    keys = _KEYS["OnAlarmTransitionEvent"]
    parts: _Parts = []
    a = alarm
    _put_str(parts, keys["alarm_full_reference"], a.alarm_full_reference, "alarm_full_reference")
    _put_str(
        parts, keys["source_object_reference"], a.source_object_reference, "source_object_reference"
    )
    _put_str(parts, keys["alarm_type_name"], a.alarm_type_name, "alarm_type_name")
    _put_int32(parts, keys["transition_kind"], a.transition_kind, "transition_kind")
    _put_int32(parts, keys["severity"], a.severity, "severity")
    if a.original_raise_timestamp_ns is not None:
        _put_len(
            parts,
            keys["original_raise_timestamp"],
            _timestamp_ns_bytes(a.original_raise_timestamp_ns, "original_raise_timestamp_ns"),
        )
    if a.transition_timestamp_ns is not None:
        _put_len(
            parts,
            keys["transition_timestamp"],
            _timestamp_ns_bytes(a.transition_timestamp_ns, "transition_timestamp_ns"),
        )
    _put_str(parts, keys["operator_user"], a.operator_user, "operator_user")
    _put_str(parts, keys["operator_comment"], a.operator_comment, "operator_comment")
    _put_str(parts, keys["category"], a.category, "category")
    _put_str(parts, keys["description"], a.description, "description")
    if a.current_value is not None:
        _put_len(parts, keys["current_value"], _mx_value_struct_bytes(a.current_value))
    if a.limit_value is not None:
        _put_len(parts, keys["limit_value"], _mx_value_struct_bytes(a.limit_value))
    _put_bool(parts, keys["degraded"], a.degraded, "degraded")
    _put_int32(parts, keys["current_state"], a.current_state, "current_state")
    return _join(parts)


def _event_bytes(event: MxEvent) -> bytes:
    if not isinstance(event, MxEvent):
        raise TypeError(f"expected an MxEvent, not {type(event).__name__}")
    keys = _KEYS["MxEvent"]
    parts: _Parts = []
    e = event
    _put_str(parts, keys["session_id"], e.session_id, "session_id")
    _put_int32(parts, keys["family"], e.family, "family")
    _put_uint64(parts, keys["worker_sequence"], e.worker_sequence, "worker_sequence")
    _put_int32(parts, keys["server_handle"], e.server_handle, "server_handle")
    _put_int32(parts, keys["item_handle"], e.item_handle, "item_handle")
    if e.has_value:
        payload = _value_bytes(
            e.data_type,
            e.variant_type,
            e.is_null,
            e.raw_diagnostic,
            e.raw_data_type,
            e.raw_value,
            _event_arm(e.value, e.data_type, e.raw_value),
        )
        _put_len(parts, keys["value"], payload)
    _put_int32(parts, keys["quality"], e.quality, "quality")
    if e.source_timestamp_ns is not None:
        _put_len(
            parts,
            keys["source_timestamp"],
            _timestamp_ns_bytes(e.source_timestamp_ns, "source_timestamp_ns"),
        )
    if not isinstance(e.statuses, tuple | list):
        raise TypeError("statuses must be a tuple of MxStatus")
    for status in e.statuses:
        _put_len(parts, keys["statuses"], _status_bytes(status))
    if e.worker_timestamp_ns is not None:
        _put_len(
            parts,
            keys["worker_timestamp"],
            _timestamp_ns_bytes(e.worker_timestamp_ns, "worker_timestamp_ns"),
        )
    if e.gateway_receive_timestamp_ns is not None:
        _put_len(
            parts,
            keys["gateway_receive_timestamp"],
            _timestamp_ns_bytes(e.gateway_receive_timestamp_ns, "gateway_receive_timestamp_ns"),
        )
    if e.hresult is not None:
        number, key = keys["hresult"]
        parts.append((number, key + _svarint(_check_int(e.hresult, _I32_MIN, _I32_MAX, "hresult"))))
    _put_str(parts, keys["raw_status"], e.raw_status, "raw_status")
    if e.replay_gap is not None:
        gap = e.replay_gap
        if not isinstance(gap, ReplayGap):
            raise TypeError(f"replay_gap must be a ReplayGap, not {type(gap).__name__}")
        gap_keys = _KEYS["ReplayGap"]
        gap_parts: _Parts = []
        _put_uint64(
            gap_parts,
            gap_keys["requested_after_sequence"],
            gap.requested_after_sequence,
            "requested_after_sequence",
        )
        _put_uint64(
            gap_parts,
            gap_keys["oldest_available_sequence"],
            gap.oldest_available_sequence,
            "oldest_available_sequence",
        )
        _put_len(parts, keys["replay_gap"], _join(gap_parts))
    body = _BODY_CODES.get(e.body) if isinstance(e.body, str) else None
    if body is None:
        raise ValueError(f"unknown body arm {e.body!r}")
    if body == _B_BUFFERED:
        buffered_keys = _KEYS["OnBufferedDataChangeEvent"]
        buffered: _Parts = []
        _put_int32(buffered, buffered_keys["data_type"], e.buffered_data_type, "buffered_data_type")
        if not isinstance(e.samples, tuple | list):
            raise TypeError("samples must be a tuple of BufferedSample")
        for sample in e.samples:
            _put_len(buffered, buffered_keys["samples"], _sample_bytes(sample))
        _put_len(parts, keys["on_buffered_data_change"], _join(buffered))
    elif body == _B_ALARM:
        _put_len(parts, keys["on_alarm_transition"], _alarm_bytes(e.alarm_transition))
    elif body != _B_NONE:
        _put_len(parts, keys[_BODY_NAMES[body]], b"")
    return _join(parts)


def encode_event(event: MxEvent) -> bytes:
    """Serialize an :class:`MxEvent` back to ``mxaccess_gateway.v1.MxEvent`` bytes.

    The inverse of :func:`decode_event` (``decode_event(encode_event(e)) == e`` for decoded
    events whose native values are encodable) and byte-identical to protobuf's
    ``SerializeToString()`` of the equivalent message. Wrong field types raise TypeError,
    out-of-range integers ValueError.
    """
    return _event_bytes(event)


def encode_event_batch(events: Sequence[MxEvent]) -> bytes:
    """Serialize events to one ``MxEventBatch`` (byte-identical to protobuf)."""
    key = _KEYS["MxEventBatch"]["events"][1]
    return b"".join([key + _len_prefixed(_event_bytes(event)) for event in events])
