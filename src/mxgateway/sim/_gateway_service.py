"""The MxAccessGateway rpcs, registered by hand so event streams can send pre-encoded bytes.

Unary rpcs use the generated message classes. StreamEvents and StreamEventBatches have an
identity response serializer: events are encoded once when they happen (or straight by the
codec in flood mode) and never re-serialized. The alarm rpcs delegate to the alarm manager
after the auth check.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol, cast

import grpc

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim._auth import Authenticator, scope_for_command, scope_for_rpc
from mxgateway.sim._commands import execute
from mxgateway.sim._config import SimConfig
from mxgateway.sim._events import split_batch
from mxgateway.sim._feed import BATCHES_PATH, EVENTS_PATH, EventFeed, StreamStats
from mxgateway.sim._plant import now_ns
from mxgateway.sim._registry import SessionLimitError, SessionRegistry
from mxgateway.sim._session import Session, Subscriber
from mxgateway.sim._status import protocol

if TYPE_CHECKING:
    from mxgateway.sim._auth import CallContext, Context

__all__ = ["SERVICE_NAME", "AlarmHandlers", "GatewayService", "UnaryRpc"]

log = logging.getLogger("mxgateway.sim")

SERVICE_NAME = pb.DESCRIPTOR.services_by_name["MxAccessGateway"].full_name
BACKEND_NAME = "mxgateway-sim"
PROTOCOL_VERSION = 1
CAPABILITIES = (
    "alarms",
    "buffered-items",
    "bulk-commands",
    "replay",
    "secured-writes",
    "stream-event-batches",
)
BATCHES_CAPABILITY = "stream-event-batches"
_FLOOD_SINGLE_CHUNK = 256  # StreamEvents in flood mode: events encoded per codec call


class UnaryRpc(NamedTuple):
    """A unary rpc: its handler (request, context) -> reply, and how its messages are coded."""

    handler: Callable[[Any, Any], Awaitable[Any]]
    parse: Callable[[bytes], Any]
    serialize: Callable[[Any], bytes]


class AlarmHandlers(Protocol):
    """The alarm manager's rpc handlers (see mxgateway.sim._alarms)."""

    def stream_alarms(self, request: pb.StreamAlarmsRequest, context: Context) -> Any: ...
    def query_active_alarms(
        self, request: pb.QueryActiveAlarmsRequest, context: Context
    ) -> Any: ...
    def acknowledge_alarm(self, request: pb.AcknowledgeAlarmRequest, context: Context) -> Any: ...


def _identity(data: bytes) -> bytes:
    return data


async def _relay(result: Any) -> AsyncIterator[Any]:
    """Yield from an async iterator, or await a coroutine that writes with context.write()."""
    if hasattr(result, "__aiter__"):
        async for message in result:
            yield message
    elif inspect.isawaitable(result):
        await result


class GatewayService:
    """Handlers of mxaccess_gateway.v1.MxAccessGateway over a SessionRegistry."""

    def __init__(
        self,
        config: SimConfig,
        registry: SessionRegistry,
        auth: Authenticator,
        alarms: AlarmHandlers | None,
        clock: Callable[[], int] = now_ns,
        stats: StreamStats | None = None,
    ) -> None:
        self._config = config
        self._registry = registry
        self._auth = auth
        self._alarms = alarms
        self._clock = clock
        self._tasks: set[asyncio.Task[pb.MxCommandReply]] = set()
        self.stats = stats if stats is not None else StreamStats()

    def session_rpcs(self) -> dict[str, UnaryRpc]:
        """OpenSession, CloseSession and Invoke: handler, request parser, reply serializer.

        The grpc.aio server registers them; the flood front door calls them itself (relayed
        through grpc.aio, each pending command, up to 128 per session, would be two calls in
        one process, and grpc.aio cancels calls past about 2,000 in flight per process).
        """
        return {
            "OpenSession": UnaryRpc(
                self.open_session,
                pb.OpenSessionRequest.FromString,
                pb.OpenSessionReply.SerializeToString,
            ),
            "CloseSession": UnaryRpc(
                self.close_session,
                pb.CloseSessionRequest.FromString,
                pb.CloseSessionReply.SerializeToString,
            ),
            "Invoke": UnaryRpc(
                self.invoke, pb.MxCommandRequest.FromString, pb.MxCommandReply.SerializeToString
            ),
        }

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """The service's handlers, for ``server.add_generic_rpc_handlers``."""
        unary = grpc.unary_unary_rpc_method_handler
        stream = grpc.unary_stream_rpc_method_handler
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            name: unary(
                rpc.handler,
                request_deserializer=rpc.parse,
                response_serializer=rpc.serialize,
            )
            for name, rpc in self.session_rpcs().items()
        }
        handlers |= {
            "StreamEvents": stream(
                self.stream_events,
                request_deserializer=pb.StreamEventsRequest.FromString,
                response_serializer=_identity,
            ),
            "AcknowledgeAlarm": unary(
                self.acknowledge_alarm,
                request_deserializer=pb.AcknowledgeAlarmRequest.FromString,
                response_serializer=pb.AcknowledgeAlarmReply.SerializeToString,
            ),
            "StreamAlarms": stream(
                self.stream_alarms,
                request_deserializer=pb.StreamAlarmsRequest.FromString,
                response_serializer=pb.AlarmFeedMessage.SerializeToString,
            ),
            "QueryActiveAlarms": stream(
                self.query_active_alarms,
                request_deserializer=pb.QueryActiveAlarmsRequest.FromString,
                response_serializer=pb.ActiveAlarmSnapshot.SerializeToString,
            ),
        }
        if self._config.event_batches:
            # Without it (the genuine gateway) grpc answers UNIMPLEMENTED, as a gateway would.
            handlers["StreamEventBatches"] = stream(
                self.stream_event_batches,
                request_deserializer=pb.StreamEventsRequest.FromString,
                response_serializer=_identity,
            )
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)

    def capabilities(self) -> list[str]:
        """The capabilities OpenSession announces."""
        names = [c for c in CAPABILITIES if self._config.event_batches or c != BATCHES_CAPABILITY]
        return names + (["flood"] if self._config.flood else [])

    async def drain_tasks(self) -> None:
        """Wait for commands still running (they complete even past a deadline)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ----- sessions -----

    async def open_session(
        self, request: pb.OpenSessionRequest, context: CallContext
    ) -> pb.OpenSessionReply:
        """OpenSession: a READY session, or RESOURCE_EXHAUSTED at the session limit."""
        await self._auth.check(context, scope_for_rpc("OpenSession"))
        try:
            session = self._registry.open(request.client_session_name, request.lease_seconds)
        except SessionLimitError as exc:
            await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, str(exc))
        return pb.OpenSessionReply(
            session_id=session.session_id,
            backend_name=BACKEND_NAME,
            gateway_protocol_version=PROTOCOL_VERSION,
            worker_protocol_version=PROTOCOL_VERSION,
            protocol_status=protocol(pb.PROTOCOL_STATUS_CODE_OK),
            capabilities=self.capabilities(),
            state=pb.SESSION_STATE_READY,
        )

    async def close_session(
        self, request: pb.CloseSessionRequest, context: CallContext
    ) -> pb.CloseSessionReply:
        """CloseSession: idempotent (a closed session closes again with OK)."""
        await self._auth.check(context, scope_for_rpc("CloseSession"))
        session = self._registry.get(request.session_id)
        if session is not None:
            self._registry.close(session, "closed by the client")
        elif not self._registry.was_closed(request.session_id):
            return pb.CloseSessionReply(
                session_id=request.session_id,
                protocol_status=protocol(
                    pb.PROTOCOL_STATUS_CODE_SESSION_NOT_FOUND, "session not found"
                ),
            )
        return pb.CloseSessionReply(
            session_id=request.session_id,
            final_state=pb.SESSION_STATE_CLOSED,
            protocol_status=protocol(pb.PROTOCOL_STATUS_CODE_OK),
        )

    # ----- commands -----

    def _refusal(
        self, request: pb.MxCommandRequest, code: pb.ProtocolStatusCode, text: str
    ) -> pb.MxCommandReply:
        return pb.MxCommandReply(
            session_id=request.session_id,
            correlation_id=request.client_correlation_id,
            kind=request.command.kind,
            protocol_status=protocol(code, text),
            diagnostic_message=text,
        )

    async def invoke(self, request: pb.MxCommandRequest, context: CallContext) -> pb.MxCommandReply:
        """Invoke: one command; pending-command limit; command timeout as DEADLINE_EXCEEDED."""
        await self._auth.check(context, scope_for_command(request.command.kind))
        session = self._registry.get(request.session_id)
        if session is None:
            return self._refusal(
                request, pb.PROTOCOL_STATUS_CODE_SESSION_NOT_FOUND, "session not found"
            )
        if session.state != pb.SESSION_STATE_READY:
            return self._refusal(
                request,
                pb.PROTOCOL_STATUS_CODE_SESSION_NOT_READY,
                f"session is {pb.SessionState.Name(session.state)}: {session.fault_reason}",
            )
        session.touch()
        if session.pending_commands >= self._config.max_pending_commands:
            await context.abort(
                grpc.StatusCode.RESOURCE_EXHAUSTED,
                f"too many pending commands ({self._config.max_pending_commands})",
            )
        session.pending_commands += 1
        task = asyncio.get_running_loop().create_task(self._run_command(session, request))
        self._tasks.add(task)
        task.add_done_callback(lambda t: self._command_done(session, t))
        try:
            return await asyncio.wait_for(asyncio.shield(task), self._config.command_timeout_s)
        except TimeoutError:
            await context.abort(
                grpc.StatusCode.DEADLINE_EXCEEDED,
                f"command did not complete in {self._config.command_timeout_s:g} s "
                "(it still completes)",
            )

    def _command_done(self, session: Session, task: asyncio.Task[pb.MxCommandReply]) -> None:
        self._tasks.discard(task)
        session.pending_commands -= 1
        if not task.cancelled() and task.exception() is not None:
            log.error("command failed in the simulator", exc_info=task.exception())

    async def _run_command(
        self, session: Session, request: pb.MxCommandRequest
    ) -> pb.MxCommandReply:
        async with session.command_lock:
            if self._config.command_latency_s > 0:
                await asyncio.sleep(self._config.command_latency_s)
            if session.state != pb.SESSION_STATE_READY:
                return self._refusal(
                    request,
                    pb.PROTOCOL_STATUS_CODE_SESSION_NOT_FOUND
                    if session.state == pb.SESSION_STATE_CLOSED
                    else pb.PROTOCOL_STATUS_CODE_SESSION_NOT_READY,
                    f"session is {pb.SessionState.Name(session.state)}",
                )
            return execute(session, request)

    # ----- events -----

    async def _attach(self, request: pb.StreamEventsRequest, context: CallContext) -> Subscriber:
        await self._auth.check(context, scope_for_rpc("StreamEvents"))
        session = self._registry.get(request.session_id)
        if session is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, "session not found")
        if session.state != pb.SESSION_STATE_READY:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION,
                f"session is {pb.SessionState.Name(session.state)}: {session.fault_reason}",
            )
        if session.subscriber is not None:
            await context.abort(
                grpc.StatusCode.FAILED_PRECONDITION, "the session already has an event subscriber"
            )
        return session.attach(request.after_worker_sequence)

    async def open_feed(
        self, request: pb.StreamEventsRequest, context: CallContext, *, batches: bool
    ) -> EventFeed:
        """Attach the stream's subscriber (or abort the call) and return its feed."""
        sub = await self._attach(request, context)
        session = self._registry.sessions[request.session_id]
        if not batches:
            return EventFeed(session, sub, None, self.stats.counter(EVENTS_PATH))
        limit = request.max_batch_events or self._config.max_batch_events
        return EventFeed(session, sub, limit, self.stats.counter(BATCHES_PATH))

    async def stream_events(
        self, request: pb.StreamEventsRequest, context: Context
    ) -> AsyncIterator[bytes]:
        """StreamEvents: one encoded MxEvent per message."""
        feed = await self.open_feed(request, context, batches=False)
        try:
            async for message in self._pump(feed, context):
                yield message
        finally:
            feed.close()

    async def stream_event_batches(
        self, request: pb.StreamEventsRequest, context: Context
    ) -> AsyncIterator[bytes]:
        """StreamEventBatches: many events per MxEventBatch (max_batch_events, 0 = default)."""
        feed = await self.open_feed(request, context, batches=True)
        try:
            async for message in self._pump(feed, context):
                yield message
        finally:
            feed.close()

    async def _pump(self, feed: EventFeed, context: Context) -> AsyncIterator[bytes]:
        prefix = feed.take_prefix()
        if prefix is not None:
            yield prefix
        single = feed.batch is None
        sub = feed.sub
        while True:
            ended = feed.ended()
            if ended is not None:
                if ended[0] == grpc.StatusCode.OK:
                    return
                await context.abort(*ended)
            if feed.has_pending():
                # One message, then look at the subscriber again (an overflow ends it).
                (message,) = feed.take_pending(1)
                yield message
                continue
            flood = feed.take_flood(_FLOOD_SINGLE_CHUNK)
            if flood is not None:
                if not single:
                    yield flood[0]
                    continue
                for event in split_batch(flood[0]):
                    if sub.stopped():
                        break
                    yield event
                continue
            await feed.wait()

    # ----- alarms -----

    def _alarm_handlers(self) -> AlarmHandlers | None:
        return self._alarms

    async def acknowledge_alarm(
        self, request: pb.AcknowledgeAlarmRequest, context: Context
    ) -> pb.AcknowledgeAlarmReply:
        """AcknowledgeAlarm (invoke:write), delegated to the alarm manager."""
        await self._auth.check(context, scope_for_rpc("AcknowledgeAlarm"))
        alarms = self._alarm_handlers()
        if alarms is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "alarms are not simulated")
        return cast(pb.AcknowledgeAlarmReply, await alarms.acknowledge_alarm(request, context))

    async def stream_alarms(
        self, request: pb.StreamAlarmsRequest, context: Context
    ) -> AsyncIterator[pb.AlarmFeedMessage]:
        """StreamAlarms (events:read), delegated to the alarm manager."""
        await self._auth.check(context, scope_for_rpc("StreamAlarms"))
        alarms = self._alarm_handlers()
        if alarms is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "alarms are not simulated")
        async for message in _relay(alarms.stream_alarms(request, context)):
            yield message

    async def query_active_alarms(
        self, request: pb.QueryActiveAlarmsRequest, context: Context
    ) -> AsyncIterator[pb.ActiveAlarmSnapshot]:
        """QueryActiveAlarms (events:read), delegated to the alarm manager."""
        await self._auth.check(context, scope_for_rpc("QueryActiveAlarms"))
        alarms = self._alarm_handlers()
        if alarms is None:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "alarms are not simulated")
        async for message in _relay(alarms.query_active_alarms(request, context)):
            yield message
