"""Hand-written wire edge cases, one group per rule of docs/codec.md "Decoding rules".

Every case is checked against protobuf's own parser (+ _pbconvert): where protobuf accepts
the bytes we must decode them to the same struct, where it rejects them we must raise
MxGatewayDecodeError. The few intended differences (docs D4: nesting above 64 levels) are
asserted explicitly.
"""

from __future__ import annotations

import struct
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import msgspec
import pytest

from mxgateway import MxGatewayDecodeError, encode_event
from mxgateway.types import (
    MxDataType,
    MxEventFamily,
    MxSparseArray,
    MxStatusCategory,
    ReplayGap,
)
from tests.codec_support import (
    assert_like_protobuf,
    f32,
    f64,
    fields_of,
    fl,
    fv,
    group,
    key,
    num,
    oracle,
    pb,
    pb_parse,
    varint,
)

UNKNOWN = 999  # a field number no message of the contract uses


def ev(*parts: bytes) -> bytes:
    return b"".join(parts)


def value(*parts: bytes) -> bytes:
    """An MxEvent holding an MxValue with these fields."""
    return fl("MxEvent", "value", b"".join(parts))


def ts(seconds: int = 0, nanos: int = 0) -> bytes:
    out = b""
    if seconds:
        out += fv("Timestamp", "seconds", seconds)
    if nanos:
        out += fv("Timestamp", "nanos", nanos)
    return out


def decode_ok(codec: ModuleType, data: bytes, kind: str = "event") -> Any:
    result = assert_like_protobuf(codec, kind, data)
    assert result[0] == "ok", data.hex()
    return {"event": codec.decode_event, "batch": codec.decode_event_batch}.get(
        kind, codec.from_mx_value
    )(data)


def decode_error(codec: ModuleType, data: bytes, kind: str = "event") -> None:
    assert oracle(kind, data)[0] == "error", "protobuf accepts these bytes"
    result = assert_like_protobuf(codec, kind, data)
    assert result[0] == "error"


# ---- wire types and unknown fields ---------------------------------------------------------------

UNKNOWN_FIELDS = {
    "varint": key(UNKNOWN, 0) + varint(2**63 + 5),
    "varint-10-bytes": key(UNKNOWN, 0) + varint(-1),
    "fixed64": key(UNKNOWN, 1) + b"\x01" * 8,
    "length-delimited": key(UNKNOWN, 2) + varint(3) + b"\xff\xfe\xfd",  # not UTF-8: not checked
    "fixed32": key(UNKNOWN, 5) + b"\x02" * 4,
    "empty group": group(UNKNOWN),
    "group with fields": group(UNKNOWN, fv("MxEvent", "family", 3) + key(7, 1) + b"\0" * 8),
    "nested groups": group(UNKNOWN, group(UNKNOWN + 1, group(UNKNOWN, key(5, 5) + b"abcd"))),
    "group on a known number": group(num("MxEvent", "family"), fv("MxEvent", "family", 4)),
    "max field number": key(2**29 - 1, 0) + b"\x01",
}


@pytest.mark.parametrize("unknown", UNKNOWN_FIELDS.values(), ids=list(UNKNOWN_FIELDS))
def test_unknown_fields_of_every_wire_type_are_skipped(codec: ModuleType, unknown: bytes) -> None:
    core = fl("MxEvent", "session_id", "s") + fv("MxEvent", "family", 1)
    for data in (unknown + core, core + unknown, core[:3] + unknown + core[3:]):
        event = decode_ok(codec, data)
        assert event.session_id == "s"
        assert event.family is MxEventFamily.ON_DATA_CHANGE


@pytest.mark.parametrize("unknown", UNKNOWN_FIELDS.values(), ids=list(UNKNOWN_FIELDS))
def test_unknown_fields_inside_nested_messages_are_skipped(
    codec: ModuleType, unknown: bytes
) -> None:
    data = ev(
        value(unknown, fv("MxValue", "int32_value", 7), unknown),
        fl("MxEvent", "source_timestamp", unknown + ts(5, 6)),
        fl("MxEvent", "statuses", unknown + fv("MxStatusProxy", "success", 1)),
        fl("MxEvent", "replay_gap", unknown),
        fl("MxEvent", "on_data_change", unknown),
    )
    event = decode_ok(codec, data)
    assert event.value == 7
    assert event.source_timestamp_ns == 5_000_000_006
    assert event.statuses[0].success == 1
    assert event.replay_gap == ReplayGap(0, 0)
    assert event.body == "on_data_change"


@pytest.mark.parametrize("wire", [6, 7])
def test_wire_types_6_and_7_are_errors(codec: ModuleType, wire: int) -> None:
    decode_error(codec, key(num("MxEvent", "family"), wire) + b"\x01")
    decode_error(codec, value(key(UNKNOWN, wire)))
    decode_error(codec, group(UNKNOWN, key(UNKNOWN, wire)))


def test_field_number_zero_is_an_error(codec: ModuleType) -> None:
    for wire in (0, 1, 2, 3, 5):
        decode_error(codec, key(0, wire) + b"\x00" * 9)
    decode_error(codec, value(b"\x00\x00"))
    decode_error(codec, fl("MxEvent", "statuses", b"\x05\x00\x00\x00\x00"))


@pytest.mark.parametrize(
    "inner", [b"\x00\x00", b"\x01" + b"\0" * 8, b"\x02\x00", b"\x05" + b"\0" * 4, b"\x03\x04"]
)
def test_field_number_zero_where_protobuf_is_lax(codec: ModuleType, inner: bytes) -> None:
    # docs D5: upb accepts field number 0 inside groups and field-less messages; we do not
    for data in (group(UNKNOWN, inner), fl("MxEvent", "on_data_change", inner)):
        assert pb_parse(pb.MxEvent, data) is not None
        with pytest.raises(MxGatewayDecodeError, match="field number 0"):
            codec.decode_event(data)


def test_stray_end_group_is_an_error(codec: ModuleType) -> None:
    decode_error(codec, key(UNKNOWN, 4))
    decode_error(codec, fv("MxEvent", "family", 1) + key(num("MxEvent", "family"), 4))
    decode_error(codec, value(key(UNKNOWN, 4)))
    decode_error(codec, fl("MxEvent", "on_data_change", key(UNKNOWN, 4)))


def test_bad_groups_are_errors(codec: ModuleType) -> None:
    decode_error(codec, key(UNKNOWN, 3))  # never closed
    decode_error(codec, key(UNKNOWN, 3) + key(UNKNOWN + 1, 4))  # wrong end
    decode_error(codec, group(UNKNOWN, key(UNKNOWN + 1, 3)))  # crossed
    # a group may not run past the end of the message that holds it
    decode_error(codec, value(key(UNKNOWN, 3)) + key(UNKNOWN, 4))
    decode_error(codec, key(UNKNOWN, 3) + fv("MxEvent", "family", 1))


def test_tags_and_lengths_are_at_most_five_bytes(codec: ModuleType) -> None:
    family = num("MxEvent", "family")
    five = bytes([(family << 3) | 0x80, 0x80, 0x80, 0x80, 0x00])
    event = decode_ok(codec, five + b"\x02")
    assert event.family is MxEventFamily.ON_WRITE_COMPLETE
    decode_error(codec, five[:-1] + b"\x80\x00" + b"\x02")  # 6-byte tag
    decode_error(codec, b"\xf8\xff\xff\xff\x1f\x00")  # tag above 2**32
    session = key(num("MxEvent", "session_id"), 2)
    event = decode_ok(codec, session + b"\x82\x80\x80\x80\x00ab")  # 5-byte length
    assert event.session_id == "ab"
    decode_error(codec, session + b"\x82\x80\x80\x80\x80\x00ab")  # 6-byte length


# ---- wrong wire type for a known field -----------------------------------------------------------


def test_known_field_with_wrong_wire_type_is_skipped(codec: ModuleType) -> None:
    cases = [
        key(num("MxEvent", "session_id"), 0) + b"\x05",
        key(num("MxEvent", "family"), 2) + b"\x01\x02",
        key(num("MxEvent", "family"), 5) + b"\x01\x00\x00\x00",
        key(num("MxEvent", "value"), 0) + b"\x01",
        key(num("MxEvent", "hresult"), 2) + b"\x00",
        key(num("MxEvent", "hresult"), 1) + b"\x00" * 8,
        key(num("MxEvent", "replay_gap"), 0) + b"\x00",
        key(num("MxEvent", "on_data_change"), 0) + b"\x00",
        value(key(num("MxValue", "double_value"), 5) + b"\x00\x00\x80\x3f"),
        value(key(num("MxValue", "float_value"), 1) + b"\x00" * 8),
        value(key(num("MxValue", "int32_value"), 2) + b"\x01\x05"),
        value(key(num("MxValue", "string_value"), 0) + b"\x01"),
        value(key(num("MxValue", "timestamp_value"), 5) + b"\x01\x02\x03\x04"),
        fl("MxEvent", "source_timestamp", key(num("Timestamp", "seconds"), 2) + b"\x00"),
    ]
    for data in cases:
        event = decode_ok(codec, data)
        assert event.session_id == ""
        assert event.family == 0
        assert event.hresult is None
        assert event.replay_gap is None
        assert event.body == ""
        assert event.value is None


# ---- field order, last wins, merging -------------------------------------------------------------


def test_any_field_order(codec: ModuleType) -> None:
    msg = pb.MxEvent(
        session_id="sess",
        family=4,
        worker_sequence=2**40,
        server_handle=-3,
        item_handle=77,
        quality=192,
        hresult=-5,
        raw_status="x",
    )
    msg.value.double_value = 1.5
    msg.value.data_type = 5
    msg.value.variant_type = "VT_R8"
    msg.source_timestamp.seconds = 10
    msg.worker_timestamp.nanos = 3
    msg.gateway_receive_timestamp.SetInParent()
    msg.statuses.add(success=1, category=1)
    msg.replay_gap.requested_after_sequence = 5
    msg.on_buffered_data_change.data_type = 3
    msg.on_buffered_data_change.samples.add(quality=1)
    data = msg.SerializeToString()
    forward = decode_ok(codec, data)
    reversed_data = b"".join(reversed(fields_of(data)))
    assert decode_ok(codec, reversed_data) == forward
    # and inside the nested messages too
    inner = b"".join(reversed(fields_of(msg.value.SerializeToString())))
    assert decode_ok(codec, fl("MxEvent", "value", inner)).value == 1.5


def test_singular_scalar_last_value_wins(codec: ModuleType) -> None:
    data = ev(
        fl("MxEvent", "session_id", "first"),
        fv("MxEvent", "family", 1),
        fv("MxEvent", "quality", 192),
        fl("MxEvent", "session_id", "second"),
        fv("MxEvent", "family", 3),
        fv("MxEvent", "quality", 0),
        fv("MxEvent", "hresult", 5),
        fv("MxEvent", "hresult", 0),
    )
    event = decode_ok(codec, data)
    assert event.session_id == "second"
    assert event.family is MxEventFamily.OPERATION_COMPLETE
    assert event.quality == 0
    assert event.hresult == 0


def test_mx_value_seen_twice_merges(codec: ModuleType) -> None:
    data = ev(
        value(fv("MxValue", "data_type", 3), fl("MxValue", "variant_type", "VT_I4")),
        fv("MxEvent", "quality", 192),
        value(fv("MxValue", "int32_value", -7), fv("MxValue", "raw_data_type", 2)),
    )
    event = decode_ok(codec, data)
    assert (event.value, event.data_type, event.variant_type, event.raw_data_type) == (
        -7,
        MxDataType.INTEGER,
        "VT_I4",
        2,
    )


def test_timestamp_seen_twice_merges(codec: ModuleType) -> None:
    data = ev(
        fl("MxEvent", "source_timestamp", ts(seconds=100)),
        fl("MxEvent", "source_timestamp", ts(nanos=5)),
        fl("MxEvent", "worker_timestamp", ts(seconds=1, nanos=2)),
        fl("MxEvent", "worker_timestamp", ts(seconds=3)),
    )
    event = decode_ok(codec, data)
    assert event.source_timestamp_ns == 100_000_000_005
    assert event.worker_timestamp_ns == 3_000_000_002


def test_replay_gap_and_statuses(codec: ModuleType) -> None:
    gap = "ReplayGap"
    data = ev(
        fl("MxEvent", "replay_gap", fv(gap, "requested_after_sequence", 9)),
        fl("MxEvent", "statuses", fv("MxStatusProxy", "category", 4)),
        fl("MxEvent", "replay_gap", fv(gap, "oldest_available_sequence", 2**64 - 1)),
        fl("MxEvent", "statuses", b""),
    )
    event = decode_ok(codec, data)
    assert event.replay_gap == ReplayGap(9, 2**64 - 1)
    assert [s.category for s in event.statuses] == [
        MxStatusCategory.COMMUNICATION_ERROR,
        MxStatusCategory.UNSPECIFIED,
    ]


def test_nested_merge_inside_merged_value(codec: ModuleType) -> None:
    # value{timestamp_value{seconds}} then value{timestamp_value{nanos}}: one merged Timestamp
    data = ev(
        value(fl("MxValue", "timestamp_value", ts(seconds=86400))),
        value(fl("MxValue", "timestamp_value", ts(nanos=1500))),
    )
    event = decode_ok(codec, data)
    assert event.value == datetime(1970, 1, 2, 0, 0, 0, 1, tzinfo=UTC)


# ---- oneofs --------------------------------------------------------------------------------------


def test_later_oneof_arm_replaces_earlier(codec: ModuleType) -> None:
    data = value(
        fv("MxValue", "bool_value", 1),
        fl("MxValue", "array_value", fv("MxArray", "element_data_type", 3)),
        fl("MxValue", "string_value", "text"),
    )
    assert decode_ok(codec, data).value == "text"
    data = value(fl("MxValue", "string_value", "text"), f64("MxValue", "double_value", 2.5))
    assert decode_ok(codec, data).value == 2.5


def test_replaced_arm_is_not_converted_but_is_validated(codec: ModuleType) -> None:
    # docs D7: an out-of-range timestamp that a later arm replaces is not an error ...
    far = fl("MxValue", "timestamp_value", ts(seconds=2**62))
    assert decode_ok(codec, value(far, fv("MxValue", "int32_value", 1))).value == 1
    # ... but an out-of-range one that stays is (in protobuf + _pbconvert as well) ...
    decode_error(codec, value(far))
    # ... and malformed bytes in a replaced arm always are.
    broken = fl("MxValue", "array_value", key(num("MxArray", "int32_values"), 0))
    decode_error(codec, value(broken, fv("MxValue", "int32_value", 1)))


def test_same_message_arm_repeated_merges(codec: ModuleType) -> None:
    arr = "MxArray"
    data = value(
        fl("MxValue", "array_value", fv(arr, "element_data_type", 3) + fv(arr, "dimensions", 2)),
        fl("MxValue", "array_value", fv(arr, "int32_values", 1) + fv(arr, "dimensions", 2)),
        fl("MxValue", "array_value", fl(arr, "int32_values", varint(2) + varint(3) + varint(4))),
    )
    assert decode_ok(codec, data).value == [[1, 2], [3, 4]]


def test_arm_switch_in_between_does_not_merge(codec: ModuleType) -> None:
    arr = "MxArray"
    data = value(
        fl("MxValue", "array_value", fv(arr, "element_data_type", 3) + fv(arr, "int32_values", 9)),
        fv("MxValue", "bool_value", 1),
        fl("MxValue", "array_value", fv(arr, "int32_values", 5)),
    )
    # the second array starts afresh: no element_data_type, so the first non-empty list
    assert decode_ok(codec, data).value == [5]


def test_sparse_arm_merges_elements(codec: ModuleType) -> None:
    element = fv("MxSparseElement", "index", 3) + fl(
        "MxSparseElement", "value", fv("MxValue", "int32_value", 8)
    )
    data = value(
        fl("MxValue", "sparse_array_value", fv("MxSparseArray", "total_length", 10)),
        fl("MxValue", "sparse_array_value", fl("MxSparseArray", "elements", element)),
        fl("MxValue", "sparse_array_value", fl("MxSparseArray", "elements", b"")),
    )
    assert decode_ok(codec, data).value == MxSparseArray(
        MxDataType.UNSPECIFIED, 10, ((3, 8), (0, None))
    )


def test_body_oneof(codec: ModuleType) -> None:
    buffered = "OnBufferedDataChangeEvent"
    sample = fl(buffered, "samples", fv("BufferedSample", "quality", 192))
    data = ev(
        fl("MxEvent", "on_buffered_data_change", fv(buffered, "data_type", 5) + sample),
        fl("MxEvent", "on_buffered_data_change", sample),
    )
    event = decode_ok(codec, data)
    assert event.body == "on_buffered_data_change"
    assert event.buffered_data_type is MxDataType.DOUBLE
    assert len(event.samples) == 2
    alarm = "OnAlarmTransitionEvent"
    data = ev(
        fl("MxEvent", "on_alarm_transition", fl(alarm, "category", "c")),
        fl("MxEvent", "on_alarm_transition", fv(alarm, "severity", 4)),
    )
    transition = decode_ok(codec, data).alarm_transition
    assert (transition.category, transition.severity) == ("c", 4)
    # a later arm replaces: the buffered fields go back to their defaults
    data = ev(
        fl("MxEvent", "on_buffered_data_change", fv(buffered, "data_type", 5) + sample),
        fl("MxEvent", "on_write_complete", b""),
    )
    event = decode_ok(codec, data)
    assert (event.body, event.samples, event.buffered_data_type) == (
        "on_write_complete",
        (),
        MxDataType.UNSPECIFIED,
    )


def test_empty_body_messages_are_still_parsed(codec: ModuleType) -> None:
    for arm in ("on_data_change", "on_write_complete", "operation_complete"):
        assert decode_ok(codec, fl("MxEvent", arm, fv("MxEvent", "family", 1))).body == arm
        decode_error(codec, fl("MxEvent", arm, b"\x08"))
        decode_error(codec, fl("MxEvent", arm, b"\x0a\x05ab"))
    assert decode_ok(codec, b"").body == ""


# ---- repeated fields -----------------------------------------------------------------------------


def test_packed_unpacked_and_mixed(codec: ModuleType) -> None:
    arr = "MxArray"
    i32, i64, bools = "int32_values", "int64_values", "bool_values"
    floats, doubles = "float_values", "double_values"
    cases = [
        (
            3,
            [fv(arr, i32, 1), fl(arr, i32, varint(-2) + varint(3)), fv(arr, i32, 4)],
            [1, -2, 3, 4],
        ),
        (3, [fl(arr, i64, varint(-(2**63))), fv(arr, i64, 5)], [-(2**63), 5]),
        (2, [fv(arr, bools, 2), fl(arr, bools, b"\x00\x01"), fv(arr, bools, 0)], [True, False] * 2),
        (
            4,
            [f32(arr, floats, 1.5), fl(arr, floats, struct.pack("<2f", 2.5, -0.0))],
            [1.5, 2.5, -0.0],
        ),
        (5, [fl(arr, doubles, struct.pack("<d", 1e300)), f64(arr, doubles, -2.0)], [1e300, -2.0]),
    ]
    for element_type, parts, expected in cases:
        body = fv(arr, "element_data_type", element_type) + b"".join(parts)
        assert decode_ok(codec, value(fl("MxValue", "array_value", body))).value == expected
    dims = (
        fv(arr, "dimensions", 2)
        + fl(arr, "dimensions", varint(2**32 + 1))
        + fl(arr, "dimensions", b"")
    )
    body = dims + fl(arr, "int32_values", varint(1) + varint(2))
    # 2**32 + 1 as uint32 is 1: dims [2, 1], 2 elements -> nested
    assert decode_ok(codec, value(fl("MxValue", "array_value", body))).value == [[1], [2]]


def test_packed_fixed_runs_must_be_whole(codec: ModuleType) -> None:
    arr = "MxArray"
    decode_error(codec, value(fl("MxValue", "array_value", fl(arr, "float_values", b"\0" * 5))))
    decode_error(codec, value(fl("MxValue", "array_value", fl(arr, "double_values", b"\0" * 12))))
    decode_error(codec, value(fl("MxValue", "array_value", fl(arr, "int32_values", b"\x80"))))


# ---- numbers -------------------------------------------------------------------------------------


def test_negative_int32_arrives_as_ten_bytes(codec: ModuleType) -> None:
    data = fv("MxEvent", "server_handle", -1)
    assert len(data) == 11
    assert decode_ok(codec, data).server_handle == -1
    # int32 takes the low 32 bits, however the varint was written
    assert decode_ok(codec, fv("MxEvent", "item_handle", 2**32 + 5)).item_handle == 5
    assert decode_ok(codec, fv("MxEvent", "item_handle", 2**31)).item_handle == -(2**31)
    assert decode_ok(codec, fv("MxEvent", "quality", 0xFFFFFFFF)).quality == -1


def test_uint64_int64_and_bool(codec: ModuleType) -> None:
    assert (
        decode_ok(codec, fv("MxEvent", "worker_sequence", 2**64 - 1)).worker_sequence == 2**64 - 1
    )
    assert decode_ok(codec, value(fv("MxValue", "int64_value", 2**63))).value == -(2**63)
    assert decode_ok(codec, value(fv("MxValue", "bool_value", 2**40))).value is True
    # bits past the 64th are dropped: this bool is zero
    data = value(key(num("MxValue", "bool_value"), 0) + b"\x80" * 9 + b"\x02")
    assert decode_ok(codec, data).value is False
    # an eleventh byte is an error
    decode_error(codec, key(num("MxEvent", "family"), 0) + b"\x80" * 10 + b"\x00")


def test_unknown_enum_numbers_are_plain_ints(codec: ModuleType) -> None:
    data = ev(
        fv("MxEvent", "family", 77),
        value(fv("MxValue", "data_type", -1)),
        fl("MxEvent", "statuses", fv("MxStatusProxy", "category", 2**31 - 1)),
    )
    event = decode_ok(codec, data)
    assert type(event.family) is int and event.family == 77
    assert type(event.data_type) is int and event.data_type == -1
    assert type(event.statuses[0].category) is int


def test_hresult_presence(codec: ModuleType) -> None:
    assert decode_ok(codec, b"").hresult is None
    assert decode_ok(codec, fv("MxEvent", "hresult", 0)).hresult == 0
    assert decode_ok(codec, fv("MxEvent", "hresult", -2147467259)).hresult == -2147467259


def test_floats(codec: ModuleType) -> None:
    assert (
        decode_ok(codec, value(f32("MxValue", "float_value", 0.1))).value
        == struct.unpack("<f", struct.pack("<f", 0.1))[0]
    )
    assert decode_ok(codec, value(f64("MxValue", "double_value", -0.0))).value == 0.0


# ---- strings -------------------------------------------------------------------------------------

BAD_UTF8 = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xc0\xaf", b"\xf4\x90\x80\x80", b"ok\xe2\x82"]


@pytest.mark.parametrize("bad", BAD_UTF8, ids=[b.hex() for b in BAD_UTF8])
def test_invalid_utf8_is_an_error(codec: ModuleType, bad: bytes) -> None:
    decode_error(codec, fl("MxEvent", "session_id", bad))
    decode_error(codec, fl("MxEvent", "raw_status", bad))
    decode_error(codec, value(fl("MxValue", "variant_type", bad)))
    decode_error(codec, value(fl("MxValue", "string_value", bad)))
    decode_error(codec, value(fl("MxValue", "string_value", bad), fv("MxValue", "int32_value", 1)))
    decode_error(codec, value(fl("MxValue", "array_value", fl("MxArray", "string_values", bad))))
    decode_error(codec, fl("MxEvent", "statuses", fl("MxStatusProxy", "diagnostic_text", bad)))
    alarm = fl("OnAlarmTransitionEvent", "operator_comment", bad)
    decode_error(codec, fl("MxEvent", "on_alarm_transition", alarm))
    # bytes fields are not checked
    assert decode_ok(codec, value(fl("MxValue", "raw_value", bad))).value == bad


def test_unicode_strings(codec: ModuleType) -> None:
    text = "Zürich ✓ 😀 \u0000"
    assert decode_ok(codec, fl("MxEvent", "session_id", text)).session_id == text


# ---- lengths and truncation ----------------------------------------------------------------------


def test_lengths_beyond_the_end(codec: ModuleType) -> None:
    decode_error(codec, key(num("MxEvent", "session_id"), 2) + varint(5) + b"abc")
    decode_error(codec, key(num("MxEvent", "value"), 2) + varint(2**31) + b"abc")
    # a nested length that runs past its own message (but not past the buffer)
    inner = key(num("MxValue", "string_value"), 2) + varint(5) + b"ab"
    decode_error(codec, fl("MxEvent", "value", inner) + b"cdefgh")
    decode_error(codec, f64("MxEvent", "family", 0)[:-1])


# ---- nesting -------------------------------------------------------------------------------------


def test_nesting_up_to_64_levels_decodes(codec: ModuleType) -> None:
    # MxValue at levels 1, 4, ..., 64: 64 levels in all, accepted by both
    decoded = decode_ok(codec, _deep_value(64), "value")
    depth = 0
    native = decoded.value
    while isinstance(native, MxSparseArray):
        native = native.elements[0][1]
        depth += 1
    assert (depth, native) == (21, True)


def _deep_value(levels: int) -> bytes:
    """An MxValue whose messages nest exactly ``levels`` deep (via sparse arrays)."""
    chains, extra = divmod(levels - 1, 3)
    if extra == 0:
        inner = fv("MxValue", "bool_value", 1)
    elif extra == 1:
        inner = fl("MxValue", "sparse_array_value", b"")
    else:
        inner = fl("MxValue", "sparse_array_value", fl("MxSparseArray", "elements", b""))
    data = inner
    for _ in range(chains):
        element = fl("MxSparseElement", "value", data)
        data = fl("MxValue", "sparse_array_value", fl("MxSparseArray", "elements", element))
    return data


def test_nesting_deeper_than_64_is_rejected(codec: ModuleType) -> None:
    for levels in (62, 63, 64):
        assert decode_ok(codec, _deep_value(levels), "value").data_type == 0
    # 65 levels: protobuf still accepts (its limit is about 100), we do not (docs D4)
    for levels in (65, 66, 67, 99):
        assert pb_parse(pb.MxValue, _deep_value(levels)) is not None
        with pytest.raises(MxGatewayDecodeError, match="nested deeper than 64"):
            codec.from_mx_value(_deep_value(levels))
    # a very deep input stops at level 65, far from Python's recursion limit
    with pytest.raises(MxGatewayDecodeError, match="nested deeper than 64"):
        codec.from_mx_value(_deep_value(5000))


def test_groups_count_as_levels(codec: ModuleType) -> None:
    # MxEvent is level 1, so 63 nested groups reach level 64; protobuf stops at about 100
    for levels, protobuf_accepts in ((63, True), (64, True), (99, True), (150, False)):
        data = key(UNKNOWN, 3) * levels + key(UNKNOWN, 4) * levels
        assert (pb_parse(pb.MxEvent, data) is not None) == protobuf_accepts
        if levels <= 63:
            assert decode_ok(codec, data).body == ""
        else:
            with pytest.raises(MxGatewayDecodeError, match="nested deeper than 64"):
                codec.decode_event(data)


def test_top_level_message_is_level_one(codec: ModuleType) -> None:
    # MxValue inside MxEvent (1) inside MxEventBatch (1 more)
    deep = _deep_value(63)
    assert decode_ok(codec, fl("MxEvent", "value", deep)).body == ""
    with pytest.raises(MxGatewayDecodeError, match="nested deeper than 64"):
        codec.decode_event_batch(fl("MxEventBatch", "events", fl("MxEvent", "value", deep)))
    with pytest.raises(MxGatewayDecodeError, match="nested deeper than 64"):
        codec.decode_event(fl("MxEvent", "value", _deep_value(64)))


# ---- arrays and values ---------------------------------------------------------------------------


def test_array_selection_and_nesting(codec: ModuleType) -> None:
    arr = "MxArray"
    ints = fl(
        arr, "int64_values", varint(1) + varint(2) + varint(3) + varint(4) + varint(5) + varint(6)
    )
    strings = fl(arr, "string_values", "a") + fl(arr, "string_values", "b")
    integer = fv(arr, "element_data_type", 3)
    flat = [1, 2, 3, 4, 5, 6]

    def dims(*values: int) -> bytes:
        return fl(arr, "dimensions", b"".join(varint(v) for v in values))

    cases = [
        (integer + ints, flat),
        (integer + ints + dims(2, 3), [[1, 2, 3], [4, 5, 6]]),
        (integer + ints + dims(3, 2), [[1, 2], [3, 4], [5, 6]]),
        (integer + ints + dims(1, 2, 3), [[[1, 2, 3], [4, 5, 6]]]),
        (integer + ints + dims(6), flat),
        (integer + ints + dims(2, 2), flat),
        (integer + dims(0, 3), []),
        (integer + dims(5, 0), []),
        (fv(arr, "element_data_type", 17) + strings + ints, ["a", "b"]),
        (fv(arr, "element_data_type", 9) + strings, ["a", "b"]),
        (fv(arr, "element_data_type", 2) + strings, []),
        (fv(arr, "element_data_type", 12) + strings + ints, flat),
        (fv(arr, "element_data_type", 99) + strings, ["a", "b"]),
        (integer + fl(arr, "int32_values", b"\x07") + ints, [7]),
        (b"", []),
    ]
    for body, expected in cases:
        got = decode_ok(codec, value(fl("MxValue", "array_value", body))).value
        assert got == expected, (body.hex(), got)


def test_time_values(codec: ModuleType) -> None:
    stamp = ts(seconds=-1, nanos=1999)
    event = decode_ok(codec, value(fl("MxValue", "timestamp_value", stamp)))
    assert event.value == datetime(1969, 12, 31, 23, 59, 59, 1, tzinfo=UTC)
    # floored to microseconds, also below zero
    span = fv("Duration", "seconds", 0) + fv("Duration", "nanos", -1)
    assert decode_ok(codec, value(fl("MxValue", "elapsed_value", span))).value == timedelta(
        microseconds=-1
    )
    assert decode_ok(codec, value(fl("MxValue", "timestamp_value", b""))).value == datetime(
        1970, 1, 1, tzinfo=UTC
    )
    # out of range: an error in both
    decode_error(codec, value(fl("MxValue", "timestamp_value", ts(seconds=253402300800))))
    decode_error(codec, value(fl("MxValue", "elapsed_value", fv("Duration", "seconds", 2**62))))
    arr = fl("MxArray", "timestamp_values", ts(seconds=-(2**62)))
    decode_error(
        codec, value(fl("MxValue", "array_value", fv("MxArray", "element_data_type", 7) + arr))
    )
    # ... unless the array does not use that list
    body = fv("MxArray", "element_data_type", 3) + arr
    assert decode_ok(codec, value(fl("MxValue", "array_value", body))).value == []
    # event timestamps are plain ints: no range check at all
    far = fl("MxEvent", "source_timestamp", ts(seconds=-(2**63), nanos=-(2**31)))
    assert decode_ok(codec, far).source_timestamp_ns == -(2**63) * 10**9 - 2**31


def test_raw_value_when_no_arm(codec: ModuleType) -> None:
    data = value(
        fl("MxValue", "raw_value", b"\x00\x01"), fl("MxValue", "variant_type", "VT_RECORD")
    )
    event = decode_ok(codec, data)
    assert (event.value, event.raw_value, event.has_value) == (b"\x00\x01", b"\x00\x01", True)
    event = decode_ok(codec, value())
    assert (event.value, event.raw_value, event.has_value) == (None, b"", True)
    event = decode_ok(codec, b"")
    assert (event.value, event.data_type, event.has_value) == (None, MxDataType.UNSPECIFIED, False)


def test_batch_skips_unknown_fields(codec: ModuleType) -> None:
    data = ev(
        fl("MxEventBatch", "events", fv("MxEvent", "quality", 1)),
        UNKNOWN_FIELDS["nested groups"],
        key(num("MxEventBatch", "events"), 0) + b"\x05",  # wrong wire type: unknown
        fl("MxEventBatch", "events", b""),
    )
    events = decode_ok(codec, data, "batch")
    assert [e.quality for e in events] == [1, 0]
    assert decode_ok(codec, b"", "batch") == []


# ---- inputs --------------------------------------------------------------------------------------


def test_input_types(codec: ModuleType) -> None:
    data = fl("MxEvent", "session_id", "abc")
    for wrapped in (bytearray(data), memoryview(data), memoryview(bytearray(data))):
        assert codec.decode_event(wrapped).session_id == "abc"
    for wrong in ("text", 5, None, [1, 2]):
        with pytest.raises(TypeError):
            codec.decode_event(wrong)
        with pytest.raises(TypeError):
            codec.decode_event_batch(wrong)
        with pytest.raises(TypeError):
            codec.from_mx_value(wrong)
    with pytest.raises(BufferError):
        codec.decode_event(memoryview(b"\x0a\x00\x0a\x00")[::2])


def test_from_mx_value_takes_generated_messages(codec: ModuleType) -> None:
    assert codec.from_mx_value(pb.MxValue(int32_value=5, data_type=3)).value == 5
    with pytest.raises(TypeError):
        codec.from_mx_value(pb.MxEvent())


def test_errors_name_message_offset_and_problem(codec: ModuleType) -> None:
    data = fv("MxEvent", "quality", 1) + value(fv("MxValue", "data_type", 1) + b"\x08")
    with pytest.raises(MxGatewayDecodeError) as info:
        codec.decode_event(data)
    text = str(info.value)
    assert "MxValue" in text and "offset" in text and "truncated" in text
    assert isinstance(info.value, ValueError)


def test_tags_name_the_events(codec: ModuleType) -> None:
    from mxgateway import encode_event_batch
    from mxgateway.types import EMPTY_EVENT

    events = [msgspec.structs.replace(EMPTY_EVENT, item_handle=h) for h in (7, 8, 7)]
    data = encode_event_batch(events)
    names = {7: "Tank_001.Level"}
    assert [e.tag for e in codec.decode_event_batch(data, names)] == [
        "Tank_001.Level",
        None,
        "Tank_001.Level",
    ]
    assert codec.decode_event_batch(data, names)[0].tag is names[7]  # the caller's string
    assert codec.decode_event(encode_event(events[0]), names).tag == "Tank_001.Level"
    assert codec.decode_event_batch(data)[0].tag is None
    with pytest.raises(TypeError, match="dict"):
        codec.decode_event_batch(data, [(7, "x")])
