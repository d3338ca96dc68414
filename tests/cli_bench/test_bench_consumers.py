"""The consumers of ``bench-stream-events`` against a fake gateway in this process: each
attaches its stream before it advises, counts bytes and real events, records a consumer that
fell behind, and leaves the client and the codec as it found them. No timed assertion."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from mxgateway import GatewayClient, MxGatewayProtocolError, _codec
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway_cli._bench import (
    Spec,
    StreamStats,
    add_bench_arguments,
    command,
    measure_client,
    measure_raw,
    measure_stub,
    run_bench,
)
from mxgateway_cli._exit_codes import UsageError

from ._support import FakeGateway, serve

TAGS = ("Pump_001.Speed", "Pump_002.Speed")
Measure = Callable[[GatewayClient, Spec], Awaitable[StreamStats]]


def _spec(path: str, **extra: Any) -> Spec:
    return Spec(tags=TAGS, path=path, warmup=0.1, duration=0.2, **extra)  # type: ignore[arg-type]


@pytest.fixture
async def fake() -> AsyncIterator[tuple[FakeGateway, str]]:
    gateway = FakeGateway(batch_sizes=(1, 2, 3, 4, 5, 6, 7))
    server, endpoint = await serve(gateway)
    try:
        yield gateway, endpoint
    finally:
        await server.stop(None)


async def _client(endpoint: str, receiver: str = "thread") -> GatewayClient:
    return await GatewayClient.connect(
        endpoint=endpoint,
        plaintext=True,
        event_receiver=receiver,  # type: ignore[arg-type]
    )


CASES = [
    pytest.param(measure_client, "single", "thread", id="client-single-thread"),
    pytest.param(measure_client, "single", "aio", id="client-single-aio"),
    pytest.param(measure_client, "batches", "thread", id="client-batches"),
    pytest.param(measure_client, "columns", "thread", id="client-columns"),
    pytest.param(measure_stub, "batches", "aio", id="stubs-batches"),
    pytest.param(measure_stub, "single", "aio", id="stubs-single"),
    pytest.param(measure_raw, "batches", "aio", id="raw-batches"),
    pytest.param(measure_raw, "single", "aio", id="raw-single"),
]


@pytest.mark.parametrize(("measure", "path", "receiver"), CASES)
async def test_attaches_before_advising_and_counts_bytes(
    fake: tuple[FakeGateway, str], measure: Measure, path: str, receiver: str
) -> None:
    gateway, endpoint = fake
    async with await _client(endpoint, receiver) as client:
        result = await measure(client, _spec(path))
    assert gateway.order_ok(), gateway.log
    assert {what for _, what in gateway.log} == {"stream", "advise"}
    assert result.path == path
    assert result.events > 0 and result.messages > 0
    assert result.wire_bytes is not None and result.wire_bytes > 0
    assert result.dropped == result.duplicates == 0
    assert result.error is None
    if path == "single":
        assert result.events == result.messages


async def test_raw_batches_count_the_events_really_sent(fake: tuple[FakeGateway, str]) -> None:
    _, endpoint = fake
    async with await _client(endpoint) as client:
        result = await measure_raw(client, _spec("batches", batch_size=1000))
    # The fake sends 1..7 events per message, whatever max_batch_events asks for.
    assert result.messages <= result.events <= 7 * result.messages
    assert result.events != 1000 * result.messages


def _state(client: GatewayClient) -> dict[str, Any]:
    return dict(vars(client))


def _assert_same(before: dict[str, Any], client: GatewayClient) -> None:
    after = vars(client)
    assert set(after) == set(before)
    changed = [name for name, value in before.items() if after[name] is not value]
    # What a stream itself records about the gateway may change; nothing the benchmark patched.
    assert set(changed) <= {"_batches_offered"}, changed


@pytest.mark.parametrize(
    ("path", "receiver"), [("single", "thread"), ("single", "aio"), ("batches", "aio")]
)
async def test_measure_client_leaves_the_client_and_codec_as_they_were(
    fake: tuple[FakeGateway, str], path: str, receiver: str
) -> None:
    _, endpoint = fake
    codec = _codec.impl
    async with await _client(endpoint, receiver) as client:
        before = _state(client)
        raw_events, raw_batches = client._raw_events, client._raw_batches
        await measure_client(client, _spec(path))
        _assert_same(before, client)
        assert client._raw_events is raw_events and client._raw_batches is raw_batches
    assert _codec.impl is codec


async def test_measure_client_restores_also_when_it_fails() -> None:
    class Refuses(FakeGateway):
        async def Invoke(self, request: Any, context: Any) -> pb.MxCommandReply:
            if request.command.HasField("register"):
                return await super().Invoke(request, context)
            self.log.append((request.session_id, "advise"))
            ok = pb.ProtocolStatus(code=pb.PROTOCOL_STATUS_CODE_OK)
            failed = [pb.SubscribeResult(tag_address=t, error_message="no such item") for t in TAGS]
            return pb.MxCommandReply(
                protocol_status=ok, bulk_subscribe=pb.BulkSubscribeReply(results=failed)
            )

    server, endpoint = await serve(Refuses())
    codec = _codec.impl
    try:
        async with await _client(endpoint) as client:
            before = _state(client)
            with pytest.raises(MxGatewayProtocolError, match="advised none"):
                await measure_client(client, _spec("single"))
            _assert_same(before, client)
    finally:
        await server.stop(None)
    assert _codec.impl is codec


async def test_thread_receiver_cpu_is_read_where_it_runs(fake: tuple[FakeGateway, str]) -> None:
    if not hasattr(time, "pthread_getcpuclockid"):
        pytest.skip("no per-thread CPU clocks here")
    _, endpoint = fake
    async with await _client(endpoint, "thread") as client:
        threaded = await measure_client(client, _spec("single"))
    async with await _client(endpoint, "aio") as client:
        plain = await measure_client(client, _spec("single"))
    assert threaded.receiver == "thread" and plain.receiver == "aio"
    assert "receiverThread" in threaded.cpu, threaded.cpu
    assert "receiverThread" not in plain.cpu
    assert {"process", "loopThread"} <= set(plain.cpu)


@pytest.fixture
def parse() -> Callable[[list[str]], argparse.Namespace]:
    parser = argparse.ArgumentParser()
    add_bench_arguments(parser)
    return parser.parse_args


SHORT = ["--duration", "0.3", "--warmup", "0.1", "--items", "2"]


async def test_fallback_to_single_is_reported(parse: Any) -> None:
    gateway = FakeGateway(batches=False)
    server, endpoint = await serve(gateway)
    try:
        report = await run_bench(
            parse(["--endpoint", endpoint, "--plaintext", *SHORT, "--compare", "--rounds", "1"])
        )
    finally:
        await server.stop(None)
    assert report["requestedPath"] == "batches"
    assert report["path"] == "single"
    assert report["receiver"] == "thread"
    assert report["simulator"] is False
    assert report["items"] == 2
    assert report["droppedSequences"] == report["duplicateSequences"] == 0
    assert report["events"] == report["messages"] > 0
    stubs = report["consumers"]["generated_stubs/aio"]
    assert stubs["path"] == "single" and stubs["eventsPerSecond"] > 0
    assert gateway.order_ok()


async def test_columns_fallback_to_single_is_reported(parse: Any) -> None:
    pytest.importorskip("numpy")
    gateway = FakeGateway(batches=False)
    server, endpoint = await serve(gateway)
    try:
        argv = ["--endpoint", endpoint, "--plaintext", *SHORT, "--path", "columns", "--compare"]
        report = await run_bench(parse([*argv, "--rounds", "1"]))
    finally:
        await server.stop(None)
    assert report["requestedPath"] == "columns"
    assert report["path"] == "single"
    assert report["consumer"] == "stream_event_columns"
    assert report["droppedSequences"] == report["duplicateSequences"] == 0
    assert report["events"] == report["messages"] > 0
    consumers = report["consumers"]
    # Each fell back to StreamEvents, read by the client's receiver (the raw reader: aio).
    assert set(consumers) == {
        "stream_event_columns/thread",
        "stream_event_batches/thread",
        "raw_bytes/aio",
    }
    assert {part["path"] for part in consumers.values()} == {"single"}
    assert gateway.order_ok()


async def test_single_compare_runs_both_receivers_and_a_raw_reader(
    fake: tuple[FakeGateway, str], parse: Any
) -> None:
    gateway, endpoint = fake
    args = parse(["--endpoint", endpoint, "--plaintext", *SHORT, "--path", "single", "--compare"])
    args.rounds = 2  # two rounds are enough to see the pair swap
    report = await run_bench(args)
    consumers = report["consumers"]
    assert list(consumers) == ["stream_events/thread", "stream_events/aio", "raw_bytes/aio"]
    for part in consumers.values():
        assert part["rounds"] == 2 and part["bytes"] > 0 and part["events"] > 0
        assert part["path"] == "single"
    assert "latencyMs" not in consumers["raw_bytes/aio"]
    assert "droppedSequences" not in consumers["raw_bytes/aio"]  # it decodes nothing
    thread_to_aio, thread_to_raw = report["ratios"]
    assert (thread_to_aio["numerator"], thread_to_aio["denominator"]) == (
        "stream_events/thread",
        "stream_events/aio",
    )
    assert thread_to_raw["denominator"] == "raw_bytes/aio"
    assert len(thread_to_aio["eventsPerSecond"]) == 2
    assert thread_to_aio["eventsPerSecondMedian"] > 0
    assert report["consumer"] == "stream_events" and report["receiver"] == "thread"
    assert gateway.order_ok()
    text = command.human(report)
    assert "stream_events/thread ÷ stream_events/aio" in text
    assert "gateway_receive_timestamp" in text and "this machine, this run" in text


async def test_a_consumer_that_falls_behind_is_reported_and_the_run_goes_on(
    parse: Any,
) -> None:
    gateway = FakeGateway(overflow_after=300)
    server, endpoint = await serve(gateway)
    try:
        args = parse(
            ["--endpoint", endpoint, "--plaintext", *SHORT, "--path", "single", "--compare"]
        )
        args.rounds = 1
        report = await run_bench(args)
    finally:
        await server.stop(None)
    for part in report["consumers"].values():
        assert "EventQueueOverflow" in part["error"], part
        assert part["failedRounds"] == 1
    assert report["ratios"][0]["eventsPerSecond"] == []  # no round to compare
    failure = command._failed(report)
    assert failure is not None and "fell behind" in failure
    assert "FAILED" in command.human(report)


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--endpoint", "127.0.0.1:9", "--plaintext", "--rate", "1000"], "--rate"),
        (["--path", "single", "--compare", "--receiver", "aio"], "--receiver"),
        (["--items", "2", "--item", "A.B"], "--items"),
    ],
)
async def test_usage_errors_name_the_flag(parse: Any, argv: list[str], named: str) -> None:
    with pytest.raises(UsageError, match=named):
        await run_bench(parse(argv))


@pytest.mark.parametrize(
    "argv",
    [
        ["--rounds", "0"],
        ["--rounds", "101"],
        ["--rate", "0"],
        ["--rate", "-5"],
        ["--rate", "nan"],
        ["--rate", "1e8"],
        ["--items", "100001"],
        ["--duration", "1e9"],
        ["--warmup", "inf"],
    ],
)
def test_flags_are_bounded(parse: Any, argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)
    assert exit_info.value.code == 2
    assert argv[0] in capsys.readouterr().err


def test_help_says_what_is_measured(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser(prog="bench")
    add_bench_arguments(parser)
    parser.print_help(sys.stdout)
    text = " ".join(capsys.readouterr().out.split())
    assert "gateway_receive_timestamp" in text and "time.time_ns()" in text  # from and to
    assert "ratio A ÷ B" in text
    assert "this machine, this run" in text
    assert "--no-event-batches" in text and "--flood-rate" in text
