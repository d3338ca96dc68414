"""Fuzzing in CI (fixed budget, derandomized): both codec implementations over
protobuf-shaped random bytes (every field number, wire type, nesting past the limit, lengths
that lie) and over random Python values to encode: no crash, no exception other than the
documented ones, and the compiled module and the twin agree on every input.

tests/test_codec_fuzz.py compares each codec with protobuf on small inputs; this one looks for
crashes and disagreements on larger, deeper, hostile ones. bench/hardening/fuzz_codec.py runs
the same checks for as long as it is asked to, with hang detection.
"""

from __future__ import annotations

import faulthandler
import math
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from types import ModuleType
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mxgateway import MxDataType, _pycodec
from tests.conftest import CODEC_MODULES, COMPILED
from tests.hardening.fuzz_inputs import KINDS, decode_outcome, encode_outcome, random_message

FUZZ = settings(
    max_examples=500,
    derandomize=True,
    database=None,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# A hang fails the run (with every thread's stack) instead of blocking CI.
HANG_S = 120


@pytest.fixture(autouse=True)
def hang_guard() -> Iterator[None]:
    faulthandler.dump_traceback_later(HANG_S, exit=True)
    try:
        yield
    finally:
        faulthandler.cancel_dump_traceback_later()


@st.composite
def hostile_bytes(draw: st.DrawFn) -> bytes:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = random.Random(seed)
    data = bytearray(random_message(rng))
    for _ in range(draw(st.integers(0, 3))):  # then a few blind mutations
        if not data:
            break
        at = draw(st.integers(0, len(data) - 1))
        data[at] = draw(st.integers(0, 255))
    return bytes(data)


def _views(data: bytes) -> list[Any]:
    return [data, bytearray(data), memoryview(data), memoryview(b"\x00" + data)[1:]]


@FUZZ
@given(data=st.one_of(hostile_bytes(), st.binary(max_size=512)), kind=st.sampled_from(KINDS))
def test_decoders_survive_hostile_bytes_and_agree(data: bytes, kind: str) -> None:
    results = {
        (codec.__name__, index): decode_outcome(codec, kind, view)
        for codec in CODEC_MODULES
        for index, view in enumerate(_views(data))
    }
    assert len(set(map(repr, results.values()))) == 1, (kind, data.hex(), results)


_naive = datetime(2024, 5, 1, 12, 0, 0)
leaf_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.sampled_from([2**31 - 1, 2**31, -(2**31) - 1, 2**63 - 1, 2**63, -(2**63) - 1]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([math.nan, math.inf, -math.inf, 3.4028235e38, 3.5e38, 1e-46, -0.0]),
    st.text(max_size=12),
    st.sampled_from(["\ud800", "a\udfffb"]),  # lone surrogates: not UTF-8
    st.binary(max_size=12),
    st.datetimes(timezones=st.sampled_from([UTC, timezone(timedelta(hours=-5))])),
    st.just(_naive),
    st.timedeltas(),
    st.just(object()),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
)
python_values = st.recursive(
    leaf_values,
    lambda children: st.lists(children, max_size=4) | st.tuples(children, children),
    max_leaves=12,
)
data_types = st.one_of(
    st.none(),
    st.sampled_from(list(MxDataType)),
    st.integers(-3, 25),
    st.sampled_from([2**31, "DOUBLE", 1.5]),
)


@FUZZ
@given(value=python_values, data_type=data_types)
def test_encoder_refuses_cleanly_and_agrees(value: Any, data_type: Any) -> None:
    outcomes = {codec.__name__: encode_outcome(codec, value, data_type) for codec in CODEC_MODULES}
    assert len(set(map(repr, outcomes.values()))) == 1, (value, data_type, outcomes)
    status, encoded = outcomes[_pycodec.__name__]
    if status == "ok":
        # What the encoder makes, the decoders read back without error.
        for codec in CODEC_MODULES:
            assert decode_outcome(codec, "value", encoded)[0] == "ok"


def test_both_implementations_are_fuzzed() -> None:
    modules: list[ModuleType] = list(CODEC_MODULES)
    assert _pycodec in modules
    assert COMPILED is None or COMPILED in modules
