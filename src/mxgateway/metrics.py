"""Stream statistics for monitoring: Prometheus (``mxgateway[prometheus]``) and OpenTelemetry
metrics (``mxgateway[otel]``).

Both read the ``StreamStats`` of every session of the clients given when they are scraped or
collected; nothing is done per event. Each series has one label,
``session``: the session's name (``client_session_name``) or, without one, its id. Label values
are bounded (``max_sessions``, default 100): sessions beyond that are summed under ``_other``,
so a client that opens many sessions cannot flood the monitoring system.

Prometheus, one line::

    mxgateway.metrics.serve_prometheus(client, port=9108)   # /metrics on 127.0.0.1:9108

OpenTelemetry (with the application's MeterProvider)::

    mxgateway.metrics.instrument_otel(client)
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from mxgateway._stats import LATENCY_BUCKETS_S, StreamStats

if TYPE_CHECKING:
    from mxgateway._client import GatewayClient

__all__ = [
    "COUNTERS",
    "DEFAULT_MAX_SESSIONS",
    "PrometheusCollector",
    "instrument_otel",
    "serve_prometheus",
    "session_stats",
]

DEFAULT_MAX_SESSIONS = 100
OTHER = "_other"

COUNTERS: dict[str, str] = {
    "events": "Events handed to the consumer.",
    "messages": "gRPC messages received.",
    "bytes": "Serialized bytes of the messages received.",
    "decode_errors": "Messages that did not decode (they end the stream).",
    "reconnects": "Reconnect attempts after a failure or an ended stream.",
    "resumes": "Reconnects that attached again.",
    "replay_gaps": "ReplayGap events (the gateway no longer had what a resume asked for).",
    "replay_gap_events": "Events the replay gaps say were lost.",
    "overflows": "Times the gateway's event queue overflowed.",
    "recoveries": "Times the session was recovered after the gateway lost it.",
}
"""The monotonic counters of StreamStats, by attribute name, with their help text."""


def session_stats(
    clients: Iterable[GatewayClient], max_sessions: int = DEFAULT_MAX_SESSIONS
) -> list[tuple[str, list[StreamStats]]]:
    """``(label, stats)`` of every session with statistics, at most ``max_sessions`` labels
    (the rest under ``_other``), in a stable order."""
    if max_sessions < 1:
        raise ValueError("max_sessions must be at least 1")
    labelled: dict[str, list[StreamStats]] = {}
    for client in clients:
        for session in client._live_sessions():
            stats = session.stats
            if stats is None:
                continue
            label = session._name or session.session_id
            if label not in labelled and len(labelled) >= max_sessions:
                label = OTHER
            labelled.setdefault(label, []).append(stats)
    return sorted(labelled.items())


def _total(stats: list[StreamStats], name: str) -> float:
    return float(sum(getattr(s, name) for s in stats))


def _lag(stats: list[StreamStats]) -> float | None:
    lags = [s.lag_s for s in stats if s.lag_s is not None]
    return max(lags) if lags else None


class PrometheusCollector:
    """A prometheus_client collector of the clients' stream statistics.

    ``mxgateway_stream_<counter>_total`` for each of ``COUNTERS``, ``mxgateway_stream_lag_seconds``
    (now minus the gateway receive time of the last event) and
    ``mxgateway_stream_latency_seconds`` (a histogram, gateway receive time to hand-over, one
    sample a list weighted by its events).
    """

    def __init__(self, *clients: GatewayClient, max_sessions: int = DEFAULT_MAX_SESSIONS) -> None:
        self._clients = list(clients)
        self._max = max_sessions

    def add(self, client: GatewayClient) -> None:
        """Export this client's sessions too."""
        self._clients.append(client)

    def collect(self) -> Iterator[Any]:
        """The metric families (called by prometheus_client at each scrape)."""
        from prometheus_client.core import (
            CounterMetricFamily,
            GaugeMetricFamily,
            HistogramMetricFamily,
        )

        rows = session_stats(list(self._clients), self._max)
        for name, help_text in COUNTERS.items():
            family = CounterMetricFamily(f"mxgateway_stream_{name}", help_text, labels=["session"])
            for label, stats in rows:
                family.add_metric([label], _total(stats, name))
            yield family
        lag = GaugeMetricFamily(
            "mxgateway_stream_lag_seconds",
            "Seconds since the gateway received the last event handed on.",
            labels=["session"],
        )
        for label, stats in rows:
            value = _lag(stats)
            if value is not None:
                lag.add_metric([label], value)
        yield lag
        latency = HistogramMetricFamily(
            "mxgateway_stream_latency_seconds",
            "Gateway receive time to hand-over, one sample a list weighted by its events.",
            labels=["session"],
        )
        for label, stats in rows:
            counts = [
                sum(s.latency_counts[i] for s in stats) for i in range(len(stats[0].latency_counts))
            ]
            cumulative, buckets = 0, []
            for bound, count in zip([*LATENCY_BUCKETS_S, float("inf")], counts, strict=True):
                cumulative += count
                buckets.append((str(bound) if bound != float("inf") else "+Inf", cumulative))
            latency.add_metric([label], buckets, sum_value=_total(stats, "latency_sum_s"))
        yield latency


def serve_prometheus(
    *clients: GatewayClient,
    port: int = 9108,
    addr: str = "127.0.0.1",
    max_sessions: int = DEFAULT_MAX_SESSIONS,
    registry: Any = None,
) -> tuple[PrometheusCollector, int]:
    """Register a PrometheusCollector of ``clients`` and serve ``/metrics`` on ``addr:port``
    (port 0 picks a free one) in a daemon thread; return the collector and the port."""
    from prometheus_client import REGISTRY, start_http_server

    collector = PrometheusCollector(*clients, max_sessions=max_sessions)
    target = registry if registry is not None else REGISTRY
    target.register(collector)
    server, _thread = start_http_server(port, addr=addr, registry=target)
    return collector, int(server.server_port)


def instrument_otel(
    *clients: GatewayClient,
    meter_provider: Any = None,
    max_sessions: int = DEFAULT_MAX_SESSIONS,
) -> Any:
    """Observable OpenTelemetry instruments for the clients' stream statistics (counters of
    ``COUNTERS`` as ``mxgateway.stream.<name>``, ``mxgateway.stream.lag`` and the latency
    p50/p99 as gauges), read when the SDK collects. Returns the meter."""
    from opentelemetry import metrics
    from opentelemetry.metrics import CallbackOptions, Observation

    provider = meter_provider or metrics.get_meter_provider()
    meter = provider.get_meter("mxgateway")
    listed = list(clients)

    def counter_callback(name: str) -> Any:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            for label, stats in session_stats(listed, max_sessions):
                yield Observation(_total(stats, name), {"session": label})

        return observe

    for name, help_text in COUNTERS.items():
        meter.create_observable_counter(
            f"mxgateway.stream.{name}", callbacks=[counter_callback(name)], description=help_text
        )

    def gauge_callback(read: Any) -> Any:
        def observe(options: CallbackOptions) -> Iterable[Observation]:
            for label, stats in session_stats(listed, max_sessions):
                value = read(stats)
                if value is not None:
                    yield Observation(value, {"session": label})

        return observe

    meter.create_observable_gauge(
        "mxgateway.stream.lag",
        callbacks=[gauge_callback(_lag)],
        unit="s",
        description="Seconds since the gateway received the last event handed on.",
    )
    for quantile in (0.5, 0.99):
        meter.create_observable_gauge(
            f"mxgateway.stream.latency.p{int(quantile * 100)}",
            callbacks=[
                gauge_callback(
                    lambda stats, q=quantile: max(
                        (v for s in stats if (v := s.latency_quantile(q)) is not None), default=None
                    )
                )
            ],
            unit="s",
            description=f"Latency quantile {quantile} (upper bound of its histogram bucket).",
        )
    return meter
