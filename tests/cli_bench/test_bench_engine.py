"""The engine of ``bench-stream-events`` in-process: sequence checks, percentiles, stream ends
and stalls, the decoder switch, and the fallback path reported against a gateway without
StreamEventBatches. No timed assertion about speed."""

from __future__ import annotations

import argparse
import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import grpc
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
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway_cli import _bench
from mxgateway_cli._bench import (
    StreamStats,
    add_bench_arguments,
    consume_batches,
    consume_events,
    run_bench,
)

SESSION = "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b"


def _events(first: int, count: int) -> list[MxEvent]:
    data = _codec.encode_flood_batch(SESSION, 1, (1, 2, 3), first, count, time.time_ns())
    return _codec.decode_event_batch(data)


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
    stats = await consume_batches(
        _then_contiguous([], 1), StreamStats("t"), warmup=0.05, duration=0.1
    )
    assert (stats.dropped, stats.duplicates, stats.replay_gaps) == (0, 0, 0)
    assert stats.first_sequence == 1
    assert stats.last_sequence is not None and stats.last_sequence >= stats.events > 0
    assert stats.seconds >= 0.09 and stats.messages > 0
    assert stats.latency_weights is not None
    assert sum(stats.latency_weights) == stats.events


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
    stats = await consume_batches(
        _then_contiguous(head, 43), StreamStats("t"), warmup=0.05, duration=0.05
    )
    assert stats.dropped == 5
    assert stats.duplicates == 4
    assert stats.replay_gaps == 1
    assert stats.first_sequence == 1


async def test_single_events_are_checked_one_by_one() -> None:
    async def events() -> AsyncIterator[MxEvent]:
        async for batch in _then_contiguous([_events(1, 3), _events(5, 2), _events(6, 1)], 7):
            for event in batch:
                yield event

    stats = await consume_events(events(), StreamStats("t"), warmup=0.02, duration=0.05)
    assert (stats.dropped, stats.duplicates) == (1, 1)
    assert stats.latency_weights is None
    assert stats.messages == stats.events > 0


async def test_a_stream_that_ends_is_a_transport_error() -> None:
    async def short() -> AsyncIterator[list[MxEvent]]:
        yield _events(1, 5)

    with pytest.raises(MxGatewayTransportError, match="ended during the warm-up"):
        await consume_batches(short(), StreamStats("t"), warmup=5, duration=5)


async def test_a_stream_without_events_times_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bench, "_GRACE_S", 0.05)

    async def silent() -> AsyncIterator[list[MxEvent]]:
        await asyncio.Event().wait()
        yield []  # pragma: no cover - never reached

    with pytest.raises(MxGatewayTimeoutError, match="no events"):
        await consume_batches(silent(), StreamStats("t"), warmup=0.05, duration=0.05)


async def test_a_stall_after_the_warmup_still_measures(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_bench, "_GRACE_S", 0.05)

    async def stalls() -> AsyncIterator[list[MxEvent]]:
        yield _events(1, 5)
        await asyncio.sleep(0.06)
        yield _events(6, 5)  # opens the window (its baseline)
        yield _events(11, 5)  # counted
        await asyncio.Event().wait()

    stats = await consume_batches(stalls(), StreamStats("t"), warmup=0.05, duration=0.2)
    assert stats.events == 5 and stats.dropped == 0


def test_percentiles() -> None:
    ms = 1_000_000
    plain = _bench._percentiles([i * ms for i in range(1, 101)], None)
    assert plain == {"p50": 50.0, "p90": 90.0, "p99": 99.0, "max": 100.0}
    # One sample of 1 ms weighing 98 events, one of 5 ms weighing 2: p99 is 5 ms.
    weighted = _bench._percentiles([5 * ms, 1 * ms], [2, 98])
    assert weighted == {"p50": 1.0, "p90": 1.0, "p99": 5.0, "max": 5.0}
    assert _bench._percentiles([], None) == dict.fromkeys(("p50", "p90", "p99", "max"))


def test_python_decoder_is_swapped_in_and_back() -> None:
    before = _codec.impl
    with _bench._client_decoder("python") as name:
        assert name == "python"
        assert _codec.impl is _pycodec
    assert _codec.impl is before
    with _bench._client_decoder("auto") as name:
        assert name == ("python" if before is _pycodec else "cython")


def test_simulator_env_never_disables_the_compiled_codec(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MXGATEWAY_NO_EXTENSIONS", "1")
    assert "MXGATEWAY_NO_EXTENSIONS" not in _bench.simulator_env()
    command = _bench.simulator_command()
    assert command[1:4] == ["-m", "mxgateway_cli", "sim"]
    assert {"--flood", "--plaintext", "127.0.0.1:0"} <= set(command)


class _SingleOnlyGateway(pb_grpc.MxAccessGatewayServicer):
    """Sessions, Register/SubscribeBulk and an endless StreamEvents; no StreamEventBatches."""

    async def OpenSession(self, request: Any, context: Any) -> pb.OpenSessionReply:
        return pb.OpenSessionReply(session_id="s1")

    async def CloseSession(self, request: Any, context: Any) -> pb.CloseSessionReply:
        return pb.CloseSessionReply()

    async def Invoke(self, request: Any, context: Any) -> pb.MxCommandReply:
        ok = pb.ProtocolStatus(code=pb.PROTOCOL_STATUS_CODE_OK)
        if request.command.HasField("register"):
            return pb.MxCommandReply(protocol_status=ok, register=pb.RegisterReply(server_handle=1))
        results = [
            pb.SubscribeResult(tag_address=tag, item_handle=i, was_successful=True)
            for i, tag in enumerate(request.command.subscribe_bulk.tag_addresses, start=1)
        ]
        return pb.MxCommandReply(
            protocol_status=ok, bulk_subscribe=pb.BulkSubscribeReply(results=results)
        )

    async def StreamEvents(self, request: Any, context: Any) -> AsyncIterator[pb.MxEvent]:
        sequence = request.after_worker_sequence
        while True:
            sequence += 1
            event = pb.MxEvent(
                session_id=request.session_id,
                family=pb.MX_EVENT_FAMILY_ON_DATA_CHANGE,
                worker_sequence=sequence,
                on_data_change=pb.OnDataChangeEvent(),
            )
            event.gateway_receive_timestamp.FromNanoseconds(time.time_ns())
            yield event


@pytest.fixture
def args_for() -> Iterator[Any]:
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    yield parser.parse_args


async def test_fallback_to_single_is_reported(args_for: Any) -> None:
    server = grpc.aio.server()
    pb_grpc.add_MxAccessGatewayServicer_to_server(_SingleOnlyGateway(), server)  # type: ignore[abstract]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        args = args_for(
            [
                "--endpoint",
                f"127.0.0.1:{port}",
                "--plaintext",
                "--duration",
                "0.3",
                "--warmup",
                "0.1",
                "--items",
                "2",
                "--compare",
            ]
        )
        report = await run_bench(args)
    finally:
        await server.stop(None)
    assert report["requestedPath"] == "batches"
    assert report["path"] == "single"
    assert report["simulator"] is False
    assert report["items"] == 2
    assert report["droppedSequences"] == report["duplicateSequences"] == 0
    assert report["events"] == report["messages"] > 0
    assert report["compare"]["eventsPerSecond"] > 0
    assert report["compare"]["droppedSequences"] == 0
