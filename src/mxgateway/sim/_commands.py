"""Invoke: every MXAccess command, including the bulk family, against a simulated session.

An MXAccess failure is a reply (protocol_status MXACCESS_FAILURE, hresult, statuses), never a
gRPC error; a bulk entry fails in place and never fails the call. Passwords are never logged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

from google.protobuf.message import Message

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim._events import write_complete_event
from mxgateway.sim._plant import parse_reference
from mxgateway.sim._session import Item, Session
from mxgateway.sim._status import (
    DISP_E_BADINDEX,
    E_ACCESSDENIED,
    E_FAIL,
    E_INVALIDARG,
    MxFailure,
    bad_status,
    ok_status,
    protocol,
    quoted,
)
from mxgateway.sim._users import authenticate, user_by_guid
from mxgateway.sim._values import check_value_limits, timestamp, to_mx_value

__all__ = ["ReplyTooLarge", "execute", "payload_arm"]

_K = pb.MxCommandKind
_NS = 1_000_000_000
_SECURITY = pb.MX_STATUS_CATEGORY_SECURITY_ERROR
_OPERATIONAL = pb.MX_STATUS_CATEGORY_OPERATIONAL_ERROR
_CONFIGURATION = pb.MX_STATUS_CATEGORY_CONFIGURATION_ERROR

# Security classifications (GalaxyAttribute.security_classification).
_SECURED_WRITE, _VERIFIED_WRITE, _VIEW_ONLY = 2, 3, 6


class ReplyTooLarge(Exception):
    """A bulk's reply would be over the message limit: every entry was executed, and the
    results past the limit were not built (the call ends as grpc-core ends an oversized
    reply: RESOURCE_EXHAUSTED "SERVER: Sent message larger than max")."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(
            f"SERVER: Sent message larger than max ({size} vs. {limit}): the bulk was "
            "executed, its reply not built"
        )
        self.size = size
        self.limit = limit


def payload_arm(kind: int) -> str | None:
    """The MxCommand payload arm of a command kind (``WRITE_SECURED2`` → ``write_secured2``)."""
    if kind == _K.MX_COMMAND_KIND_UNSPECIFIED:
        return None
    try:
        name = _K.Name(cast(pb.MxCommandKind, kind))
    except ValueError:
        return None
    return name.removeprefix("MX_COMMAND_KIND_").lower()


def _ts_ns(ts: Any) -> int:
    return int(ts.seconds) * _NS + int(ts.nanos)


def _check_security(session: Session, item: Item, secured: tuple[int, int] | None) -> None:
    state = item.state
    assert state is not None
    classification = state.info.security_classification
    if classification == _VIEW_ONLY:
        raise MxFailure(E_ACCESSDENIED, _SECURITY, f"{item.definition} is ViewOnly")
    if secured is None:
        if classification in (_SECURED_WRITE, _VERIFIED_WRITE):
            kind = "VerifiedWrite" if classification == _VERIFIED_WRITE else "SecuredWrite"
            raise MxFailure(
                E_ACCESSDENIED,
                _SECURITY,
                f"{item.definition} is {kind}: use WriteSecured with an authenticated user",
            )
        return
    current, verifier = secured
    if current not in session.users:
        raise MxFailure(
            E_ACCESSDENIED, _SECURITY, f"user id {current} is not authenticated in this session"
        )
    if classification == _VERIFIED_WRITE and (verifier not in session.users or verifier == current):
        raise MxFailure(
            E_ACCESSDENIED,
            _SECURITY,
            f"{item.definition} is VerifiedWrite: needs a second authenticated verifier",
        )


def _past_the_end(session: Session, item: Item) -> MxFailure | None:
    # ``Tag.Arr[n]`` with n past the declared length names no element (the item was added as
    # unknown, as MXAccess does): a write to it is an index error, not an unknown reference.
    address = item.address
    if address.index is None:
        return None
    state = session.plant.lookup(address.base)
    length = state.array_length if state is not None else None
    if length is None or address.index <= length:
        return None
    return MxFailure(
        DISP_E_BADINDEX,
        _CONFIGURATION,
        f"element {address.index} is past the declared length {length} of {quoted(address.base)}",
        refusal="array_index",
    )


def _write(
    session: Session,
    server_handle: int,
    item_handle: int,
    value: pb.MxValue,
    ts: Any | None,
    secured: tuple[int, int] | None,
) -> None:
    try:
        _write_checked(session, server_handle, item_handle, value, ts, secured)
    except MxFailure as failure:
        if failure.refusal:
            session.counters.refuse(failure.refusal)
        raise


def _write_checked(
    session: Session,
    server_handle: int,
    item_handle: int,
    value: pb.MxValue,
    ts: Any | None,
    secured: tuple[int, int] | None,
) -> None:
    config = session.config
    # The door first: nothing of an oversized value is converted, stored or published.
    check_value_limits(value, config.max_value_elements, config.value_bytes_limit)
    item = session.item(server_handle, item_handle)
    if not item.advised:
        raise MxFailure(
            E_FAIL, _OPERATIONAL, f"write before advise: item {item_handle} is not advised"
        )
    if item.state is None:
        failure = _past_the_end(session, item)
        if failure is not None:
            raise failure
        raise MxFailure(E_FAIL, _CONFIGURATION, f"unknown item reference {quoted(item.definition)}")
    _check_security(session, item, secured)
    if item.state.sub_attribute == "AckMsg":  # kept with the alarm as its comment
        failure = session.name_failure("the acknowledgement comment", value.string_value)
        if failure is not None:
            raise failure
    ts_ns = _ts_ns(ts) if ts is not None else None
    session.plant.write(item.state, item.address.index, value, ts_ns)
    session.emit(write_complete_event(server_handle, item_handle))


def _subscribe_result(
    server_handle: int, tag: str, item_handle: int, failure: MxFailure | None
) -> pb.SubscribeResult:
    if failure is None:
        return pb.SubscribeResult(
            server_handle=server_handle,
            tag_address=tag,
            item_handle=item_handle,
            was_successful=True,
            statuses=[ok_status()],
        )
    return pb.SubscribeResult(
        server_handle=server_handle,
        tag_address=tag,
        item_handle=item_handle,
        was_successful=False,
        error_message=failure.text,
        hresult=failure.hresult,
        statuses=[failure.status()],
    )


def _write_result(item_handle: int, failure: MxFailure | None) -> pb.BulkWriteResult:
    if failure is None:
        return pb.BulkWriteResult(
            item_handle=item_handle, was_successful=True, statuses=[ok_status()]
        )
    return pb.BulkWriteResult(
        item_handle=item_handle,
        was_successful=False,
        error_message=failure.text,
        hresult=failure.hresult,
        statuses=[failure.status()],
    )


class _Executor:
    """One command against one session; methods named after the payload arm."""

    def __init__(self, session: Session, reply: pb.MxCommandReply) -> None:
        self.s = session
        self.reply = reply
        # Bulk results are built only while the reply fits a message: a bulk of a million
        # entries must not build a reply of a million results it can never send.
        self.budget = session.config.max_message_bytes - 1024
        self.size = 0
        self.dropped = False

    def _add(self, results: Any, result: Message) -> None:
        self.size += result.ByteSize() + 6  # the entry's tag and length
        if self.size > self.budget:
            self.dropped = True
            return
        results.append(result)

    # --- registration and items ---

    def register(self, c: pb.RegisterCommand) -> None:
        self.reply.register.server_handle = self.s.register(c.client_name)

    def unregister(self, c: pb.UnregisterCommand) -> None:
        self.s.unregister(c.server_handle)

    def add_item(self, c: pb.AddItemCommand) -> None:
        self.reply.item_handle.item_handle = self.s.add_item(
            c.server_handle, c.item_definition
        ).handle

    def add_item2(self, c: pb.AddItem2Command) -> None:
        self.reply.item_handle.item_handle = self.s.add_item(
            c.server_handle, c.item_definition
        ).handle

    def add_buffered_item(self, c: pb.AddBufferedItemCommand) -> None:
        self.reply.item_handle.item_handle = self.s.add_item(
            c.server_handle, c.item_definition, buffered=True
        ).handle

    def remove_item(self, c: pb.RemoveItemCommand) -> None:
        self.s.remove_item(c.server_handle, c.item_handle)

    def advise(self, c: pb.AdviseCommand) -> None:
        self.s.advise(self.s.item(c.server_handle, c.item_handle), supervisory=False)

    def advise_supervisory(self, c: pb.AdviseSupervisoryCommand) -> None:
        self.s.advise(self.s.item(c.server_handle, c.item_handle), supervisory=True)

    def un_advise(self, c: pb.UnAdviseCommand) -> None:
        self.s.unadvise(self.s.item(c.server_handle, c.item_handle))

    def suspend(self, c: pb.SuspendCommand) -> None:
        self.s.suspend(self.s.item(c.server_handle, c.item_handle), True)

    def activate(self, c: pb.ActivateCommand) -> None:
        self.s.suspend(self.s.item(c.server_handle, c.item_handle), False)

    # --- writes ---

    def write(self, c: pb.WriteCommand) -> None:
        _write(self.s, c.server_handle, c.item_handle, c.value, None, None)

    def write2(self, c: pb.Write2Command) -> None:
        ts = c.timestamp_value if c.HasField("timestamp_value") else None
        _write(self.s, c.server_handle, c.item_handle, c.value, ts, None)

    def write_secured(self, c: pb.WriteSecuredCommand) -> None:
        users = (c.current_user_id, c.verifier_user_id)
        _write(self.s, c.server_handle, c.item_handle, c.value, None, users)

    def write_secured2(self, c: pb.WriteSecured2Command) -> None:
        ts = c.timestamp_value if c.HasField("timestamp_value") else None
        users = (c.current_user_id, c.verifier_user_id)
        _write(self.s, c.server_handle, c.item_handle, c.value, ts, users)

    # --- users ---

    def authenticate_user(self, c: pb.AuthenticateUserCommand) -> None:
        self.s.server(c.server_handle)
        user = authenticate(c.user_name, c.password)
        if user is None:
            raise MxFailure(
                E_ACCESSDENIED, _SECURITY, f"authentication failed for user {c.user_name!r}"
            )
        self.s.users[user.user_id] = user.name
        self.reply.user_id.user_id = user.user_id

    def archestra_user_to_id(self, c: pb.ArchestraUserToIdCommand) -> None:
        self.s.server(c.server_handle)
        user = user_by_guid(c.user_guid)
        if user is None:
            raise MxFailure(E_FAIL, _SECURITY, f"unknown ArchestrA user {c.user_guid!r}")
        self.s.users[user.user_id] = user.name
        self.reply.user_id.user_id = user.user_id

    # --- buffered, events ---

    def set_buffered_update_interval(self, c: pb.SetBufferedUpdateIntervalCommand) -> None:
        server = self.s.server(c.server_handle)
        if c.update_interval_ms <= 0:
            raise MxFailure(
                E_INVALIDARG,
                _CONFIGURATION,
                f"update interval must be > 0 ms, not {c.update_interval_ms}",
            )
        server.buffer_interval_ms = c.update_interval_ms

    def drain_events(self, c: pb.DrainEventsCommand) -> None:
        events = self.reply.drain_events.events
        for data in self.s.drain(c.max_events):
            events.add().ParseFromString(data)

    # --- bulk ---

    def add_item_bulk(self, c: pb.AddItemBulkCommand) -> None:
        results = self.reply.bulk_subscribe.results
        for tag in c.tag_addresses:
            try:
                handle = self.s.add_item(c.server_handle, tag).handle
            except MxFailure as failure:
                self._add(results, _subscribe_result(c.server_handle, tag, 0, failure))
            else:
                self._add(results, _subscribe_result(c.server_handle, tag, handle, None))

    def _per_item(self, server_handle: int, handles: Any, action: Callable[[Item], None]) -> None:
        results = self.reply.bulk_subscribe.results
        for handle in handles:
            tag = ""
            try:
                item = self.s.item(server_handle, handle)
                tag = item.definition
                action(item)
            except MxFailure as failure:
                self._add(results, _subscribe_result(server_handle, tag, handle, failure))
            else:
                self._add(results, _subscribe_result(server_handle, tag, handle, None))

    def advise_item_bulk(self, c: pb.AdviseItemBulkCommand) -> None:
        self._per_item(
            c.server_handle, c.item_handles, lambda i: self.s.advise(i, supervisory=False)
        )

    def un_advise_item_bulk(self, c: pb.UnAdviseItemBulkCommand) -> None:
        self._per_item(c.server_handle, c.item_handles, self.s.unadvise)

    def remove_item_bulk(self, c: pb.RemoveItemBulkCommand) -> None:
        self._per_item(
            c.server_handle,
            c.item_handles,
            lambda i: self.s.remove_item(i.server_handle, i.handle),
        )

    def unsubscribe_bulk(self, c: pb.UnsubscribeBulkCommand) -> None:
        def unsubscribe(item: Item) -> None:
            if item.advised:
                self.s.unadvise(item)
            self.s.remove_item(item.server_handle, item.handle)

        self._per_item(c.server_handle, c.item_handles, unsubscribe)

    def subscribe_bulk(self, c: pb.SubscribeBulkCommand) -> None:
        results = self.reply.bulk_subscribe.results
        buffered = c.buffered_update_interval_ms > 0
        try:
            server = self.s.server(c.server_handle)
        except MxFailure as failure:
            for tag in c.tag_addresses:
                self._add(results, _subscribe_result(c.server_handle, tag, 0, failure))
            return
        if buffered:
            server.buffer_interval_ms = c.buffered_update_interval_ms
        for tag in c.tag_addresses:
            try:
                item = self.s.add_item(c.server_handle, tag, buffered=buffered)
                self.s.advise(item, supervisory=c.supervisory)
            except MxFailure as failure:
                self._add(results, _subscribe_result(c.server_handle, tag, 0, failure))
            else:
                self._add(results, _subscribe_result(c.server_handle, tag, item.handle, None))

    def _write_bulk(self, server_handle: int, entries: Any, secured: bool, stamped: bool) -> None:
        results = self.reply.bulk_write.results
        for entry in entries:
            users = (entry.current_user_id, entry.verifier_user_id) if secured else None
            ts = entry.timestamp_value if stamped and entry.HasField("timestamp_value") else None
            try:
                _write(self.s, server_handle, entry.item_handle, entry.value, ts, users)
            except MxFailure as failure:
                self._add(results, _write_result(entry.item_handle, failure))
            else:
                self._add(results, _write_result(entry.item_handle, None))

    def write_bulk(self, c: pb.WriteBulkCommand) -> None:
        self._write_bulk(c.server_handle, c.entries, secured=False, stamped=False)

    def write2_bulk(self, c: pb.Write2BulkCommand) -> None:
        self._write_bulk(c.server_handle, c.entries, secured=False, stamped=True)

    def write_secured_bulk(self, c: pb.WriteSecuredBulkCommand) -> None:
        self._write_bulk(c.server_handle, c.entries, secured=True, stamped=False)

    def write_secured2_bulk(self, c: pb.WriteSecured2BulkCommand) -> None:
        self._write_bulk(c.server_handle, c.entries, secured=True, stamped=True)

    def read_bulk(self, c: pb.ReadBulkCommand) -> None:
        results = self.reply.bulk_read.results
        try:
            server = self.s.server(c.server_handle)
        except MxFailure as failure:
            for tag in c.tag_addresses:
                self._add(
                    results,
                    pb.BulkReadResult(
                        tag_address=tag,
                        was_successful=False,
                        error_message=failure.text,
                        hresult=failure.hresult,
                        statuses=[failure.status()],
                    ),
                )
            return
        cached = {i.definition: i for i in server.items.values() if i.advised}
        for tag in c.tag_addresses:
            self._add(results, self._read_one(tag, cached.get(tag)))

    def _read_one(self, tag: str, cached: Item | None) -> pb.BulkReadResult:
        address = parse_reference(tag)
        state = self.s.plant.lookup(address.base) if address.base else None
        length = state.array_length if state is not None else None
        bad_index = address.index is not None and (
            length is None or not 1 <= address.index <= length
        )
        if state is None or bad_index or (address.whole_array and length is None):
            text = f"unknown item reference {quoted(tag)}"
            return pb.BulkReadResult(
                tag_address=tag,
                was_successful=False,
                quality=0,
                error_message=text,
                hresult=E_FAIL,
                statuses=[bad_status(_CONFIGURATION, text, detail=1)],
            )
        return pb.BulkReadResult(
            tag_address=tag,
            item_handle=cached.handle if cached is not None else 0,
            was_successful=True,
            was_cached=cached is not None,
            value=to_mx_value(state.element(address.index), state.info.data_type),
            quality=state.quality,
            source_timestamp=timestamp(state.timestamp_ns),
            statuses=[ok_status()],
        )


def execute(session: Session, request: pb.MxCommandRequest) -> pb.MxCommandReply:
    """Run one command; return the reply (failures included)."""
    command = request.command
    reply = pb.MxCommandReply(
        session_id=session.session_id,
        correlation_id=request.client_correlation_id,
        kind=command.kind,
    )
    arm = payload_arm(command.kind)
    set_arm = command.WhichOneof("payload")
    if arm is None or (set_arm is not None and set_arm != arm):
        text = (
            f"payload {set_arm!r} does not match command kind {command.kind}"
            if arm is not None
            else f"unknown command kind {command.kind}"
        )
        reply.protocol_status.CopyFrom(protocol(pb.PROTOCOL_STATUS_CODE_INVALID_REQUEST, text))
        reply.diagnostic_message = text
        return reply
    payload = cast(Message, getattr(command, arm))
    executor = _Executor(session, reply)
    handler = getattr(executor, arm)
    try:
        handler(payload)
        if executor.dropped:
            session.counters.refuse("reply_bytes")
            raise ReplyTooLarge(executor.size, session.config.max_message_bytes)
    except MxFailure as failure:
        reply.ClearField("payload")
        reply.protocol_status.CopyFrom(
            protocol(pb.PROTOCOL_STATUS_CODE_MXACCESS_FAILURE, failure.text)
        )
        reply.hresult = failure.hresult
        reply.statuses.append(failure.status())
        reply.diagnostic_message = failure.text
        return reply
    reply.protocol_status.CopyFrom(protocol(pb.PROTOCOL_STATUS_CODE_OK))
    reply.statuses.append(ok_status())
    return reply
