"""The engine of ``bench-stream-events`` in-process: sequence checks, event counting,
percentiles, stream ends and stalls, the decoder switch, rounds and ratios, the simulator's
command and stats. No timed assertion about speed."""

from __future__ import annotations

import asyncio
import os
import sys
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import msgspec
import pytest

from mxgateway import (
    MxEvent,
    MxGatewayTimeoutError,
    MxGatewayTransportError,
    ReplayGap,
    _codec,
    _pycodec,
)
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway_cli._bench import (
    StreamStats,
    command,
    consume,
    consume_batches,
    consume_columns,
    consume_events,
    consume_raw,
    rounds,
    run_rounds,
    simulator,
    stats,
)

if TYPE_CHECKING:
    from mxgateway.columns import EventColumns

SESSION = "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b"


def _batch_bytes(first: int, count: int) -> bytes:
    return _codec.encode_flood_batch(SESSION, 1, (1, 2, 3), first, count, time.time_ns())


def _events(first: int, count: int) -> list[MxEvent]:
    return _codec.decode_event_batch(_batch_bytes(first, count))


def _gap() -> MxEvent:
    gap = ReplayGap(requested_after_sequence=1, oldest_available_sequence=5)
    return msgspec.structs.replace(_events(1, 1)[0], worker_sequence=0, replay_gap=gap)


async def _then_contiguous(
    head: list[list[MxEvent]], next_sequence: int
) -> AsyncIterator[list[MxEvent]]:
    """``head``, then contiguous batches for as long as the consumer reads."""
    for batch in head:
        yield batch
    while True:
        yield _events(next_sequence, 10)
        next_sequence += 10
        await asyncio.sleep(0.001)


async def test_contiguous_batches_pass() -> None:
    result = await consume_batches(
        _then_contiguous([], 1), StreamStats("t"), warmup=0.05, duration=0.1
    )
    assert (result.dropped, result.duplicates, result.replay_gaps) == (0, 0, 0)
    assert result.first_sequence == 1
    assert result.last_sequence is not None and result.last_sequence >= result.events > 0
    assert result.seconds >= 0.09 and result.messages > 0
    assert result.latency_weights is not None
    assert sum(result.latency_weights) == result.events
    assert result.cpu["process"] >= 0 and result.cpu["loopThread"] >= 0


async def test_per_event_latency_on_batches() -> None:
    result = await consume_batches(
        _then_contiguous([], 1),
        StreamStats("t"),
        warmup=0.02,
        duration=0.05,
        per_event_latency=True,
    )
    assert result.latency_weights is None
    # One sample per event of the window (the window's first message opened it uncounted).
    assert len(result.latencies_ns) >= result.events > 0


async def test_gaps_duplicates_and_replay_gaps_are_counted() -> None:
    head = [
        _events(1, 10),  # 1..10
        _events(11, 10),  # 11..20
        _events(25, 6),  # 25..30: 21..24 dropped (4)
        _events(28, 8),  # 28..35: 28..30 repeated (3)
        [*_events(36, 1), *_events(36, 2)],  # 36, 36, 37: one more repeat
        [*_events(38, 2), *_events(41, 2)],  # 38, 39, 41, 42: first+count agree, 40 dropped
        [_gap()],
    ]
    result = await consume_batches(
        _then_contiguous(head, 43), StreamStats("t"), warmup=0.05, duration=0.05
    )
    assert result.dropped == 5
    assert result.duplicates == 4
    assert result.replay_gaps == 1
    assert result.first_sequence == 1


def _columns(events: list[MxEvent]) -> EventColumns:
    from mxgateway import decode_event_columns

    return decode_event_columns(_codec.encode_event_batch(events))


async def _columns_of(batches: AsyncIterator[list[MxEvent]]) -> AsyncIterator[EventColumns]:
    async for batch in batches:
        yield _columns(batch)


async def test_columns_are_checked_like_batches() -> None:
    pytest.importorskip("numpy")
    head = [
        _events(1, 10),  # 1..10
        _events(11, 10),  # 11..20
        _events(25, 6),  # 25..30: 21..24 dropped (4)
        _events(28, 8),  # 28..35: 28..30 repeated (3)
        [*_events(36, 1), *_events(36, 2)],  # 36, 36, 37: one more repeat
        [*_events(38, 2), *_events(41, 2)],  # 38, 39, 41, 42: first+count agree, 40 dropped
        [_gap()],  # a row kept whole in ``others``
        [*_events(43, 2), _gap(), *_events(45, 1)],  # contiguous around a gap row
    ]
    result = await consume_columns(
        _columns_of(_then_contiguous(head, 46)), StreamStats("t"), warmup=0.05, duration=0.05
    )
    assert result.dropped == 5
    assert result.duplicates == 4
    assert result.replay_gaps == 2
    assert result.first_sequence == 1
    assert result.last_sequence is not None and result.last_sequence >= 46


async def test_columns_latency_per_message_and_per_event() -> None:
    pytest.importorskip("numpy")
    result = await consume_columns(
        _columns_of(_then_contiguous([], 1)), StreamStats("t"), warmup=0.02, duration=0.05
    )
    assert (result.dropped, result.duplicates, result.replay_gaps) == (0, 0, 0)
    assert result.latency_weights is not None
    assert sum(result.latency_weights) == result.events > 0
    assert len(result.latencies_ns) == result.messages
    per_event = await consume_columns(
        _columns_of(_then_contiguous([], 1)),
        StreamStats("t"),
        warmup=0.02,
        duration=0.05,
        per_event_latency=True,
    )
    assert per_event.latency_weights is None
    assert len(per_event.latencies_ns) >= per_event.events > 0
    assert min(per_event.latencies_ns) >= 0


async def test_single_events_are_checked_one_by_one() -> None:
    async def events() -> AsyncIterator[MxEvent]:
        async for batch in _then_contiguous([_events(1, 3), _events(5, 2), _events(6, 1)], 7):
            for event in batch:
                yield event

    result = await consume_events(events(), StreamStats("t"), warmup=0.02, duration=0.05)
    assert (result.dropped, result.duplicates) == (1, 1)
    assert result.latency_weights is None
    assert result.messages == result.events > 0


async def test_a_stream_that_ends_is_a_transport_error() -> None:
    async def short() -> AsyncIterator[list[MxEvent]]:
        yield _events(1, 5)

    with pytest.raises(MxGatewayTransportError, match="ended during the warm-up"):
        await consume_batches(short(), StreamStats("t"), warmup=5, duration=5)


async def test_a_stream_without_events_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consume, "GRACE_S", 0.05)

    async def silent() -> AsyncIterator[list[MxEvent]]:
        await asyncio.Event().wait()
        yield []  # pragma: no cover - never reached

    with pytest.raises(MxGatewayTimeoutError, match="no events"):
        await consume_batches(silent(), StreamStats("t"), warmup=0.05, duration=0.05)


async def test_a_stall_after_the_warmup_still_measures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consume, "GRACE_S", 0.05)

    async def stalls() -> AsyncIterator[list[MxEvent]]:
        yield _events(1, 5)
        await asyncio.sleep(0.06)
        yield _events(6, 5)  # opens the window (its baseline)
        yield _events(11, 5)  # counted
        await asyncio.Event().wait()

    result = await consume_batches(stalls(), StreamStats("t"), warmup=0.05, duration=0.2)
    assert result.events == 5 and result.dropped == 0


async def test_a_failing_stream_keeps_what_was_measured() -> None:
    class Overflow(Exception):
        pass

    async def fails() -> AsyncIterator[list[MxEvent]]:
        yield _events(1, 5)  # opens the window (warm-up 0)
        yield _events(6, 5)
        yield _events(11, 5)
        raise Overflow

    result = StreamStats("t")
    with pytest.raises(Overflow):
        await consume_batches(fails(), result, warmup=0, duration=10)
    assert result.events == 10 and result.messages == 2
    assert result.last_sequence == 15
    assert "process" in result.cpu
    assert result.latencies_ns  # samples of the window up to the failure


async def test_a_stream_failing_in_the_warmup_reports_no_window() -> None:
    class Overflow(Exception):
        pass

    async def fails() -> AsyncIterator[MxEvent]:
        for event in _events(1, 5):
            yield event
        raise Overflow

    result = StreamStats("t")
    with pytest.raises(Overflow):
        await consume_events(fails(), result, warmup=10, duration=10)
    assert (result.events, result.seconds, result.cpu) == (0, 0.0, {})
    assert len(result.latencies_ns) == 0  # the warm-up's samples are not reported
    assert result.last_sequence == 5


def _with_unknown_field(batch: bytes) -> bytes:
    # Field 15, varint 7: a field this client does not know, which a count must skip.
    return batch + bytes([15 << 3 | 0, 7])


def test_batch_event_counter_counts_the_events_in_each_message() -> None:
    count = consume.batch_event_counter()
    for size in (1, 3, 1000):
        assert count(_batch_bytes(1, size)) == size
    assert count(_with_unknown_field(_batch_bytes(1, 4))) == 4
    assert count(pb.MxEventBatch().SerializeToString()) == 0


async def test_raw_reader_counts_real_events_and_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consume, "GRACE_S", 0.05)
    sizes = [3, 5, 7, 1]
    messages = [_batch_bytes(1, n) for n in sizes]

    async def raw() -> AsyncIterator[bytes]:
        for message in messages:
            yield message
        await asyncio.Event().wait()

    result = await consume_raw(
        raw(),
        StreamStats("raw"),
        warmup=0,
        duration=0.05,
        count_events=consume.batch_event_counter(),
    )
    # The first message opens the window (its baseline); the stall then ends it.
    assert result.messages == 3
    assert result.events == sum(sizes[1:])
    assert result.wire_bytes == sum(len(m) for m in messages[1:])


async def test_raw_single_messages_are_one_event_each(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(consume, "GRACE_S", 0.05)

    async def raw() -> AsyncIterator[bytes]:
        for sequence in range(1, 6):
            yield _codec.encode_event(_events(sequence, 1)[0])
        await asyncio.Event().wait()

    result = await consume_raw(raw(), StreamStats("raw"), warmup=0, duration=0.05)
    assert result.messages == result.events == 4
    assert result.wire_bytes and result.wire_bytes > 0


def test_percentiles() -> None:
    ms = 1_000_000
    plain = stats.percentiles([i * ms for i in range(1, 101)], None)
    assert plain == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}
    # One sample of 1 ms weighing 98 events, one of 5 ms weighing 2: p99 is 5 ms.
    weighted = stats.percentiles([5 * ms, 1 * ms], [2, 98])
    assert weighted == {"p50": 1.0, "p90": 1.0, "p99": 5.0, "max": 5.0}
    assert stats.percentiles([], None) == dict.fromkeys(("p50", "p90", "p99", "max"))


def _window(events: int, seconds: float, cpu: float, **extra: float) -> StreamStats:
    result = StreamStats("c", receiver="thread", events=events, messages=events, seconds=seconds)
    result.cpu = {"process": cpu, **extra}
    result.first_sequence, result.last_sequence = 1, events
    return result


def test_summary_over_rounds() -> None:
    runs = [
        _window(100, 1.0, 0.5, loopThread=0.2, simulator=0.25),
        _window(300, 1.0, 1.0, loopThread=0.4, simulator=0.75),
    ]
    runs[0].latencies_ns.extend([1_000_000, 3_000_000])
    runs[1].latencies_ns.extend([2_000_000])
    out = stats.summary(runs)
    assert out["latencyMs"] == {"p50": 2.0, "p90": 3.0, "p99": 3.0, "max": 3.0}
    assert out["events"] == 400 and out["rounds"] == 2
    assert out["eventsPerSecond"] == 200.0
    assert out["cpuPerEventUs"] == pytest.approx(1.5 / 400 * 1e6, rel=1e-3)
    assert out["loopThreadCpuPerEventUs"] == pytest.approx(0.6 / 400 * 1e6, rel=1e-3)
    assert "receiverThreadCpuSeconds" not in out  # no round could read it
    assert out["simulatorCpuShare"] == 0.5
    assert out["simulatorCpuPerMessageUs"] == pytest.approx(2500.0)
    assert [r["eventsPerSecond"] for r in out["perRound"]] == [100.0, 300.0]
    assert out["perRound"][0]["latencyMs"]["max"] == 3.0
    assert out["perRound"][1]["latencyMs"]["p50"] == 2.0
    assert "firstSequence" not in out  # per round only
    assert out["receiver"] == "thread"


def test_summary_leaves_out_a_clock_one_round_could_not_read() -> None:
    out = stats.summary([_window(100, 1.0, 0.5, receiverThread=0.1), _window(100, 1.0, 0.5)])
    assert "receiverThreadCpuSeconds" not in out
    assert out["cpuSeconds"] == 1.0


async def test_rounds_alternate_the_compared_pair() -> None:
    order: list[str] = []

    def consumer(name: str) -> rounds.Measure:
        async def measure() -> StreamStats:
            order.append(name)
            return _window(10, 1.0, 0.1)

        return measure

    runs = await run_rounds([consumer("A"), consumer("B"), consumer("C")], 3)
    assert order == ["A", "B", "C", "B", "A", "C", "A", "B", "C"]
    assert [len(r) for r in runs] == [3, 3, 3]


def test_ratio_per_round_and_median() -> None:
    a = [_window(300, 1.0, 0.3), _window(200, 1.0, 0.4), _window(400, 1.0, 0.4)]
    b = [_window(100, 1.0, 0.3), _window(100, 1.0, 0.4), _window(100, 1.0, 0.2)]
    b[0].receiver = "aio"
    out = rounds.ratio(a, b)
    assert out["eventsPerSecond"] == [3.0, 2.0, 4.0]
    assert out["eventsPerSecondMedian"] == 3.0
    assert out["cpuPerEvent"] == pytest.approx([1 / 3, 0.5, 0.5], abs=1e-3)
    assert out["cpuPerEventMedian"] == 0.5
    assert (out["numerator"], out["denominator"]) == ("c/thread", "c/aio")
    a[1].error = "fell behind"
    assert rounds.ratio(a, b)["eventsPerSecond"] == [3.0, 4.0]


def test_python_decoder_is_swapped_in_and_back() -> None:
    before = _codec.impl
    with command.client_decoder("python") as name:
        assert name == "python"
        assert _codec.impl is _pycodec
    assert _codec.impl is before
    with command.client_decoder("auto") as name:
        assert name == ("python" if before is _pycodec else "cython")


def test_simulator_command_and_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MXGATEWAY_NO_EXTENSIONS", "1")
    assert "MXGATEWAY_NO_EXTENSIONS" not in simulator.simulator_env()
    plain = simulator.simulator_command()
    assert plain[:4] == [sys.executable, "-m", "mxgateway_cli", "sim"]
    assert {"--flood", "--plaintext", "127.0.0.1:0"} <= set(plain)
    assert "--no-event-batches" not in plain and "--flood-rate" not in plain
    genuine = simulator.simulator_command(genuine=True, flood_rate=10_000)
    assert "--no-event-batches" in genuine
    assert genuine[genuine.index("--flood-rate") + 1] == "10000.0"


def test_stopped_line_is_parsed_defensively() -> None:
    output = b'{"listening": "x"}\nnot json\n{"stopped": {"cpu_seconds": 3.5}}\n'
    assert simulator.parse_stopped(output) == {"cpu_seconds": 3.5}
    assert simulator.parse_stopped(b'{"stopped": 5}\n') is None
    assert simulator.parse_stopped(b"") is None
    full = {
        "cpu_seconds": 5.0,
        "started_cpu_seconds": 1.0,
        "rpcs": {
            "StreamEvents": {"messages": 1_000_000, "events": 1_000_000},
            "StreamEventBatches": {"messages": 1000, "events": 1_000_000},
        },
    }
    out = simulator.simulator_summary(full)
    assert out["cpuSeconds"] == 4.0
    assert out["messages"] == 1_001_000 and out["events"] == 2_000_000
    assert out["cpuPerMessageUs"] == pytest.approx(4.0 / 1_001_000 * 1e6, rel=1e-3)
    assert out["cpuPerEventUs"] == 2.0
    # Missing or odd fields are left out, never guessed.
    assert simulator.simulator_summary({}) == {}
    partial = simulator.simulator_summary({"rpcs": {"StreamEvents": {"messages": "many"}}})
    assert partial == {"rpcs": {}, "messages": 0, "events": 0}


@pytest.mark.skipif(not os.path.exists("/proc/self/stat"), reason="reads /proc")
def test_process_cpu_seconds_from_proc() -> None:
    value = simulator.process_cpu_seconds(os.getpid())
    assert value is not None and value >= 0
    assert simulator.process_cpu_seconds(2**22 + 12345) is None  # beyond pid_max: no process


def test_receiver_thread_clock() -> None:
    import threading

    assert stats.receiver_thread_clock("no-such-thread-here") is None
    if not hasattr(time, "pthread_getcpuclockid"):
        pytest.skip("no per-thread CPU clocks here")
    stop = threading.Event()
    thread = threading.Thread(target=stop.wait, name="bench-clock-test")
    thread.start()
    try:
        clock = stats.receiver_thread_clock("bench-clock-test")
        assert clock is not None
        value = clock()
        assert value is not None and value >= 0
    finally:
        stop.set()
        thread.join()
