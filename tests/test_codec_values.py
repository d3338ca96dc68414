"""to_mx_value / from_mx_value: every type of the spec, byte-identical to protobuf.

The cases are the shared fixtures (tests/fixtures/values.json): each expected encoding was
built with the generated MxValue class and serialized by protobuf; the codec's bytes must
equal it exactly, decode back to the same value, and every reject must raise its error kind.
"""

from __future__ import annotations

import math
import struct
from datetime import UTC, date, datetime
from types import ModuleType
from typing import Any

import pytest
from google.protobuf import json_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import mxgateway
from mxgateway._pbconvert import value_from_pb
from mxgateway.generated import mxaccess_gateway_pb2
from mxgateway.types import MxDataType, MxSparseArray, MxValue
from tests.codec_support import canon, pb
from tests.fixtures import values_source
from tests.fixtures.load import ERRORS, load, untag
from tests.fixtures.load import data_type as fixture_data_type

DT = MxDataType


def mxv(**fields: Any) -> bytes:
    """The expected bytes: a generated MxValue serialized by protobuf."""
    data: bytes = pb.MxValue(**fields).SerializeToString()
    return data


AWARE = datetime(2024, 2, 29, 12, 30, 45, 123456, tzinfo=UTC)

# The shared, language-neutral cases (tests/fixtures/values.json, FORMAT.md): each expected
# encoding was made by protobuf from the generated MxValue class (tests/fixtures/values_source.py).
VALUES = load("values.json")
CASES: list[Any] = [
    pytest.param(
        untag(case["value"]),
        fixture_data_type(case["data_type"]),
        bytes.fromhex(case["expected"]["hex"]),
        id=case["name"],
    )
    for case in VALUES["cases"]
]
REJECTS: list[Any] = [
    pytest.param(
        untag(case["value"]),
        fixture_data_type(case["data_type"]),
        ERRORS[case["error"]],
        case["message_contains"],
        id=case["name"],
    )
    for case in VALUES["rejects"]
]


def _float32(data: Any) -> Any:
    # protobuf prints a float field in its shortest float32 form (3.4028235e+38 for the
    # largest float32), which its own JSON parser then refuses as above float32's range:
    # read such numbers as float32, as FORMAT.md tells other clients to.
    if isinstance(data, dict):
        return {
            key: (
                [_f32(v) for v in value]
                if key == "floatValues"
                else _f32(value)
                if key == "floatValue"
                else _float32(value)
            )
            for key, value in data.items()
        }
    if isinstance(data, list):
        return [_float32(item) for item in data]
    return data


def _f32(number: float) -> float:
    result: float = struct.unpack("<f", struct.pack("<f", number))[0]
    return result


def test_fixture_file_is_in_step_with_its_source() -> None:
    assert values_source.render() == (values_source.PATH).read_text(encoding="utf-8"), (
        "python -m tests.fixtures.values_source --write"
    )


@pytest.mark.parametrize("case", VALUES["cases"], ids=lambda case: case["name"])
def test_fixture_json_and_hex_are_the_same_message(case: dict[str, Any]) -> None:
    # What another client may load either form from: protobuf JSON and bytes agree.
    message = json_format.ParseDict(_float32(case["expected"]["json"]), pb.MxValue())
    assert message == pb.MxValue.FromString(bytes.fromhex(case["expected"]["hex"]))


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


@pytest.mark.parametrize(("value", "data_type", "error", "contains"), REJECTS)
def test_fixture_rejects(
    codec: ModuleType, value: Any, data_type: Any, error: type[Exception], contains: list[str]
) -> None:
    with pytest.raises(error) as info:
        codec.to_mx_value(value, data_type)
    assert type(info.value) is error  # exactly the kind named, not a subclass of it
    for text in contains:
        assert text in str(info.value)


def test_rounding_to_float32_precision_is_allowed(codec: ModuleType) -> None:
    # ... as long as it does not overflow (the overflowing cases are fixture rejects)
    assert codec.to_mx_value(3.4028235e38, DT.FLOAT) == mxv(
        data_type=DT.FLOAT, float_value=3.4028235e38
    )


def test_type_mismatch_names_the_value(codec: ModuleType) -> None:
    for value, data_type in [(5, DT.BOOLEAN), ("s", DT.TIME), (AWARE, DT.INTEGER)]:
        with pytest.raises(ValueError) as info:
            codec.to_mx_value(value, data_type)
        assert repr(value) in str(info.value) or str(value) in str(info.value)


def test_cyclic_list_is_rejected(codec: ModuleType) -> None:
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    with pytest.raises(ValueError):
        codec.to_mx_value(cyclic)


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


# ---- the package's to_mx_value: a generated message, ready for a command -----------------------


@pytest.mark.parametrize(("value", "data_type", "expected"), CASES)
def test_public_to_mx_value_gives_the_message_and_the_bytes(
    value: Any, data_type: Any, expected: bytes
) -> None:
    message = mxgateway.to_mx_value(value, data_type)
    assert isinstance(message, mxaccess_gateway_pb2.MxValue)
    assert message == pb.MxValue.FromString(expected)
    assert mxgateway.to_mx_value_bytes(value, data_type) == expected


def test_public_to_mx_value_builds_a_raw_command() -> None:
    # The original client's documented use: pb.WriteCommand(value=to_mx_value(1.5)).
    command = mxaccess_gateway_pb2.WriteCommand(
        server_handle=1, item_handle=2, value=mxgateway.to_mx_value(1.5)
    )
    assert command.value.double_value == 1.5
    assert command.value.data_type == mxaccess_gateway_pb2.MX_DATA_TYPE_DOUBLE
    with pytest.raises(ValueError, match="nan"):
        mxgateway.to_mx_value(math.nan)
    with pytest.raises(TypeError):
        mxgateway.to_mx_value_bytes({"a": 1})
