"""Flood throughput of the simulator, read by a raw-bytes client in another process.

The simulator runs as ``mxgw-py sim --flood`` in a subprocess; this process reads
StreamEventBatches with an identity deserializer (no decoding), so the figure is what the
simulator produces and gRPC carries, not what a decoder manages. Flood batches are always full
(``max_batch_events`` events), so events = batches x batch size; the first and last batch are
decoded to check the count and that the sequence is contiguous.

Run: ``python -m pytest bench/test_bench_sim_flood.py --benchmark-only -s`` (the events/s figure
is printed and stored in the benchmark's extra_info). With ``--benchmark-disable`` it reads a
short burst only, to check that it works.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim._events import flood_available

pytestmark = pytest.mark.skipif(not flood_available(), reason="codec has no encode_flood_batch")

BATCH = 1000
ITEMS = 16
MEASURE_SECONDS = 3.0
SMOKE_EVENTS = 20_000
METHOD = "/mxaccess_gateway.v1.MxAccessGateway/StreamEventBatches"


@pytest.fixture(scope="module")
def flood_endpoint() -> Iterator[str]:
    """``mxgw-py sim --flood`` in its own process; its endpoint."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "mxgateway_cli",
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--plaintext",
            "--flood",
            "--rate",
            "0",
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.PIPE,
        env=os.environ.copy(),
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line, "the simulator exited before it was ready"
        yield str(json.loads(line)["listening"])
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung simulator
            process.kill()
            process.wait()


async def _read_flood(endpoint: str, *, seconds: float, min_events: int) -> dict[str, Any]:
    options = [("grpc.max_receive_message_length", 16 * 1024 * 1024)]
    async with grpc.aio.insecure_channel(endpoint, options=options) as channel:
        stub = pb_grpc.MxAccessGatewayStub(channel)
        session = await stub.OpenSession(pb.OpenSessionRequest(client_session_name="bench"))
        sid = session.session_id
        server = (
            await stub.Invoke(
                pb.MxCommandRequest(
                    session_id=sid,
                    command=pb.MxCommand(
                        kind=pb.MX_COMMAND_KIND_REGISTER, register=pb.RegisterCommand()
                    ),
                )
            )
        ).register.server_handle
        tags = [f"Pump_{i:03d}.Speed" for i in range(1, ITEMS + 1)]
        await stub.Invoke(
            pb.MxCommandRequest(
                session_id=sid,
                command=pb.MxCommand(
                    kind=pb.MX_COMMAND_KIND_SUBSCRIBE_BULK,
                    subscribe_bulk=pb.SubscribeBulkCommand(
                        server_handle=server, tag_addresses=tags
                    ),
                ),
            )
        )
        raw: Any = channel.unary_stream(
            METHOD,
            request_serializer=pb.StreamEventsRequest.SerializeToString,
            response_deserializer=None,  # raw bytes: no decoding on the client
        )
        call = raw(pb.StreamEventsRequest(session_id=sid, max_batch_events=BATCH))
        # The advise events (one per item) come first, in their own batch: skip them.
        first_raw: bytes = await call.read()
        first = pb.MxEventBatch.FromString(first_raw)
        start_seq = first.events[-1].worker_sequence + 1
        batches = 0
        nbytes = 0
        last_raw = b""
        started = time.perf_counter()
        while True:
            data: bytes = await call.read()
            batches += 1
            nbytes += len(data)
            last_raw = data
            if batches * BATCH >= min_events and time.perf_counter() - started >= seconds:
                break
        elapsed = time.perf_counter() - started
        call.cancel()
        last = pb.MxEventBatch.FromString(last_raw)
        assert len(last.events) == BATCH
        expected_last = start_seq + batches * BATCH - 1
        assert last.events[-1].worker_sequence == expected_last  # contiguous, all counted
        events = batches * BATCH
        return {
            "events": events,
            "seconds": elapsed,
            "events_per_s": events / elapsed,
            "mib_per_s": nbytes / elapsed / (1024 * 1024),
            "bytes_per_event": nbytes / events,
        }


def test_flood_stream_event_batches(benchmark: Any, flood_endpoint: str) -> None:
    disabled = bool(getattr(benchmark, "disabled", False))
    seconds = 0.0 if disabled else MEASURE_SECONDS
    min_events = SMOKE_EVENTS if disabled else 0
    results: list[dict[str, Any]] = []

    def run() -> None:
        results.append(
            asyncio.run(_read_flood(flood_endpoint, seconds=seconds, min_events=min_events))
        )

    benchmark.pedantic(run, rounds=1, iterations=1)
    result = results[-1]
    benchmark.extra_info.update(result)
    print(
        f"\nsim flood: {result['events_per_s']:,.0f} events/s "
        f"({result['mib_per_s']:.0f} MiB/s, {result['bytes_per_event']:.0f} B/event, "
        f"{result['events']:,} events in {result['seconds']:.2f} s, batches of {BATCH})"
    )
    assert result["events"] >= min_events


# ----- StreamEvents (one event per message, the genuine gateway) to raw consumer processes ---
#
# The simulator serves its public port with the h2 front door in flood mode. Each consumer is
# its own process (bench/_raw_consumer.py: a sync grpc channel with SingleThreadedUnaryStream,
# identity deserializer, raw bytes) and counts what it receives in one wall-clock window shared
# by all consumers of the run. The server's CPU per message is its process CPU since it began
# serving over the messages it sent (its {"stopped": ...} line). For comparison the same
# consumer reads one stream from the grpc.aio server behind the front door (same process).

STREAM_SECONDS = 4.0
SMOKE_STREAM_SECONDS = 0.5
SETUP_SECONDS = 3.0  # consumer processes start, open a session and warm up before the window
EVENTS_PATH = "/mxaccess_gateway.v1.MxAccessGateway/StreamEvents"


def _start(command: list[str]) -> tuple[subprocess.Popen[bytes], dict[str, Any]]:
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=os.environ.copy())
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(timeout=30)
        raise AssertionError("the simulator exited before it was ready")
    return process, json.loads(line)


def _stop(process: subprocess.Popen[bytes]) -> dict[str, Any]:
    process.send_signal(signal.SIGTERM)
    try:
        out, _ = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:  # pragma: no cover - a hung simulator
        process.kill()
        process.communicate()
        raise
    lines = out.decode().splitlines()
    assert lines, "no stopped line"
    return dict(json.loads(lines[-1])["stopped"])


def _consume(endpoint: str, consumers: int, seconds: float) -> list[dict[str, Any]]:
    start_at = time.time() + SETUP_SECONDS
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "bench._raw_consumer", endpoint, str(start_at), str(seconds)],
            stdout=subprocess.PIPE,
            env=os.environ.copy(),
        )
        for _ in range(consumers)
    ]
    results: list[dict[str, Any]] = []
    try:
        for process in processes:
            out, _ = process.communicate(timeout=SETUP_SECONDS + seconds + 60)
            assert process.returncode == 0, "a consumer failed"
            results.append(json.loads(out))
    finally:
        for process in processes:
            if process.poll() is None:  # pragma: no cover - only when one hung
                process.kill()
                process.wait()
    for result in results:  # contiguous: every message of the window was counted
        assert result["last_sequence"] - result["first_sequence"] + 1 == result["messages"]
    return results


def _run_stream_events(
    command: list[str], consumers: int, seconds: float, *, via_grpc_aio: bool = False
) -> dict[str, Any]:
    process, ready = _start(command)
    try:
        endpoint = str(ready["grpc"] if via_grpc_aio else ready["listening"])
        results = _consume(endpoint, consumers, seconds)
    finally:
        stats = _stop(process)
    sent = stats["rpcs"][EVENTS_PATH]["messages"]
    server_cpu = stats["cpu_seconds"] - stats["started_cpu_seconds"]
    return {
        "consumers": consumers,
        "messages_per_s": sum(r["messages_per_s"] for r in results),
        "per_consumer_messages_per_s": [round(r["messages_per_s"]) for r in results],
        "consumer_cpu_us_per_message": [1e6 * r["cpu_seconds"] / r["messages"] for r in results],
        "server_messages_sent": sent,
        "server_cpu_seconds": server_cpu,
        "server_cpu_us_per_message": 1e6 * server_cpu / sent,
    }


SIM_GENUINE_FLOOD = [
    sys.executable,
    "-m",
    "mxgateway_cli",
    "sim",
    "--listen",
    "127.0.0.1:0",
    "--plaintext",
    "--flood",
    "--no-event-batches",
    "--rate",
    "0",
    "--log-level",
    "WARNING",
]


def _bench_stream_events(benchmark: Any, name: str, **kwargs: Any) -> dict[str, Any]:
    disabled = bool(getattr(benchmark, "disabled", False))
    seconds = SMOKE_STREAM_SECONDS if disabled else STREAM_SECONDS
    results: list[dict[str, Any]] = []

    def run() -> None:
        results.append(_run_stream_events(seconds=seconds, **kwargs))

    benchmark.pedantic(run, rounds=1, iterations=1)
    result = results[-1]
    benchmark.extra_info.update(result)
    print(
        f"\n{name}: {result['messages_per_s']:,.0f} messages/s to {result['consumers']} "
        f"consumer(s) {result['per_consumer_messages_per_s']}; server CPU "
        f"{result['server_cpu_us_per_message']:.2f} us/message "
        f"({result['server_messages_sent']:,} sent); consumer CPU "
        + ", ".join(f"{x:.2f}" for x in result["consumer_cpu_us_per_message"])
        + " us/message"
    )
    assert result["messages_per_s"] > 0
    return result


def test_flood_stream_events_one_consumer(benchmark: Any) -> None:
    _bench_stream_events(
        benchmark, "StreamEvents, front door", command=SIM_GENUINE_FLOOD, consumers=1
    )


def test_flood_stream_events_two_consumers(benchmark: Any) -> None:
    _bench_stream_events(
        benchmark, "StreamEvents, front door", command=SIM_GENUINE_FLOOD, consumers=2
    )


def test_flood_stream_events_grpc_aio_server(benchmark: Any) -> None:
    # The alternative: the same simulator's grpc.aio server, behind the front door.
    _bench_stream_events(
        benchmark,
        "StreamEvents, grpc.aio server",
        command=[sys.executable, "-m", "bench._flood_server", "--no-event-batches"],
        consumers=1,
        via_grpc_aio=True,
    )
