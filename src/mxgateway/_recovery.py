"""What a session knows of its own state, and how it rebuilds it on a new gateway session.

``SessionState`` keeps, in the caller's handles, what builds the state (Register, AddItem*,
Advise*, the bulk adds and advises, buffered items and their interval, Suspend) and forgets what
is undone (RemoveItem, UnAdvise, Unregister, their bulks). It feeds ``Session.items`` always, and
``replay`` when a recovering session must reopen.

``HandleMap`` keeps the caller's handles valid after a recovery: the gateway gives the replayed
server and items new handles, and the map translates the caller's handles to the live ones in
commands and the live ones back in replies and events. Where the new handles equal the old
(a gateway that numbers handles the same way on a fresh session) the map stays empty and costs
nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from mxgateway._command import command_for
from mxgateway._rpc import ensure_mxaccess_success
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.types import (
    EMPTY_EVENT,
    MxEvent,
    RecoveryFailure,
    SessionItem,
    SessionRecovered,
)

__all__ = ["HandleMap", "SessionState", "marker_event", "replay"]

logger = logging.getLogger(__name__)

# Tags per bulk call when replaying (well inside the 16 MiB message limit for any tag name).
_REPLAY_CHUNK = 5000

_ADDS = {"add_item": "add_item", "add_item2": "add_item2", "add_buffered_item": "buffered"}


@dataclass(slots=True)
class _Server:
    client_name: str
    buffered_interval_ms: int | None = None
    items: dict[int, None] = field(default_factory=dict)  # item handles, in order of adding


class SessionState:
    """The servers and items of a session, in the caller's handles."""

    def __init__(self) -> None:
        self.servers: dict[int, _Server] = {}
        self.items: dict[int, SessionItem] = {}
        # Item handle -> definition, the dict the decoder fills MxEvent.tag from.
        self.names: dict[int, str] = {}
        self.version = 0  # counts changes of ``names``

    # -- recording -------------------------------------------------------------------------

    def record(self, command: pb.MxCommand, reply: pb.MxCommandReply) -> None:
        """Take the effect of a command that succeeded (both in the caller's handles)."""
        arm = command.WhichOneof("payload")
        if arm is None:
            return
        payload = getattr(command, arm)
        if arm == "register":
            self.servers[reply.register.server_handle] = _Server(payload.client_name)
        elif arm == "unregister":
            server = self.servers.pop(payload.server_handle, None)
            if server is not None:
                for handle in server.items:
                    self._remove(handle)
        elif arm in _ADDS:
            self._add(
                payload.server_handle,
                reply.item_handle.item_handle,
                payload.item_definition,
                _ADDS[arm],
                getattr(payload, "item_context", ""),
            )
        elif arm == "remove_item":
            self._remove(payload.item_handle)
        elif arm in ("advise", "advise_supervisory"):
            self._update(payload.item_handle, advise=_ADVISE[arm], suspended=False)
        elif arm == "un_advise":
            self._update(payload.item_handle, advise=None, suspended=False)
        elif arm in ("suspend", "activate"):
            self._update(payload.item_handle, suspended=arm == "suspend")
        elif arm == "set_buffered_update_interval":
            server = self.servers.get(payload.server_handle)
            if server is not None:
                server.buffered_interval_ms = payload.update_interval_ms
        elif arm in ("add_item_bulk", "subscribe_bulk"):
            self._record_bulk_adds(arm, payload, reply.bulk_subscribe.results)
        elif arm in _BULK_UPDATES:
            for result in reply.bulk_subscribe.results:
                if result.was_successful:
                    _BULK_UPDATES[arm](self, result.item_handle)

    def _record_bulk_adds(self, arm: str, payload: Any, results: Iterable[Any]) -> None:
        buffered = arm == "subscribe_bulk" and payload.buffered_update_interval_ms > 0
        if buffered:
            server = self.servers.get(payload.server_handle)
            if server is not None:
                server.buffered_interval_ms = payload.buffered_update_interval_ms
        advise = None
        if arm == "subscribe_bulk":
            advise = "supervisory" if payload.supervisory else "advise"
        for result in results:
            if result.was_successful:
                self._add(
                    payload.server_handle,
                    result.item_handle,
                    result.tag_address,
                    "buffered" if buffered else "add_item",
                    "",
                    advise,
                )

    def _add(
        self,
        server_handle: int,
        item_handle: int,
        definition: str,
        kind: Any,
        context: str,
        advise: Any = None,
    ) -> None:
        self.items[item_handle] = SessionItem(
            server_handle, item_handle, definition, kind, context, advise
        )
        self.names[item_handle] = definition
        self.version += 1
        server = self.servers.get(server_handle)
        if server is None:  # registered outside this session object (invoke_raw elsewhere)
            server = self.servers[server_handle] = _Server("")
        server.items[item_handle] = None

    def _remove(self, item_handle: int) -> None:
        item = self.items.pop(item_handle, None)
        if self.names.pop(item_handle, None) is not None:
            self.version += 1
        if item is not None:
            server = self.servers.get(item.server_handle)
            if server is not None:
                server.items.pop(item_handle, None)

    def _update(self, item_handle: int, **changes: Any) -> None:
        item = self.items.get(item_handle)
        if item is not None:
            self.items[item_handle] = msgspec.structs.replace(item, **changes)

    def _unadvise(self, item_handle: int) -> None:
        self._update(item_handle, advise=None, suspended=False)

    def _advise(self, item_handle: int) -> None:
        self._update(item_handle, advise="advise", suspended=False)


_ADVISE = {"advise": "advise", "advise_supervisory": "supervisory"}
_BULK_UPDATES = {
    "advise_item_bulk": SessionState._advise,
    "un_advise_item_bulk": SessionState._unadvise,
    "remove_item_bulk": SessionState._remove,
    "unsubscribe_bulk": SessionState._remove,
}


class HandleMap:
    """Caller ⇄ live handles after a recovery (empty, and free, until handles differ)."""

    __slots__ = ("item_to_caller", "item_to_live", "server_to_caller", "server_to_live")

    def __init__(self) -> None:
        self.server_to_live: dict[int, int] = {}
        self.server_to_caller: dict[int, int] = {}
        self.item_to_live: dict[int, int] = {}
        self.item_to_caller: dict[int, int] = {}

    @property
    def empty(self) -> bool:
        """True when every caller handle is the live one."""
        return not (self.server_to_live or self.item_to_live)

    def set(
        self,
        caller_server: dict[int, int],
        caller_item: dict[int, int],
        *,
        dead_items: Iterable[int] = (),
    ) -> None:
        """Replace the map with caller → live pairs (identical pairs are left out).

        ``dead_items`` are caller handles whose items could not be restored: they map to
        handle 0, which no gateway gives out, so a command on one fails as an invalid handle
        instead of reaching whichever live item now has that number.
        """
        self.server_to_live = {c: live for c, live in caller_server.items() if c != live}
        self.server_to_caller = {live: c for c, live in self.server_to_live.items()}
        self.item_to_live = {c: live for c, live in caller_item.items() if c != live}
        self.item_to_caller = {live: c for c, live in self.item_to_live.items()}
        for handle in dead_items:
            self.item_to_live[handle] = 0

    # -- commands out --------------------------------------------------------------------------

    def command_to_live(self, command: pb.MxCommand) -> pb.MxCommand:
        """``command`` with the caller's handles replaced by the live ones (a copy if any)."""
        arm = command.WhichOneof("payload")
        if arm is None or self.empty:
            return command
        live = pb.MxCommand()
        live.CopyFrom(command)
        payload = getattr(live, arm)
        fields = payload.DESCRIPTOR.fields_by_name
        servers, items = self.server_to_live, self.item_to_live
        if "server_handle" in fields:
            payload.server_handle = servers.get(payload.server_handle, payload.server_handle)
        if "item_handle" in fields:
            payload.item_handle = items.get(payload.item_handle, payload.item_handle)
        if "item_handles" in fields:
            payload.item_handles[:] = [items.get(h, h) for h in payload.item_handles]
        if "entries" in fields:
            for entry in payload.entries:
                entry.item_handle = items.get(entry.item_handle, entry.item_handle)
        return live

    # -- replies and events in -----------------------------------------------------------------

    def reply_to_caller(self, command: pb.MxCommand, reply: pb.MxCommandReply, state: Any) -> None:
        """Rewrite the live handles of ``reply`` (in place) to the caller's."""
        if self.empty:
            return
        arm = command.WhichOneof("payload")
        if arm == "register":
            reply.register.server_handle = self._new_caller(
                reply.register.server_handle,
                self.server_to_live,
                self.server_to_caller,
                state.servers,
            )
            return
        if arm in _ADDS:
            reply.item_handle.item_handle = self._new_caller(
                reply.item_handle.item_handle, self.item_to_live, self.item_to_caller, state.items
            )
        new_items = arm in ("add_item_bulk", "subscribe_bulk")
        for result in reply.bulk_subscribe.results:
            result.server_handle = self.server_to_caller.get(
                result.server_handle, result.server_handle
            )
            if new_items and result.was_successful:
                result.item_handle = self._new_caller(
                    result.item_handle, self.item_to_live, self.item_to_caller, state.items
                )
            else:
                result.item_handle = self.item_to_caller.get(result.item_handle, result.item_handle)
        for write in reply.bulk_write.results:
            write.item_handle = self.item_to_caller.get(write.item_handle, write.item_handle)
        for read in reply.bulk_read.results:
            read.item_handle = self.item_to_caller.get(read.item_handle, read.item_handle)

    @staticmethod
    def _new_caller(
        live: int, to_live: dict[int, int], to_caller: dict[int, int], in_use: Iterable[int]
    ) -> int:
        """The caller's handle for a handle the gateway just gave: the same number unless the
        caller already holds that number for something else."""
        used = set(in_use)
        if live not in used and live not in to_live:
            return live
        fresh: int = max([*used, *to_live, *to_caller, live]) + 1
        to_live[fresh] = live
        to_caller[live] = fresh
        return fresh

    def events_to_caller(self, events: list[MxEvent]) -> list[MxEvent]:
        """``events`` with live handles replaced by the caller's (the same list when none
        needs it)."""
        servers, items = self.server_to_caller, self.item_to_caller
        if not (servers or items):
            return events
        replace = msgspec.structs.replace
        out: list[MxEvent] = []
        for event in events:
            item = items.get(event.item_handle)
            server = servers.get(event.server_handle)
            if item is None and server is None:
                out.append(event)
            else:
                out.append(
                    replace(
                        event,
                        server_handle=event.server_handle if server is None else server,
                        item_handle=event.item_handle if item is None else item,
                    )
                )
        return out


def marker_event(recovered: SessionRecovered) -> MxEvent:
    """The stream item that announces a recovery (family UNSPECIFIED, sequence 0)."""
    return msgspec.structs.replace(
        EMPTY_EVENT, session_id=recovered.new_session_id, session_recovered=recovered
    )


async def replay(
    client: Any,
    state: SessionState,
    *,
    name: str,
    lease_seconds: int,
    old_session_id: str,
    last_sequence: int,
    reason: str,
) -> tuple[pb.OpenSessionReply, dict[int, int], dict[int, int], SessionRecovered]:
    """Open a new session and rebuild ``state`` on it.

    Returns the OpenSession reply, the caller → live server and item handles, and the record
    of what was done. Items MXAccess refuses are listed in the record; a transport or protocol
    failure raises (after closing the half-built session, best effort) so the caller can try
    again later.
    """
    reply = await client.open_session_raw(name, lease_seconds=lease_seconds)
    session_id = reply.session_id
    builder = _Rebuild(client, session_id)
    try:
        for caller_server, server in list(state.servers.items()):
            items = [state.items[h] for h in server.items if h in state.items]
            await builder.server(caller_server, server, items)
    except BaseException:
        try:
            await client.close_session(session_id)
        except Exception:
            logger.debug("closing the half-recovered session %s failed", session_id)
        raise
    recovered = SessionRecovered(
        old_session_id=old_session_id,
        new_session_id=session_id,
        last_sequence=last_sequence,
        failed=tuple(builder.failed),
        reason=reason,
    )
    return reply, builder.servers, builder.items, recovered


class _Rebuild:
    """The commands of one replay, sent straight to the new session (no handle mapping)."""

    def __init__(self, client: Any, session_id: str) -> None:
        self._client = client
        self._session_id = session_id
        self.servers: dict[int, int] = {}
        self.items: dict[int, int] = {}
        self.failed: list[RecoveryFailure] = []

    async def _invoke(self, arm: str, payload: Any) -> pb.MxCommandReply:
        command = command_for(arm, payload)
        reply: pb.MxCommandReply = await self._client.invoke_raw(self._session_id, command)
        ensure_mxaccess_success(reply, f"recovery {arm}")
        return reply

    def _fail(self, items: Sequence[SessionItem], error: object) -> None:
        self.failed.extend(
            RecoveryFailure(i.server_handle, i.item_handle, i.definition, str(error)) for i in items
        )

    async def server(self, caller: int, server: _Server, items: list[SessionItem]) -> None:
        from mxgateway._errors import MxAccessError

        try:
            reply = await self._invoke(
                "register", pb.RegisterCommand(client_name=server.client_name)
            )
        except MxAccessError as exc:
            self._fail(items, exc)
            return
        live = reply.register.server_handle
        self.servers[caller] = live
        if server.buffered_interval_ms:
            try:
                await self._invoke(
                    "set_buffered_update_interval",
                    pb.SetBufferedUpdateIntervalCommand(
                        server_handle=live, update_interval_ms=server.buffered_interval_ms
                    ),
                )
            except MxAccessError as exc:
                logger.warning("recovery: buffered update interval not restored: %s", exc)
        # Replay in the order the items were added, plain items in bulks, so a gateway that
        # numbers handles the same way gives the same handles again (the map then stays empty).
        group: list[SessionItem] = []
        for item in items:
            if group and (item.kind != "add_item" or item.advise != group[0].advise):
                await self._bulk(live, group)
                group = []
            if item.kind == "add_item":
                group.append(item)
            else:
                await self._single(live, item)
        if group:
            await self._bulk(live, group)
        for item in items:
            if item.suspended and item.item_handle in self.items:
                await self._item_command("suspend", pb.SuspendCommand, live, item)

    async def _bulk(self, live_server: int, items: list[SessionItem]) -> None:
        advise = items[0].advise
        for start in range(0, len(items), _REPLAY_CHUNK):
            chunk = items[start : start + _REPLAY_CHUNK]
            tags = [i.definition for i in chunk]
            if advise is None:
                reply = await self._invoke(
                    "add_item_bulk",
                    pb.AddItemBulkCommand(server_handle=live_server, tag_addresses=tags),
                )
            else:
                reply = await self._invoke(
                    "subscribe_bulk",
                    pb.SubscribeBulkCommand(
                        server_handle=live_server,
                        tag_addresses=tags,
                        supervisory=advise == "supervisory",
                    ),
                )
            results = reply.bulk_subscribe.results
            if len(results) != len(chunk):
                from mxgateway._errors import MxGatewayProtocolError

                raise MxGatewayProtocolError(
                    f"recovery: the gateway answered {len(chunk)} tags with {len(results)} results"
                )
            for item, result in zip(chunk, results, strict=True):
                if result.was_successful:
                    self.items[item.item_handle] = result.item_handle
                else:
                    error = result.error_message or f"hresult 0x{result.hresult & 0xFFFFFFFF:08X}"
                    self._fail([item], error)

    async def _single(self, live_server: int, item: SessionItem) -> None:
        from mxgateway._errors import MxAccessError

        arm, message = _SINGLE_ADDS[item.kind]
        try:
            reply = await self._invoke(
                arm,
                message(
                    server_handle=live_server,
                    item_definition=item.definition,
                    item_context=item.context,
                ),
            )
        except MxAccessError as exc:
            self._fail([item], exc)
            return
        self.items[item.item_handle] = reply.item_handle.item_handle
        if item.advise is not None:
            arm, message = _ADVISES[item.advise]
            await self._item_command(arm, message, live_server, item)

    async def _item_command(
        self, arm: str, message: Any, live_server: int, item: SessionItem
    ) -> None:
        from mxgateway._errors import MxAccessError

        try:
            await self._invoke(
                arm, message(server_handle=live_server, item_handle=self.items[item.item_handle])
            )
        except MxAccessError as exc:
            self._fail([item], exc)


# Items with a context are added one by one (there is no bulk that carries it).
_SINGLE_ADDS: dict[str, tuple[str, Any]] = {
    "add_item2": ("add_item2", pb.AddItem2Command),
    "buffered": ("add_buffered_item", pb.AddBufferedItemCommand),
}
_ADVISES: dict[str, tuple[str, Any]] = {
    "advise": ("advise", pb.AdviseCommand),
    "supervisory": ("advise_supervisory", pb.AdviseSupervisoryCommand),
}
