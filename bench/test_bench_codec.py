"""Codec benchmarks: a 1000-event MxEventBatch decoded into structs three ways, and flood.

- ``decode-batch``: the compiled codec, its pure-Python twin, and protobuf's own parser plus
  reading every field into the same structs (``mxgateway._pbconvert.event_from_pb``, what a
  consumer of the plain generated stubs writes) - the ratios are the performance targets of
  design/architecture.md.
- ``decode-event``: one event per call (the StreamEvents path).
- ``decode-columns``: a 4000-event flood batch (what the flood simulator streams) into
  EventColumns, compiled and twin, beside the compiled struct decoder of the same bytes and a
  raw reference (a copy of the bytes: touching each once); ``extra_info`` also records the
  bytes each shape retains per event (tracemalloc: what dropping the result frees).
- ``encode-flood``: the simulator's flood batches.

The data is generated deterministically (bench/_data.py). ``extra_info`` records events/s
(from the median and the best round). With ``--benchmark-disable`` every benchmark runs once,
as a quick check that it works (CI).
"""

from __future__ import annotations

import tracemalloc
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from bench._data import SESSION_ID, realistic_batch, single_event
from mxgateway import _pycodec
from mxgateway._pbconvert import event_from_pb
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.types import MxEvent

try:
    from mxgateway import _speedups
except ImportError:  # pragma: no cover - only without a compiler
    _speedups = None  # type: ignore[assignment]

BATCH_EVENTS = 1000
FLOOD_HANDLES = tuple(range(1, 401))
FLOOD_TIMESTAMP_NS = 1_767_225_600_123_456_789

IMPLEMENTATIONS: list[tuple[ModuleType, str]] = [(_pycodec, "python")]
if _speedups is not None:
    IMPLEMENTATIONS.insert(0, (_speedups, "cython"))
CODECS = [pytest.param(module, id=name) for module, name in IMPLEMENTATIONS]


def _protobuf_decode_batch(data: bytes) -> list[MxEvent]:
    """The baseline: protobuf parses, then every field is read into the structs."""
    return [event_from_pb(event) for event in pb.MxEventBatch.FromString(data).events]


def _record(benchmark: Any, events: int) -> None:
    stats = getattr(benchmark, "stats", None)
    if stats is None:  # --benchmark-disable: nothing was timed
        return
    benchmark.extra_info["events"] = events
    benchmark.extra_info["events_per_s_median"] = round(events / stats.stats.median)
    benchmark.extra_info["events_per_s_best"] = round(events / stats.stats.min)


@pytest.fixture(scope="module")
def batch() -> bytes:
    return realistic_batch(BATCH_EVENTS)


@pytest.fixture(scope="module")
def expected(batch: bytes) -> list[MxEvent]:
    return _protobuf_decode_batch(batch)


DECODERS = [
    *(pytest.param(module.decode_event_batch, id=name) for module, name in IMPLEMENTATIONS),
    pytest.param(_protobuf_decode_batch, id="protobuf"),
]


@pytest.mark.benchmark(group="decode-batch")
@pytest.mark.parametrize("decode", DECODERS)
def test_decode_batch(
    benchmark: Any,
    decode: Callable[[bytes], list[MxEvent]],
    batch: bytes,
    expected: list[MxEvent],
) -> None:
    events = benchmark(decode, batch)
    _record(benchmark, BATCH_EVENTS)
    assert events == expected


@pytest.mark.benchmark(group="decode-batch-tags")
@pytest.mark.parametrize("named", [False, True], ids=["no-tags", "tags"])
@pytest.mark.parametrize("codec", CODECS)
def test_decode_batch_with_tags(
    benchmark: Any, codec: ModuleType, named: bool, batch: bytes, expected: list[MxEvent]
) -> None:
    """What naming every event costs (the session's dict of item handle -> tag)."""
    names = {e.item_handle: f"Tag_{e.item_handle:05d}.Value" for e in expected}
    events = benchmark(codec.decode_event_batch, batch, names if named else None)
    _record(benchmark, BATCH_EVENTS)
    assert [e.tag for e in events] == [names[e.item_handle] if named else None for e in expected]


def _protobuf_decode_event(data: bytes) -> MxEvent:
    """The baseline: protobuf parses one MxEvent, then every field is read into the struct."""
    return event_from_pb(pb.MxEvent.FromString(data))


EVENT_DECODERS = [
    *(pytest.param(module.decode_event, id=name) for module, name in IMPLEMENTATIONS),
    pytest.param(_protobuf_decode_event, id="protobuf"),
]


@pytest.mark.benchmark(group="decode-event")
@pytest.mark.parametrize("decode", EVENT_DECODERS)
def test_decode_event(benchmark: Any, decode: Callable[[bytes], MxEvent]) -> None:
    data = single_event()
    event = benchmark(decode, data)
    _record(benchmark, 1)
    assert event == _protobuf_decode_event(data)


@pytest.mark.benchmark(group="encode-flood")
@pytest.mark.parametrize("codec", CODECS)
def test_encode_flood_batch(benchmark: Any, codec: ModuleType) -> None:
    data = benchmark(
        codec.encode_flood_batch,
        SESSION_ID,
        1,
        FLOOD_HANDLES,
        1_000_000,
        BATCH_EVENTS,
        FLOOD_TIMESTAMP_NS,
    )
    _record(benchmark, BATCH_EVENTS)
    assert data == _pycodec.encode_flood_batch(
        SESSION_ID, 1, FLOOD_HANDLES, 1_000_000, BATCH_EVENTS, FLOOD_TIMESTAMP_NS
    )
    assert len(pb.MxEventBatch.FromString(data).events) == BATCH_EVENTS


COLUMN_EVENTS = 4000
NAMES = {h: f"Pump_{h:03d}.Speed" for h in FLOOD_HANDLES}


@pytest.fixture(scope="module")
def flood_batch() -> bytes:
    data: bytes = _pycodec.encode_flood_batch(
        SESSION_ID, 1, FLOOD_HANDLES[:16], 1_000_000, COLUMN_EVENTS, FLOOD_TIMESTAMP_NS
    )
    return data


def _retained_per_event(decode: Callable[[], Any]) -> float:
    """Bytes the result of ``decode()`` holds per event (what dropping it frees)."""
    tracemalloc.start()
    try:
        result = decode()
        held = tracemalloc.get_traced_memory()[0]
        del result
        return round((held - tracemalloc.get_traced_memory()[0]) / COLUMN_EVENTS, 1)
    finally:
        tracemalloc.stop()


COLUMN_DECODERS = [
    *(
        pytest.param(module.decode_event_columns, id=f"columns-{name}")
        for module, name in IMPLEMENTATIONS
    ),
    pytest.param(
        (_speedups or _pycodec).decode_event_batch,
        id="structs-cython" if _speedups is not None else "structs-python",
    ),
    pytest.param(lambda data, names: bytearray(data), id="raw-copy"),
]


@pytest.mark.benchmark(group="decode-columns")
@pytest.mark.parametrize("decode", COLUMN_DECODERS)
def test_decode_columns(benchmark: Any, decode: Callable[..., Any], flood_batch: bytes) -> None:
    result = benchmark(decode, flood_batch, NAMES)
    _record(benchmark, COLUMN_EVENTS)
    if not isinstance(result, bytearray):
        assert len(result) == COLUMN_EVENTS
        benchmark.extra_info["bytes_retained_per_event"] = _retained_per_event(
            lambda: decode(flood_batch, NAMES)
        )
    if hasattr(result, "to_events"):
        assert result.to_events() == _pycodec.decode_event_batch(flood_batch, NAMES)


@pytest.mark.benchmark(group="decode-columns-realistic")
@pytest.mark.parametrize("decode", COLUMN_DECODERS)
def test_decode_columns_realistic(benchmark: Any, decode: Callable[..., Any]) -> None:
    """The same decoders on the realistic batch: three distinct timestamps per event and a
    mix of values, where the columns decoder's timestamp cache seldom hits (the flood's
    events share their stamps)."""
    data = realistic_batch(COLUMN_EVENTS)
    result = benchmark(decode, data, None)
    _record(benchmark, COLUMN_EVENTS)
    if hasattr(result, "to_events"):
        assert result.to_events() == _pycodec.decode_event_batch(data, None)
