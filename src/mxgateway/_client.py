"""GatewayClient: sessions, raw Invoke and event streams, and the central alarm feed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import grpc

from mxgateway._alarm_feed import AlarmFeedItem, acknowledge_result_from_pb, follow_alarm_feed
from mxgateway._base import ClientBase
from mxgateway._options import ClientOptions
from mxgateway._rpc import call, check_protocol_status, translate_rpc_error
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.types import AcknowledgeResult, ActiveAlarm

if TYPE_CHECKING:
    from mxgateway._session import Session

__all__ = ["GatewayClient"]

_SERVICE = "/mxaccess_gateway.v1.MxAccessGateway/"


class GatewayClient(ClientBase):
    """An async client of the MXAccess Gateway service.

    Open with ``async with await GatewayClient.connect(endpoint=..., api_key=...) as client:``.
    Every call carries ``authorization: Bearer <api_key>``; TLS is the default and
    ``plaintext=True`` must be asked for. A closed client cannot be reused.
    """

    def __init__(self, options: ClientOptions) -> None:
        super().__init__(options)
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
        timeout: float | None = None,
    ) -> Session:
        """Open a gateway session and return its typed ``Session``."""
        from mxgateway._session import Session

        reply = await self.open_session_raw(
            client_session_name, lease_seconds=lease_seconds, timeout=timeout
        )
        return Session(self, reply)

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
            raise translate_rpc_error(error, "StreamEvents", not_found_is_session=True) from None
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
            raise translate_rpc_error(error, "QueryActiveAlarms") from None
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
