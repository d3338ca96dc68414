"""Every prefix of several valid messages: decoded as protobuf decodes it, or an error.

A prefix that ends between two fields is itself a valid (shorter) message and must decode
to exactly what protobuf + _pbconvert make of it; a prefix that cuts a field must raise
MxGatewayDecodeError. Both checked against protobuf for every cut.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import ModuleType

import pytest

from mxgateway import _pycodec
from tests.codec_support import assert_like_protobuf, pb


def _rich_event() -> pb.MxEvent:
    event = pb.MxEvent(
        session_id="sessión-1",
        family=4,
        worker_sequence=2**63 + 11,
        server_handle=-2,
        item_handle=300,
        quality=192,
        hresult=-2147024809,
        raw_status="S_OK ✓",
    )
    event.value.data_type = 5
    event.value.variant_type = "VT_ARRAY"
    event.value.raw_diagnostic = "d"
    event.value.raw_data_type = 4
    event.value.array_value.element_data_type = 7
    event.value.array_value.dimensions.extend([2, 1])
    for seconds in (1_700_000_000, -5):
        stamp = event.value.array_value.timestamp_values.add()
        stamp.seconds = seconds
        stamp.nanos = 999_999_999
    event.value.array_value.int32_values.extend([1, -1, 300])
    event.source_timestamp.FromDatetime(datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC))
    event.worker_timestamp.seconds = 1
    event.gateway_receive_timestamp.SetInParent()
    event.statuses.add(success=1, category=1, detected_by=2, diagnostic_text="ok")
    event.statuses.add(success=0, category=4, detected_by=6, detail=-3, raw_category=3)
    event.replay_gap.requested_after_sequence = 7
    buffered = event.on_buffered_data_change
    buffered.data_type = 8
    sample = buffered.samples.add(quality=64)
    sample.value.elapsed_value.FromTimedelta(timedelta(seconds=-3, microseconds=5))
    sample.source_timestamp.seconds = 10
    sample = buffered.samples.add()
    sparse = sample.value.sparse_array_value
    sparse.element_data_type = 3
    sparse.total_length = 10
    sparse.elements.add(index=4).value.int64_value = -(2**40)
    sparse.elements.add(index=5)
    return event


def _alarm_event() -> pb.MxEvent:
    event = pb.MxEvent(session_id="s", family=5)
    alarm = event.on_alarm_transition
    alarm.alarm_full_reference = "Tank1.Level.Hi"
    alarm.source_object_reference = "Tank1"
    alarm.alarm_type_name = "HiAlarm"
    alarm.transition_kind = 1
    alarm.severity = 250
    alarm.original_raise_timestamp.seconds = 1_700_000_000
    alarm.transition_timestamp.nanos = 5
    alarm.operator_user = "op"
    alarm.operator_comment = "ack ✓"
    alarm.category = "Process"
    alarm.description = "Level high"
    alarm.current_value.double_value = 97.5
    alarm.limit_value.float_value = 95.0
    alarm.degraded = True
    alarm.current_state = 1
    return event


FLOOD_EVENT = pb.MxEventBatch.FromString(
    _pycodec.encode_flood_batch("session", 3, [100, 101, 102, 103], 1, 1, 1_700_000_000_000_000_001)
).events[0]
MIXED_BATCH = pb.MxEventBatch(events=[_rich_event(), pb.MxEvent(), _alarm_event()])
MESSAGES = {
    "flood-event": ("event", FLOOD_EVENT.SerializeToString()),
    "rich-event": ("event", _rich_event().SerializeToString()),
    "alarm-event": ("event", _alarm_event().SerializeToString()),
    "flood-batch": ("batch", _pycodec.encode_flood_batch("s", 1, [4, 5, 6, 7], 0, 4, 5)),
    "mixed-batch": ("batch", MIXED_BATCH.SerializeToString()),
    "value": ("value", _rich_event().value.SerializeToString()),
}


@pytest.mark.parametrize("name", list(MESSAGES))
def test_every_prefix_decodes_like_protobuf(codec: ModuleType, name: str) -> None:
    kind, data = MESSAGES[name]
    outcomes = {"ok": 0, "error": 0}
    for cut in range(len(data) + 1):
        result = assert_like_protobuf(codec, kind, data[:cut])
        outcomes[result[0]] += 1
    # sanity: both kinds of prefix occur, and the whole message decodes
    assert outcomes["ok"] >= 2 and outcomes["error"] >= 1
    assert assert_like_protobuf(codec, kind, data)[0] == "ok"


@pytest.mark.parametrize("name", list(MESSAGES))
def test_every_suffix_decodes_like_protobuf(codec: ModuleType, name: str) -> None:
    # dropping the start misaligns the fields: mostly errors, never a crash
    kind, data = MESSAGES[name]
    for cut in range(len(data) + 1):
        assert_like_protobuf(codec, kind, data[cut:])
