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
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Protocol, cast

import grpc

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim._auth import Authenticator, scope_for_command, scope_for_rpc
from mxgateway.sim._commands import execute
from mxgateway.sim._config import SimConfig
from mxgateway.sim._events import FloodSpec, batch_frame, encode_flood, frame_event, split_batch
from mxgateway.sim._plant import now_ns
from mxgateway.sim._registry import SessionLimitError, SessionRegistry
from mxgateway.sim._session import Session, Subscriber
from mxgateway.sim._status import protocol

if TYPE_CHECKING:
    from mxgateway.sim._auth import Context

__all__ = ["SERVICE_NAME", "AlarmHandlers", "GatewayService"]

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
_FLOOD_SINGLE_CHUNK = 256  # StreamEvents in flood mode: events encoded per codec call
_FRAME_OVERHEAD = 16


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
    ) -> None:
        self._config = config
        self._registry = registry
        self._auth = auth
        self._alarms = alarms
        self._clock = clock
        self._tasks: set[asyncio.Task[pb.MxCommandReply]] = set()
        self._flood_cap: int | None = None

    def generic_handler(self) -> grpc.GenericRpcHandler:
        """The service's handlers, for ``server.add_generic_rpc_handlers``."""
        unary = grpc.unary_unary_rpc_method_handler
        stream = grpc.unary_stream_rpc_method_handler
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "OpenSession": unary(
                self.open_session,
                request_deserializer=pb.OpenSessionRequest.FromString,
                response_serializer=pb.OpenSessionReply.SerializeToString,
            ),
            "CloseSession": unary(
                self.close_session,
                request_deserializer=pb.CloseSessionRequest.FromString,
                response_serializer=pb.CloseSessionReply.SerializeToString,
            ),
            "Invoke": unary(
                self.invoke,
                request_deserializer=pb.MxCommandRequest.FromString,
                response_serializer=pb.MxCommandReply.SerializeToString,
            ),
            "StreamEvents": stream(
                self.stream_events,
                request_deserializer=pb.StreamEventsRequest.FromString,
                response_serializer=_identity,
            ),
            "StreamEventBatches": stream(
                self.stream_event_batches,
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
        return grpc.method_handlers_generic_handler(SERVICE_NAME, handlers)

    async def drain_tasks(self) -> None:
        """Wait for commands still running (they complete even past a deadline)."""
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    # ----- sessions -----

    async def open_session(
        self, request: pb.OpenSessionRequest, context: Context
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
            capabilities=list(CAPABILITIES) + (["flood"] if self._config.flood else []),
            state=pb.SESSION_STATE_READY,
        )

    async def close_session(
        self, request: pb.CloseSessionRequest, context: Context
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

    async def invoke(self, request: pb.MxCommandRequest, context: Context) -> pb.MxCommandReply:
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

    async def _attach(self, request: pb.StreamEventsRequest, context: Context) -> Subscriber:
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

    async def stream_events(
        self, request: pb.StreamEventsRequest, context: Context
    ) -> AsyncIterator[bytes]:
        """StreamEvents: one encoded MxEvent per message."""
        sub = await self._attach(request, context)
        session = self._registry.sessions[request.session_id]
        try:
            if sub.prefix is not None:
                yield sub.prefix
            async for message in self._pump(session, sub, context, None):
                yield message
        finally:
            session.detach(sub)

    async def stream_event_batches(
        self, request: pb.StreamEventsRequest, context: Context
    ) -> AsyncIterator[bytes]:
        """StreamEventBatches: many events per MxEventBatch (max_batch_events, 0 = default)."""
        sub = await self._attach(request, context)
        session = self._registry.sessions[request.session_id]
        limit = request.max_batch_events or self._config.max_batch_events
        try:
            if sub.prefix is not None:
                yield frame_event(sub.prefix)
            async for message in self._pump(session, sub, context, limit):
                yield message
        finally:
            session.detach(sub)

    def _flood_limit(self, session: Session, wanted: int) -> int:
        if self._flood_cap is None:
            big = (1 << 31) - 1
            sample = encode_flood(session.session_id, FloodSpec(big, (big,)), 1 << 62, 1, 0)
            per_event = len(sample) + len(session.session_id) + _FRAME_OVERHEAD
            self._flood_cap = max(1, (self._config.max_message_bytes // 2) // per_event)
        return max(1, min(wanted, self._flood_cap))

    async def _pump(
        self, session: Session, sub: Subscriber, context: Context, batch: int | None
    ) -> AsyncIterator[bytes]:
        budget = self._config.max_message_bytes - 1024
        flood = self._config.flood
        while True:
            if sub.error is not None:
                await context.abort(*sub.error)
            if sub.finished:
                return
            pending = session.pending
            if pending:
                if batch is None:
                    yield pending.popleft()[1]
                    continue
                frames: list[bytes] = []
                size = 0
                while pending and len(frames) < batch:
                    data = pending[0][1]
                    if frames and size + len(data) + _FRAME_OVERHEAD > budget:
                        break
                    pending.popleft()
                    frames.append(data)
                    size += len(data) + _FRAME_OVERHEAD
                yield batch_frame(frames)
                continue
            if flood:
                if batch is not None:
                    flood_data = session.flood_batch(self._flood_limit(session, batch))
                    if flood_data is not None:
                        yield flood_data
                        continue
                else:
                    flood_data = session.flood_batch(_FLOOD_SINGLE_CHUNK)
                    if flood_data is not None:
                        for event in split_batch(flood_data):
                            if sub.stopped():
                                break
                            yield event
                        continue
            sub.wake.clear()
            await sub.wake.wait()

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
