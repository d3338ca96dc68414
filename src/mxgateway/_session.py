"""Session: one typed method per MXAccess command, the bulk family, and event streams."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
from collections.abc import AsyncGenerator, Iterable, Mapping, Sequence
from datetime import datetime
from types import MappingProxyType, TracebackType
from typing import TYPE_CHECKING, Any, Literal

from mxgateway._command import BULK_FIELDS, arm_kind, check_reply, command_for
from mxgateway._errors import (
    MxAccessError,
    MxGatewayClientClosedError,
    MxGatewayRequestTooLargeError,
    MxGatewaySessionNotFoundError,
    MxGatewayTimeoutError,
)
from mxgateway._mxvalue import to_mx_value
from mxgateway._pbconvert import event_from_pb, read_result_from_pb
from mxgateway._recovery import HandleMap, SessionState, replay
from mxgateway._rpc import ensure_mxaccess_success, failing_statuses
from mxgateway._stats import StreamStats
from mxgateway._stream_core import ColumnsShape, EventPath, event_lists, event_units
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.types import (
    MxDataType,
    MxEvent,
    MxEventFamily,
    ReadResult,
    SessionItem,
    SessionRecovered,
    WriteOutcome,
)

if TYPE_CHECKING:
    from mxgateway._client import GatewayClient
    from mxgateway.columns import EventColumns

__all__ = ["Session"]

logger = logging.getLogger(__name__)

_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def _handle(name: str, value: int) -> int:
    # Handles are int32 on the wire: reject what protobuf would otherwise raise on deep inside.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise ValueError(f"{name} {value} is outside int32")
    return value


def _value(value: Any, data_type: MxDataType | int | None) -> pb.MxValue:
    # The codec validates (nan/inf, ranges, types) before anything is sent.
    return to_mx_value(value, data_type)


def _timestamp(when: datetime) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    if when.tzinfo is None:
        raise ValueError("timestamp must be timezone-aware (e.g. datetime.now(timezone.utc))")
    ts = Timestamp()
    ts.FromDatetime(when)
    return ts


DEFAULT_COLUMN_BATCH_EVENTS = 4000
"""``stream_event_columns``' default ``max_batch_events`` (measured: docs/codec.md,
"Columns end to end")."""


class Session:
    """A gateway session: MXAccess commands and its event stream.

    Typed methods raise ``MxAccessError`` (with hresult, every status and the raw reply) when
    MXAccess reports a failure; ``invoke_raw`` only raises for protocol failures. Bulk methods
    never raise for a failing entry: each result carries ``was_successful``. A reply that lacks
    a part it must carry (a handle, one result per entry) raises MxGatewayProtocolError.
    Use as ``async with await client.open_session(...) as session:`` or call ``close()``.

    The session keeps its items (``items``: item handle → ``SessionItem``). Opened with
    ``recover=True`` it also rebuilds itself when the gateway no longer knows it (a restart, an
    expired lease): see ``GatewayClient.open_session``.
    """

    def __init__(
        self,
        client: GatewayClient,
        reply: pb.OpenSessionReply,
        *,
        name: str = "",
        lease_seconds: int = 0,
        recover: bool = False,
    ) -> None:
        self._client = client
        self._open_reply = reply
        self._closed = False
        self._owned = False  # opened by GatewayClient.open_session (which sets it)
        client._track(self)
        self._name = name
        self._lease_seconds = lease_seconds
        self._recover_enabled = recover
        self._state = SessionState()
        self._handles = HandleMap()
        self._live_names_cache: dict[int, str] = {}
        self._live_names_key = (-1, -1)
        self._recovery_lock = asyncio.Lock()
        self.last_recovery: SessionRecovered | None = None
        """What the last recovery did (None before any)."""
        self.recoveries = 0
        """How many times the session was recovered."""
        # Confirmed writes waiting for their ON_WRITE_COMPLETE, by (server, item) handle.
        self._outcomes: dict[tuple[int, int], collections.deque[asyncio.Future[MxEvent]]] = {}
        self._outcome_reader: asyncio.Task[None] | None = None
        self._active_streams = 0
        self.stats: StreamStats | None = None
        """The statistics of the session's event streams (counted over all of them; None
        before the first)."""
        self.event_path: EventPath | None = None
        """Which rpc the last event stream used: "batches" or "single"."""
        self.stream_trouble: str | None = None
        """While a resuming event stream is reconnecting: why (None while it is healthy)."""

    # -- identity ----------------------------------------------------------------------------

    @property
    def session_id(self) -> str:
        """The gateway's id of this session."""
        return self._open_reply.session_id

    @property
    def backend_name(self) -> str:
        """The backend (worker) the gateway bound this session to."""
        return self._open_reply.backend_name

    @property
    def capabilities(self) -> tuple[str, ...]:
        """Capabilities the gateway announced for this session."""
        return tuple(self._open_reply.capabilities)

    @property
    def open_reply(self) -> pb.OpenSessionReply:
        """The generated OpenSessionReply."""
        return self._open_reply

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._closed

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<Session {self.session_id} {state} on {self._client.options.endpoint}>"

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            await self.close()
            return
        # The caller's exception is what matters: a close that fails now too is logged, never
        # raised in its place.
        try:
            await self.close()
        except Exception as close_error:
            logger.warning(
                "closing session %s after %s failed: %s",
                self.session_id,
                type(exc).__name__,
                close_error,
            )

    async def close(self) -> pb.CloseSessionReply | None:
        """Close the session on the gateway (idempotent; the second call does nothing).

        A session the gateway no longer knows (a restart, an expired lease) is closed already:
        that is not an error (returns None, logged at DEBUG).
        """
        if self._closed:
            return None
        self._closed = True
        self._client._owned.pop(id(self), None)
        if self._outcome_reader is not None:
            self._outcome_reader.cancel()
        try:
            return await self._client.close_session(self.session_id)
        except MxGatewaySessionNotFoundError:
            logger.debug("session %s was already gone from the gateway", self.session_id)
            return None

    def leave_open(self) -> None:
        """Keep the session on the gateway when this client closes (or the process exits):
        for a session whose id is handed to another process, which closes it. Otherwise a
        session the caller did not close is closed with its client."""
        self._owned = False

    # -- items and recovery ------------------------------------------------------------------

    @property
    def items(self) -> Mapping[int, SessionItem]:
        """The session's items by item handle (the caller's), kept up to date by every command
        that adds, advises, suspends or removes them; read-only."""
        return MappingProxyType(self._state.items)

    def reference(self, event: MxEvent) -> str | None:
        """The item definition (``Tag.Attribute``) of ``event``'s item, or None when the
        session does not know the item (added through another session object)."""
        item = self._state.items.get(event.item_handle)
        if item is None or item.server_handle != event.server_handle:
            return None
        return item.definition

    def _live_names(self) -> dict[int, str]:
        """Live item handle -> definition, for the decoder (the state's own dict while the
        caller's handles are the live ones; a translated copy, rebuilt on change, after a
        recovery that moved them)."""
        state, handles = self._state, self._handles
        if not handles.item_to_live:
            return state.names
        key = (state.version, self.recoveries)
        if self._live_names_key != key:
            to_live = handles.item_to_live
            self._live_names_cache = {
                to_live.get(handle, handle): name for handle, name in state.names.items()
            }
            self._live_names_key = key
        return self._live_names_cache

    @property
    def recovers(self) -> bool:
        """True when the session rebuilds itself after the gateway lost it."""
        return self._recover_enabled

    async def _recover(self, failed_id: str, last_sequence: int, reason: str) -> None:
        """Open a new session and replay this one's state on it (once per loss: a second
        caller for the same lost session waits and finds it done)."""
        async with self._recovery_lock:
            if self.session_id != failed_id or self._closed:
                return
            reply, servers, items, recovered = await replay(
                self._client,
                self._state,
                name=self._name,
                lease_seconds=self._lease_seconds,
                old_session_id=failed_id,
                last_sequence=last_sequence,
                reason=reason,
            )
            dead = [(f.server_handle, f.item_handle) for f in recovered.failed]
            for _, item_handle in dead:
                self._state._remove(item_handle)
            self._handles.set(servers, items, dead_items=[h for _, h in dead])
            self._open_reply = reply
            self.last_recovery = recovered
            self.recoveries += 1
            logger.warning(
                "session %s was lost (%s); recovered as %s with %d item(s) not restored",
                failed_id,
                reason,
                reply.session_id,
                len(recovered.failed),
            )

    # -- invoke ------------------------------------------------------------------------------

    async def invoke_raw(
        self,
        command: pb.MxCommand,
        *,
        client_correlation_id: str = "",
        timeout: float | None = None,
    ) -> pb.MxCommandReply:
        """Invoke a command; raise only for protocol failures (see GatewayClient.invoke_raw).

        Handles in ``command`` and in the reply are the caller's (after a recovery the session
        translates them). A session opened with ``recover=True`` that meets a session the
        gateway no longer knows is recovered, and the command raises
        MxGatewaySessionNotFoundError: it is never sent again by the library (a write must not
        happen twice), and the next command goes to the recovered session.
        """
        if self._closed:
            raise MxGatewayClientClosedError(f"session {self.session_id} is closed")
        session_id = self.session_id
        try:
            reply = await self._client.invoke_raw(
                session_id,
                self._handles.command_to_live(command),
                client_correlation_id=client_correlation_id,
                timeout=timeout,
            )
        except MxGatewaySessionNotFoundError as lost:
            if not self._recover_enabled or self._closed:
                raise
            await self._recover(session_id, 0, str(lost))
            raise MxGatewaySessionNotFoundError(
                f"{lost} (the session was recovered as {self.session_id}; the command was not "
                "sent again)",
                grpc_code=lost.grpc_code,
                raw_reply=lost.raw_reply,
            ) from lost
        check_reply(command, reply)
        self._handles.reply_to_caller(command, reply, self._state)
        if reply.hresult >= 0 and not failing_statuses(reply.statuses):
            self._state.record(command, reply)
        return reply

    async def invoke(
        self,
        command: pb.MxCommand,
        *,
        client_correlation_id: str = "",
        timeout: float | None = None,
    ) -> pb.MxCommandReply:
        """Invoke a command and raise MxAccessError when MXAccess reports a failure."""
        reply = await self.invoke_raw(
            command, client_correlation_id=client_correlation_id, timeout=timeout
        )
        ensure_mxaccess_success(reply, f"Invoke({arm_kind(command)})")
        return reply

    async def _run(self, arm: str, payload: Any, timeout: float | None = None) -> pb.MxCommandReply:
        return await self.invoke(command_for(arm, payload), timeout=timeout)

    async def _bulk(self, arm: str, payload: Any, timeout: float | None) -> list[Any]:
        """Run a bulk command and return its results, in the order of its entries.

        A bulk too large for one message is split into several calls (at most an eighth of
        the message limit each, so that replies, which echo every entry with its handle and
        status, stay under the limit too) and their results merged. Per-entry failures stay in
        the results; only a whole-call failure raises (after the calls before it ran). One
        entry too large on its own raises MxGatewayRequestTooLargeError, nothing sent.
        """
        reply_arm, field = BULK_FIELDS[arm]
        command = command_for(arm, payload)
        limit = self._client.options.max_message_bytes
        entries = getattr(payload, field)
        size = command.ByteSize()
        if size <= max(limit // 8, 1) or len(entries) <= 1:
            _check_size(command, limit)
            reply = await self.invoke(command, timeout=timeout)
            return list(getattr(reply, reply_arm).results)
        listed = list(entries)
        parts = -(-size // max(limit // 8, 1))
        step = -(-len(listed) // parts)
        results: list[Any] = []
        for start in range(0, len(listed), step):
            part = type(payload)()
            part.CopyFrom(payload)
            del getattr(part, field)[:]
            getattr(part, field).extend(listed[start : start + step])
            results += await self._bulk(arm, part, timeout)
        return results

    # -- MXAccess commands -------------------------------------------------------------------

    async def register(self, client_name: str) -> int:
        """Register with MXAccess; returns the server handle."""
        reply = await self._run("register", pb.RegisterCommand(client_name=client_name))
        return reply.register.server_handle

    async def unregister(self, server_handle: int) -> None:
        """Unregister a server handle."""
        await self._run(
            "unregister",
            pb.UnregisterCommand(server_handle=_handle("server_handle", server_handle)),
        )

    async def add_item(self, server_handle: int, item_definition: str) -> int:
        """Add an item (``Tag.Attribute``); returns its item handle."""
        reply = await self._run(
            "add_item",
            pb.AddItemCommand(
                server_handle=_handle("server_handle", server_handle),
                item_definition=item_definition,
            ),
        )
        return reply.item_handle.item_handle

    async def add_item2(self, server_handle: int, item_definition: str, item_context: str) -> int:
        """Add an item with a context (AddItem2); returns its item handle."""
        reply = await self._run(
            "add_item2",
            pb.AddItem2Command(
                server_handle=_handle("server_handle", server_handle),
                item_definition=item_definition,
                item_context=item_context,
            ),
        )
        return reply.item_handle.item_handle

    async def add_buffered_item(
        self, server_handle: int, item_definition: str, item_context: str = ""
    ) -> int:
        """Add a buffered item (ON_BUFFERED_DATA_CHANGE with samples); returns its handle."""
        reply = await self._run(
            "add_buffered_item",
            pb.AddBufferedItemCommand(
                server_handle=_handle("server_handle", server_handle),
                item_definition=item_definition,
                item_context=item_context,
            ),
        )
        return reply.item_handle.item_handle

    async def _item_command(self, arm: str, message: Any, server_handle: int, item: int) -> None:
        await self._run(
            arm,
            message(
                server_handle=_handle("server_handle", server_handle),
                item_handle=_handle("item_handle", item),
            ),
        )

    async def remove_item(self, server_handle: int, item_handle: int) -> None:
        """Remove an item."""
        await self._item_command("remove_item", pb.RemoveItemCommand, server_handle, item_handle)

    async def advise(self, server_handle: int, item_handle: int) -> None:
        """Advise an item: its changes arrive as ON_DATA_CHANGE events."""
        await self._item_command("advise", pb.AdviseCommand, server_handle, item_handle)

    async def advise_supervisory(self, server_handle: int, item_handle: int) -> None:
        """Advise an item supervisory (writes without operator security)."""
        await self._item_command(
            "advise_supervisory", pb.AdviseSupervisoryCommand, server_handle, item_handle
        )

    async def un_advise(self, server_handle: int, item_handle: int) -> None:
        """Stop events of an item."""
        await self._item_command("un_advise", pb.UnAdviseCommand, server_handle, item_handle)

    unadvise = un_advise

    async def suspend(self, server_handle: int, item_handle: int) -> None:
        """Suspend an advised item's updates."""
        await self._item_command("suspend", pb.SuspendCommand, server_handle, item_handle)

    async def activate(self, server_handle: int, item_handle: int) -> None:
        """Resume a suspended item's updates."""
        await self._item_command("activate", pb.ActivateCommand, server_handle, item_handle)

    async def set_buffered_update_interval(
        self, server_handle: int, update_interval_ms: int
    ) -> None:
        """Set the update interval of buffered items, in milliseconds."""
        await self._run(
            "set_buffered_update_interval",
            pb.SetBufferedUpdateIntervalCommand(
                server_handle=_handle("server_handle", server_handle),
                update_interval_ms=_handle("update_interval_ms", update_interval_ms),
            ),
        )

    async def write(
        self,
        server_handle: int,
        item_handle: int,
        value: Any,
        *,
        data_type: MxDataType | int | None = None,
        user_id: int = 0,
        confirm: bool = False,
        timeout: float | None = None,
    ) -> WriteOutcome | None:
        """Write a value (the item must be advised).

        The value is converted by ``to_mx_value``: nan/inf and values that do not fit raise
        ValueError before anything is sent. MXAccess reports the outcome later, as an
        ON_WRITE_COMPLETE event; with ``confirm=True`` the call waits for it (``timeout``
        seconds, default the client's) and returns the ``WriteOutcome``, or raises
        MxAccessError when the write failed and MxGatewayTimeoutError when no outcome came.
        Confirmation reads the session's event stream: a stream this session object runs
        delivers the outcome (so do not await a confirmed write inside the body of that
        stream's own ``async for``: the paused stream is the one that would bring it; run it
        in a task, or use ``mxgateway.sync`` whose streams read ahead); without one, a stream
        is opened until the outcome arrives (so do not confirm on a session another process
        streams).
        """
        return await self._write(
            "write",
            pb.WriteCommand(
                server_handle=_handle("server_handle", server_handle),
                item_handle=_handle("item_handle", item_handle),
                value=_value(value, data_type),
                user_id=_handle("user_id", user_id),
            ),
            confirm,
            timeout,
        )

    async def write2(
        self,
        server_handle: int,
        item_handle: int,
        value: Any,
        timestamp: datetime,
        *,
        data_type: MxDataType | int | None = None,
        user_id: int = 0,
        confirm: bool = False,
        timeout: float | None = None,
    ) -> WriteOutcome | None:
        """Write a value with its timestamp (Write2); ``confirm`` as ``write``."""
        return await self._write(
            "write2",
            pb.Write2Command(
                server_handle=_handle("server_handle", server_handle),
                item_handle=_handle("item_handle", item_handle),
                value=_value(value, data_type),
                timestamp_value=_timestamp(timestamp),
                user_id=_handle("user_id", user_id),
            ),
            confirm,
            timeout,
        )

    async def write_secured(
        self,
        server_handle: int,
        item_handle: int,
        value: Any,
        *,
        current_user_id: int,
        verifier_user_id: int = 0,
        data_type: MxDataType | int | None = None,
        confirm: bool = False,
        timeout: float | None = None,
    ) -> WriteOutcome | None:
        """Write a secured or verified attribute with authenticated user ids; ``confirm`` as
        ``write``."""
        return await self._write(
            "write_secured",
            pb.WriteSecuredCommand(
                server_handle=_handle("server_handle", server_handle),
                item_handle=_handle("item_handle", item_handle),
                current_user_id=_handle("current_user_id", current_user_id),
                verifier_user_id=_handle("verifier_user_id", verifier_user_id),
                value=_value(value, data_type),
            ),
            confirm,
            timeout,
        )

    async def write_secured2(
        self,
        server_handle: int,
        item_handle: int,
        value: Any,
        timestamp: datetime,
        *,
        current_user_id: int,
        verifier_user_id: int = 0,
        data_type: MxDataType | int | None = None,
        confirm: bool = False,
        timeout: float | None = None,
    ) -> WriteOutcome | None:
        """Secured write with a timestamp (WriteSecured2); ``confirm`` as ``write``."""
        return await self._write(
            "write_secured2",
            pb.WriteSecured2Command(
                server_handle=_handle("server_handle", server_handle),
                item_handle=_handle("item_handle", item_handle),
                current_user_id=_handle("current_user_id", current_user_id),
                verifier_user_id=_handle("verifier_user_id", verifier_user_id),
                value=_value(value, data_type),
                timestamp_value=_timestamp(timestamp),
            ),
            confirm,
            timeout,
        )

    async def _write(
        self, arm: str, payload: Any, confirm: bool, timeout: float | None
    ) -> WriteOutcome | None:
        if not confirm:
            await self._run(arm, payload)
            return None
        if timeout is not None and not (math.isfinite(timeout) and timeout > 0):
            raise ValueError(f"timeout must be positive seconds, not {timeout!r}")
        wait_s = timeout if timeout is not None else (self._client.options.timeout or 30.0)
        key = (payload.server_handle, payload.item_handle)
        outcome: asyncio.Future[MxEvent] = asyncio.get_running_loop().create_future()
        # Waiting before sending: the outcome can arrive before the reply does.
        self._outcomes.setdefault(key, collections.deque()).append(outcome)
        try:
            self._read_outcomes()
            await self._run(arm, payload)
            try:
                async with asyncio.timeout(wait_s):
                    event = await outcome
            except TimeoutError:
                raise MxGatewayTimeoutError(
                    f"{arm.upper()} of item {key[1]}: no ON_WRITE_COMPLETE within {wait_s:g} s "
                    "(the write may still complete)"
                ) from None
        finally:
            self._forget_outcome(key, outcome)
        result = WriteOutcome(
            server_handle=event.server_handle,
            item_handle=event.item_handle,
            ok=(event.hresult is None or event.hresult >= 0)
            and all(status.ok for status in event.statuses),
            hresult=event.hresult,
            statuses=event.statuses,
            event=event,
        )
        if not result.ok:
            raise MxAccessError(
                f"{arm.upper()} of item {key[1]} failed in MXAccess: {result.error}",
                hresult=event.hresult or 0,
                statuses=event.statuses,
            )
        return result

    def _forget_outcome(self, key: tuple[int, int], outcome: asyncio.Future[MxEvent]) -> None:
        waiting = self._outcomes.get(key)
        if waiting is not None:
            with contextlib.suppress(ValueError):
                waiting.remove(outcome)
            if not waiting:
                del self._outcomes[key]
        if not self._outcomes and self._outcome_reader is not None:
            self._outcome_reader.cancel()
            self._outcome_reader = None

    def _route_outcomes(self, events: Iterable[MxEvent]) -> None:
        """Hand ON_WRITE_COMPLETE events to the confirmed writes waiting for them (in order
        per item). Called by the stream core for every list while a write waits."""
        outcomes = self._outcomes
        for event in events:
            if event.family != MxEventFamily.ON_WRITE_COMPLETE:
                continue
            waiting = outcomes.get((event.server_handle, event.item_handle))
            while waiting:
                outcome = waiting.popleft()
                if not outcome.done():
                    outcome.set_result(event)
                    break

    def _read_outcomes(self) -> None:
        """Make sure the session's events are read while a confirmed write waits: a stream of
        this session object does it; without one, a reader runs until no write waits."""
        if self._active_streams or self._outcome_reader is not None:
            return

        async def read() -> None:
            async with contextlib.aclosing(event_lists(self, prefer="batches")) as lists:
                async for _ in lists:
                    if not self._outcomes:
                        return

        self._outcome_reader = asyncio.get_running_loop().create_task(
            read(), name=f"mxgateway-write-outcomes-{self.session_id}"
        )
        self._outcome_reader.add_done_callback(self._outcome_reader_done)

    def _outcome_reader_done(self, task: asyncio.Task[None]) -> None:
        if self._outcome_reader is task:
            self._outcome_reader = None
        if task.cancelled():
            return
        error = task.exception()
        if error is None:
            return
        # The reader failed (the session was lost, the gateway gone): the writes waiting on
        # it learn why instead of timing out.
        for waiting in self._outcomes.values():
            for outcome in waiting:
                if not outcome.done():
                    outcome.set_exception(error)

    async def authenticate_user(self, server_handle: int, user_name: str, password: str) -> int:
        """Authenticate an ArchestrA user; returns the user id for secured writes.

        The password is sent once and never logged, printed or kept.
        """
        reply = await self._run(
            "authenticate_user",
            pb.AuthenticateUserCommand(
                server_handle=_handle("server_handle", server_handle),
                user_name=user_name,
                password=password,
            ),
        )
        return reply.user_id.user_id

    async def archestra_user_to_id(self, server_handle: int, user_guid: str) -> int:
        """The user id of an ArchestrA user GUID."""
        reply = await self._run(
            "archestra_user_to_id",
            pb.ArchestraUserToIdCommand(
                server_handle=_handle("server_handle", server_handle), user_guid=user_guid
            ),
        )
        return reply.user_id.user_id

    async def drain_events(self, max_events: int = 0) -> list[MxEvent]:
        """Take up to ``max_events`` queued events (0: the gateway's default) as structs."""
        if max_events < 0:
            raise ValueError("max_events must be >= 0")
        reply = await self._run("drain_events", pb.DrainEventsCommand(max_events=max_events))
        return [event_from_pb(event) for event in reply.drain_events.events]

    # -- bulk family -------------------------------------------------------------------------

    async def add_item_bulk(
        self, server_handle: int, tag_addresses: Sequence[str], *, timeout: float | None = None
    ) -> list[pb.SubscribeResult]:
        """AddItem for many tags in one round trip; failures stay in the results."""
        return await self._bulk(
            "add_item_bulk",
            pb.AddItemBulkCommand(
                server_handle=_handle("server_handle", server_handle),
                tag_addresses=_strings(tag_addresses),
            ),
            timeout,
        )

    async def _handles_bulk(
        self, arm: str, message: Any, server_handle: int, handles: Sequence[int], timeout: Any
    ) -> list[pb.SubscribeResult]:
        return await self._bulk(
            arm,
            message(
                server_handle=_handle("server_handle", server_handle),
                item_handles=[_handle("item_handle", h) for h in handles],
            ),
            timeout,
        )

    async def advise_item_bulk(
        self, server_handle: int, item_handles: Sequence[int], *, timeout: float | None = None
    ) -> list[pb.SubscribeResult]:
        """Advise many items in one round trip."""
        return await self._handles_bulk(
            "advise_item_bulk", pb.AdviseItemBulkCommand, server_handle, item_handles, timeout
        )

    async def remove_item_bulk(
        self, server_handle: int, item_handles: Sequence[int], *, timeout: float | None = None
    ) -> list[pb.SubscribeResult]:
        """Remove many items in one round trip."""
        return await self._handles_bulk(
            "remove_item_bulk", pb.RemoveItemBulkCommand, server_handle, item_handles, timeout
        )

    async def unadvise_item_bulk(
        self, server_handle: int, item_handles: Sequence[int], *, timeout: float | None = None
    ) -> list[pb.SubscribeResult]:
        """UnAdvise many items in one round trip."""
        return await self._handles_bulk(
            "un_advise_item_bulk", pb.UnAdviseItemBulkCommand, server_handle, item_handles, timeout
        )

    async def subscribe_bulk(
        self,
        server_handle: int,
        tag_addresses: Sequence[str],
        *,
        supervisory: bool = False,
        buffered_update_interval_ms: int = 0,
        timeout: float | None = None,
    ) -> list[pb.SubscribeResult]:
        """AddItem + Advise for many tags in one round trip."""
        return await self._bulk(
            "subscribe_bulk",
            pb.SubscribeBulkCommand(
                server_handle=_handle("server_handle", server_handle),
                tag_addresses=_strings(tag_addresses),
                supervisory=supervisory,
                buffered_update_interval_ms=_handle(
                    "buffered_update_interval_ms", buffered_update_interval_ms
                ),
            ),
            timeout,
        )

    async def unsubscribe_bulk(
        self, server_handle: int, item_handles: Sequence[int], *, timeout: float | None = None
    ) -> list[pb.SubscribeResult]:
        """UnAdvise + RemoveItem for many items in one round trip."""
        return await self._handles_bulk(
            "unsubscribe_bulk", pb.UnsubscribeBulkCommand, server_handle, item_handles, timeout
        )

    async def _writes_bulk(
        self, arm: str, message: Any, server_handle: int, entries: list[Any], timeout: Any
    ) -> list[pb.BulkWriteResult]:
        return await self._bulk(
            arm,
            message(server_handle=_handle("server_handle", server_handle), entries=entries),
            timeout,
        )

    async def write_bulk(
        self,
        server_handle: int,
        entries: Iterable[tuple[int, Any]],
        *,
        data_type: MxDataType | int | None = None,
        user_id: int = 0,
        timeout: float | None = None,
    ) -> list[pb.BulkWriteResult]:
        """Write many ``(item_handle, value)`` pairs in one round trip.

        Every value is converted first; one bad value raises ValueError and nothing is sent.
        """
        uid = _handle("user_id", user_id)
        items = [
            pb.WriteBulkEntry(
                item_handle=_handle("item_handle", h), value=_value(v, data_type), user_id=uid
            )
            for h, v in entries
        ]
        return await self._writes_bulk(
            "write_bulk", pb.WriteBulkCommand, server_handle, items, timeout
        )

    async def write2_bulk(
        self,
        server_handle: int,
        entries: Iterable[tuple[int, Any, datetime]],
        *,
        data_type: MxDataType | int | None = None,
        user_id: int = 0,
        timeout: float | None = None,
    ) -> list[pb.BulkWriteResult]:
        """Write many ``(item_handle, value, timestamp)`` triples in one round trip."""
        uid = _handle("user_id", user_id)
        items = [
            pb.Write2BulkEntry(
                item_handle=_handle("item_handle", h),
                value=_value(v, data_type),
                timestamp_value=_timestamp(ts),
                user_id=uid,
            )
            for h, v, ts in entries
        ]
        return await self._writes_bulk(
            "write2_bulk", pb.Write2BulkCommand, server_handle, items, timeout
        )

    async def write_secured_bulk(
        self,
        server_handle: int,
        entries: Iterable[tuple[int, Any]],
        *,
        current_user_id: int,
        verifier_user_id: int = 0,
        data_type: MxDataType | int | None = None,
        timeout: float | None = None,
    ) -> list[pb.BulkWriteResult]:
        """Secured writes of many ``(item_handle, value)`` pairs in one round trip."""
        current = _handle("current_user_id", current_user_id)
        verifier = _handle("verifier_user_id", verifier_user_id)
        items = [
            pb.WriteSecuredBulkEntry(
                item_handle=_handle("item_handle", h),
                value=_value(v, data_type),
                current_user_id=current,
                verifier_user_id=verifier,
            )
            for h, v in entries
        ]
        return await self._writes_bulk(
            "write_secured_bulk", pb.WriteSecuredBulkCommand, server_handle, items, timeout
        )

    async def write_secured2_bulk(
        self,
        server_handle: int,
        entries: Iterable[tuple[int, Any, datetime]],
        *,
        current_user_id: int,
        verifier_user_id: int = 0,
        data_type: MxDataType | int | None = None,
        timeout: float | None = None,
    ) -> list[pb.BulkWriteResult]:
        """Secured writes of many ``(item_handle, value, timestamp)`` in one round trip."""
        current = _handle("current_user_id", current_user_id)
        verifier = _handle("verifier_user_id", verifier_user_id)
        items = [
            pb.WriteSecured2BulkEntry(
                item_handle=_handle("item_handle", h),
                value=_value(v, data_type),
                timestamp_value=_timestamp(ts),
                current_user_id=current,
                verifier_user_id=verifier,
            )
            for h, v, ts in entries
        ]
        return await self._writes_bulk(
            "write_secured2_bulk", pb.WriteSecured2BulkCommand, server_handle, items, timeout
        )

    async def read_bulk(
        self,
        server_handle: int,
        tag_addresses: Sequence[str],
        *,
        timeout_ms: int = 0,
        timeout: float | None = None,
    ) -> list[ReadResult]:
        """Read many tags in one round trip (``timeout_ms`` per tag, 0 = worker default).

        Each ``ReadResult`` keeps BulkReadResult's fields with the value as a Python value and
        the timestamp in nanoseconds (``raw`` is the generated message). A tag that fails has
        ``was_successful`` False and never fails the call. An already advised tag returns its
        cached value (``was_cached``) without touching the subscription.
        """
        results = await self._bulk(
            "read_bulk",
            pb.ReadBulkCommand(
                server_handle=_handle("server_handle", server_handle),
                tag_addresses=_strings(tag_addresses),
                timeout_ms=_handle("timeout_ms", timeout_ms),
            ),
            timeout,
        )
        return [read_result_from_pb(result) for result in results]

    # -- events ------------------------------------------------------------------------------

    def _set_stream_trouble(self, trouble: str | None) -> None:
        self.stream_trouble = trouble

    def _set_event_path(self, path: EventPath) -> None:
        if self.event_path != path:
            logger.info("session %s events via %s", self.session_id, _RPC_OF_PATH[path])
        self.event_path = path

    async def stream_events(
        self,
        *,
        after_worker_sequence: int = 0,
        resume: bool = True,
        retry_budget_s: float = 30.0,
        path: StreamPath = "auto",
    ) -> AsyncGenerator[MxEvent, None]:
        """The session's events as ``MxEvent`` structs, one at a time.

        Read from StreamEventBatches when the gateway offers it (many events per message),
        else from StreamEvents (the genuine gateway's rpc, read by the client's event receiver:
        see ``ClientOptions.event_receiver``); ``event_path`` says which.
        With ``resume`` (the default) a broken connection is retried with backoff, resuming
        after the last sequence seen, so nothing is lost or doubled; a ReplayGap (events older
        than the gateway kept) arrives as an event whose ``replay_gap`` is set, and a session
        recovery (``recover=True``) as one whose ``session_recovered`` is set. After
        ``retry_budget_s`` without success it raises MxGatewayStreamLostError. Breaking out,
        ``aclose()`` or cancelling the task cancels the call. A session has one event stream at
        a time: a new one waits up to 2 s for the previous one to leave, then raises
        MxGatewayProtocolError (FAILED_PRECONDITION). ``path="single"`` reads StreamEvents even
        where StreamEventBatches is offered (what the genuine gateway serves; for comparisons).
        """
        # aclosing: closing this generator closes the core's at once (its call, its thread).
        async with contextlib.aclosing(
            event_lists(
                self,
                prefer=_prefer(path),
                after_worker_sequence=after_worker_sequence,
                resume=resume,
                retry_budget_s=retry_budget_s,
            )
        ) as lists:
            async for events in lists:
                for event in events:
                    yield event

    async def stream_event_batches(
        self,
        *,
        max_batch_events: int = 0,
        after_worker_sequence: int = 0,
        resume: bool = True,
        retry_budget_s: float = 30.0,
        path: StreamPath = "auto",
    ) -> AsyncGenerator[list[MxEvent], None]:
        """The session's events in lists (no per-event await): one list per StreamEventBatches
        message, or, where the gateway lacks that rpc, one list per drain of StreamEvents
        messages that arrived together. Semantics and ``path`` as ``stream_events``."""
        async with contextlib.aclosing(
            event_lists(
                self,
                prefer=_prefer(path),
                max_batch_events=max_batch_events,
                after_worker_sequence=after_worker_sequence,
                resume=resume,
                retry_budget_s=retry_budget_s,
            )
        ) as lists:
            async for events in lists:
                yield events

    async def stream_event_columns(
        self,
        *,
        max_batch_events: int = DEFAULT_COLUMN_BATCH_EVENTS,
        after_worker_sequence: int = 0,
        resume: bool = True,
        retry_budget_s: float = 30.0,
        path: StreamPath = "auto",
    ) -> AsyncGenerator[EventColumns, None]:
        """The session's events as ``EventColumns`` (numpy columns; ``mxgateway[columns]``):
        one per StreamEventBatches message of up to ``max_batch_events`` events (default
        DEFAULT_COLUMN_BATCH_EVENTS; 0 = the gateway's default), or, where the gateway lacks
        that rpc, one per drain of StreamEvents messages that arrived together. The gateway
        sends what is due without waiting to fill a batch, so a larger bound costs no latency
        at low rates. Semantics and ``path`` as ``stream_events`` (the same stream core: resume,
        de-duplication, ReplayGap, retries, recovery, statistics, handles and tag names); the
        rows equal ``stream_event_batches``' events field for field, and events the columns
        cannot hold (ReplayGap sentinels, recovery markers, arrays, ...) are in ``others``."""
        shape = ColumnsShape()
        async with contextlib.aclosing(
            event_units(
                self,
                shape,
                prefer=_prefer(path),
                max_batch_events=max_batch_events,
                after_worker_sequence=after_worker_sequence,
                resume=resume,
                retry_budget_s=retry_budget_s,
            )
        ) as units:
            async for columns in units:
                yield columns


_RPC_OF_PATH: dict[EventPath, str] = {"batches": "StreamEventBatches", "single": "StreamEvents"}

StreamPath = Literal["auto", "single"]
"""Which rpc a stream reads: ``"auto"``, StreamEventBatches where the gateway offers it (else
StreamEvents); ``"single"``, StreamEvents always."""


def _prefer(path: StreamPath) -> EventPath:
    if path == "auto":
        return "batches"
    if path == "single":
        return "single"
    raise ValueError(f"path must be 'auto' or 'single', not {path!r}")


def _strings(values: Sequence[str]) -> list[str]:
    if isinstance(values, str):
        raise TypeError("expected a sequence of tag addresses, not one string")
    return list(values)


def _check_size(command: pb.MxCommand, limit: int) -> None:
    size = command.ByteSize()
    # A little headroom for the request envelope (session id, correlation id).
    if size > limit - 1024:
        raise MxGatewayRequestTooLargeError(
            f"{arm_kind(command)} is {size} bytes, over the {limit}-byte message limit; "
            "nothing was sent: split it into smaller bulks"
        )
