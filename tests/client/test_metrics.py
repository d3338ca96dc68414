"""Exporters of the stream statistics: Prometheus scraped over HTTP, OpenTelemetry collected,
label values bounded. Counters move with events, cuts and replay gaps."""

from __future__ import annotations

import asyncio
import re
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.instrumentation.grpc import aio_client_interceptors
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, Span, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from mxgateway import ClientOptions, GatewayClient, MxEvent, Session
from mxgateway.metrics import instrument_otel, serve_prometheus, session_stats
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.client._helpers import take
from tests.hardening.proxy import TcpProxy


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedGateway]:
    async with SimulatedGateway(SimConfig(rate=100.0, galaxy_size=60, replay_capacity=8)) as gw:
        yield gw


def _scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text: str = reply.read().decode()
        return text


def _value(text: str, name: str, session: str) -> float:
    match = re.search(rf'^{name}\{{session="{re.escape(session)}"\}} (\S+)$', text, re.M)
    assert match, f"{name} for {session} not in the scrape"
    return float(match.group(1))


async def _advised(client: GatewayClient, sim: SimulatedGateway, name: str) -> Session:
    session = await client.open_session(name)
    server = await session.register(name)
    await session.subscribe_bulk(server, sim.sample_references(5))
    return session


async def _grow(seen: list[MxEvent], by: int) -> None:
    mark = len(seen) + by
    async with asyncio.timeout(10):
        while len(seen) < mark:  # noqa: ASYNC110 - the list grows in another task
            await asyncio.sleep(0.01)


async def test_prometheus_counters_move_with_events_cuts_and_gaps(sim: SimulatedGateway) -> None:
    async with (
        TcpProxy(sim.endpoint) as proxy,
        await GatewayClient.connect(endpoint=proxy.endpoint, plaintext=True) as client,
    ):
        registry = CollectorRegistry()
        _, port = serve_prometheus(client, port=0, registry=registry)
        session = await _advised(client, sim, "plant-a")
        seen: list[MxEvent] = []

        async def consume() -> None:
            async for events in session.stream_event_batches(retry_budget_s=10):
                seen.extend(events)

        task = asyncio.create_task(consume())
        await _grow(seen, 50)
        first = await asyncio.to_thread(_scrape, port)
        events = _value(first, "mxgateway_stream_events_total", "plant-a")
        assert events >= 50
        assert _value(first, "mxgateway_stream_reconnects_total", "plant-a") == 0
        for _ in range(2):
            proxy.cut()
            await _grow(seen, 20)
        second = await asyncio.to_thread(_scrape, port)
        assert _value(second, "mxgateway_stream_events_total", "plant-a") > events
        assert _value(second, "mxgateway_stream_reconnects_total", "plant-a") >= 2
        assert _value(second, "mxgateway_stream_resumes_total", "plant-a") >= 2
        assert 'mxgateway_stream_latency_seconds_bucket{le="+Inf",session="plant-a"}' in second
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        # A ReplayGap: resume from far behind the ring of 8 (the cuts may have met one too).
        before = await asyncio.to_thread(_scrape, port)
        gaps = _value(before, "mxgateway_stream_replay_gaps_total", "plant-a")
        lost_before = _value(before, "mxgateway_stream_replay_gap_events_total", "plant-a")
        opened = await take(session.stream_events(), 1)  # the rest of what was sent is dropped
        sim.step_values(20)  # far more than the ring keeps
        await asyncio.sleep(0.2)
        after = opened[0].worker_sequence
        gap = (await take(session.stream_events(after_worker_sequence=after), 1))[0].replay_gap
        assert gap is not None
        lost = gap.oldest_available_sequence - gap.requested_after_sequence - 1
        third = await asyncio.to_thread(_scrape, port)
        assert _value(third, "mxgateway_stream_replay_gaps_total", "plant-a") == gaps + 1
        assert (
            _value(third, "mxgateway_stream_replay_gap_events_total", "plant-a")
            == lost_before + lost
        )
        await session.close()


async def test_label_values_are_bounded(sim: SimulatedGateway) -> None:
    async with await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True) as client:
        sessions = [await _advised(client, sim, f"s{i}") for i in range(4)]
        for session in sessions:
            assert await take(session.stream_events(), 1)
        rows = session_stats([client], max_sessions=2)
        assert [label for label, _ in rows] == ["_other", "s0", "s1"]
        assert len(dict(rows)["_other"]) == 2
        for session in sessions:
            await session.close()


async def test_opentelemetry_instruments_read_the_same_counters(sim: SimulatedGateway) -> None:
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    async with await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True) as client:
        instrument_otel(client, meter_provider=provider)
        session = await _advised(client, sim, "otel")
        events = await take(session.stream_events(), 30)
        data = reader.get_metrics_data()
        assert data is not None
        points: dict[str, Any] = {
            metric.name: point
            for resource in data.resource_metrics
            for scope in resource.scope_metrics
            for metric in scope.metrics
            for point in metric.data.data_points
            if (point.attributes or {}).get("session") == "otel"
        }
        assert points["mxgateway.stream.events"].value >= len(events)
        assert points["mxgateway.stream.reconnects"].value == 0
        assert points["mxgateway.stream.lag"].value >= 0
        await session.close()
    provider.shutdown()


async def test_opentelemetry_grpc_instrumentation_traces_calls_through_interceptors(
    sim: SimulatedGateway,
) -> None:
    """docs/observability.md's tracing recipe: a span per call, the aio-read stream included."""
    exporter = InMemorySpanExporter()
    started = _Started()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    provider.add_span_processor(started)
    options = ClientOptions(
        endpoint=sim.endpoint,
        plaintext=True,
        event_receiver="aio",  # the thread receiver's own channel runs no interceptors
        interceptors=aio_client_interceptors(tracer_provider=provider),  # type: ignore[no-untyped-call]
    )
    async with await GatewayClient.connect(options=options) as client:
        session = await _advised(client, sim, "traced")
        await take(session.stream_events(path="single"), 3)
        await session.close()
    provider.shutdown()
    finished = [span.name for span in exporter.get_finished_spans()]
    service = "/mxaccess_gateway.v1.MxAccessGateway/"
    assert finished.count(service + "OpenSession") == 1
    assert finished.count(service + "CloseSession") == 1
    assert service + "Invoke" in finished
    # A stream's span ends when its response iterator is finished with; one cancelled by the
    # consumer ends when grpc lets go of it, so the stream is checked at its start.
    assert started.names.count(service + "StreamEvents") == 1


class _Started(SpanProcessor):
    def __init__(self) -> None:
        self.names: list[str] = []

    def on_start(self, span: Span, parent_context: object = None) -> None:
        self.names.append(span.name)

    def on_end(self, span: ReadableSpan) -> None:
        pass
