"""Random protobuf messages: both codecs decode them exactly as protobuf + _pbconvert do.

The messages are built with the generated classes (every field, every oneof arm, nested
values, arrays with dimensions, sparse arrays, unknown enum numbers, negative ints, unicode,
extreme timestamps), serialized by protobuf, then decoded by the codec under test and by the
oracle. Struct equality is checked on a typed canonical form (True is not 1, an IntEnum
member is not a plain int, nan equals nan).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, given, settings

from tests.codec_support import (
    canon,
    oracle,
    outcome,
    pb_batches,
    pb_events,
    pb_values,
)

SETTINGS = settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)


@SETTINGS
@given(message=pb_events())
def test_decode_event_equals_protobuf(codec: ModuleType, message: Any) -> None:
    data = message.SerializeToString()
    assert outcome(lambda: codec.decode_event(data)) == oracle("event", data)


@SETTINGS
@given(message=pb_batches())
def test_decode_event_batch_equals_protobuf(codec: ModuleType, message: Any) -> None:
    data = message.SerializeToString()
    assert outcome(lambda: codec.decode_event_batch(data)) == oracle("batch", data)


@SETTINGS
@given(message=pb_values())
def test_from_mx_value_equals_protobuf(codec: ModuleType, message: Any) -> None:
    data = message.SerializeToString()
    expected = oracle("value", data)
    assert outcome(lambda: codec.from_mx_value(data)) == expected
    # The generated message itself is accepted too (serialized first).
    assert outcome(lambda: codec.from_mx_value(message)) == expected


@SETTINGS
@given(message=pb_events())
def test_bytes_like_inputs_decode_the_same(codec: ModuleType, message: Any) -> None:
    data = message.SerializeToString()
    expected = outcome(lambda: codec.decode_event(data))
    assert outcome(lambda: codec.decode_event(bytearray(data))) == expected
    assert outcome(lambda: codec.decode_event(memoryview(data))) == expected
    # A view into a larger buffer: only the viewed bytes are decoded.
    padded = memoryview(b"\xff\xff" + data + b"\x0e")[2 : 2 + len(data)]
    assert outcome(lambda: codec.decode_event(padded)) == expected


def test_canonical_form_tells_types_apart() -> None:
    # The comparison the tests rely on must not let True pass for 1 or an int for a member.
    from mxgateway.types import MxDataType

    assert canon(True) != canon(1)
    assert canon(1.0) != canon(1)
    assert canon(MxDataType.BOOLEAN) != canon(2)
    assert canon([1]) != canon((1,))
    assert canon(float("nan")) == canon(float("nan"))
