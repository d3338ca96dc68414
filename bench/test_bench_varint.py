"""Varint decoding, compiled against the twin (the codec issue adds the event benchmarks)."""

from __future__ import annotations

from types import ModuleType

import pytest

from mxgateway import _pycodec

try:
    from mxgateway import _speedups
except ImportError:  # pragma: no cover - only without a compiler
    _speedups = None  # type: ignore[assignment]

IMPLS = [pytest.param(_pycodec, id="python")]
if _speedups is not None:
    IMPLS.append(pytest.param(_speedups, id="cython"))

DATA = bytes([203, 137, 236, 143, 247, 35])  # 1_234_567_890_123 as a varint


@pytest.mark.benchmark(group="decode-varint")
@pytest.mark.parametrize("module", IMPLS)
def test_decode_varint(benchmark, module: ModuleType) -> None:
    value, _ = benchmark(module.decode_varint, DATA)
    assert value == 1_234_567_890_123
