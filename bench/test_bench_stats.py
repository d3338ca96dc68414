"""What StreamStats costs on the hot path: the stream core's per-list work for a 1000-event
StreamEventBatches message, decoded by the compiled codec, with and without the counters.

``python -m pytest bench/test_bench_stats.py --benchmark-only --benchmark-timer time.process_time``
reports both in one run; ``extra_info`` of the ``with-stats`` case carries the overhead relative
to the ``without-stats`` median when both ran. The target (architecture.md): ≤ 3 % of
``stream_event_batches()``, whose client CPU per event is larger still than the decode alone.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench._data import realistic_batch
from mxgateway import _codec
from mxgateway._stats import StreamStats

BATCH_EVENTS = 1000
_medians: dict[str, float] = {}


@pytest.fixture(scope="module")
def batch() -> bytes:
    return realistic_batch(BATCH_EVENTS)


def _per_list(raws: list[bytes], stats: StreamStats | None) -> int:
    events = _codec.impl.decode_event_batch(raws[0])
    if stats is not None:
        stats.arrived(raws)
        stats.handed(events)
    return len(events)


@pytest.mark.benchmark(group="stream-stats")
@pytest.mark.parametrize("counted", [False, True], ids=["without-stats", "with-stats"])
def test_stats_overhead(benchmark: Any, batch: bytes, counted: bool) -> None:
    stats = StreamStats("bench") if counted else None
    raws = [batch]
    assert benchmark(_per_list, raws, stats) == BATCH_EVENTS
    timing = getattr(benchmark, "stats", None)
    if timing is None:  # --benchmark-disable
        return
    _medians["with" if counted else "without"] = timing.stats.median
    if counted and "without" in _medians:
        overhead = _medians["with"] / _medians["without"] - 1
        benchmark.extra_info["overhead_vs_without"] = round(overhead, 4)
    if stats is not None:
        assert stats.events == BATCH_EVENTS * stats.messages
