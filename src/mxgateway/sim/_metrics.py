"""The simulator's own metrics: what it refused at each door, and Prometheus text on /metrics.

``SimCounters`` is updated where things happen (the registry, the sessions, the commands, the
auth check, the flood front door); ``MetricsSnapshot`` is read from the gateway when scraped.
``MetricsServer`` serves ``GET /metrics`` on the gateway's own event loop (no thread: the
collector reads the session table where it is changed), with bounded requests: a request head
of at most 16 KiB within 10 s, at most 16 connections at once, one response per connection.
The exposition format comes from ``prometheus_client`` (the ``mxgateway[prometheus]`` extra);
without it the simulator runs, but without metrics.

Series (all prefixed ``mxgateway_sim_``): ``sessions{state}``, ``subscribers``,
``queue_depth``, ``queue_depth_max``, ``events_sent_total{rpc}``,
``messages_sent_total{rpc}``, ``overflows_total``, ``refused_total{reason}`` (every reason of
``REFUSAL_REASONS``, zero included), ``leases_capped_total``, ``sessions_opened_total``,
``sessions_reaped_total``, ``pings_total``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Final

__all__ = [
    "METRICS_EXTRA",
    "REFUSAL_REASONS",
    "MetricsServer",
    "MetricsSnapshot",
    "SimCounters",
    "metrics_available",
    "render_metrics",
]

log = logging.getLogger("mxgateway.sim")

METRICS_EXTRA: Final = "mxgateway[prometheus]"

REFUSAL_REASONS: Final[dict[str, str]] = {
    "message_bytes": "a request message over max_message_bytes (counted by the flood front "
    "door; grpc-core refuses them on the gRPC server before any handler runs)",
    "value_elements": "a written value with more than max_value_elements elements",
    "value_bytes": "a written value over max_value_bytes encoded",
    "array_length": "an array write whose length or shape is not the attribute's declared one",
    "sparse_total_length": "a sparse array write whose total_length is not the declared length",
    "array_index": "an element or sparse index past the attribute's declared length",
    "sessions": "OpenSession at max_sessions",
    "sessions_per_key": "OpenSession at max_sessions_per_key for the caller's API key",
    "pending_commands": "Invoke at max_pending_commands for the session",
    "items": "an item added beyond max_items_per_session",
    "server_handles": "a Register beyond the server handles a session may hold (1024)",
    "name_length": "a name or item definition over max_name_chars",
    "reply_bytes": "a bulk whose reply would be over max_message_bytes (executed, reply refused)",
    "unauthenticated": "a call without a valid API key",
    "permission_denied": "a call whose API key lacks the scope",
}
"""Why a request was refused (the ``reason`` label of ``mxgateway_sim_refused_total``)."""

_MAX_HEAD = 16 * 1024
_HEAD_TIMEOUT_S = 10.0
_MAX_CONNECTIONS = 16


def metrics_available() -> bool:
    """True when ``prometheus_client`` can be imported (the ``mxgateway[prometheus]`` extra)."""
    try:
        return importlib.util.find_spec("prometheus_client") is not None
    except (ImportError, ValueError):  # a module set to None in sys.modules, or a broken one
        return False


class SimCounters:
    """Monotonic counters of one simulated gateway (kept across ``restart``)."""

    __slots__ = (
        "leases_capped",
        "overflows",
        "pings",
        "refused",
        "sessions_opened",
        "sessions_reaped",
    )

    def __init__(self) -> None:
        self.refused: dict[str, int] = dict.fromkeys(REFUSAL_REASONS, 0)
        self.overflows = 0
        self.pings = 0
        self.leases_capped = 0
        self.sessions_opened = 0
        self.sessions_reaped = 0

    def refuse(self, reason: str) -> None:
        """Count one request refused for ``reason`` (one of REFUSAL_REASONS)."""
        self.refused[reason] = self.refused.get(reason, 0) + 1


@dataclass(frozen=True, slots=True)
class MetricsSnapshot:
    """What a scrape reports, read from the gateway at once."""

    sessions: dict[str, int]
    subscribers: int
    queue_depth: int
    queue_depth_max: int
    rpcs: dict[str, tuple[int, int]]  # method name -> (messages, events)
    counters: SimCounters


class _Collector:
    """A prometheus_client collector over ``snapshot()``."""

    def __init__(self, snapshot: Callable[[], MetricsSnapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        snap = self._snapshot()
        counters = snap.counters
        sessions = GaugeMetricFamily(
            "mxgateway_sim_sessions", "Open sessions, by state.", labels=["state"]
        )
        for state, count in sorted(snap.sessions.items()):
            sessions.add_metric([state], count)
        yield sessions
        yield GaugeMetricFamily(
            "mxgateway_sim_subscribers", "Attached event streams.", value=snap.subscribers
        )
        yield GaugeMetricFamily(
            "mxgateway_sim_queue_depth",
            "Events waiting in the sessions' subscriber queues, all sessions together.",
            value=snap.queue_depth,
        )
        yield GaugeMetricFamily(
            "mxgateway_sim_queue_depth_max",
            "Events waiting in the deepest session queue.",
            value=snap.queue_depth_max,
        )
        events = CounterMetricFamily(
            "mxgateway_sim_events_sent", "Events handed to the transport.", labels=["rpc"]
        )
        messages = CounterMetricFamily(
            "mxgateway_sim_messages_sent",
            "gRPC messages of events handed to the transport.",
            labels=["rpc"],
        )
        for rpc, (sent_messages, sent_events) in sorted(snap.rpcs.items()):
            messages.add_metric([rpc], sent_messages)
            events.add_metric([rpc], sent_events)
        yield events
        yield messages
        yield CounterMetricFamily(
            "mxgateway_sim_overflows",
            "Subscriber queue overflows (EventQueueOverflow).",
            value=counters.overflows,
        )
        refused = CounterMetricFamily(
            "mxgateway_sim_refused",
            "Requests refused at a door, by reason (see mxgateway.sim._metrics.REFUSAL_REASONS).",
            labels=["reason"],
        )
        for reason, count in sorted(counters.refused.items()):
            refused.add_metric([reason], count)
        yield refused
        yield CounterMetricFamily(
            "mxgateway_sim_leases_capped",
            "Sessions granted max_lease_seconds instead of the longer lease asked for.",
            value=counters.leases_capped,
        )
        yield CounterMetricFamily(
            "mxgateway_sim_sessions_opened", "Sessions opened.", value=counters.sessions_opened
        )
        yield CounterMetricFamily(
            "mxgateway_sim_sessions_reaped",
            "Sessions closed because their lease or detach grace ran out.",
            value=counters.sessions_reaped,
        )
        yield CounterMetricFamily(
            "mxgateway_sim_pings",
            "HTTP/2 PINGs received by the flood front door (the gRPC server does not report "
            "its own).",
            value=counters.pings,
        )


def render_metrics(snapshot: Callable[[], MetricsSnapshot]) -> tuple[bytes, str]:
    """The Prometheus text exposition of ``snapshot()`` and its content type."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.exposition import CONTENT_TYPE_LATEST

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(snapshot))
    return generate_latest(registry), CONTENT_TYPE_LATEST


class MetricsServer:
    """``GET /metrics`` over HTTP/1.1 on the running event loop (see the module docstring)."""

    def __init__(self, snapshot: Callable[[], MetricsSnapshot]) -> None:
        self._snapshot = snapshot
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[Any]] = set()
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 = a free port); return the bound port."""
        self._server = await asyncio.start_server(self._handle, host, port, limit=_MAX_HEAD)
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self) -> None:
        """Stop listening and end the requests being served."""
        server, self._server = self._server, None
        if server is not None:
            server.close()
        handlers = list(self._handlers)
        for task in handlers:
            task.cancel()
        if handlers:
            await asyncio.gather(*handlers, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        try:
            if len(self._handlers) >= _MAX_CONNECTIONS or task is None:
                return
            self._handlers.add(task)
            try:
                async with asyncio.timeout(_HEAD_TIMEOUT_S):
                    head = await reader.readuntil(b"\r\n\r\n")
            except (TimeoutError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
                await self._respond(writer, 400, b"bad request\n")
                return
            method, _, rest = head.partition(b"\r\n")[0].partition(b" ")
            target = rest.partition(b" ")[0].partition(b"?")[0]
            if method not in (b"GET", b"HEAD"):
                await self._respond(writer, 405, b"method not allowed\n")
            elif target != b"/metrics":
                await self._respond(writer, 404, b"not found: the metrics are on /metrics\n")
            else:
                body, content_type = render_metrics(self._snapshot)
                await self._respond(writer, 200, body, content_type, head_only=method == b"HEAD")
        except ConnectionError:
            pass
        finally:
            if task is not None:
                self._handlers.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    @staticmethod
    async def _respond(
        writer: asyncio.StreamWriter,
        status: int,
        body: bytes,
        content_type: str = "text/plain; charset=utf-8",
        *,
        head_only: bool = False,
    ) -> None:
        reasons = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed"}
        head = (
            f"HTTP/1.1 {status} {reasons[status]}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
        ).encode("ascii")
        writer.write(head if head_only else head + body)
        await writer.drain()
