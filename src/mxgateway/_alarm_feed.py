"""The central alarm feed: generated messages to typed structs, and the feed that resumes.

The gateway has no resume token for StreamAlarms: every call starts with a fresh snapshot of
the active alarms. ``follow_alarm_feed`` reconnects after cuts and restarts (the shared
``_retry.Reconnect`` policy) and reconciles each fresh snapshot with what it has already given
the consumer (``AlarmView``), so that after an ``AlarmFeedResync`` marker only differences
follow (see ``AlarmFeedResync`` and ``AlarmResyncClear`` in ``mxgateway.types``).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from typing import TYPE_CHECKING, Any

import grpc

from mxgateway._pbconvert import alarm_transition_from_pb, status_from_pb, value_from_pb
from mxgateway._retry import TRANSIENT_CODES, Reconnect, check_budget
from mxgateway._rpc import translate_rpc_error
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.types import (
    AcknowledgeResult,
    ActiveAlarm,
    AlarmConditionState,
    AlarmFeedResync,
    AlarmProviderMode,
    AlarmProviderStatus,
    AlarmResyncClear,
    AlarmSnapshotComplete,
    AlarmTransition,
    AlarmTransitionKind,
)

if TYPE_CHECKING:
    from mxgateway._client import GatewayClient

__all__ = [
    "AlarmFeedItem",
    "AlarmView",
    "acknowledge_result_from_pb",
    "active_alarm_from_pb",
    "feed_item_from_pb",
    "follow_alarm_feed",
]

logger = logging.getLogger(__name__)

AlarmFeedItem = (
    ActiveAlarm
    | AlarmSnapshotComplete
    | AlarmTransition
    | AlarmProviderStatus
    | AlarmFeedResync
    | AlarmResyncClear
)
"""One item of the central alarm feed (the last two only after a reconnect)."""

_NORMAL = AlarmConditionState.UNSPECIFIED  # the enum has no value for "not in alarm"
_RAISING = (AlarmTransitionKind.RAISE, AlarmTransitionKind.RETRIGGER)
_OVERFLOW = "EventQueueOverflow"


def _enum(enum_type: Any, value: int) -> Any:
    try:
        return enum_type(value)
    except ValueError:
        return value


def _ts(message: Any, field: str) -> int | None:
    if not message.HasField(field):
        return None
    ts = getattr(message, field)
    return int(ts.seconds) * 1_000_000_000 + int(ts.nanos)


def active_alarm_from_pb(snapshot: pb.ActiveAlarmSnapshot) -> ActiveAlarm:
    """An ActiveAlarmSnapshot message as an ActiveAlarm struct."""
    return ActiveAlarm(
        alarm_full_reference=snapshot.alarm_full_reference,
        source_object_reference=snapshot.source_object_reference,
        alarm_type_name=snapshot.alarm_type_name,
        severity=snapshot.severity,
        current_state=_enum(AlarmConditionState, snapshot.current_state),
        category=snapshot.category,
        description=snapshot.description,
        original_raise_timestamp_ns=_ts(snapshot, "original_raise_timestamp"),
        last_transition_timestamp_ns=_ts(snapshot, "last_transition_timestamp"),
        operator_user=snapshot.operator_user,
        operator_comment=snapshot.operator_comment,
        current_value=(
            value_from_pb(snapshot.current_value) if snapshot.HasField("current_value") else None
        ),
        limit_value=(
            value_from_pb(snapshot.limit_value) if snapshot.HasField("limit_value") else None
        ),
        degraded=snapshot.degraded,
        area=snapshot.area,
    )


def feed_item_from_pb(
    message: pb.AlarmFeedMessage,
) -> ActiveAlarm | AlarmSnapshotComplete | AlarmTransition | AlarmProviderStatus | None:
    """One AlarmFeedMessage as its typed item (None for an empty message)."""
    arm = message.WhichOneof("payload")
    if arm == "active_alarm":
        return active_alarm_from_pb(message.active_alarm)
    if arm == "snapshot_complete":
        return AlarmSnapshotComplete(message.snapshot_complete.active_alarm_count)
    if arm == "transition":
        return alarm_transition_from_pb(message.transition)
    if arm == "provider_status":
        status = message.provider_status
        return AlarmProviderStatus(
            mode=_enum(AlarmProviderMode, status.mode),
            degraded=status.degraded,
            reason=status.reason,
            since_ns=_ts(status, "since"),
        )
    return None


def acknowledge_result_from_pb(reply: pb.AcknowledgeAlarmReply) -> AcknowledgeResult:
    """An AcknowledgeAlarmReply as an AcknowledgeResult struct."""
    return AcknowledgeResult(
        alarm_full_reference=reply.alarm_full_reference,
        resulting_state=_enum(AlarmConditionState, reply.resulting_state),
        hresult=reply.hresult,
        statuses=tuple(status_from_pb(s) for s in reply.statuses),
    )


# -- the consumer's view, and the difference a fresh snapshot makes --------------------------


class _Held:
    """What the consumer last learned of one alarm: its state, its occurrence, the item."""

    __slots__ = ("item", "raised_ns", "state")

    def __init__(
        self, state: int, raised_ns: int | None, item: ActiveAlarm | AlarmTransition
    ) -> None:
        self.state = state
        self.raised_ns = raised_ns
        self.item = item


class AlarmView:
    """The alarms a feed's consumer holds as active (every state but normal), built only from
    the items it was given: snapshot and resync ``ActiveAlarm`` items, live transitions (the
    state they carry: RAISE/RETRIGGER make an alarm active, a CLEAR or ACKNOWLEDGE that ends
    in the normal state removes it) and ``AlarmResyncClear`` items.
    """

    __slots__ = ("_held",)

    def __init__(self) -> None:
        self._held: dict[str, _Held] = {}

    def __len__(self) -> int:
        return len(self._held)

    def states(self) -> dict[str, int]:
        """Reference → the state the consumer holds, for every alarm it holds as active."""
        return {reference: held.state for reference, held in self._held.items()}

    def note(self, item: AlarmFeedItem) -> None:
        """Record an item as given to the consumer."""
        if isinstance(item, ActiveAlarm):
            self._put(item.alarm_full_reference, item.current_state, item)
        elif isinstance(item, AlarmTransition):
            state = item.current_state
            if state == _NORMAL and item.transition_kind in _RAISING:
                state = AlarmConditionState.ACTIVE  # a gateway that left current_state unset
            self._put(item.alarm_full_reference, state, item)
        elif isinstance(item, AlarmResyncClear):
            self._held.pop(item.alarm_full_reference, None)

    def _put(self, reference: str, state: int, item: ActiveAlarm | AlarmTransition) -> None:
        if state == _NORMAL:
            self._held.pop(reference, None)
        else:
            self._held[reference] = _Held(state, item.original_raise_timestamp_ns, item)

    def reconcile(
        self, snapshot: list[ActiveAlarm], now_ns: int
    ) -> tuple[list[AlarmResyncClear], list[ActiveAlarm], int]:
        """What the consumer must be told so that it holds ``snapshot``: the clears (in the
        order it was given the alarms), then the alarms that appeared or changed (in snapshot
        order), and how many of the latter changed (the rest appeared). Nothing is recorded:
        ``note`` each item as it is given."""
        current: dict[str, ActiveAlarm] = {}
        for alarm in snapshot:
            if alarm.current_state != _NORMAL:
                current.setdefault(alarm.alarm_full_reference, alarm)
        clears: list[AlarmResyncClear] = []
        for reference, held in self._held.items():
            now = current.get(reference)
            if now is None or _new_occurrence(held, now):
                clears.append(_clear_item(reference, held, now_ns))
        updates: list[ActiveAlarm] = []
        changed = 0
        for reference, alarm in current.items():
            known = self._held.get(reference)
            if known is None or _new_occurrence(known, alarm):
                updates.append(alarm)
            elif known.state != alarm.current_state:
                updates.append(alarm)
                changed += 1
        return clears, updates, changed


def _new_occurrence(held: _Held, alarm: ActiveAlarm) -> bool:
    """The alarm ended and was raised again: another original raise time (when both know it)."""
    raised = alarm.original_raise_timestamp_ns
    return held.raised_ns is not None and raised is not None and raised != held.raised_ns


def _clear_item(reference: str, held: _Held, now_ns: int) -> AlarmResyncClear:
    item = held.item
    return AlarmResyncClear(
        alarm_full_reference=reference,
        source_object_reference=item.source_object_reference,
        alarm_type_name=item.alarm_type_name,
        severity=item.severity,
        category=item.category,
        description=item.description,
        previous_state=_enum(AlarmConditionState, held.state),
        original_raise_timestamp_ns=held.raised_ns,
        resync_timestamp_ns=now_ns,
    )


# -- the feed that resumes -------------------------------------------------------------------


class _Outage:
    """From the loss of the feed to the next complete snapshot."""

    __slots__ = ("attempts", "reason", "since_monotonic", "since_ns")

    def __init__(self) -> None:
        self.since_ns = time.time_ns()
        self.since_monotonic = time.monotonic()
        self.attempts = 0
        self.reason = ""


def _resumable(error: grpc.aio.AioRpcError) -> bool:
    code = error.code()
    if code in TRANSIENT_CODES:
        return True
    # A consumer too slow for the gateway's queue: the fresh snapshot of a reconnect repairs
    # exactly what the overflow lost, which the event streams cannot do.
    return code == grpc.StatusCode.RESOURCE_EXHAUSTED and _OVERFLOW in (error.details() or "")


def follow_alarm_feed(
    client: GatewayClient,
    filter_prefix: str = "",
    *,
    client_correlation_id: str = "",
    resume: bool = True,
    retry_budget_s: float = 30.0,
    on_trouble: Callable[[str | None], None] | None = None,
) -> AsyncIterator[AlarmFeedItem]:
    """The feed behind ``GatewayClient.stream_alarms`` (arguments checked now, not at the
    first ``anext``)."""
    check_budget("retry_budget_s", retry_budget_s)
    request = pb.StreamAlarmsRequest(
        alarm_filter_prefix=filter_prefix, client_correlation_id=client_correlation_id
    )
    return _feed(
        client, request, resume, Reconnect("alarm feed", retry_budget_s, on_trouble=on_trouble)
    )


async def _feed(
    client: GatewayClient,
    request: pb.StreamAlarmsRequest,
    resume: bool,
    reconnect: Reconnect,
) -> AsyncIterator[AlarmFeedItem]:
    view = AlarmView()
    status: AlarmProviderStatus | None = None  # the last one given
    delivered = False  # anything given: from now on a reconnect reconciles
    outage: _Outage | None = None
    while True:
        client._live_channel()  # a closed client cannot stream
        if outage is not None:
            outage.attempts += 1
        resync = delivered
        snapshot: list[ActiveAlarm] = []
        held_back: list[AlarmFeedItem] = []  # anything the gateway sends before its snapshot ends
        synced = not resync
        check_status = resync  # the first provider status after a reconnect: only if changed
        stream = client._stub.StreamAlarms(request, metadata=client._metadata)
        try:
            async for message in stream:
                item = feed_item_from_pb(message)
                if item is None:
                    continue
                if not synced:
                    if isinstance(item, ActiveAlarm):
                        snapshot.append(item)
                    elif isinstance(item, AlarmSnapshotComplete):
                        synced = True
                        reconnect.healthy()
                        assert outage is not None
                        for out in _resync(view, snapshot, item, outage):
                            view.note(out)
                            yield out
                        outage = None
                        for out in held_back:
                            if check_status and isinstance(out, AlarmProviderStatus):
                                check_status = False
                                if out == status:
                                    continue
                                status = out
                            view.note(out)
                            yield out
                    else:
                        held_back.append(item)
                    continue
                if isinstance(item, AlarmSnapshotComplete):
                    reconnect.healthy()
                    outage = None
                elif isinstance(item, AlarmProviderStatus):
                    if check_status:
                        check_status = False
                        if item == status:
                            continue
                    status = item
                view.note(item)
                delivered = True
                yield item
            if not resume:
                return
            reason = "stream ended by the gateway"
        except grpc.aio.AioRpcError as error:
            if not resume or client.closed or not _resumable(error):
                raise translate_rpc_error(error, "StreamAlarms") from None
            details = error.details()
            reason = f"{error.code().name}: {details}" if details else error.code().name
        finally:
            stream.cancel()
        if outage is None:
            outage = _Outage()
            logger.warning("alarm feed lost (%s); reconnecting", reason)
        outage.reason = reason
        await reconnect.wait(reason)


def _resync(
    view: AlarmView,
    snapshot: list[ActiveAlarm],
    complete: AlarmSnapshotComplete,
    outage: _Outage,
) -> Iterator[AlarmFeedItem]:
    """The marker and the differences after a reconnect's snapshot is complete."""
    clears, updates, changed = view.reconcile(snapshot, time.time_ns())
    marker = AlarmFeedResync(
        reason=outage.reason,
        down_since_ns=outage.since_ns,
        outage_ns=int((time.monotonic() - outage.since_monotonic) * 1e9),
        attempts=outage.attempts,
        active_alarm_count=complete.active_alarm_count,
        appeared=len(updates) - changed,
        changed=changed,
        cleared=len(clears),
    )
    logger.info(
        "alarm feed back after %.3f s: %d appeared, %d changed, %d cleared",
        marker.outage_ns / 1e9,
        marker.appeared,
        marker.changed,
        marker.cleared,
    )
    yield marker
    yield from clears
    yield from updates
