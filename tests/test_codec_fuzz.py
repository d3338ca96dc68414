"""Fuzzing: random bytes and mutated valid messages never crash the codec.

Whatever the input, each implementation either raises MxGatewayDecodeError or returns
exactly what protobuf + _pbconvert make of the bytes when protobuf accepts them (and
rejects what protobuf rejects), apart from the two documented strictness points (D5a).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxgateway import MxGatewayDecodeError, _pycodec
from tests.codec_support import (
    assert_like_protobuf,
    canon,
    key,
    num,
    pb_batches,
    pb_events,
    pb_values,
)
from tests.conftest import COMPILED

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)
KINDS = ("event", "batch", "value")

# Bytes that are likely to mean something to a protobuf parser.
interesting_bytes = st.one_of(
    st.integers(0, 255),
    st.sampled_from([0x00, 0x7F, 0x80, 0xFF, 0x08, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F]),
    st.sampled_from(list(key(num("MxEvent", "value"), 2) + key(num("MxEvent", "statuses"), 2))),
)
protobufish = st.lists(interesting_bytes, max_size=48).map(bytes)


@SETTINGS
@given(data=st.one_of(st.binary(max_size=64), protobufish), kind=st.sampled_from(KINDS))
def test_random_bytes(codec: ModuleType, data: bytes, kind: str) -> None:
    assert_like_protobuf(codec, kind, data)


def _source(kind: str) -> Any:
    return {"event": pb_events(), "batch": pb_batches(), "value": pb_values()}[kind]


@st.composite
def mutated(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(KINDS))
    data = bytearray(draw(_source(kind)).SerializeToString())
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "insert", "delete", "splice", "overwrite", "dup"]))
        at = draw(st.integers(0, len(data)))
        if op == "flip" and data:
            at = min(at, len(data) - 1)
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif op == "delete" and data:
            del data[at : at + draw(st.integers(1, 4))]
        elif op == "splice":
            other = draw(_source(draw(st.sampled_from(KINDS)))).SerializeToString()
            start = draw(st.integers(0, len(other)))
            data[at:at] = other[start : start + draw(st.integers(1, 24))]
        elif op == "overwrite" and data:
            at = min(at, len(data) - 1)
            data[at] = draw(st.sampled_from([0x00, 0x80, 0xFF, 0x7F, 0x0E, 0x0C, 0x0B]))
        elif op == "dup" and data:
            data[at:at] = data[at : at + draw(st.integers(1, 12))]
    return kind, bytes(data)


@SETTINGS
@given(case=mutated())
def test_mutated_valid_messages(codec: ModuleType, case: tuple[str, bytes]) -> None:
    kind, data = case
    assert_like_protobuf(codec, kind, data)


def _result(module: ModuleType, kind: str, data: bytes) -> tuple[str, Any]:
    decode = {
        "event": module.decode_event,
        "batch": module.decode_event_batch,
        "value": module.from_mx_value,
    }[kind]
    try:
        return "ok", canon(decode(data))
    except MxGatewayDecodeError:
        return "error", None


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.one_of(mutated(), st.tuples(st.sampled_from(KINDS), st.binary(max_size=64))))
def test_cython_and_python_agree(case: tuple[str, bytes]) -> None:
    # The two implementations against each other, directly (no protobuf in between).
    if COMPILED is None:
        return
    kind, data = case
    assert _result(COMPILED, kind, data) == _result(_pycodec, kind, data)
