"""to_mx_value / from_mx_value: every type of the spec, byte-identical to protobuf.

Each expected encoding is built with the generated MxValue class and serialized by
protobuf; the codec's bytes must equal it exactly, and decode back to the same value.
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, date, datetime, timedelta, timezone
from types import ModuleType
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxgateway._pbconvert import value_from_pb
from mxgateway.types import MxDataType, MxSparseArray, MxValue
from tests.codec_support import EPOCH, canon, pb

DT = MxDataType


def mxv(**fields: Any) -> bytes:
    """The expected bytes: a generated MxValue serialized by protobuf."""
    data: bytes = pb.MxValue(**fields).SerializeToString()
    return data


def ts_msg(value: datetime) -> Any:
    delta = value - EPOCH
    return Timestamp(seconds=delta.days * 86400 + delta.seconds, nanos=delta.microseconds * 1000)


def dur_msg(seconds: int, nanos: int) -> Any:
    return Duration(seconds=seconds, nanos=nanos)


def array(**fields: Any) -> Any:
    return pb.MxArray(**fields)


F32_MAX = struct.unpack("<f", b"\xff\xff\x7f\x7f")[0]
AWARE = datetime(2024, 2, 29, 12, 30, 45, 123456, tzinfo=UTC)
CET = timezone(timedelta(hours=1))

# (value, data_type, expected bytes)
CASES: list[tuple[Any, Any, bytes]] = [
    (None, None, mxv(data_type=DT.NO_DATA, variant_type="VT_EMPTY", is_null=True)),
    (None, DT.INTEGER, mxv(data_type=DT.INTEGER, variant_type="VT_EMPTY", is_null=True)),
    (None, DT.UNSPECIFIED, mxv(data_type=DT.NO_DATA, variant_type="VT_EMPTY", is_null=True)),
    (None, 77, mxv(data_type=77, variant_type="VT_EMPTY", is_null=True)),
    (True, None, mxv(data_type=DT.BOOLEAN, bool_value=True)),
    (False, DT.BOOLEAN, mxv(data_type=DT.BOOLEAN, bool_value=False)),
    (0, None, mxv(data_type=DT.INTEGER, int32_value=0)),
    (-1, None, mxv(data_type=DT.INTEGER, int32_value=-1)),
    (2**31 - 1, None, mxv(data_type=DT.INTEGER, int32_value=2**31 - 1)),
    (-(2**31), None, mxv(data_type=DT.INTEGER, int32_value=-(2**31))),
    (2**31, None, mxv(data_type=DT.INTEGER, int64_value=2**31)),
    (-(2**31) - 1, DT.INTEGER, mxv(data_type=DT.INTEGER, int64_value=-(2**31) - 1)),
    (2**63 - 1, None, mxv(data_type=DT.INTEGER, int64_value=2**63 - 1)),
    (-(2**63), None, mxv(data_type=DT.INTEGER, int64_value=-(2**63))),
    (3, DT.DOUBLE, mxv(data_type=DT.DOUBLE, double_value=3.0)),
    (2**53, DT.DOUBLE, mxv(data_type=DT.DOUBLE, double_value=2.0**53)),
    (2**24, DT.FLOAT, mxv(data_type=DT.FLOAT, float_value=2.0**24)),
    (-7, DT.FLOAT, mxv(data_type=DT.FLOAT, float_value=-7.0)),
    (1.5, None, mxv(data_type=DT.DOUBLE, double_value=1.5)),
    (-0.0, None, mxv(data_type=DT.DOUBLE, double_value=-0.0)),
    (0.0, DT.DOUBLE, mxv(data_type=DT.DOUBLE, double_value=0.0)),
    (1e308, None, mxv(data_type=DT.DOUBLE, double_value=1e308)),
    (0.1, DT.FLOAT, mxv(data_type=DT.FLOAT, float_value=0.1)),
    (F32_MAX, DT.FLOAT, mxv(data_type=DT.FLOAT, float_value=F32_MAX)),
    (1e-50, DT.FLOAT, mxv(data_type=DT.FLOAT, float_value=1e-50)),
    (3.0, DT.INTEGER, mxv(data_type=DT.INTEGER, int32_value=3)),
    (-(2.0**40), DT.INTEGER, mxv(data_type=DT.INTEGER, int64_value=-(2**40))),
    ("", None, mxv(data_type=DT.STRING, string_value="")),
    ("Zürich ✓ 😀", None, mxv(data_type=DT.STRING, string_value="Zürich ✓ 😀")),
    ("s", DT.BIG_STRING, mxv(data_type=DT.BIG_STRING, string_value="s")),
    (
        "s",
        DT.INTERNATIONALIZED_STRING,
        mxv(data_type=DT.INTERNATIONALIZED_STRING, string_value="s"),
    ),
    ("Tag.Attr", DT.REFERENCE, mxv(data_type=DT.REFERENCE, string_value="Tag.Attr")),
    (AWARE, None, mxv(data_type=DT.TIME, timestamp_value=ts_msg(AWARE))),
    (EPOCH, DT.TIME, mxv(data_type=DT.TIME, timestamp_value=ts_msg(EPOCH))),
    (
        datetime(1969, 12, 31, 23, 59, 59, 500000, tzinfo=UTC),
        None,
        mxv(data_type=DT.TIME, timestamp_value=Timestamp(seconds=-1, nanos=500_000_000)),
    ),
    (
        datetime(2024, 1, 1, 1, 0, tzinfo=CET),
        None,
        mxv(data_type=DT.TIME, timestamp_value=ts_msg(datetime(2024, 1, 1, tzinfo=UTC))),
    ),
    (timedelta(0), None, mxv(data_type=DT.ELAPSED_TIME, elapsed_value=dur_msg(0, 0))),
    (
        timedelta(seconds=90, microseconds=5),
        DT.ELAPSED_TIME,
        mxv(data_type=DT.ELAPSED_TIME, elapsed_value=dur_msg(90, 5000)),
    ),
    (
        timedelta(seconds=-1, microseconds=250000),
        None,
        mxv(data_type=DT.ELAPSED_TIME, elapsed_value=dur_msg(0, -750_000_000)),
    ),
    (
        timedelta(days=-2, microseconds=1),
        None,
        mxv(data_type=DT.ELAPSED_TIME, elapsed_value=dur_msg(-172799, -999_999_000)),
    ),
    (b"", None, mxv(variant_type="VT_RECORD")),
    (b"\x00\x01", None, mxv(variant_type="VT_RECORD", raw_value=b"\x00\x01")),
    (
        bytearray(b"\xff"),
        DT.QUALIFIED_STRUCT,
        mxv(data_type=DT.QUALIFIED_STRUCT, variant_type="VT_RECORD", raw_value=b"\xff"),
    ),
    # arrays
    (
        [1, 2, 3],
        None,
        mxv(
            data_type=DT.INTEGER,
            array_value=array(element_data_type=DT.INTEGER, dimensions=[3], int32_values=[1, 2, 3]),
        ),
    ),
    (
        (1, 2**40),
        None,
        mxv(
            data_type=DT.INTEGER,
            array_value=array(
                element_data_type=DT.INTEGER, dimensions=[2], int64_values=[1, 2**40]
            ),
        ),
    ),
    (
        [[1.5, 2.5, 3.5], [4.5, 5.5, 6.5]],
        None,
        mxv(
            data_type=DT.DOUBLE,
            array_value=array(
                element_data_type=DT.DOUBLE,
                dimensions=[2, 3],
                double_values=[1.5, 2.5, 3.5, 4.5, 5.5, 6.5],
            ),
        ),
    ),
    (
        [[[True], [False]]],
        None,
        mxv(
            data_type=DT.BOOLEAN,
            array_value=array(
                element_data_type=DT.BOOLEAN, dimensions=[1, 2, 1], bool_values=[True, False]
            ),
        ),
    ),
    (
        [1, 2.5],
        DT.DOUBLE,
        mxv(
            data_type=DT.DOUBLE,
            array_value=array(
                element_data_type=DT.DOUBLE, dimensions=[2], double_values=[1.0, 2.5]
            ),
        ),
    ),
    (
        [0.1, 7],
        DT.FLOAT,
        mxv(
            data_type=DT.FLOAT,
            array_value=array(element_data_type=DT.FLOAT, dimensions=[2], float_values=[0.1, 7.0]),
        ),
    ),
    (
        [1.0, -2.0],
        DT.INTEGER,
        mxv(
            data_type=DT.INTEGER,
            array_value=array(element_data_type=DT.INTEGER, dimensions=[2], int32_values=[1, -2]),
        ),
    ),
    (
        ["a", "ü"],
        DT.BIG_STRING,
        mxv(
            data_type=DT.BIG_STRING,
            array_value=array(
                element_data_type=DT.BIG_STRING, dimensions=[2], string_values=["a", "ü"]
            ),
        ),
    ),
    (
        [AWARE, EPOCH],
        None,
        mxv(
            data_type=DT.TIME,
            array_value=array(
                element_data_type=DT.TIME,
                dimensions=[2],
                timestamp_values=[ts_msg(AWARE), ts_msg(EPOCH)],
            ),
        ),
    ),
    (
        [timedelta(seconds=1), timedelta(microseconds=-1)],
        None,
        mxv(
            data_type=DT.ELAPSED_TIME,
            array_value=array(
                element_data_type=DT.ELAPSED_TIME,
                dimensions=[2],
                elapsed_values=[dur_msg(1, 0), dur_msg(0, -1000)],
            ),
        ),
    ),
    (
        [],
        DT.INTEGER,
        mxv(data_type=DT.INTEGER, array_value=array(element_data_type=DT.INTEGER, dimensions=[0])),
    ),
    (
        [[], []],
        DT.STRING,
        mxv(data_type=DT.STRING, array_value=array(element_data_type=DT.STRING, dimensions=[2, 0])),
    ),
    # sparse arrays (each element written as to_mx_value(native, element_data_type))
    (
        MxSparseArray(DT.INTEGER, 10, ((2, 5), (7, None))),
        None,
        mxv(
            data_type=DT.INTEGER,
            sparse_array_value=pb.MxSparseArray(
                element_data_type=DT.INTEGER,
                total_length=10,
                elements=[
                    pb.MxSparseElement(
                        index=2, value=pb.MxValue(data_type=DT.INTEGER, int32_value=5)
                    ),
                    pb.MxSparseElement(
                        index=7,
                        value=pb.MxValue(
                            data_type=DT.INTEGER, variant_type="VT_EMPTY", is_null=True
                        ),
                    ),
                ],
            ),
        ),
    ),
    (
        MxSparseArray(DT.UNSPECIFIED, 0, ((0, "x"),)),
        None,
        mxv(
            sparse_array_value=pb.MxSparseArray(
                elements=[
                    pb.MxSparseElement(value=pb.MxValue(data_type=DT.STRING, string_value="x"))
                ]
            )
        ),
    ),
]


@pytest.mark.parametrize(("value", "data_type", "expected"), CASES)
def test_to_mx_value_is_byte_identical_to_protobuf(
    codec: ModuleType, value: Any, data_type: Any, expected: bytes
) -> None:
    assert codec.to_mx_value(value, data_type) == expected
    if data_type is None:
        assert codec.to_mx_value(value) == expected


def _same_native(decoded: Any, original: Any) -> bool:
    if isinstance(original, tuple):
        original = list(original)
    if isinstance(original, bytearray):
        original = bytes(original)
    if isinstance(original, datetime):
        original = original.astimezone(UTC)  # decoded datetimes are UTC (the same instant)
    return bool(canon(decoded) == canon(original))


@pytest.mark.parametrize(("value", "data_type", "expected"), CASES)
def test_from_mx_value_reads_it_back(
    codec: ModuleType, value: Any, data_type: Any, expected: bytes
) -> None:
    decoded = codec.from_mx_value(expected)
    assert canon(decoded) == canon(value_from_pb(pb.MxValue.FromString(expected)))
    if data_type is None and value not in (b"", None) and not isinstance(value, MxSparseArray):
        assert _same_native(decoded.value, value), (decoded.value, value)


# ---- errors ----------------------------------------------------------------------------------

NON_FINITE = [math.nan, math.inf, -math.inf, float("-nan")]


@pytest.mark.parametrize("bad", NON_FINITE, ids=repr)
def test_nan_and_infinities_are_rejected(codec: ModuleType, bad: float) -> None:
    for data_type in (None, DT.DOUBLE, DT.FLOAT, DT.INTEGER):
        with pytest.raises(ValueError, match=r"nan|inf"):
            codec.to_mx_value(bad, data_type)
        with pytest.raises(ValueError):
            codec.to_mx_value([1.0, bad], data_type)
        with pytest.raises(ValueError):
            codec.to_mx_value([[1.0], [bad]], data_type)


@pytest.mark.parametrize("bad", [2**63, -(2**63) - 1, 10**30, -(10**30)])
def test_out_of_range_ints(codec: ModuleType, bad: int) -> None:
    with pytest.raises(ValueError, match=str(bad)):
        codec.to_mx_value(bad)
    with pytest.raises(ValueError, match=str(bad)):
        codec.to_mx_value(bad, DT.INTEGER)
    with pytest.raises(ValueError):
        codec.to_mx_value([1, bad])


def test_inexact_or_overflowing_floats(codec: ModuleType) -> None:
    for value, data_type in [
        (2**24 + 1, DT.FLOAT),
        (2**53 + 1, DT.DOUBLE),
        (10**400, DT.DOUBLE),
        (1e39, DT.FLOAT),
        (-1e39, DT.FLOAT),
        (3.5, DT.INTEGER),
        (2.0**63, DT.INTEGER),
        (-(2.0**64), DT.INTEGER),
    ]:
        with pytest.raises(ValueError):
            codec.to_mx_value(value, data_type)
    # rounding to float32 precision is allowed, as long as it does not overflow
    assert codec.to_mx_value(3.4028235e38, DT.FLOAT) == mxv(
        data_type=DT.FLOAT, float_value=3.4028235e38
    )


# every data_type that does not fit a value: ValueError naming the value and the type
MISMATCHES: list[tuple[Any, MxDataType]] = []
_FITS: dict[type, set[MxDataType]] = {
    bool: {DT.BOOLEAN},
    int: {DT.INTEGER, DT.FLOAT, DT.DOUBLE},
    float: {DT.INTEGER, DT.FLOAT, DT.DOUBLE},
    str: {DT.STRING, DT.BIG_STRING, DT.INTERNATIONALIZED_STRING, DT.REFERENCE},
    datetime: {DT.TIME},
    timedelta: {DT.ELAPSED_TIME},
}
_SAMPLES = {bool: True, int: 5, float: 2.0, str: "s", datetime: AWARE, timedelta: timedelta(1)}
for _kind, _fits in _FITS.items():
    for _dt in MxDataType:
        if _dt not in _fits and _dt != DT.UNSPECIFIED:
            MISMATCHES.append((_SAMPLES[_kind], _dt))
MISMATCHES += [
    (MxSparseArray(DT.INTEGER, 1, ()), dt)
    for dt in MxDataType
    if dt not in (DT.UNSPECIFIED, DT.INTEGER)
]


@pytest.mark.parametrize(("value", "data_type"), MISMATCHES, ids=repr)
def test_data_type_mismatch_names_value_and_type(
    codec: ModuleType, value: Any, data_type: MxDataType
) -> None:
    with pytest.raises(ValueError) as info:
        codec.to_mx_value(value, data_type)
    text = str(info.value)
    assert data_type.name in text
    assert repr(value) in text or str(value) in text


def test_list_element_type_mismatch(codec: ModuleType) -> None:
    for value, data_type in [
        ([1, 2], DT.BOOLEAN),
        ([True], DT.INTEGER),
        (["a"], DT.DOUBLE),
        ([1], DT.STRING),
        ([1], DT.NO_DATA),
        ([1], DT.STATUS),
        ([AWARE], DT.ELAPSED_TIME),
        ([[1.5]], DT.INTEGER),
        ([2**24 + 1], DT.FLOAT),
    ]:
        with pytest.raises(ValueError):
            codec.to_mx_value(value, data_type)


class _Custom:
    pass


@pytest.mark.parametrize(
    "value",
    [object(), {"a": 1}, {1, 2}, date(2024, 1, 1), memoryview(b"x"), 1j, _Custom(), range(3)],
    ids=lambda v: type(v).__name__,
)
def test_unsupported_types_raise_type_error(codec: ModuleType, value: Any) -> None:
    with pytest.raises(TypeError):
        codec.to_mx_value(value)
    with pytest.raises(TypeError):
        codec.to_mx_value(value, DT.STRING)
    with pytest.raises(TypeError):
        codec.to_mx_value([value])


def test_bad_data_type_argument(codec: ModuleType) -> None:
    with pytest.raises(TypeError):
        codec.to_mx_value(1, "INTEGER")
    with pytest.raises(TypeError):
        codec.to_mx_value(1, 3.0)
    with pytest.raises(ValueError):
        codec.to_mx_value(None, 2**31)


def test_naive_datetime_is_rejected(codec: ModuleType) -> None:
    naive = datetime(2024, 1, 1)
    for value in (naive, [naive], [AWARE, naive]):
        with pytest.raises(ValueError, match="naive"):
            codec.to_mx_value(value)
    with pytest.raises(ValueError, match="naive"):
        codec.to_mx_value(naive, DT.TIME)


def test_lists_must_be_rectangular_and_homogeneous(codec: ModuleType) -> None:
    value: Any
    for value in (
        [[1, 2], [3]],
        [[1], 2],
        [1, [2]],
        [[1, 2], []],
        [[[1]], [2]],
        [1, 2.0],
        [True, 1],
        ["a", 1],
        [AWARE, timedelta(0)],
        [],
        [[], []],
    ):
        with pytest.raises(ValueError):
            codec.to_mx_value(value)
    for value in ([None], [1, None], [b"x"], [MxSparseArray(DT.INTEGER, 0, ())]):
        with pytest.raises(ValueError):
            codec.to_mx_value(value)
    deep: list[Any] = [1]
    for _ in range(70):
        deep = [deep]
    with pytest.raises(ValueError, match="deeper than 64"):
        codec.to_mx_value(deep)
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError):
        codec.to_mx_value(cyclic)


def test_strings_that_are_not_utf8(codec: ModuleType) -> None:
    with pytest.raises(ValueError):
        codec.to_mx_value("\ud800")
    with pytest.raises(ValueError):
        codec.to_mx_value(["ok", "\udfff"])


def test_sparse_array_range_checks(codec: ModuleType) -> None:
    with pytest.raises(ValueError):
        codec.to_mx_value(MxSparseArray(DT.INTEGER, 2**32, ()))
    with pytest.raises(ValueError):
        codec.to_mx_value(MxSparseArray(DT.INTEGER, 1, ((-1, 1),)))
    with pytest.raises(ValueError):
        codec.to_mx_value(MxSparseArray(DT.INTEGER, 1, ((0, "text"),)))


def test_from_mx_value_of_generated_message(codec: ModuleType) -> None:
    message = pb.MxValue(data_type=DT.INTEGER, variant_type="VT_I4", int32_value=-5)
    assert codec.from_mx_value(message) == MxValue(-5, DT.INTEGER, "VT_I4", False, "", 0, b"")
    assert codec.from_mx_value(message.SerializeToString()) == codec.from_mx_value(message)


# ---- round trips --------------------------------------------------------------------------------

aware_datetimes = st.datetimes(
    min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)
)
finite = st.floats(allow_nan=False, allow_infinity=False)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    finite,
    st.text(),
    st.binary(min_size=1),
    aware_datetimes,
    st.timedeltas(),
)


def _rectangular(elements: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    @st.composite
    def build(draw: st.DrawFn) -> Any:
        dims = draw(st.lists(st.integers(1, 3), min_size=1, max_size=3))
        count = math.prod(dims)
        flat = draw(st.lists(elements, min_size=count, max_size=count))
        for d in reversed(dims[1:]):
            flat = [flat[i : i + d] for i in range(0, len(flat), d)]
        return flat

    return build()


arrays = st.one_of(
    _rectangular(st.booleans()),
    _rectangular(st.integers(-(2**63), 2**63 - 1)),
    _rectangular(finite),
    _rectangular(st.text(max_size=5)),
    _rectangular(aware_datetimes),
    _rectangular(st.timedeltas()),
)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=st.one_of(scalars, arrays))
def test_round_trip(codec: ModuleType, value: Any) -> None:
    data = codec.to_mx_value(value)
    decoded = codec.from_mx_value(data)
    if value == b"" or value is None:
        assert decoded.value is None
    else:
        assert _same_native(decoded.value, value), (decoded.value, value)
    # protobuf reads the same bytes, and serializes them back identically
    message = pb.MxValue.FromString(data)
    assert message.SerializeToString() == data


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    value=st.one_of(
        st.integers(-(2**24), 2**24), st.floats(width=32, allow_nan=False, allow_infinity=False)
    ),
    data_type=st.sampled_from([DT.FLOAT, DT.DOUBLE]),
)
def test_round_trip_with_float_types(codec: ModuleType, value: Any, data_type: MxDataType) -> None:
    decoded = codec.from_mx_value(codec.to_mx_value(value, data_type))
    assert decoded.data_type is data_type
    assert decoded.value == float(value)
    assert type(decoded.value) is float
