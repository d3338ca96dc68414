"""The simulator's central alarm feed: alarms raised and cleared by limits on simulated values.

Every alarm attribute of the Galaxy (:meth:`Galaxy.alarm_references`) is an alarm whose full
reference is ``Tag.Attr``. The value generators report each new value to
:meth:`AlarmManager.observe`; a value above the attribute's limit (a true value for a boolean
alarm) raises the alarm, a value at or below it clears it:

=================  ===================  ==================  ===========================
state              value over limit     value back          acknowledged
=================  ===================  ==================  ===========================
normal (none)      RAISE → ACTIVE       —                   OK, nothing to do
ACTIVE             —                    CLEAR → INACT_UNACK ACKNOWLEDGE → ACTIVE_ACKED
ACTIVE_ACKED       —                    CLEAR → normal      OK, already acknowledged
INACTIVE_UNACKED   RETRIGGER → ACTIVE   —                   ACKNOWLEDGE → normal
=================  ===================  ==================  ===========================

"Normal" is reported as AlarmConditionState UNSPECIFIED (the enum has no value for it). The
active alarms (every state but normal) are kept in raise order. Each StreamAlarms subscriber
has a bounded queue; when it overflows the stream ends with RESOURCE_EXHAUSTED
("EventQueueOverflow"). Call everything from the event loop's thread.
"""

from __future__ import annotations

import asyncio
import math
import time
import zlib
from collections import deque
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeAlias, cast

import grpc
from google.protobuf import timestamp_pb2

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim._galaxy import AttributeInfo, Galaxy

if TYPE_CHECKING:
    from grpc import aio

    Context: TypeAlias = aio.ServicerContext[Any, Any]

__all__ = ["AlarmManager"]

_NS: Final = 1_000_000_000
_S = pb.AlarmConditionState
_K = pb.AlarmTransitionKind
_NORMAL: Final = _S.ALARM_CONDITION_STATE_UNSPECIFIED
_ACTIVE: Final = _S.ALARM_CONDITION_STATE_ACTIVE
_ACKED: Final = _S.ALARM_CONDITION_STATE_ACTIVE_ACKED
_UNACKED: Final = _S.ALARM_CONDITION_STATE_INACTIVE_UNACKED
_T = pb.MxDataType
_CATEGORIES: Final = ("Process", "Equipment", "Safety", "System")
# HRESULTs as the int32 the wire carries.
_E_INVALIDARG: Final = 0x80070057 - (1 << 32)
_OVERFLOW: Final = "EventQueueOverflow"


def _timestamp(ns: int) -> timestamp_pb2.Timestamp:
    seconds, nanos = divmod(ns, _NS)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def _status(success: bool, category: pb.MxStatusCategory, text: str = "") -> pb.MxStatusProxy:
    # Native numbers are the enum's minus one (OK = 0); detected by the responding object.
    source = pb.MxStatusSource.MX_STATUS_SOURCE_RESPONDING_AUTOMATION_OBJECT
    return pb.MxStatusProxy(
        success=1 if success else 0,
        category=category,
        detected_by=source,
        raw_category=int(category) - 1,
        raw_detected_by=int(source) - 1,
        diagnostic_text=text,
    )


def _mx_value(value: object, data_type: int) -> pb.MxValue:
    """An alarm attribute's value (boolean or number) as an MxValue."""
    msg = pb.MxValue(data_type=cast(pb.MxDataType, data_type), raw_data_type=data_type - 1)
    if value is None:
        msg.is_null = True
        msg.variant_type = "VT_EMPTY"
    elif data_type == _T.MX_DATA_TYPE_BOOLEAN:
        msg.bool_value = bool(value)
        msg.variant_type = "VT_BOOL"
    elif data_type == _T.MX_DATA_TYPE_INTEGER and isinstance(value, int | float):
        msg.int32_value = int(value)
        msg.variant_type = "VT_I4"
    elif data_type == _T.MX_DATA_TYPE_FLOAT and isinstance(value, int | float):
        msg.float_value = float(value)
        msg.variant_type = "VT_R4"
    elif isinstance(value, int | float):
        msg.double_value = float(value)
        msg.variant_type = "VT_R8"
    else:
        msg.string_value = str(value)
        msg.variant_type = "VT_BSTR"
    return msg


def _over(value: object, limit: float) -> bool | None:
    """Whether ``value`` is beyond ``limit``; None for a value that is not a number."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and not (isinstance(value, float) and math.isnan(value)):
        return value > limit
    return None


@dataclass(slots=True)
class _Alarm:
    reference: str
    source: str
    attribute: str
    data_type: int
    limit: float
    type_name: str
    severity: int
    category: str
    description: str
    area: str
    state: pb.AlarmConditionState = _NORMAL
    raise_ns: int = 0
    last_ns: int = 0
    operator_user: str = ""
    operator_comment: str = ""
    value: object = None


class _Subscriber:
    """One StreamAlarms call: its prefix, a bounded queue and a wake-up."""

    __slots__ = ("capacity", "closed", "overflowed", "prefix", "queue", "ready")

    def __init__(self, prefix: str, capacity: int) -> None:
        self.prefix = prefix
        self.capacity = capacity
        self.queue: deque[pb.AlarmFeedMessage] = deque()
        self.overflowed = False
        self.closed = False
        self.ready = asyncio.Event()

    def close(self) -> None:
        self.closed = True
        self.ready.set()

    def offer(self, message: pb.AlarmFeedMessage) -> None:
        if self.overflowed or self.closed:
            return
        if len(self.queue) >= self.capacity:
            self.overflowed = True
            self.queue.clear()
        else:
            self.queue.append(message)
        self.ready.set()

    async def next(self) -> pb.AlarmFeedMessage | None:
        """The next message; None once the queue has overflowed or the feed is closed (the
        messages queued before a close are delivered first)."""
        while not self.queue and not self.overflowed and not self.closed:
            self.ready.clear()
            await self.ready.wait()
        if self.overflowed or not self.queue:
            return None
        return self.queue.popleft()


class AlarmManager:
    """Alarm state of a :class:`Galaxy`, the StreamAlarms feed, QueryActiveAlarms and
    AcknowledgeAlarm.

    The three rpc handlers do no authentication: the caller registers them behind its own
    check. ``queue_capacity`` bounds each feed subscriber's queue.
    """

    def __init__(self, galaxy: Galaxy, *, queue_capacity: int = 10_000) -> None:
        self._galaxy = galaxy
        self._capacity = queue_capacity
        self._alarms: dict[str, _Alarm] = {}  # canonical reference, lower-cased → alarm
        self._memo: dict[str, _Alarm] = {}  # reference as callers spell it → alarm
        self._active: dict[str, _Alarm] = {}  # not normal, in raise order
        self._subscribers: set[_Subscriber] = set()
        self._listeners: list[Callable[[pb.OnAlarmTransitionEvent], None]] = []
        self._degraded = False
        self._reason = ""
        self._since_ns = time.time_ns()
        self._closed = False

    # ----- state -----

    def _alarm(self, reference: str) -> _Alarm | None:
        alarm = self._memo.get(reference)
        if alarm is not None:
            return alarm
        info = self._galaxy.resolve(reference)
        if info is None or info.alarm_limit is None or info.is_array:
            return None
        key = info.reference.lower()
        alarm = self._alarms.get(key)
        if alarm is None:
            alarm = self._define(info, key)
            self._alarms[key] = alarm
        if len(self._memo) < 1_000_000:
            self._memo[reference] = alarm
        return alarm

    def _define(self, info: AttributeInfo, key: str) -> _Alarm:
        assert info.alarm_limit is not None
        h = zlib.crc32(f"{self._galaxy.seed}:{key}".encode())
        discrete = info.data_type == _T.MX_DATA_TYPE_BOOLEAN
        limit = info.alarm_limit
        if discrete:
            description = f"{info.attribute_name} is on"
        else:
            description = f"{info.attribute_name} above {limit:g}"
        return _Alarm(
            reference=info.reference,
            source=info.tag_name,
            attribute=info.attribute_name,
            data_type=info.data_type,
            limit=limit,
            type_name="DSC" if discrete else "HI",
            severity=1 + h % 999,
            category=_CATEGORIES[(h >> 12) % len(_CATEGORIES)],
            description=description,
            area=self._galaxy.area_tag_name(info.tag_name),
        )

    def observe(self, reference: str, value: object, timestamp_ns: int) -> None:
        """A new simulated value of ``reference``: raise, clear or retrigger its alarm.

        Ignored for references that are not alarm attributes and for non-numeric values.
        """
        alarm = self._alarm(reference)
        if alarm is None:
            return
        over = _over(value, alarm.limit)
        if over is None:
            return
        alarm.value = value
        state = alarm.state
        if over:
            if state == _NORMAL:
                alarm.state = _ACTIVE
                alarm.raise_ns = timestamp_ns
                alarm.operator_user = alarm.operator_comment = ""
                self._active[alarm.reference.lower()] = alarm
                self._transition(alarm, _K.ALARM_TRANSITION_KIND_RAISE, timestamp_ns)
            elif state == _UNACKED:
                alarm.state = _ACTIVE
                self._transition(alarm, _K.ALARM_TRANSITION_KIND_RETRIGGER, timestamp_ns)
        elif state == _ACTIVE:
            alarm.state = _UNACKED
            self._transition(alarm, _K.ALARM_TRANSITION_KIND_CLEAR, timestamp_ns)
        elif state == _ACKED:
            alarm.state = _NORMAL
            self._active.pop(alarm.reference.lower(), None)
            self._transition(alarm, _K.ALARM_TRANSITION_KIND_CLEAR, timestamp_ns)

    def acknowledge(self, reference: str, comment: str, operator: str) -> pb.AcknowledgeAlarmReply:
        """Acknowledge an alarm: ACTIVE → ACTIVE_ACKED, INACTIVE_UNACKED → normal (reported as
        UNSPECIFIED), each with an ACKNOWLEDGE transition to the feed. An unknown reference is
        an MXACCESS_FAILURE reply; an alarm that needs no acknowledgement is OK with a warning.
        """
        alarm = self._alarm(reference)
        if alarm is None:
            return pb.AcknowledgeAlarmReply(
                protocol_status=pb.ProtocolStatus(
                    code=pb.ProtocolStatusCode.PROTOCOL_STATUS_CODE_MXACCESS_FAILURE,
                    message=f"{reference!r} is not an alarm",
                ),
                hresult=_E_INVALIDARG,
                statuses=[
                    _status(
                        False,
                        pb.MxStatusCategory.MX_STATUS_CATEGORY_CONFIGURATION_ERROR,
                        f"unknown alarm reference {reference!r}",
                    )
                ],
                alarm_full_reference=reference,
            )
        now = time.time_ns()
        state = alarm.state
        if state in (_ACTIVE, _UNACKED):
            alarm.operator_user = operator
            alarm.operator_comment = comment
            if state == _ACTIVE:
                alarm.state = _ACKED
            else:
                alarm.state = _NORMAL
                self._active.pop(alarm.reference.lower(), None)
            self._transition(alarm, _K.ALARM_TRANSITION_KIND_ACKNOWLEDGE, now)
            status = _status(True, pb.MxStatusCategory.MX_STATUS_CATEGORY_OK)
        else:
            text = "already acknowledged" if state == _ACKED else "alarm is not active"
            status = _status(True, pb.MxStatusCategory.MX_STATUS_CATEGORY_WARNING, text)
        return pb.AcknowledgeAlarmReply(
            protocol_status=pb.ProtocolStatus(code=pb.ProtocolStatusCode.PROTOCOL_STATUS_CODE_OK),
            hresult=0,
            statuses=[status],
            alarm_full_reference=alarm.reference,
            resulting_state=alarm.state,
        )

    def provider_failover(self) -> None:
        """Simulate a failover of the alarm provider: every feed gets a degraded
        provider_status, and later snapshots and transitions carry ``degraded``.
        """
        self._degraded = True
        self._reason = "alarm provider failed over to the standby AlarmMgr"
        self._since_ns = time.time_ns()
        message = pb.AlarmFeedMessage(provider_status=self._provider_status())
        for subscriber in list(self._subscribers):
            subscriber.offer(message)

    def close(self) -> None:
        """End every open StreamAlarms feed cleanly (status OK) after what it has queued, and
        every later one right after its snapshot (the simulator is stopping).
        """
        self._closed = True
        for subscriber in list(self._subscribers):
            subscriber.close()

    def reopen(self) -> None:
        """Serve feeds again after :meth:`close` (the simulator restarted); the alarms kept
        their states, as the plant did."""
        self._closed = False

    def add_transition_listener(
        self, listener: Callable[[pb.OnAlarmTransitionEvent], None]
    ) -> None:
        """Call ``listener`` with every transition (e.g. to forward ON_ALARM_TRANSITION events)."""
        self._listeners.append(listener)

    def sub_attribute_value(self, reference: str) -> object | None:
        """The value of an alarm sub-attribute (``.InAlarm``, ``.Acked``, ``.AckMsg``,
        ``.Priority``) from the alarm's state; None when ``reference`` is not one.
        """
        base, sep, sub = reference.rpartition(".")
        if not sep:
            return None
        alarm = self._alarm(base)
        if alarm is None:
            return None
        sub = sub.lower()
        if sub == "inalarm":
            return alarm.state in (_ACTIVE, _ACKED)
        if sub == "acked":
            return alarm.state not in (_ACTIVE, _UNACKED)
        if sub == "ackmsg":
            return alarm.operator_comment
        if sub == "priority":
            return alarm.severity
        return None

    @property
    def subscriber_count(self) -> int:
        """Number of open StreamAlarms feeds."""
        return len(self._subscribers)

    def active_alarms(self, prefix: str = "") -> list[pb.ActiveAlarmSnapshot]:
        """Snapshots of the active alarms (raise order) whose reference starts with ``prefix``
        (case-insensitive).
        """
        prefix = prefix.lower()
        return [self._snapshot(a) for k, a in self._active.items() if k.startswith(prefix)]

    # ----- messages -----

    def _snapshot(self, alarm: _Alarm) -> pb.ActiveAlarmSnapshot:
        return pb.ActiveAlarmSnapshot(
            alarm_full_reference=alarm.reference,
            source_object_reference=alarm.source,
            alarm_type_name=alarm.type_name,
            severity=alarm.severity,
            current_state=alarm.state,
            category=alarm.category,
            description=alarm.description,
            original_raise_timestamp=_timestamp(alarm.raise_ns),
            last_transition_timestamp=_timestamp(alarm.last_ns),
            operator_user=alarm.operator_user,
            operator_comment=alarm.operator_comment,
            current_value=_mx_value(alarm.value, alarm.data_type),
            limit_value=self._limit_value(alarm),
            degraded=self._degraded,
            area=alarm.area,
        )

    @staticmethod
    def _limit_value(alarm: _Alarm) -> pb.MxValue:
        if alarm.data_type == _T.MX_DATA_TYPE_BOOLEAN:
            return _mx_value(True, alarm.data_type)
        return _mx_value(alarm.limit, alarm.data_type)

    def _provider_status(self) -> pb.AlarmProviderStatus:
        return pb.AlarmProviderStatus(
            mode=pb.AlarmProviderMode.ALARM_PROVIDER_MODE_ALARMMGR,
            degraded=self._degraded,
            reason=self._reason,
            since=_timestamp(self._since_ns),
        )

    def _transition(self, alarm: _Alarm, kind: pb.AlarmTransitionKind, ts_ns: int) -> None:
        alarm.last_ns = ts_ns
        event = pb.OnAlarmTransitionEvent(
            alarm_full_reference=alarm.reference,
            source_object_reference=alarm.source,
            alarm_type_name=alarm.type_name,
            transition_kind=kind,
            severity=alarm.severity,
            original_raise_timestamp=_timestamp(alarm.raise_ns),
            transition_timestamp=_timestamp(ts_ns),
            operator_user=alarm.operator_user,
            operator_comment=alarm.operator_comment,
            category=alarm.category,
            description=alarm.description,
            current_value=_mx_value(alarm.value, alarm.data_type),
            limit_value=self._limit_value(alarm),
            degraded=self._degraded,
            current_state=alarm.state,
        )
        if self._subscribers:
            key = alarm.reference.lower()
            message = pb.AlarmFeedMessage(transition=event)
            for subscriber in list(self._subscribers):
                if key.startswith(subscriber.prefix):
                    subscriber.offer(message)
        for listener in self._listeners:
            listener(event)

    # ----- rpc handlers (no auth here: the caller checks first) -----

    async def stream_alarms(
        self, request: pb.StreamAlarmsRequest, context: Context
    ) -> AsyncIterator[pb.AlarmFeedMessage]:
        """StreamAlarms: the active alarms, one snapshot_complete, one provider_status, then
        live transitions (and provider_status again on failover) until the caller cancels or
        :meth:`close`.
        """
        subscriber = _Subscriber(request.alarm_filter_prefix.lower(), self._capacity)
        if self._closed:
            subscriber.close()
        # Subscribe and take the snapshot with no await between: no transition is lost or
        # delivered twice.
        self._subscribers.add(subscriber)
        try:
            snapshots = self.active_alarms(request.alarm_filter_prefix)
            status = self._provider_status()
            for snapshot in snapshots:
                yield pb.AlarmFeedMessage(active_alarm=snapshot)
            yield pb.AlarmFeedMessage(
                snapshot_complete=pb.SnapshotComplete(active_alarm_count=len(snapshots))
            )
            yield pb.AlarmFeedMessage(provider_status=status)
            while True:
                message = await subscriber.next()
                if message is None:
                    if subscriber.overflowed:
                        await context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, _OVERFLOW)
                    return
                yield message
        finally:
            self._subscribers.discard(subscriber)

    async def query_active_alarms(
        self, request: pb.QueryActiveAlarmsRequest, context: Context
    ) -> AsyncIterator[pb.ActiveAlarmSnapshot]:
        """QueryActiveAlarms: one snapshot per active alarm matching the prefix, then the end."""
        for snapshot in self.active_alarms(request.alarm_filter_prefix):
            yield snapshot

    async def acknowledge_alarm(
        self, request: pb.AcknowledgeAlarmRequest, context: Context
    ) -> pb.AcknowledgeAlarmReply:
        """AcknowledgeAlarm: INVALID_REQUEST without a reference, else :meth:`acknowledge`."""
        reference = request.alarm_full_reference.strip()
        if not reference:
            return pb.AcknowledgeAlarmReply(
                protocol_status=pb.ProtocolStatus(
                    code=pb.ProtocolStatusCode.PROTOCOL_STATUS_CODE_INVALID_REQUEST,
                    message="alarm_full_reference is required",
                ),
                hresult=_E_INVALIDARG,
            )
        return self.acknowledge(reference, request.operator_comment, request.operator_user)
