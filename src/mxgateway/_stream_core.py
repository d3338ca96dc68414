"""The stream core: what every event stream promises, in one place.

Attach (waiting out a subscriber that is leaving), pick the rpc (StreamEventBatches when the
gateway offers it, else StreamEvents, remembered per client), pick the receiver (a thread for
StreamEvents, grpc.aio otherwise: ``_receivers``), decode raw bytes with the codec, resume after
the last sequence yielded, drop what a replay repeats, pass ReplayGap sentinels on, back off
within the retry budget (``_retry``), recover a lost session when the session asks for it, and
map handles back to the caller's. What it yields is a *unit* of a ``Shape``: the shape decodes
the raw messages of one read into a unit and tells the core what it needs of one (its size,
first and last sequence, a leading ReplayGap; without the events a replay repeats; in the
caller's handles). Two shapes, one loop: ``STRUCTS`` (lists of ``MxEvent``: ``event_lists``,
which ``Session.stream_events`` / ``stream_event_batches`` are thin loops over) and
``ColumnsShape`` (``EventColumns``: ``Session.stream_event_columns``).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Iterable
from typing import TYPE_CHECKING, Any, Literal, Protocol, TypeVar

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
from mxgateway.types import MxEvent, MxEventFamily, ReplayGap, SessionRecovered

if TYPE_CHECKING:
    from mxgateway._recovery import HandleMap
    from mxgateway._session import Session
    from mxgateway.columns import EventColumns

__all__ = ["STRUCTS", "ColumnsShape", "EventPath", "Shape", "event_lists", "event_units"]

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


U = TypeVar("U")


class Shape(Protocol[U]):
    """What a stream yields (a *unit*) and what the core needs to know of one. Every method
    but ``decode`` works on a unit that is not empty."""

    def decode(self, raws: list[bytes], single: bool, names: dict[int, str]) -> U:
        """The events of one read: ``raws`` are MxEventBatch messages, or MxEvent messages
        when ``single``. Raises MxGatewayDecodeError."""
        ...

    def decode_prefix(
        self, raws: list[bytes], single: bool, names: dict[int, str]
    ) -> tuple[U | None, MxGatewayDecodeError | None]:
        """The events of the messages before the first that does not decode, and its error."""
        ...

    def size(self, unit: U) -> int: ...

    def concat(self, units: list[U]) -> U:
        """One unit of several, in order."""
        ...

    def sequences(self, unit: U) -> tuple[int, int]:
        """The worker_sequence of the first and of the last event."""
        ...

    def first_gap(self, unit: U) -> ReplayGap | None:
        """The ReplayGap of the first event, if it is a gap sentinel."""
        ...

    def drop_replayed(self, unit: U, last: int) -> U:
        """Without the events a replay repeats (sequence <= ``last``; gap sentinels stay)."""
        ...

    def gateway_stamps(self, unit: U) -> tuple[int | None, int | None]:
        """The gateway receive time of the first and of the last event."""
        ...

    def to_caller(self, unit: U, handles: HandleMap) -> U:
        """``unit`` with the live handles replaced by the caller's (after a recovery)."""
        ...

    def marker(self, recovered: SessionRecovered) -> U:
        """A unit holding only the marker of a session recovery."""
        ...

    def write_completes(self, unit: U) -> Iterable[MxEvent]:
        """Its ON_WRITE_COMPLETE events (for confirmed writes)."""
        ...


class _Structs:
    """Lists of MxEvent structs."""

    def decode(self, raws: list[bytes], single: bool, names: dict[int, str]) -> list[MxEvent]:
        if single:
            decode_event = _codec.impl.decode_event
            return [decode_event(raw, names) for raw in raws]
        decode_batch = _codec.impl.decode_event_batch
        if len(raws) == 1:
            events: list[MxEvent] = decode_batch(raws[0], names)
            return events
        return [e for raw in raws for e in decode_batch(raw, names)]

    def decode_prefix(
        self, raws: list[bytes], single: bool, names: dict[int, str]
    ) -> tuple[list[MxEvent] | None, MxGatewayDecodeError | None]:
        events: list[MxEvent] = []
        for raw in raws:
            try:
                events.extend(self.decode([raw], single, names))
            except MxGatewayDecodeError as error:
                return events, error
        return events, None

    def size(self, unit: list[MxEvent]) -> int:
        return len(unit)

    def concat(self, units: list[list[MxEvent]]) -> list[MxEvent]:
        return [event for unit in units for event in unit]

    def sequences(self, unit: list[MxEvent]) -> tuple[int, int]:
        return unit[0].worker_sequence, unit[-1].worker_sequence

    def first_gap(self, unit: list[MxEvent]) -> ReplayGap | None:
        return unit[0].replay_gap

    def drop_replayed(self, unit: list[MxEvent], last: int) -> list[MxEvent]:
        return [e for e in unit if e.replay_gap is not None or e.worker_sequence > last]

    def gateway_stamps(self, unit: list[MxEvent]) -> tuple[int | None, int | None]:
        return unit[0].gateway_receive_timestamp_ns, unit[-1].gateway_receive_timestamp_ns

    def to_caller(self, unit: list[MxEvent], handles: HandleMap) -> list[MxEvent]:
        return handles.events_to_caller(unit)

    def marker(self, recovered: SessionRecovered) -> list[MxEvent]:
        return [marker_event(recovered)]

    def write_completes(self, unit: list[MxEvent]) -> Iterable[MxEvent]:
        return unit


STRUCTS: Shape[list[MxEvent]] = _Structs()
"""The shape of ``stream_events`` and ``stream_event_batches``."""


class ColumnsShape:
    """EventColumns (numpy, imported when this shape is made)."""

    def __init__(self) -> None:
        from mxgateway import columns

        self._columns = columns

    def decode(self, raws: list[bytes], single: bool, names: dict[int, str]) -> EventColumns:
        return self._columns._from_parts(_codec.impl._decode_columns(raws, names, single))

    def decode_prefix(
        self, raws: list[bytes], single: bool, names: dict[int, str]
    ) -> tuple[EventColumns | None, MxGatewayDecodeError | None]:
        parts: list[EventColumns] = []
        error: MxGatewayDecodeError | None = None
        for raw in raws:
            try:
                parts.append(self.decode([raw], single, names))
            except MxGatewayDecodeError as exc:
                error = exc
                break
        return (self._columns.EventColumns.concat(parts) if parts else None), error

    def size(self, unit: EventColumns) -> int:
        return len(unit)

    def concat(self, units: list[EventColumns]) -> EventColumns:
        return self._columns.EventColumns.concat(units)

    def sequences(self, unit: EventColumns) -> tuple[int, int]:
        return unit._sequence_at(0), unit._sequence_at(len(unit) - 1)

    def first_gap(self, unit: EventColumns) -> ReplayGap | None:
        others = unit.others
        if others and others[0][0] == 0:
            return others[0][1].replay_gap
        return None

    def drop_replayed(self, unit: EventColumns, last: int) -> EventColumns:
        keep = unit.worker_sequence > last
        for row, event in unit.others:
            if event.replay_gap is not None:
                keep[row] = True
        rows = keep.nonzero()[0]
        if len(rows) == len(unit):
            return unit
        if len(rows) and int(rows[-1]) - int(rows[0]) + 1 == len(rows):
            return unit[int(rows[0]) : int(rows[-1]) + 1]  # a contiguous run: views
        return unit.take(rows)

    def gateway_stamps(self, unit: EventColumns) -> tuple[int | None, int | None]:
        return unit._gateway_ns_at(0), unit._gateway_ns_at(len(unit) - 1)

    def to_caller(self, unit: EventColumns, handles: HandleMap) -> EventColumns:
        return self._columns._map_handles(unit, handles.server_to_caller, handles.item_to_caller)

    def marker(self, recovered: SessionRecovered) -> EventColumns:
        return self._columns._of_events([marker_event(recovered)])

    def write_completes(self, unit: EventColumns) -> Iterable[MxEvent]:
        rows = (unit.family == MxEventFamily.ON_WRITE_COMPLETE).nonzero()[0]
        return [unit.row(int(i)) for i in rows]


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


def event_lists(
    session: Session,
    *,
    prefer: EventPath,
    max_batch_events: int = 0,
    after_worker_sequence: int = 0,
    resume: bool = True,
    retry_budget_s: float = 30.0,
    raw_sink: RawSink | None = None,
) -> AsyncGenerator[list[MxEvent], None]:
    """``event_units`` in the STRUCTS shape: the session's events in lists of MxEvent."""
    return event_units(
        session,
        STRUCTS,
        prefer=prefer,
        max_batch_events=max_batch_events,
        after_worker_sequence=after_worker_sequence,
        resume=resume,
        retry_budget_s=retry_budget_s,
        raw_sink=raw_sink,
    )


async def event_units(
    session: Session,
    shape: Shape[U],
    *,
    prefer: EventPath,
    max_batch_events: int = 0,
    after_worker_sequence: int = 0,
    resume: bool = True,
    retry_budget_s: float = 30.0,
    raw_sink: RawSink | None = None,
) -> AsyncGenerator[U, None]:
    """Yield the session's events in units of ``shape``, decoded from raw bytes.

    ``raw_sink`` (the bridge) is called before each unit is yielded with the gateway's
    MxEventBatch messages it was decoded from and their event counts, when the unit is
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
                shape,
                prefer,
                max_batch_events,
                after_worker_sequence,
                resume,
                reconnect,
                stats,
                raw_sink,
            )
        ) as units:
            async for unit in units:
                if session._outcomes:
                    session._route_outcomes(shape.write_completes(unit))
                yield unit
    finally:
        session._active_streams -= 1
        if session._outcomes and not session._active_streams:
            # Confirmed writes still wait, and this was the stream that read for them.
            session._read_outcomes()


async def _attached(
    session: Session,
    shape: Shape[U],
    prefer: EventPath,
    max_batch_events: int,
    last: int,
    resume: bool,
    reconnect: Reconnect,
    stats: StreamStats,
    raw_sink: RawSink | None = None,
) -> AsyncGenerator[U, None]:
    """The loop of ``event_units``: attach, read, resume, recover (see there)."""
    client = session._client
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
                yield shape.marker(msgspec.structs.replace(recovered, last_sequence=last))
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
                single = path == "single"
                names = session._live_names()
                unit: U | None
                counts: list[int] | None = None
                try:
                    if raw_sink is None or single:
                        unit = shape.decode(raws, single, names)
                    else:
                        # The raw sink forwards the gateway's own messages: it needs the
                        # events of each one.
                        parts = [shape.decode([raw], False, names) for raw in raws]
                        counts = [shape.size(part) for part in parts]
                        unit = parts[0] if len(parts) == 1 else shape.concat(parts)
                except MxGatewayDecodeError:
                    # Deliver what decoded before the bad message, then end the stream with
                    # the error (resuming would only fetch the same bytes again).
                    stats.decode_errors += 1
                    unit, broken = shape.decode_prefix(raws, single, names)
                    counts = None
                if unit is None or not shape.size(unit):
                    if broken is not None:
                        raise broken
                    continue
                # Drop what a replay repeats (only on resume; gap sentinels always pass).
                first, sequence = shape.sequences(unit)
                if last and 0 < first <= last and shape.first_gap(unit) is None:
                    unit = shape.drop_replayed(unit, last)
                    counts = None
                    if not shape.size(unit):
                        if broken is not None:
                            raise broken
                        continue
                    sequence = shape.sequences(unit)[1]
                if sequence > last:
                    last = sequence
                gap = shape.first_gap(unit)
                if gap is not None:
                    stats.gap(gap.requested_after_sequence, gap.oldest_available_sequence)
                stats.handed_unit(shape.size(unit), sequence, *shape.gateway_stamps(unit))
                handed = shape.to_caller(unit, handles)
                if raw_sink is not None:
                    exact = counts is not None and broken is None and handed is unit
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
