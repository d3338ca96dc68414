"""GatewayClient: sessions, raw Invoke and event streams, and the central alarm feed."""

from __future__ import annotations

import asyncio
import atexit
import logging
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import grpc

from mxgateway._alarm_feed import AlarmFeedItem, acknowledge_result_from_pb, follow_alarm_feed
from mxgateway._base import ClientBase
from mxgateway._channel import sync_receiver_available
from mxgateway._options import ClientOptions
from mxgateway._rpc import call, check_protocol_status, translate_rpc_error
from mxgateway._tags import TagSession
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.types import (
    AcknowledgeResult,
    ActiveAlarm,
    MxDataType,
    TagChange,
    TagValue,
    WriteOutcome,
)

if TYPE_CHECKING:
    from mxgateway._session import Session

__all__ = ["GatewayClient"]

logger = logging.getLogger(__name__)

# How long closing a forgotten session may take, at client close and at interpreter exit.
_CLOSE_ON_EXIT_S = 2.0
# Clients with sessions they opened, for the exit hook (weak: a collected client is gone).
_OPEN_CLIENTS: weakref.WeakSet[GatewayClient] = weakref.WeakSet()


@atexit.register
def _close_forgotten_sessions() -> None:
    """At interpreter exit, close (best effort, bounded) the sessions clients opened and
    nobody closed: the event loop is gone by then, so a sync channel does it."""
    for client in list(_OPEN_CLIENTS):
        if client.closed:
            continue
        ids = [s.session_id for s in client._forgotten()]
        if ids:
            _close_sessions_sync(client.options, ids)


def _close_sessions_sync(options: ClientOptions, session_ids: list[str]) -> None:
    from mxgateway._channel import open_sync_channel

    try:
        channel = open_sync_channel(options)
    except Exception:
        return
    try:
        close = channel.unary_unary(
            _SERVICE + "CloseSession",
            request_serializer=pb.CloseSessionRequest.SerializeToString,
            response_deserializer=pb.CloseSessionReply.FromString,
        )
        deadline = time.monotonic() + _CLOSE_ON_EXIT_S
        for session_id in session_ids:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                close(
                    pb.CloseSessionRequest(session_id=session_id),
                    metadata=options.metadata,
                    timeout=remaining,
                )
            except Exception:
                continue  # best effort: the gateway's lease ends it anyway
    finally:
        channel.close()


_SERVICE = "/mxaccess_gateway.v1.MxAccessGateway/"


class GatewayClient(ClientBase):
    """An async client of the MXAccess Gateway service.

    Open with ``async with await GatewayClient.connect(endpoint=..., api_key=...) as client:``.
    Every call carries ``authorization: Bearer <api_key>``; TLS is the default and
    ``plaintext=True`` must be asked for. A closed client cannot be reused; closing it ends its
    event streams.
    """

    def __init__(self, options: ClientOptions) -> None:
        super().__init__(options)
        # Whether the gateway offers StreamEventBatches: None until a stream learns it.
        self._batches_offered: bool | None = None
        self._thread_receiver = options.event_receiver == "thread" and sync_receiver_available()
        if options.event_receiver == "thread" and not self._thread_receiver:
            logger.info("this gRPC has no single-threaded unary-stream: aio event receiver")
        # The message sources of running event streams (closing the client cancels them).
        self._streams: set[Any] = set()
        self._tags: TagSession | None = None
        self._closing = False
        # The session objects of this client, for exporters (read from their threads: a dict
        # of weak references, which list() copies at once under the GIL).
        self._sessions: dict[int, weakref.ref[Session]] = {}
        self._owned: dict[int, Session] = {}
        channel = self._live_channel()
        self._stub = pb_grpc.MxAccessGatewayStub(channel)
        # Event streams skip protobuf objects: the response is the raw bytes, which the codec
        # decodes straight into structs.
        self._raw_events: grpc.aio.UnaryStreamMultiCallable[pb.StreamEventsRequest, bytes] = (
            channel.unary_stream(
                _SERVICE + "StreamEvents",
                request_serializer=pb.StreamEventsRequest.SerializeToString,
                response_deserializer=None,
            )
        )
        self._raw_batches: grpc.aio.UnaryStreamMultiCallable[pb.StreamEventsRequest, bytes] = (
            channel.unary_stream(
                _SERVICE + "StreamEventBatches",
                request_serializer=pb.StreamEventsRequest.SerializeToString,
                response_deserializer=None,
            )
        )

    def _forgotten(self) -> list[Session]:
        """Sessions this client opened that are still open and not left open on purpose."""
        return [s for s in list(self._owned.values()) if s._owned and not s.closed]

    async def _close_owned_sessions(self) -> None:
        owned = self._forgotten()
        if not owned:
            return
        results = await asyncio.gather(
            *(asyncio.wait_for(s.close(), _CLOSE_ON_EXIT_S) for s in owned),
            return_exceptions=True,
        )
        for session, result in zip(owned, results, strict=True):
            if isinstance(result, BaseException):
                logger.debug("closing session %s failed: %r", session.session_id, result)

    def _track(self, session: Session) -> None:
        key = id(session)
        self._sessions[key] = weakref.ref(session, lambda _: self._sessions.pop(key, None))

    def _live_sessions(self) -> list[Session]:
        """The session objects of this client still in use (for exporters and dashboards)."""
        alive = [ref() for ref in list(self._sessions.values())]
        return [session for session in alive if session is not None]

    @property
    def event_receiver(self) -> str:
        """The receiver StreamEvents is read with: ``"thread"`` or ``"aio"``."""
        return "thread" if self._thread_receiver else "aio"

    def _no_event_batches(self) -> None:
        """The gateway answered StreamEventBatches with UNIMPLEMENTED: use StreamEvents from
        now on (said once per client)."""
        if self._batches_offered is not False:
            logger.info(
                "%s lacks StreamEventBatches; events come through StreamEvents (%s receiver)",
                self.options.endpoint,
                self.event_receiver,
            )
        self._batches_offered = False

    def _reconnected_waiter(self) -> Callable[[], Awaitable[object]] | None:
        """While the channel is not connected: a wait for it to be (a stream retries as soon
        as the gateway is back); None while it is connected (then only the backoff counts)."""
        channel = self._channel
        if channel is None:
            return None
        if channel.get_state(try_to_connect=False) == grpc.ChannelConnectivity.READY:
            return None
        return channel.channel_ready

    async def close(self) -> None:
        """Close the sessions this client opened and did not close (a session left on the
        gateway holds a slot for its whole lease), end every event stream of this client and
        close the channel. Idempotent; sessions are closed within a few seconds at most."""
        self._closing = True  # streams that end from here on end with MxGatewayClientClosedError
        for stream in list(self._streams):
            cancel = getattr(stream, "cancel", None)
            if cancel is not None:
                cancel()
        tags, self._tags = self._tags, None
        if tags is not None and not self.closed:
            await tags.close()
        if not self.closed:
            await self._close_owned_sessions()
        for stream in list(self._streams):
            cancel = getattr(stream, "cancel", None)
            if cancel is not None:
                cancel()
        await super().close()

    # -- tags by name --------------------------------------------------------------------------

    def _tag_session(self) -> TagSession:
        self._live_channel()
        if self._tags is None:
            self._tags = TagSession(self)
        return self._tags

    async def read(
        self, tags: str | Iterable[str], *, timeout: float | None = None
    ) -> dict[str, TagValue]:
        """Read tags by name: ``{tag: TagValue}`` with Python values, quality, timestamp.

        A tag the gateway does not know, or cannot read, is a TagValue whose ``error`` says
        why (the others are read all the same). Runs on a session the client keeps for its
        tag-level calls (opened on first use, recovered after a gateway restart, closed with
        the client); ``timeout`` is the call's deadline (default the client's).
        """
        return await self._tag_session().read(tags, timeout=timeout)

    async def write(
        self,
        tag: str,
        value: Any,
        *,
        data_type: MxDataType | int | None = None,
        confirm: bool = True,
        timeout: float | None = None,
    ) -> WriteOutcome | None:
        """Write ``value`` to ``tag`` by name: the item is added and advised when needed and
        the type inferred from the value (or ``data_type``).

        With ``confirm`` (the default) it waits for MXAccess's outcome (ON_WRITE_COMPLETE) and
        returns the ``WriteOutcome``, raising MxAccessError when the write was refused or
        failed and MxGatewayTimeoutError when no outcome came within ``timeout`` (default the
        client's). With ``confirm=False`` it returns None once the gateway accepted the command.
        nan/inf and values that do not fit raise ValueError before anything is sent.
        """
        return await self._tag_session().write(
            tag, value, data_type=data_type, confirm=confirm, timeout=timeout
        )

    def subscribe(
        self, tags: str | Iterable[str], *, duration: float | None = None
    ) -> AsyncIterator[TagChange]:
        """Changes of ``tags`` by name, as ``TagChange`` (tag, Python value, quality,
        timestamp), until ``duration`` seconds passed (None: until the loop ends).

        Each tag's current value comes first. A tag the gateway does not know arrives once as
        a TagChange whose ``error`` says so (never silence). Events lost to a gateway restart
        or a ReplayGap arrive as a notice whose ``tag`` is ``"*"``. Several subscriptions share
        one event stream of the client's tag session.
        """
        return self._tag_session().subscribe(tags, duration=duration)

    # -- sessions ----------------------------------------------------------------------------

    async def open_session_raw(
        self,
        client_session_name: str = "",
        *,
        lease_seconds: int = 0,
        timeout: float | None = None,
    ) -> pb.OpenSessionReply:
        """OpenSession, returning the generated reply (protocol failures raise)."""
        self._live_channel()
        request = pb.OpenSessionRequest(
            client_session_name=client_session_name, lease_seconds=lease_seconds
        )
        reply: pb.OpenSessionReply = await call(
            "OpenSession",
            lambda: self._stub.OpenSession(
                request, metadata=self._metadata, timeout=self._timeout(timeout)
            ),
        )
        check_protocol_status(reply, "OpenSession")
        return reply

    async def open_session(
        self,
        client_session_name: str = "",
        *,
        lease_seconds: int = 0,
        recover: bool = False,
        timeout: float | None = None,
    ) -> Session:
        """Open a gateway session and return its typed ``Session``.

        With ``recover=True`` the session heals itself when the gateway no longer knows it (a
        gateway restart, an expired lease): it opens a new session, replays what it had built
        (Register, AddItem/AddItem2/AddBufferedItem, Advise/AdviseSupervisory, the bulk adds and
        advises, the buffered update interval, Suspend; forgetting what was removed, unadvised
        or unregistered) and maps the new server and item handles to the ones the caller holds,
        in commands and in events. Its event streams go on and yield a marker (an MxEvent
        whose ``session_recovered`` says the old and new ids, the items that could not be
        restored, and that the events in between were lost). A command in flight when the loss
        is met raises MxGatewaySessionNotFoundError and is never sent again; user ids from
        AuthenticateUser are not restored (passwords are never kept): authenticate again.
        """
        from mxgateway._session import Session

        reply = await self.open_session_raw(
            client_session_name, lease_seconds=lease_seconds, timeout=timeout
        )
        session = Session(
            self, reply, name=client_session_name, lease_seconds=lease_seconds, recover=recover
        )
        session._owned = True  # opened here: closed with the client if the caller did not
        # Held strongly until closed: a session object dropped unclosed is still a session on
        # the gateway, holding a slot for its whole lease.
        self._owned[id(session)] = session
        _OPEN_CLIENTS.add(self)
        return session

    async def close_session(
        self, session_id: str, *, timeout: float | None = None
    ) -> pb.CloseSessionReply:
        """CloseSession (idempotent on the gateway); returns the generated reply."""
        request = pb.CloseSessionRequest(session_id=session_id)
        self._live_channel()
        reply: pb.CloseSessionReply = await call(
            "CloseSession",
            lambda: self._stub.CloseSession(
                request, metadata=self._metadata, timeout=self._timeout(timeout)
            ),
        )
        check_protocol_status(reply, "CloseSession")
        return reply

    # -- commands ----------------------------------------------------------------------------

    async def invoke_raw(
        self,
        session_id: str,
        command: pb.MxCommand,
        *,
        client_correlation_id: str = "",
        timeout: float | None = None,
    ) -> pb.MxCommandReply:
        """Invoke one MXAccess command and return the generated reply.

        Gateway protocol failures raise the typed MxGateway* exceptions; an MXAccess failure
        (MXACCESS_FAILURE, a failing HRESULT or status) is deliberately left in the reply for
        the caller to inspect (``Session.invoke`` adds that check).
        """
        request = pb.MxCommandRequest(
            session_id=session_id, client_correlation_id=client_correlation_id, command=command
        )
        self._live_channel()
        what = f"Invoke({_kind_name(command.kind)})"
        reply: pb.MxCommandReply = await call(
            what,
            lambda: self._stub.Invoke(
                request, metadata=self._metadata, timeout=self._timeout(timeout)
            ),
        )
        check_protocol_status(reply, what)
        return reply

    # -- events ------------------------------------------------------------------------------

    async def stream_events_raw(
        self, session_id: str, *, after_worker_sequence: int = 0
    ) -> AsyncIterator[pb.MxEvent]:
        """StreamEvents yielding generated MxEvent messages (for parity tests; no resume).

        Breaking out of the loop, ``aclose()`` or cancelling the task cancels the call.
        """
        request = pb.StreamEventsRequest(
            session_id=session_id, after_worker_sequence=after_worker_sequence
        )
        stream = self._stub.StreamEvents(request, metadata=self._metadata)
        try:
            async for event in stream:
                yield event
        except grpc.aio.AioRpcError as error:
            raise translate_rpc_error(error, "StreamEvents", not_found_is_session=True) from error
        finally:
            stream.cancel()

    # -- central alarm feed (no session) -----------------------------------------------------

    def stream_alarms(
        self,
        filter_prefix: str = "",
        *,
        client_correlation_id: str = "",
        resume: bool = True,
        retry_budget_s: float = 30.0,
        on_trouble: Callable[[str | None], None] | None = None,
    ) -> AsyncIterator[AlarmFeedItem]:
        """Follow the gateway's central alarm feed.

        Yields, in the gateway's order, an ``ActiveAlarm`` per active alarm whose reference
        starts with ``filter_prefix``, one ``AlarmSnapshotComplete``, an ``AlarmProviderStatus``,
        then live ``AlarmTransition`` items (and provider status changes) until cancelled.

        With ``resume`` (the default) a cut or a gateway restart is retried with backoff for up
        to ``retry_budget_s`` seconds (then ``MxGatewayStreamLostError``); authentication and
        permission errors raise at once. After a reconnect the feed yields an
        ``AlarmFeedResync`` marker and then only the differences from what it had already
        yielded (``AlarmResyncClear`` for alarms that ended meanwhile, ``ActiveAlarm`` for
        those that appeared or changed state), never an unchanged alarm again.
        ``on_trouble`` hears why while reconnecting, and None once the feed is back.
        """
        return follow_alarm_feed(
            self,
            filter_prefix,
            client_correlation_id=client_correlation_id,
            resume=resume,
            retry_budget_s=retry_budget_s,
            on_trouble=on_trouble,
        )

    async def query_active_alarms(
        self, filter_prefix: str = "", *, client_correlation_id: str = ""
    ) -> list[ActiveAlarm]:
        """The alarms active now whose reference starts with ``filter_prefix``."""
        from mxgateway._alarm_feed import active_alarm_from_pb

        request = pb.QueryActiveAlarmsRequest(
            alarm_filter_prefix=filter_prefix, client_correlation_id=client_correlation_id
        )
        stream = self._stub.QueryActiveAlarms(
            request, metadata=self._metadata, timeout=self._options.timeout
        )
        alarms: list[ActiveAlarm] = []
        try:
            async for snapshot in stream:
                alarms.append(active_alarm_from_pb(snapshot))
        except grpc.aio.AioRpcError as error:
            raise translate_rpc_error(error, "QueryActiveAlarms") from error
        finally:
            stream.cancel()
        return alarms

    async def acknowledge_alarm(
        self,
        reference: str,
        *,
        comment: str = "",
        operator: str = "",
        client_correlation_id: str = "",
        timeout: float | None = None,
    ) -> AcknowledgeResult:
        """Acknowledge one alarm by its full reference; MXAccess failures raise MxAccessError."""
        from mxgateway._rpc import ensure_mxaccess_success

        if not reference:
            raise ValueError("reference is required (the alarm's full reference)")
        request = pb.AcknowledgeAlarmRequest(
            alarm_full_reference=reference,
            operator_comment=comment,
            operator_user=operator,
            client_correlation_id=client_correlation_id,
        )
        self._live_channel()
        reply: pb.AcknowledgeAlarmReply = await call(
            "AcknowledgeAlarm",
            lambda: self._stub.AcknowledgeAlarm(
                request, metadata=self._metadata, timeout=self._timeout(timeout)
            ),
        )
        check_protocol_status(reply, "AcknowledgeAlarm")
        ensure_mxaccess_success(reply, "AcknowledgeAlarm")
        return acknowledge_result_from_pb(reply)


def _kind_name(kind: int) -> str:
    try:
        return pb.MxCommandKind.Name(kind).removeprefix("MX_COMMAND_KIND_")
    except ValueError:
        return str(kind)
