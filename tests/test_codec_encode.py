"""encode_event / encode_event_batch / encode_flood_batch against protobuf.

- The bytes equal protobuf's SerializeToString() of the message built from the struct by the
  rules of docs/codec.md (D20-D25), built here independently with the generated classes.
- decode(encode(e)) == e for every decoded e (random protobuf events).
- The flood batch decodes, with protobuf, to exactly the events the spec describes, and is
  the same in both implementations.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxgateway import _pycodec
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
    ReplayGap,
)
from tests.codec_support import (
    canon,
    event_timestamps_encodable,
    pb,
    pb_batches,
    pb_event_from_struct,
    pb_events,
)

DT = MxDataType
SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


def make_event(**changes: Any) -> MxEvent:
    base: dict[str, Any] = {
        "session_id": "",
        "family": MxEventFamily.UNSPECIFIED,
        "worker_sequence": 0,
        "server_handle": 0,
        "item_handle": 0,
        "value": None,
        "data_type": DT.UNSPECIFIED,
        "variant_type": "",
        "is_null": False,
        "raw_diagnostic": "",
        "raw_data_type": 0,
        "raw_value": b"",
        "has_value": False,
        "quality": 0,
        "source_timestamp_ns": None,
        "statuses": (),
        "worker_timestamp_ns": None,
        "gateway_receive_timestamp_ns": None,
        "hresult": None,
        "raw_status": "",
        "replay_gap": None,
        "body": "",
        "buffered_data_type": DT.UNSPECIFIED,
        "samples": (),
        "alarm_transition": None,
    }
    base.update(changes)
    return MxEvent(**base)


def value_event(value: Any, data_type: Any = DT.UNSPECIFIED, **changes: Any) -> MxEvent:
    return make_event(value=value, data_type=data_type, has_value=True, **changes)


# Enum fields hold plain ints for numbers the enum does not name (proto3 enums are open).
UNKNOWN_CATEGORY: Any = 42
UNKNOWN_SOURCE: Any = -1
T0 = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)

HAND_MADE = {
    "empty": make_event(),
    "scalars": make_event(
        session_id="sessión",
        family=MxEventFamily.ON_WRITE_COMPLETE,
        worker_sequence=2**64 - 1,
        server_handle=-(2**31),
        item_handle=2**31 - 1,
        quality=192,
        raw_status="S_OK",
        hresult=0,
        source_timestamp_ns=0,
        worker_timestamp_ns=-1,
        gateway_receive_timestamp_ns=1_700_000_000_123_456_789,
    ),
    "unknown enums": make_event(
        family=99,
        data_type=-5,
        has_value=True,
        body="on_buffered_data_change",
        buffered_data_type=77,
    ),
    "statuses": make_event(
        statuses=(
            MxStatus(1, MxStatusCategory.OK, MxStatusSource.RESPONDING_LMX, 0, 0, 1, ""),
            MxStatus(0, UNKNOWN_CATEGORY, UNKNOWN_SOURCE, -3, 8, 5, "bad ✗"),
            MxStatus(0, MxStatusCategory.UNSPECIFIED, MxStatusSource.UNSPECIFIED, 0, 0, 0, ""),
        )
    ),
    "replay gap empty": make_event(replay_gap=ReplayGap(0, 0)),
    "replay gap": make_event(replay_gap=ReplayGap(5, 2**64 - 1), family=MxEventFamily.UNSPECIFIED),
    "bool false": value_event(False, DT.BOOLEAN, variant_type="VT_BOOL"),
    "int32 zero": value_event(0, DT.INTEGER),
    "int64": value_event(-(2**40), DT.INTEGER),
    "double": value_event(1.1, DT.DOUBLE, raw_data_type=4),
    "float exact": value_event(0.5, DT.FLOAT),
    "float inexact": value_event(0.1, DT.FLOAT),
    "nan": value_event(float("nan"), DT.DOUBLE),
    "inf as float": value_event(float("-inf"), DT.FLOAT),
    "string": value_event("ü", DT.STRING, is_null=False, raw_diagnostic="x"),
    "empty string": value_event("", DT.BIG_STRING),
    "time": value_event(T0, DT.TIME),
    "elapsed": value_event(timedelta(seconds=-5, microseconds=1), DT.ELAPSED_TIME),
    "raw": value_event(
        b"\x01\x02", DT.UNSPECIFIED, raw_value=b"\x01\x02", variant_type="VT_RECORD"
    ),
    "null": value_event(None, DT.NO_DATA, is_null=True, variant_type="VT_EMPTY"),
    "array ints": value_event([[1, 2], [3, 4]], DT.INTEGER),
    "array int64": value_event([1, 2**40], DT.INTEGER),
    "array floats as FLOAT": value_event([0.5, -2.0], DT.FLOAT),
    "array floats not exact": value_event([0.5, 0.1], DT.FLOAT),
    "array doubles": value_event([[[0.1]]], DT.DOUBLE),
    "array strings typed": value_event(["a", "b"], DT.REFERENCE),
    "array strings untyped": value_event(["a"], DT.UNSPECIFIED),
    "array times": value_event([T0, T0], DT.TIME),
    "array elapsed": value_event([timedelta(1)], DT.ELAPSED_TIME),
    "array bools": value_event([True, False], DT.BOOLEAN),
    "array empty": value_event([], DT.DOUBLE),
    "array empty unknown type": value_event([], 99),
    "sparse": value_event(
        MxSparseArray(DT.FLOAT, 9, ((1, 0.5), (2, None), (3, "x"), (4, b"raw"), (5, 0.1))),
        DT.FLOAT,
    ),
    "on_data_change": make_event(body="on_data_change"),
    "operation_complete": make_event(body="operation_complete"),
    "buffered": make_event(
        body="on_buffered_data_change",
        buffered_data_type=DT.DOUBLE,
        samples=(
            BufferedSample(MxValue(2.5, DT.DOUBLE, "VT_R8", False, "", 4, b""), 192, 5),
            BufferedSample(None, 0, None),
            BufferedSample(MxValue(None, DT.UNSPECIFIED, "", False, "", 0, b""), -1, 0),
        ),
    ),
    "buffered empty": make_event(body="on_buffered_data_change"),
    "alarm": make_event(
        body="on_alarm_transition",
        alarm_transition=AlarmTransition(
            "Tank.Level.Hi",
            "Tank",
            "Hi",
            AlarmTransitionKind.ACKNOWLEDGE,
            500,
            10**18,
            None,
            "op",
            "comment",
            "cat",
            "desc",
            MxValue(97.5, DT.DOUBLE, "", False, "", 0, b""),
            None,
            True,
            AlarmConditionState.ACTIVE_ACKED,
        ),
    ),
    "alarm none": make_event(body="on_alarm_transition"),
}


@pytest.mark.parametrize("name", list(HAND_MADE))
def test_encode_event_is_byte_identical_to_protobuf(codec: ModuleType, name: str) -> None:
    event = HAND_MADE[name]
    expected = pb_event_from_struct(event).SerializeToString()
    assert codec.encode_event(event) == expected
    assert (
        codec.encode_event_batch([event, event])
        == pb.MxEventBatch(events=[pb_event_from_struct(event)] * 2).SerializeToString()
    )


ROUND_TRIPS = [n for n in HAND_MADE if n not in ("nan", "array empty unknown type")]


@pytest.mark.parametrize("name", ROUND_TRIPS)
def test_decode_of_encode_is_identity(codec: ModuleType, name: str) -> None:
    event = HAND_MADE[name]
    if name == "alarm none":
        # decoding an empty on_alarm_transition gives an AlarmTransition of defaults
        assert codec.decode_event(codec.encode_event(event)).alarm_transition is not None
        return
    assert canon(codec.decode_event(codec.encode_event(event))) == canon(event)


def test_nan_and_empty_untyped_arrays_read_back(codec: ModuleType) -> None:
    decoded = codec.decode_event(codec.encode_event(HAND_MADE["nan"]))
    assert decoded.value != decoded.value
    decoded = codec.decode_event(codec.encode_event(HAND_MADE["array empty unknown type"]))
    assert decoded.value == []


def test_fields_outside_the_chosen_arms_are_ignored(codec: ModuleType) -> None:
    # docs D22: no value unless has_value; body fields only inside their own arm
    plain = codec.encode_event(make_event())
    assert codec.encode_event(make_event(value=5, data_type=DT.INTEGER, is_null=True)) == plain
    sample = BufferedSample(None, 1, None)
    assert codec.encode_event(make_event(buffered_data_type=7, samples=(sample,))) == plain
    alarm = HAND_MADE["alarm"].alarm_transition
    assert codec.encode_event(make_event(alarm_transition=alarm)) == plain
    assert codec.encode_event(make_event(body="on_data_change", alarm_transition=alarm)) == (
        codec.encode_event(make_event(body="on_data_change"))
    )


def test_encode_event_batch_of_nothing(codec: ModuleType) -> None:
    assert codec.encode_event_batch([]) == b""
    assert codec.encode_event_batch(()) == b""


@SETTINGS
@given(message=pb_events())
def test_random_decoded_events_round_trip(codec: ModuleType, message: Any) -> None:
    data = message.SerializeToString()
    try:
        event = codec.decode_event(data)
    except ValueError:
        return  # a native value outside datetime's range: nothing to encode
    if not event_timestamps_encodable(event):
        with pytest.raises(ValueError, match="Timestamp range"):
            codec.encode_event(event)
        return
    encoded = codec.encode_event(event)
    assert encoded == pb_event_from_struct(event).SerializeToString()
    assert canon(codec.decode_event(encoded)) == canon(event)


@SETTINGS
@given(message=pb_batches())
def test_random_batches_round_trip(codec: ModuleType, message: Any) -> None:
    try:
        events = codec.decode_event_batch(message.SerializeToString())
    except ValueError:
        return
    if not all(event_timestamps_encodable(e) for e in events):
        return
    encoded = codec.encode_event_batch(events)
    assert (
        encoded
        == pb.MxEventBatch(events=[pb_event_from_struct(e) for e in events]).SerializeToString()
    )
    assert canon(codec.decode_event_batch(encoded)) == canon(events)


def test_encode_errors(codec: ModuleType) -> None:
    for bad in (
        make_event(server_handle=2**31),
        make_event(worker_sequence=-1),
        make_event(hresult=2**31),
        make_event(family=2**31),
        make_event(source_timestamp_ns=2**63 * 10**9),
        make_event(body="on_something"),
        make_event(replay_gap=ReplayGap(-1, 0)),
        value_event(2**63, DT.INTEGER),
        value_event(b"other", raw_value=b"raw"),
        value_event([1, "a"]),
        value_event([[1], [1, 2]]),
        value_event(datetime(2024, 1, 1)),
        value_event(MxSparseArray(DT.INTEGER, 2**32, ())),
        make_event(session_id="\ud800"),
    ):
        with pytest.raises(ValueError):
            codec.encode_event(bad)
    for bad in (
        make_event(session_id=5),
        make_event(quality="192"),
        make_event(statuses=("x",)),
        make_event(is_null=1, has_value=True),
        value_event(object()),
        value_event({1: 2}),
    ):
        with pytest.raises(TypeError):
            codec.encode_event(bad)
    with pytest.raises(TypeError):
        codec.encode_event("not an event")
    with pytest.raises(TypeError):
        codec.encode_event_batch([make_event(), None])


# ---- the flood ----------------------------------------------------------------------------------


def expected_flood(
    session_id: str,
    server_handle: int,
    item_handles: list[int],
    first_sequence: int,
    count: int,
    timestamp_ns: int,
) -> Any:
    """The batch docs/codec.md describes, built field by field with the generated classes."""
    batch = pb.MxEventBatch()
    seconds, nanos = divmod(timestamp_ns, 1_000_000_000)
    for i in range(count):
        sequence = first_sequence + i
        h = item_handles[(first_sequence + i) % len(item_handles)]
        event = batch.events.add(
            session_id=session_id,
            family=pb.MX_EVENT_FAMILY_ON_DATA_CHANGE,
            worker_sequence=sequence,
            server_handle=server_handle,
            item_handle=h,
            quality=192,
        )
        for stamp in (
            event.source_timestamp,
            event.worker_timestamp,
            event.gateway_receive_timestamp,
        ):
            stamp.SetInParent()
            stamp.seconds = seconds
            stamp.nanos = nanos
        event.statuses.add(
            success=1,
            category=pb.MX_STATUS_CATEGORY_OK,
            detected_by=pb.MX_STATUS_SOURCE_RESPONDING_LMX,
        )
        mode = h % 4
        v = event.value
        if mode == 0:
            v.data_type, v.variant_type = pb.MX_DATA_TYPE_DOUBLE, "VT_R8"
            v.double_value = h + sequence * 0.5
        elif mode == 1:
            v.data_type, v.variant_type = pb.MX_DATA_TYPE_INTEGER, "VT_I4"
            v.int32_value = sequence % 100000
        elif mode == 2:
            v.data_type, v.variant_type = pb.MX_DATA_TYPE_BOOLEAN, "VT_BOOL"
            v.bool_value = sequence % 2 == 1
        else:
            v.data_type, v.variant_type = pb.MX_DATA_TYPE_STRING, "VT_BSTR"
            v.string_value = f"v{sequence % 1000}"
        v.raw_data_type = v.data_type - 1
        event.on_data_change.SetInParent()
    return batch


FLOODS = [
    ("session-1", 7, [100, 101, 102, 103], 1, 10, 1_700_000_000_123_456_789),
    ("", 0, [0, -1, -2, -3, 2**31 - 1, -(2**31)], 0, 13, -1),
    ("sé", -5, [3], 2**64 - 4, 4, 0),
    ("s", 1, [5, 6], 2**53 + 1, 3, 10**9),
    ("s", 1, [5], 0, 0, 0),
]


@pytest.mark.parametrize("args", FLOODS)
def test_flood_batch_is_what_the_spec_describes(codec: ModuleType, args: Any) -> None:
    data = codec.encode_flood_batch(*args)
    expected = expected_flood(*args)
    assert pb.MxEventBatch.FromString(data) == expected
    assert data == expected.SerializeToString()
    assert len(codec.decode_event_batch(data)) == args[4]


@pytest.mark.parametrize("args", FLOODS)
def test_flood_batch_same_in_both_implementations(codec: ModuleType, args: Any) -> None:
    assert codec.encode_flood_batch(*args) == _pycodec.encode_flood_batch(*args)


def test_flood_batch_accepts_any_sequence_of_handles(codec: ModuleType) -> None:
    a = codec.encode_flood_batch("s", 1, (4, 5), 0, 3, 0)
    assert a == codec.encode_flood_batch("s", 1, [4, 5], 0, 3, 0)
    assert a == codec.encode_flood_batch("s", 1, range(4, 6), 0, 3, 0)


def test_flood_batch_argument_errors(codec: ModuleType) -> None:
    args: tuple[Any, ...]
    for args in (
        ("s", 1, [], 0, 1, 0),
        ("s", 2**31, [1], 0, 1, 0),
        ("s", 1, [2**31], 0, 1, 0),
        ("s", 1, [1], -1, 1, 0),
        ("s", 1, [1], 0, -1, 0),
        ("s", 1, [1], 2**64 - 1, 2, 0),
        ("s", 1, [1], 0, 1, 2**63 * 10**9),
    ):
        with pytest.raises(ValueError):
            codec.encode_flood_batch(*args)
    for args in (
        (5, 1, [1], 0, 1, 0),
        ("s", 1.0, [1], 0, 1, 0),
        ("s", 1, ["1"], 0, 1, 0),
        ("s", 1, [1], 0, 1, 0.5),
    ):
        with pytest.raises(TypeError):
            codec.encode_flood_batch(*args)


@settings(
    max_examples=50, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    session=st.text(max_size=5),
    server=st.integers(-(2**31), 2**31 - 1),
    handles=st.lists(st.integers(-(2**31), 2**31 - 1), min_size=1, max_size=6),
    first=st.integers(0, 2**64 - 50),
    count=st.integers(0, 12),
    stamp=st.integers(-(2**62), 2**62),
)
def test_flood_batch_random_arguments(
    codec: ModuleType,
    session: str,
    server: int,
    handles: list[int],
    first: int,
    count: int,
    stamp: int,
) -> None:
    data = codec.encode_flood_batch(session, server, handles, first, count, stamp)
    assert data == expected_flood(session, server, handles, first, count, stamp).SerializeToString()
