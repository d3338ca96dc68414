"""decode_event_columns: every row equals decode_event_batch's event, in both implementations.

Random batches (the differential strategies, plus batches shaped like a data-change stream so
most rows fit the columns) are decoded both ways and compared row by row on the typed
canonical form; the compiled and the pure-Python decoders give the same parts (the same
block bytes, dictionaries, others and names); malformed bytes raise MxGatewayDecodeError
and nothing else. Then the EventColumns API: subsets, exports, what goes to ``others``.
"""

from __future__ import annotations

import tracemalloc
from datetime import timedelta
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxgateway import (
    TIMESTAMP_ABSENT,
    MxEvent,
    MxGatewayDecodeError,
    ValueKind,
    _pycodec,
    decode_event_batch,
    decode_event_columns,
    encode_event,
)
from mxgateway.columns import EventColumns
from tests.codec_support import canon, outcome, pb, pb_batches, pb_events, pb_statuses
from tests.conftest import COMPILED
from tests.test_codec_fuzz import mutated

SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
SESSION = "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b"
NAMES = {h: f"Tag_{h}.PV" for h in range(-3, 40)}


# ---- strategies -----------------------------------------------------------------------------

scalar_values = st.one_of(
    st.tuples(st.just("double_value"), st.floats(allow_nan=True, width=64)),
    st.tuples(st.just("float_value"), st.floats(allow_nan=True, width=32)),
    st.tuples(st.just("int32_value"), st.integers(-(2**31), 2**31 - 1)),
    st.tuples(st.just("int64_value"), st.integers(-(2**63), 2**63 - 1)),
    st.tuples(st.just("bool_value"), st.booleans()),
    st.tuples(st.just("string_value"), st.text(max_size=12)),
    st.tuples(st.just("timestamp_value"), st.integers(-(10**19), 10**19)),
    st.tuples(st.just("elapsed_value"), st.integers(-(10**19), 10**19)),
    st.tuples(st.just(None), st.none()),
)


@st.composite
def stream_events(draw: st.DrawFn) -> Any:
    """An event as a data-change stream carries them (most fit the columns)."""
    event = pb.MxEvent(
        session_id=SESSION,
        family=draw(st.sampled_from([1, 1, 1, 2, 0, 7])),
        worker_sequence=draw(st.integers(0, 2**64 - 1)),
        server_handle=draw(st.integers(-2, 3)),
        item_handle=draw(st.integers(-3, 45)),
        quality=draw(st.sampled_from([192, 0, 64, -1])),
    )
    if draw(st.integers(0, 5)):
        value = event.value
        value.SetInParent()
        value.data_type = draw(st.integers(0, 20))
        value.variant_type = draw(st.sampled_from(["VT_R8", "VT_I4", "VT_BOOL", "", "VT_BSTR"]))
        value.raw_data_type = draw(st.integers(-1, 20))
        value.is_null = draw(st.booleans())
        arm, native = draw(scalar_values)
        if arm in ("timestamp_value", "elapsed_value"):
            target = getattr(value, arm)
            target.seconds, target.nanos = divmod(native, 10**9)
            if arm == "elapsed_value" and target.seconds < 0 and target.nanos:
                target.seconds += 1
                target.nanos -= 10**9
        elif arm is not None:
            setattr(value, arm, native)
    for field in ("source_timestamp", "worker_timestamp", "gateway_receive_timestamp"):
        if draw(st.integers(0, 4)):
            stamp = getattr(event, field)
            ns = draw(st.one_of(st.integers(0, 2**62), st.integers(-(10**20), 10**20)))
            stamp.seconds, stamp.nanos = divmod(ns, 10**9)
    if draw(st.integers(0, 3)):
        event.statuses.append(draw(pb_statuses()))
    if draw(st.integers(0, 5)):
        event.on_data_change.SetInParent()
    return event


@st.composite
def batches(draw: st.DrawFn) -> bytes:
    events = draw(st.lists(st.one_of(stream_events(), stream_events(), pb_events()), max_size=8))
    data: bytes = pb.MxEventBatch(events=events).SerializeToString()
    return data


def _tags(draw_tags: bool) -> dict[int, str] | None:
    return dict(NAMES) if draw_tags else None


# ---- rows equal structs -----------------------------------------------------------------------


def _rows(columns: EventColumns) -> list[Any]:
    return [canon(columns.row(i)) for i in range(len(columns))]


@SETTINGS
@given(data=batches(), named=st.booleans())
def test_every_row_equals_the_struct(codec: ModuleType, data: bytes, named: bool) -> None:
    tags = _tags(named)
    expected = outcome(lambda: codec.decode_event_batch(data, tags))
    assert outcome(lambda: codec.decode_event_columns(data, tags).to_events()) == expected


@SETTINGS
@given(message=pb_batches())
def test_rows_of_random_batches(codec: ModuleType, message: Any) -> None:
    data = message.SerializeToString()
    expected = outcome(lambda: codec.decode_event_batch(data))
    got = outcome(lambda: codec.decode_event_columns(data).to_events())
    assert got == expected


@SETTINGS
@given(case=mutated())
def test_malformed_bytes_raise_decode_errors(codec: ModuleType, case: tuple[str, bytes]) -> None:
    _, data = case
    # The same outcome as the struct decoder: values, or MxGatewayDecodeError (nothing else).
    expected = outcome(lambda: codec.decode_event_batch(data, NAMES))
    assert outcome(lambda: codec.decode_event_columns(data, NAMES).to_events()) == expected


def _parts(module: ModuleType, messages: list[bytes], tags: Any, single: bool) -> Any:
    try:
        n, block, offsets, strings, variants, statuses, others, sid, names = module._decode_columns(
            messages, tags, single
        )
    except MxGatewayDecodeError:
        return "error"
    return (
        n,
        bytes(block),
        offsets,
        strings,
        canon(tuple(variants)),
        canon(tuple(statuses)),
        canon(tuple(others)),
        sid,
        names,
    )


@pytest.mark.skipif(COMPILED is None, reason="the compiled codec is not built")
@SETTINGS
@given(
    messages=st.lists(st.one_of(batches(), mutated().map(lambda c: c[1])), max_size=3),
    named=st.booleans(),
)
def test_compiled_and_twin_make_the_same_parts(messages: list[bytes], named: bool) -> None:
    tags = _tags(named)
    assert COMPILED is not None
    assert _parts(COMPILED, messages, tags, False) == _parts(_pycodec, messages, tags, False)


@pytest.mark.skipif(COMPILED is None, reason="the compiled codec is not built")
@SETTINGS
@given(events=st.lists(st.one_of(stream_events(), pb_events()), max_size=5))
def test_single_event_messages(events: list[Any]) -> None:
    # The StreamEvents path: one MxEvent per message.
    messages = [e.SerializeToString() for e in events]
    assert COMPILED is not None
    twin = _parts(_pycodec, messages, NAMES, True)
    assert _parts(COMPILED, messages, NAMES, True) == twin
    if twin != "error":
        expected = [canon(_pycodec.decode_event(m, NAMES)) for m in messages]
        from mxgateway._pycodec._columns import _decode_columns
        from mxgateway.columns import _from_parts

        columns = _from_parts(_decode_columns(messages, NAMES, True))
        assert _rows(columns) == expected


def test_layouts_agree() -> None:
    if COMPILED is not None:
        assert COMPILED._column_layout() == _pycodec._columns._column_layout()


# ---- what fits, what goes to others ---------------------------------------------------------


def _event(**fields: Any) -> Any:
    event = pb.MxEvent(session_id=SESSION, family=1, worker_sequence=7, item_handle=3, quality=192)
    event.value.data_type = 5
    event.value.variant_type = "VT_R8"
    event.value.double_value = 1.5
    event.on_data_change.SetInParent()
    for name, value in fields.items():
        if callable(value):
            value(event)
        else:
            setattr(event, name, value)
    return event


def _batch(*events: Any) -> bytes:
    data: bytes = pb.MxEventBatch(events=list(events)).SerializeToString()
    return data


def _two_statuses(event: Any) -> None:
    event.statuses.add(success=1)
    event.statuses.add(success=0)


def _array(event: Any) -> None:
    event.value.array_value.element_data_type = 5
    event.value.array_value.double_values.extend([1.0, 2.0])


def _gap(event: Any) -> None:
    event.replay_gap.requested_after_sequence = 3


def _far_future(event: Any) -> None:
    event.worker_timestamp.seconds = 9_000_000_000


def _raw(event: Any) -> None:
    event.value.raw_value = b"\x01"


OTHERS = {
    "array": _array,
    "raw value": _raw,
    "two statuses": _two_statuses,
    "replay gap": _gap,
    "timestamp beyond int64 ns": _far_future,
    "hresult": lambda e: setattr(e, "hresult", 0),
    "raw status": lambda e: setattr(e, "raw_status", "x"),
    "another session": lambda e: setattr(e, "session_id", "other"),
    "buffered samples": lambda e: e.on_buffered_data_change.samples.add(quality=192),
    "alarm": lambda e: setattr(e.on_alarm_transition, "severity", 3),
}


@pytest.mark.parametrize("name", sorted(OTHERS))
def test_events_that_do_not_fit_are_kept_whole(codec: ModuleType, name: str) -> None:
    data = _batch(_event(), _event(worker_sequence=8, x=OTHERS[name]))
    columns = codec.decode_event_columns(data, NAMES)
    events = codec.decode_event_batch(data, NAMES)
    assert len(columns) == 2
    assert list(columns.value_kind) == [ValueKind.FLOAT, ValueKind.OTHER]
    assert [row for row, _ in columns.others] == [1]
    assert canon(columns.others[0][1]) == canon(events[1])
    assert canon(columns.to_events()) == canon(events)
    # What fits of the other row is still in the columns.
    assert int(columns.worker_sequence[1]) == 8
    assert int(columns.item_handle[1]) == 3


def test_time_and_elapsed_values(codec: ModuleType) -> None:
    def stamp(event: Any) -> None:
        event.value.timestamp_value.seconds = 1_700_000_000
        event.value.timestamp_value.nanos = 123_456_789

    def elapsed(event: Any) -> None:
        event.value.elapsed_value.seconds = -3
        event.value.elapsed_value.nanos = -5

    data = _batch(_event(x=stamp), _event(x=elapsed))
    columns = codec.decode_event_columns(data)
    assert list(columns.value_kind) == [ValueKind.TIME, ValueKind.ELAPSED]
    assert list(columns.value_int) == [1_700_000_000_123_456_789, -3_000_000_005]
    assert canon(columns.to_events()) == canon(codec.decode_event_batch(data))
    assert columns.row(1).value == timedelta(microseconds=-3_000_000_005 // 1000)


def test_a_timestamp_value_out_of_range_is_the_same_error(codec: ModuleType) -> None:
    def ancient(event: Any) -> None:
        event.value.timestamp_value.seconds = -(10**15)

    data = _batch(_event(x=ancient))
    with pytest.raises(MxGatewayDecodeError):
        codec.decode_event_batch(data)
    with pytest.raises(MxGatewayDecodeError):
        codec.decode_event_columns(data)


def test_absent_timestamps_are_the_sentinel(codec: ModuleType) -> None:
    event = _event()
    event.source_timestamp.seconds = 5
    columns = codec.decode_event_columns(_batch(event))
    assert int(columns.source_timestamp_ns[0]) == 5_000_000_000
    assert int(columns.worker_timestamp_ns[0]) == TIMESTAMP_ABSENT
    assert np.isnat(columns.worker_timestamp_ns.view("M8[ns]")[0])
    assert columns.row(0).worker_timestamp_ns is None


# Payloads that repeat from row to row, differ in one middle byte, or do not fit (the
# compiled decoder reuses a timestamp equal to the previous row's and skips validating a
# variant equal to its data type's last one: the rows must not change).
_STAMPS = (
    1_767_225_600_123_456_789,
    1_767_225_600_123_456_788,
    1_767_225_600_123_450_789,
    1_767_225_601_123_456_789,
    1_767_225_600_000_000_000,
    0,
    -5,
    10**19,  # beyond the columns' range: the row goes to others
)
_stamp_picks = st.integers(0, len(_STAMPS))  # len: absent


@SETTINGS
@given(
    rows=st.lists(
        st.tuples(
            _stamp_picks,
            _stamp_picks,
            _stamp_picks,
            st.sampled_from(["VT_R8", "VT_I4", "", "VT_R8 "]),
            st.sampled_from([5, 2, 0]),
        ),
        min_size=1,
        max_size=12,
    ),
    named=st.booleans(),
)
def test_repeated_timestamps_and_variants(codec: ModuleType, rows: list[Any], named: bool) -> None:
    events = []
    for i, (src, worker, gateway, variant, data_type) in enumerate(rows):
        event = _event(worker_sequence=i + 1)
        event.value.variant_type = variant
        event.value.data_type = data_type
        for field, pick in zip(
            ("source_timestamp", "worker_timestamp", "gateway_receive_timestamp"),
            (src, worker, gateway),
            strict=True,
        ):
            if pick < len(_STAMPS):
                stamp = getattr(event, field)
                stamp.seconds, stamp.nanos = divmod(_STAMPS[pick], 10**9)
        events.append(event)
    data = _batch(*events)
    tags = _tags(named)
    expected = outcome(lambda: codec.decode_event_batch(data, tags))
    assert outcome(lambda: codec.decode_event_columns(data, tags).to_events()) == expected


def test_a_full_dictionary_sends_rows_to_others(codec: ModuleType) -> None:
    events = [_event(worker_sequence=i + 1) for i in range(1030)]
    for i, event in enumerate(events):
        event.value.variant_type = f"VT_{i}"
    data = _batch(*events)
    columns = codec.decode_event_columns(data)
    assert len(columns.variant_type_values) == 1024
    assert [row for row, _ in columns.others] == list(range(1024, 1030))
    assert canon(columns.to_events()) == canon(codec.decode_event_batch(data))


def test_tags(codec: ModuleType) -> None:
    data = _batch(_event(item_handle=1), _event(item_handle=2), _event(item_handle=1))
    columns = codec.decode_event_columns(data, {1: "A.PV", 9: "Z"})
    assert columns.tags == {1: "A.PV"}  # only the rows' items
    assert [e.tag for e in columns] == ["A.PV", None, "A.PV"]
    assert list(columns.tag_values()) == ["A.PV", None, "A.PV"]
    assert codec.decode_event_columns(data).tags is None
    with pytest.raises(TypeError):
        codec.decode_event_columns(data, [(1, "A")])


def test_empty_batch(codec: ModuleType) -> None:
    columns = codec.decode_event_columns(b"")
    assert len(columns) == 0
    assert columns.to_events() == []
    assert len(columns.value_offsets) == 1
    assert columns.to_arrow().num_rows == 0


def test_bytes_like_inputs(codec: ModuleType) -> None:
    data = _batch(_event(), _event(worker_sequence=9))
    expected = canon(codec.decode_event_columns(data).to_events())
    for form in (bytearray(data), memoryview(data)):
        assert canon(codec.decode_event_columns(form).to_events()) == expected


# ---- EventColumns ------------------------------------------------------------------------------


@pytest.fixture
def columns() -> EventColumns:
    events = [
        _event(worker_sequence=i + 1, item_handle=i % 5, x=(_gap if i == 0 else lambda e: None))
        for i in range(20)
    ]
    for i, event in enumerate(events):
        if i % 3 == 0:
            event.value.ClearField("double_value")
            event.value.string_value = f"s{i}é"
            event.value.data_type = 6
        event.statuses.add(success=1, category=1, detected_by=2, diagnostic_text=f"d{i % 2}")
    return decode_event_columns(_batch(*events), NAMES)


def test_rows_iteration_and_indexing(columns: EventColumns) -> None:
    events = list(columns)
    assert len(events) == 20 and all(isinstance(e, MxEvent) for e in events)
    assert columns[-1] == events[-1] == columns.row(19)
    with pytest.raises(IndexError):
        columns.row(20)
    assert columns[3:9].to_events() == events[3:9]
    assert columns[::4].to_events() == events[::4]


def test_take_and_concat(columns: EventColumns) -> None:
    events = columns.to_events()
    picked = columns.take([5, 0, 19, 3, 3])
    assert picked.to_events() == [events[i] for i in (5, 0, 19, 3, 3)]
    mask = columns.value_kind == ValueKind.STRING
    assert columns.take(mask).to_events() == [events[i] for i in np.flatnonzero(mask)]
    joined = EventColumns.concat([columns[:7], columns[7:12], columns.take([12, 13]), columns[14:]])
    assert joined.to_events() == events
    assert list(joined.string_values()) == list(columns.string_values())


def test_strings_and_statuses(columns: EventColumns) -> None:
    strings = columns.string_values()
    assert strings[3] == "s3é" and strings[4] is None
    assert list(columns.status_success[1:4]) == [1, 1, 1]
    assert columns.status_values[int(columns.status_index[1])].diagnostic_text == "d1"
    assert columns.status_category.dtype == np.int32


def test_columns_cannot_be_assigned(columns: EventColumns) -> None:
    with pytest.raises(AttributeError):
        columns.worker_sequence = np.zeros(20, np.uint64)  # type: ignore[misc]
    with pytest.raises(TypeError):
        EventColumns()


def test_to_arrow_shares_the_numeric_and_string_buffers(columns: EventColumns) -> None:
    pa = pytest.importorskip("pyarrow")
    batch = columns.to_arrow()
    batch.validate(full=True)
    assert batch.num_rows == 20
    sequence = batch.column("worker_sequence")
    assert sequence.buffers()[1].address == columns.worker_sequence.ctypes.data
    strings = batch.column("value_str")
    assert strings.buffers()[1].address == columns.value_offsets.ctypes.data
    assert strings.to_pylist()[3] == "s3é" and strings.to_pylist()[4] is None
    assert batch.column("source_timestamp").type == pa.timestamp("ns", tz="UTC")
    assert batch.column("tag").to_pylist()[:3] == [NAMES[0], NAMES[1], NAMES[2]]
    other = batch.column("other").to_pylist()
    assert other[0] == encode_event(columns.row(0)) and other[1] is None
    table = pa.Table.from_batches([batch])
    assert table.column("worker_sequence").to_pylist() == list(range(1, 21))


def test_to_pandas(columns: EventColumns) -> None:
    pd = pytest.importorskip("pandas")
    frame = columns.to_pandas()
    assert len(frame) == 20
    assert str(frame["gateway_receive_timestamp"].dtype) == "datetime64[ns, UTC]"
    assert frame["value_str"][3] == "s3é"
    assert pd.isna(frame["value_float"][3]) and frame["value_float"][1] == 1.5
    assert frame["other"][0] == columns.row(0)


def test_to_polars(columns: EventColumns) -> None:
    pl = pytest.importorskip("polars")
    assert columns.to_polars().shape == (20, len(columns.to_arrow().schema))
    assert isinstance(columns.to_polars(), pl.DataFrame)


def test_retained_bytes_per_event() -> None:
    # The flood's events: a few columns viewed. Retained is what dropping the EventColumns
    # frees (so free lists filled while decoding do not count). Target: <= 120 bytes per
    # event; the layout is 84 bytes plus the string data.
    from mxgateway.sim._flood import impl

    data = impl.encode_flood_batch(SESSION, 1, list(range(1, 17)), 1, 4000, 1_700_000_000 * 10**9)
    tracemalloc.start()
    try:
        columns = decode_event_columns(data, NAMES)
        _ = columns.worker_sequence, columns.value_kind, columns.gateway_receive_timestamp_ns
        held = tracemalloc.get_traced_memory()[0]
        del columns, _  # no reference cycle: freed here (gc.collect() would empty free lists)
        retained = held - tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert 84 * 4000 <= retained <= 120 * 4000, retained / 4000
    assert decode_event_batch(data, NAMES) == decode_event_columns(data, NAMES).to_events()


def test_the_struct_api_works_without_numpy() -> None:
    # A child interpreter where numpy cannot be imported: structs decode, columns name the extra.
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['numpy'] = None\n"
        "import mxgateway\n"
        "from mxgateway.sim._flood import impl\n"
        "data = impl.encode_flood_batch('s', 1, [1, 2], 1, 10, 0)\n"
        "assert len(mxgateway.decode_event_batch(data)) == 10\n"
        "try:\n"
        "    mxgateway.decode_event_columns(data)\n"
        "except ImportError as exc:\n"
        "    print(exc)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result
    assert "mxgateway[columns]" in result.stdout
