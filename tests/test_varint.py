"""decode_varint, the codec's first building block, in both implementations."""

from __future__ import annotations

from types import ModuleType

import pytest
from google.protobuf import wrappers_pb2
from hypothesis import given
from hypothesis import strategies as st

from mxgateway import MxGatewayDecodeError
from tests.conftest import CODEC_MODULES


def _varint(value: int) -> bytes:
    # protobuf itself is the oracle: a UInt64Value is tag byte 0x08 then the varint.
    if value == 0:
        return b"\x00"
    return wrappers_pb2.UInt64Value(value=value).SerializeToString()[1:]


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_round_trips_protobuf_varints(value: int) -> None:
    data = _varint(value)
    for module in CODEC_MODULES:
        assert module.decode_varint(data) == (value, len(data))
        assert module.decode_varint(b"\xff" + data + b"\x00", 1) == (value, len(data) + 1)


def test_negative_int32_is_ten_bytes(codec: ModuleType) -> None:
    # protobuf sign-extends negative int32 to 64 bits on the wire.
    data = wrappers_pb2.Int32Value(value=-1).SerializeToString()[1:]
    assert len(data) == 10
    assert codec.decode_varint(data) == (2**64 - 1, 10)


@pytest.mark.parametrize("value", [0, 1, 127, 128, 300, 2**31, 2**63, 2**64 - 1])
def test_every_truncation_raises(codec: ModuleType, value: int) -> None:
    data = _varint(value)
    for cut in range(len(data)):
        with pytest.raises(MxGatewayDecodeError, match="truncated"):
            codec.decode_varint(data[:cut])


def test_too_long_raises(codec: ModuleType) -> None:
    with pytest.raises(MxGatewayDecodeError, match="longer than 10 bytes"):
        codec.decode_varint(b"\x80" * 10 + b"\x00")


def test_bits_past_64_are_dropped_as_protobuf_does(codec: ModuleType) -> None:
    assert codec.decode_varint(b"\xff" * 9 + b"\x7f") == (2**64 - 1, 10)
    assert codec.decode_varint(b"\x80" * 9 + b"\x02") == (0, 10)


@pytest.mark.parametrize("offset", [-1, 4])
def test_offset_outside_buffer_raises(codec: ModuleType, offset: int) -> None:
    with pytest.raises(MxGatewayDecodeError, match="outside"):
        codec.decode_varint(b"\x01\x02", offset)


@given(st.binary(max_size=16), st.integers(min_value=0, max_value=16))
def test_implementations_agree_on_any_bytes(data: bytes, offset: int) -> None:
    results = []
    for module in CODEC_MODULES:
        try:
            results.append(("ok", module.decode_varint(data, offset)))
        except MxGatewayDecodeError as exc:
            results.append(("error", str(exc)))
    assert all(result == results[0] for result in results)
