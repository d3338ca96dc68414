"""The stream core: what every event stream promises, in one place.

Attach (waiting out a subscriber that is leaving), pick the rpc (StreamEventBatches when the
gateway offers it, else StreamEvents, remembered per client), pick the receiver (a thread for
StreamEvents, grpc.aio otherwise: ``_receivers``), decode raw bytes with the codec, resume after
the last sequence yielded, drop what a replay repeats, pass ReplayGap sentinels on, back off
within the retry budget (``_retry``), recover a lost session when the session asks for it, and
map handles back to the caller's. It yields lists of ``MxEvent``; the shapes (events one by one,
lists) are thin loops over it in ``Session``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

import grpc
import msgspec

from mxgateway import _codec
from mxgateway._channel import open_sync_channel
from mxgateway._errors import (
    MxGatewayClientClosedError,
    MxGatewayDecodeError,
    MxGatewayTimeoutError,
    MxGatewayTransportError,
)
from mxgateway._receivers import ThreadReceiver, aio_messages
from mxgateway._recovery import marker_event
from mxgateway._retry import Reconnect, check_budget
from mxgateway._rpc import translate_rpc_error
from mxgateway._stats import StreamStats
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.types import MxEvent

if TYPE_CHECKING:
    from mxgateway._session import Session

__all__ = ["EventPath", "event_lists"]

logger = logging.getLogger(__name__)

EventPath = Literal["batches", "single"]
# The gateway messages a list was decoded from and their event counts (``event_lists``).
RawSink = Callable[[list[bytes] | None, list[int] | None], None]
_RPC_NAMES: dict[str, str] = {"batches": "StreamEventBatches", "single": "StreamEvents"}

_SERVICE = "/mxaccess_gateway.v1.MxAccessGateway/"
# Codes a cut connection or a restarting gateway produce; anything else is final.
_RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
)
# Words of a FAILED_PRECONDITION that no wait cures (the others mean: the slot is still taken).
_SESSION_ENDING = ("FAULTED", "EVENTQUEUEOVERFLOW", "CLOSING", "CLOSED")
# A stream closed just before (this program's, or a CLI run stopped a moment ago) can still hold
# the session's one subscriber slot until the gateway sees its cancellation. The first attach
# waits this long for it to leave; a subscriber still there after that is a live one.
_ATTACH_GRACE_S = 2.0
_ATTACH_RETRY_S = 0.1


class _Messages(Protocol):
    def __aiter__(self) -> AsyncIterator[list[bytes]]: ...
    async def aclose(self) -> None: ...


def _open_messages(session: Session, path: EventPath, request: pb.StreamEventsRequest) -> Any:
    client = session._client
    options = client.options
    if path == "single" and client._thread_receiver:
        return ThreadReceiver(
            functools.partial(open_sync_channel, options),
            _SERVICE + "StreamEvents",
            request.SerializeToString(),
            metadata=options.metadata,
            name=f"mxgateway-events-{request.session_id[:16]}",
        )
    multicallable = client._raw_batches if path == "batches" else client._raw_events
    return aio_messages(multicallable, request, metadata=options.metadata)


async def event_lists(
    session: Session,
    *,
    prefer: EventPath,
    max_batch_events: int = 0,
    after_worker_sequence: int = 0,
    resume: bool = True,
    retry_budget_s: float = 30.0,
    raw_sink: RawSink | None = None,
) -> AsyncGenerator[list[MxEvent], None]:
    """Yield the session's events in lists, decoded from raw bytes.

    ``raw_sink`` (the bridge) is called before each list is yielded with the gateway's
    MxEventBatch messages it was decoded from and their event counts, when the list is
    exactly their events (nothing dropped, no handle replaced), else with ``(None, None)``.

    ``prefer="batches"`` uses StreamEventBatches unless the client already learnt that the
    gateway lacks it (UNIMPLEMENTED: then StreamEvents, for this client from then on). With
    ``resume`` a retryable failure, or a stream the gateway ends, reconnects after the last
    sequence yielded; events at or below it that a replay repeats are dropped, so each
    worker_sequence is yielded once and in order. When the gateway no longer knows the session,
    a session opened with ``recover=True`` is rebuilt and the stream yields a marker (an
    MxEvent whose ``session_recovered`` is set) before the new session's events; otherwise
    MxGatewaySessionNotFoundError is raised. The first attach waits up to 2 s for a subscriber
    that is leaving; one still attached after that raises MxGatewayProtocolError.
    """
    if isinstance(after_worker_sequence, bool) or not isinstance(after_worker_sequence, int):
        raise TypeError("after_worker_sequence must be an int")
    if not 0 <= after_worker_sequence < 2**64:
        raise ValueError("after_worker_sequence must be in 0 .. 2**64-1")
    if isinstance(max_batch_events, bool) or not isinstance(max_batch_events, int):
        raise TypeError("max_batch_events must be an int")
    if not 0 <= max_batch_events < 2**32:
        raise ValueError("max_batch_events must be in 0 .. 2**32-1")
    check_budget("retry_budget_s", retry_budget_s)
    reconnect = Reconnect(
        f"event stream of session {session.session_id}",
        retry_budget_s,
        on_trouble=session._set_stream_trouble,
    )
    if session.stats is None:
        session.stats = StreamStats(session.session_id)
    stats = session.stats
    session._active_streams += 1
    try:
        async with contextlib.aclosing(
            _attached(
                session,
                prefer,
                max_batch_events,
                after_worker_sequence,
                resume,
                reconnect,
                stats,
                raw_sink,
            )
        ) as lists:
            async for events in lists:
                if session._outcomes:
                    session._route_outcomes(events)
                yield events
    finally:
        session._active_streams -= 1
        if session._outcomes and not session._active_streams:
            # Confirmed writes still wait, and this was the stream that read for them.
            session._read_outcomes()


async def _attached(
    session: Session,
    prefer: EventPath,
    max_batch_events: int,
    last: int,
    resume: bool,
    reconnect: Reconnect,
    stats: StreamStats,
    raw_sink: RawSink | None = None,
) -> AsyncGenerator[list[MxEvent], None]:
    """The loop of ``event_lists``: attach, read, resume, recover (see there)."""
    client = session._client
    decode_batch = _codec.impl.decode_event_batch
    decode_event = _codec.impl.decode_event
    handles = session._handles
    attached_id = session.session_id
    attempts = 0
    refused_since: float | None = None
    while True:
        client._live_channel()  # a closed client cannot stream
        if session.session_id != attached_id:
            # The session was recovered (by this stream or by a command): a new session with
            # its own sequence numbers. Say so once, in the stream, before its events.
            recovered = session.last_recovery
            attached_id = session.session_id
            if recovered is not None and recovered.new_session_id == attached_id:
                stats.recoveries += 1
                stats.session_id = attached_id
                yield [marker_event(msgspec.structs.replace(recovered, last_sequence=last))]
            last, attempts, refused_since = 0, 0, None
        path: EventPath = "single" if client._batches_offered is False else prefer
        session._set_event_path(path)
        stats.path = path
        stats.receiver = "thread" if path == "single" and client._thread_receiver else "aio"
        request = pb.StreamEventsRequest(
            session_id=attached_id,
            after_worker_sequence=last,
            max_batch_events=max_batch_events if path == "batches" else 0,
        )
        messages: _Messages = _open_messages(session, path, request)
        client._streams.add(messages)
        received = False
        try:
            async for raws in messages:
                if not received:
                    received = True
                    if path == "batches":
                        client._batches_offered = True
                    if attempts:
                        stats.resumes += 1
                reconnect.healthy()
                stats.arrived(raws)
                broken: MxGatewayDecodeError | None = None
                counts: list[int] | None = None
                try:
                    names = session._live_names()
                    if path == "single":
                        events = [decode_event(raw, names) for raw in raws]
                    elif len(raws) == 1:
                        events = decode_batch(raws[0], names)
                        counts = [len(events)]
                    elif raw_sink is not None:
                        decoded = [decode_batch(raw, names) for raw in raws]
                        counts = [len(batch) for batch in decoded]
                        events = [e for batch in decoded for e in batch]
                    else:
                        events = [e for raw in raws for e in decode_batch(raw, names)]
                except MxGatewayDecodeError:
                    # Deliver what decoded before the bad message, then end the stream with
                    # the error (resuming would only fetch the same bytes again).
                    stats.decode_errors += 1
                    events, broken = _decoded_prefix(raws, path, session._live_names())
                    counts = None
                if not events:
                    if broken is not None:
                        raise broken
                    continue
                # Drop what a replay repeats (only on resume; gap sentinels always pass).
                first = events[0]
                if last and first.replay_gap is None and 0 < first.worker_sequence <= last:
                    events = [
                        e for e in events if e.replay_gap is not None or e.worker_sequence > last
                    ]
                    counts = None
                    if not events:
                        if broken is not None:
                            raise broken
                        continue
                sequence = events[-1].worker_sequence
                if sequence > last:
                    last = sequence
                gap = events[0].replay_gap
                if gap is not None:
                    stats.gap(gap.requested_after_sequence, gap.oldest_available_sequence)
                stats.handed(events)
                handed = handles.events_to_caller(events)
                if raw_sink is not None:
                    exact = counts is not None and broken is None and handed is events
                    raw_sink(raws if exact else None, counts if exact else None)
                yield handed
                if broken is not None:
                    raise broken
            if client._closing:
                raise MxGatewayClientClosedError(
                    f"the client was closed under the event stream of session {attached_id}"
                )
            if not resume or session.closed:
                return
            logger.info("event stream of session %s ended; resuming", attached_id)
            stats.reconnects += 1
            await reconnect.wait("stream ended by the gateway", ready=client._reconnected_waiter())
        except grpc.RpcError as error:
            code, details = _status(error)
            if path == "batches" and code == grpc.StatusCode.UNIMPLEMENTED and not received:
                client._no_event_batches()
                continue
            if code == grpc.StatusCode.CANCELLED and (client.closed or client._closing):
                raise MxGatewayClientClosedError(
                    f"the client was closed under the event stream of session {attached_id}"
                ) from error
            if "EventQueueOverflow" in details:
                stats.overflows += 1
            if code == grpc.StatusCode.NOT_FOUND and resume and session.recovers:
                await _recover(session, attached_id, last, f"{code.name}: {details}", reconnect)
                continue
            if attempts == 0 and _still_subscribed(code, details):
                now = time.monotonic()
                refused_since = now if refused_since is None else refused_since
                if now - refused_since < _ATTACH_GRACE_S:
                    await asyncio.sleep(_ATTACH_RETRY_S)
                    continue
            # After a break, the gateway may not have noticed yet that our previous stream is
            # gone (a silent partition, or a reconnect faster than its close): it refuses the
            # new one as a second subscriber until it does. Keep trying within the budget.
            reattaching = resume and attempts > 0 and _still_subscribed(code, details)
            if not resume or (code not in _RETRYABLE and not reattaching):
                raise translate_rpc_error(
                    error, _RPC_NAMES[path], not_found_is_session=True, stream=True
                ) from error
            logger.warning(
                "event stream of session %s broke (%s); resuming after sequence %d",
                attached_id,
                code.name,
                last,
            )
            stats.reconnects += 1
            await reconnect.wait(f"{code.name}: {details}", ready=client._reconnected_waiter())
        finally:
            client._streams.discard(messages)
            await messages.aclose()
        attempts += 1


async def _recover(
    session: Session, failed_id: str, last: int, reason: str, reconnect: Reconnect
) -> None:
    """Recover the session for the stream; a gateway still unreachable is waited for within
    the stream's budget (the next attach tries again)."""
    try:
        await session._recover(failed_id, last, reason)
    except (MxGatewayTransportError, MxGatewayTimeoutError) as exc:
        ready = session._client._reconnected_waiter()
        await reconnect.wait(f"recovering the session: {exc}", ready=ready)


def _decoded_prefix(
    raws: list[bytes], path: EventPath, names: dict[int, str]
) -> tuple[list[MxEvent], MxGatewayDecodeError | None]:
    """The events of the messages before the first that does not decode, and its error."""
    decode = _codec.impl.decode_event if path == "single" else _codec.impl.decode_event_batch
    events: list[MxEvent] = []
    for raw in raws:
        try:
            decoded = decode(raw, names)
        except MxGatewayDecodeError as error:
            return events, error
        if path == "single":
            events.append(decoded)
        else:
            events.extend(decoded)
    return events, None


def _status(error: grpc.RpcError) -> tuple[grpc.StatusCode, str]:
    """The code and details of a grpc.aio error or of the thread receiver's CallError."""
    call: Any = error
    code = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
    details = call.details() if hasattr(call, "details") else ""
    return code, details or ""


def _still_subscribed(code: grpc.StatusCode, details: str | None) -> bool:
    """FAILED_PRECONDITION because the session still has a subscriber (not because the session
    is faulted, overflowed, closing or closed: those do not pass by waiting)."""
    text = (details or "").upper()
    return code == grpc.StatusCode.FAILED_PRECONDITION and not any(
        word in text for word in _SESSION_ENDING
    )
