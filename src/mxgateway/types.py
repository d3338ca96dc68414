"""What a consumer of mxgateway sees: enums and frozen msgspec structs.

The codec (compiled ``mxgateway._speedups`` or its twin ``mxgateway._pycodec``) decodes wire
bytes straight into these structs. They are frozen, and ``gc=False`` because none of them can
take part in a reference cycle (their fields hold only immutable values, tuples of structs, and
lists of plain values), which keeps the garbage collector away from a stream of millions.

Timestamps are integer nanoseconds since the Unix epoch (``None`` when the field is absent);
the ``*_timestamp`` properties turn them into aware UTC datetimes on demand, so the hot path
never builds a datetime.

Enum fields hold the IntEnum member for every value the contract names. proto3 enums are open:
a value this version does not know arrives as a plain ``int`` rather than failing the decode.
The enums are written out here for readers and type checkers; a test checks them against the
generated descriptors.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

import msgspec

__all__ = [
    "TIMESTAMP_ABSENT",
    "AcknowledgeResult",
    "ActiveAlarm",
    "AlarmConditionState",
    "AlarmFeedResync",
    "AlarmProviderMode",
    "AlarmProviderStatus",
    "AlarmResyncClear",
    "AlarmSnapshotComplete",
    "AlarmTransition",
    "AlarmTransitionKind",
    "BufferedSample",
    "EventBody",
    "MxCommandKind",
    "MxDataType",
    "MxEvent",
    "MxEventFamily",
    "MxSparseArray",
    "MxStatus",
    "MxStatusCategory",
    "MxStatusSource",
    "MxValue",
    "ProtocolStatusCode",
    "ReadResult",
    "RecoveryFailure",
    "ReplayGap",
    "SessionItem",
    "SessionRecovered",
    "SessionState",
    "TagChange",
    "TagValue",
    "ValueKind",
    "WriteOutcome",
    "alarm_is_acked",
    "alarm_is_active",
    "ns_to_datetime",
]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ns_to_datetime(ns: int | None) -> datetime | None:
    """Integer nanoseconds since the Unix epoch to an aware UTC datetime (microseconds kept)."""
    if ns is None:
        return None
    return _EPOCH + timedelta(microseconds=ns // 1000)


class ProtocolStatusCode(enum.IntEnum):
    """Outcome of a gateway call at the protocol level (ProtocolStatus.code)."""

    UNSPECIFIED = 0
    OK = 1
    INVALID_REQUEST = 2
    SESSION_NOT_FOUND = 3
    SESSION_NOT_READY = 4
    WORKER_UNAVAILABLE = 5
    TIMEOUT = 6
    CANCELED = 7
    PROTOCOL_VIOLATION = 8
    MXACCESS_FAILURE = 9


class SessionState(enum.IntEnum):
    """Life cycle of a gateway session."""

    UNSPECIFIED = 0
    STARTING = 1
    READY = 2
    CLOSING = 3
    CLOSED = 4
    FAULTED = 5


class MxDataType(enum.IntEnum):
    """MXAccess data type (native MXAccess number + 1; the native one is ``raw_data_type``)."""

    UNSPECIFIED = 0
    NO_DATA = 1
    BOOLEAN = 2
    INTEGER = 3
    FLOAT = 4
    DOUBLE = 5
    STRING = 6
    TIME = 7
    ELAPSED_TIME = 8
    REFERENCE = 9
    STATUS = 10
    DATA_TYPE_ENUM = 11
    SECURITY_CLASSIFICATION_ENUM = 12
    DATA_QUALITY = 13
    QUALIFIED_ENUM = 14
    QUALIFIED_STRUCT = 15
    INTERNATIONALIZED_STRING = 16
    BIG_STRING = 17
    UNKNOWN = 18


class MxStatusCategory(enum.IntEnum):
    """Category of an MXAccess status (native number in ``raw_category``)."""

    UNSPECIFIED = 0
    OK = 1
    PENDING = 2
    WARNING = 3
    COMMUNICATION_ERROR = 4
    CONFIGURATION_ERROR = 5
    OPERATIONAL_ERROR = 6
    SECURITY_ERROR = 7
    SOFTWARE_ERROR = 8
    OTHER_ERROR = 9
    UNKNOWN = 10


class MxStatusSource(enum.IntEnum):
    """Who detected an MXAccess status (native number in ``raw_detected_by``)."""

    UNSPECIFIED = 0
    REQUESTING_LMX = 1
    RESPONDING_LMX = 2
    REQUESTING_NMX = 3
    RESPONDING_NMX = 4
    REQUESTING_AUTOMATION_OBJECT = 5
    RESPONDING_AUTOMATION_OBJECT = 6
    UNKNOWN = 7


class MxEventFamily(enum.IntEnum):
    """Which MXAccess callback an event comes from."""

    UNSPECIFIED = 0
    ON_DATA_CHANGE = 1
    ON_WRITE_COMPLETE = 2
    OPERATION_COMPLETE = 3
    ON_BUFFERED_DATA_CHANGE = 4
    ON_ALARM_TRANSITION = 5


class MxCommandKind(enum.IntEnum):
    """Every MXAccess command the gateway's Invoke carries."""

    UNSPECIFIED = 0
    REGISTER = 1
    UNREGISTER = 2
    ADD_ITEM = 3
    ADD_ITEM2 = 4
    REMOVE_ITEM = 5
    ADVISE = 6
    ADVISE_SUPERVISORY = 7
    UN_ADVISE = 8
    WRITE = 9
    WRITE2 = 10
    WRITE_SECURED = 11
    WRITE_SECURED2 = 12
    AUTHENTICATE_USER = 13
    ARCHESTRA_USER_TO_ID = 14
    ADD_BUFFERED_ITEM = 15
    SET_BUFFERED_UPDATE_INTERVAL = 16
    SUSPEND = 17
    ACTIVATE = 18
    DRAIN_EVENTS = 19
    ADD_ITEM_BULK = 30
    ADVISE_ITEM_BULK = 31
    REMOVE_ITEM_BULK = 32
    UN_ADVISE_ITEM_BULK = 33
    SUBSCRIBE_BULK = 34
    UNSUBSCRIBE_BULK = 35
    WRITE_BULK = 36
    WRITE2_BULK = 37
    WRITE_SECURED_BULK = 38
    WRITE_SECURED2_BULK = 39
    READ_BULK = 40


class AlarmTransitionKind(enum.IntEnum):
    """What happened to an alarm."""

    UNSPECIFIED = 0
    RAISE = 1
    ACKNOWLEDGE = 2
    CLEAR = 3
    RETRIGGER = 4


class AlarmConditionState(enum.IntEnum):
    """State of an alarm condition, in the contract's names.

    ACTIVE is active and *unacknowledged*; ACTIVE_ACKED active and acknowledged;
    INACTIVE_UNACKED no longer active but not yet acknowledged. An alarm that is inactive and
    acknowledged has returned to normal: it is in no alarm state (UNSPECIFIED, e.g. as the
    ``resulting_state`` of acknowledging an INACTIVE_UNACKED alarm). ``alarm_is_active`` and
    ``alarm_is_acked`` say it plainly.
    """

    UNSPECIFIED = 0
    ACTIVE = 1
    ACTIVE_ACKED = 2
    INACTIVE_UNACKED = 3


def alarm_is_active(state: AlarmConditionState | int) -> bool:
    """True for ACTIVE (unacknowledged) and ACTIVE_ACKED."""
    return state in (AlarmConditionState.ACTIVE, AlarmConditionState.ACTIVE_ACKED)


def alarm_is_acked(state: AlarmConditionState | int) -> bool:
    """True for ACTIVE_ACKED, and for an alarm back to normal (inactive and acknowledged)."""
    return state in (AlarmConditionState.ACTIVE_ACKED, AlarmConditionState.UNSPECIFIED)


class AlarmProviderMode(enum.IntEnum):
    """How the gateway sources alarms."""

    UNSPECIFIED = 0
    ALARMMGR = 1
    SUBTAG = 2


EventBody = Literal[
    "",
    "on_data_change",
    "on_write_complete",
    "operation_complete",
    "on_buffered_data_change",
    "on_alarm_transition",
]
"""Which arm of MxEvent's ``body`` oneof was set (``""``: none)."""


class MxStatus(msgspec.Struct, frozen=True, gc=False):
    """One MXAccess status (MxStatusProxy). A reply or event may carry several."""

    success: int
    """1 ok, 0 failure (as COM)."""
    category: MxStatusCategory
    detected_by: MxStatusSource
    detail: int
    raw_category: int
    raw_detected_by: int
    diagnostic_text: str

    @property
    def ok(self) -> bool:
        """True when MXAccess reported success."""
        return self.success != 0


class MxSparseArray(msgspec.Struct, frozen=True, gc=False):
    """A write-only sparse array: the gateway expands it, unlisted indices get the default."""

    element_data_type: MxDataType
    total_length: int
    elements: tuple[tuple[int, Any], ...]
    """(index, native scalar value) pairs in wire order."""


class MxValue(msgspec.Struct, frozen=True, gc=False):
    """An MXAccess value: the native Python value plus its type and the raw extras.

    ``value`` is the set arm of the wire oneof as a Python value: bool, int, float, str,
    datetime (TIME), timedelta (ELAPSED_TIME), list (nested row-major by ``dimensions`` for
    arrays of rank 2+), MxSparseArray, or the ``raw_value`` bytes when no arm is set and
    raw_value is not empty (VT_RECORD pass-through); otherwise None.
    """

    value: Any
    data_type: MxDataType
    variant_type: str
    is_null: bool
    raw_diagnostic: str
    raw_data_type: int
    raw_value: bytes


class ReplayGap(msgspec.Struct, frozen=True, gc=False):
    """The resume asked for events older than the gateway's replay ring: these were lost."""

    requested_after_sequence: int
    oldest_available_sequence: int


class BufferedSample(msgspec.Struct, frozen=True, gc=False):
    """One sample of an ON_BUFFERED_DATA_CHANGE event."""

    value: MxValue | None
    quality: int
    source_timestamp_ns: int | None

    @property
    def source_timestamp(self) -> datetime | None:
        """``source_timestamp_ns`` as an aware UTC datetime."""
        return ns_to_datetime(self.source_timestamp_ns)


class AlarmTransition(msgspec.Struct, frozen=True, gc=False):
    """An alarm transition (OnAlarmTransitionEvent), in an event or the central alarm feed."""

    alarm_full_reference: str
    source_object_reference: str
    alarm_type_name: str
    transition_kind: AlarmTransitionKind
    severity: int
    original_raise_timestamp_ns: int | None
    transition_timestamp_ns: int | None
    operator_user: str
    operator_comment: str
    category: str
    description: str
    current_value: MxValue | None
    limit_value: MxValue | None
    degraded: bool
    current_state: AlarmConditionState

    @property
    def original_raise_timestamp(self) -> datetime | None:
        """``original_raise_timestamp_ns`` as an aware UTC datetime."""
        return ns_to_datetime(self.original_raise_timestamp_ns)

    @property
    def transition_timestamp(self) -> datetime | None:
        """``transition_timestamp_ns`` as an aware UTC datetime."""
        return ns_to_datetime(self.transition_timestamp_ns)

    @property
    def is_active(self) -> bool:
        """True while the alarm condition is active (acknowledged or not)."""
        return alarm_is_active(self.current_state)

    @property
    def is_acked(self) -> bool:
        """True once the alarm is acknowledged (active and acked, or back to normal)."""
        return alarm_is_acked(self.current_state)


class SessionItem(msgspec.Struct, frozen=True, gc=False):
    """An item of a session as the session knows it (``Session.items``): the handles the
    caller holds, its definition (``Tag.Attribute``) and how it is subscribed."""

    server_handle: int
    item_handle: int
    definition: str
    kind: Literal["add_item", "add_item2", "buffered"] = "add_item"
    context: str = ""
    advise: Literal["advise", "supervisory"] | None = None
    suspended: bool = False

    @property
    def advised(self) -> bool:
        """True while the item is advised (plain or supervisory)."""
        return self.advise is not None


class RecoveryFailure(msgspec.Struct, frozen=True, gc=False):
    """An item a session recovery could not restore (its handles stay the caller's)."""

    server_handle: int
    item_handle: int
    definition: str
    error: str


class SessionRecovered(msgspec.Struct, frozen=True, gc=False):
    """What a session recovery did: the gateway had lost ``old_session_id`` (a restart, an
    expired lease); the client opened ``new_session_id`` and replayed the session's state.

    The caller's server and item handles stay valid (the session maps them to the new ones,
    in commands and in events). Events the gateway produced after ``last_sequence`` of the
    old session and before the new session was advised are lost. ``failed`` lists the items
    that could not be restored.
    """

    old_session_id: str
    new_session_id: str
    last_sequence: int
    failed: tuple[RecoveryFailure, ...]
    reason: str


class MxEvent(msgspec.Struct, frozen=True, gc=False):
    """One MXAccess event, decoded from the wire without protobuf objects.

    The value fields (``value`` to ``raw_value``) are the event's MxValue flattened onto the
    event, so reading ``event.value`` costs no extra object; ``value`` is None and
    ``data_type`` UNSPECIFIED when the event carries no value. ``hresult`` is None when
    absent. ``body`` names the oneof arm that was set; ``samples`` and ``buffered_data_type``
    come from an ON_BUFFERED_DATA_CHANGE body and ``alarm_transition`` from an
    ON_ALARM_TRANSITION body.
    """

    session_id: str
    family: MxEventFamily
    worker_sequence: int
    server_handle: int
    item_handle: int
    value: Any
    data_type: MxDataType
    variant_type: str
    is_null: bool
    raw_diagnostic: str
    raw_data_type: int
    raw_value: bytes
    has_value: bool
    quality: int
    source_timestamp_ns: int | None
    statuses: tuple[MxStatus, ...]
    worker_timestamp_ns: int | None
    gateway_receive_timestamp_ns: int | None
    hresult: int | None
    raw_status: str
    replay_gap: ReplayGap | None
    body: EventBody
    buffered_data_type: MxDataType
    samples: tuple[BufferedSample, ...]
    alarm_transition: AlarmTransition | None
    session_recovered: SessionRecovered | None = None
    """Set only on the marker a recovering session's stream yields after it reopened the
    session (never on the wire; family UNSPECIFIED, worker_sequence 0, like a ReplayGap)."""
    tag: str | None = None
    """The item's definition (``Tag.Attribute``) when the session knows it (events of a
    ``Session``'s streams; never on the wire). The session's own string, not a copy."""

    @property
    def source_timestamp(self) -> datetime | None:
        """``source_timestamp_ns`` as an aware UTC datetime."""
        return ns_to_datetime(self.source_timestamp_ns)

    @property
    def worker_timestamp(self) -> datetime | None:
        """``worker_timestamp_ns`` as an aware UTC datetime."""
        return ns_to_datetime(self.worker_timestamp_ns)

    @property
    def gateway_receive_timestamp(self) -> datetime | None:
        """``gateway_receive_timestamp_ns`` as an aware UTC datetime."""
        return ns_to_datetime(self.gateway_receive_timestamp_ns)

    @property
    def is_good(self) -> bool:
        """True for OPC DA good quality (192..255)."""
        return (self.quality & 0xC0) == 0xC0

    @property
    def mx_value(self) -> MxValue | None:
        """The event's value fields as one MxValue (None when the event has no value)."""
        if not self.has_value:
            return None
        return MxValue(
            self.value,
            self.data_type,
            self.variant_type,
            self.is_null,
            self.raw_diagnostic,
            self.raw_data_type,
            self.raw_value,
        )


EMPTY_EVENT = MxEvent(
    session_id="",
    family=MxEventFamily.UNSPECIFIED,
    worker_sequence=0,
    server_handle=0,
    item_handle=0,
    value=None,
    data_type=MxDataType.UNSPECIFIED,
    variant_type="",
    is_null=False,
    raw_diagnostic="",
    raw_data_type=0,
    raw_value=b"",
    has_value=False,
    quality=0,
    source_timestamp_ns=None,
    statuses=(),
    worker_timestamp_ns=None,
    gateway_receive_timestamp_ns=None,
    hresult=None,
    raw_status="",
    replay_gap=None,
    body="",
    buffered_data_type=MxDataType.UNSPECIFIED,
    samples=(),
    alarm_transition=None,
)
"""An event that carries nothing: a base for ``msgspec.structs.replace`` (markers, tests)."""


TIMESTAMP_ABSENT: Final = -(2**63)
"""An absent timestamp in an EventColumns timestamp column (int64 nanoseconds): the value
numpy reads as ``NaT`` in ``datetime64[ns]`` and Arrow/pandas/polars exports turn into null."""


class ValueKind(enum.IntEnum):
    """Which value column of an EventColumns row holds its value (``value_kind``)."""

    ABSENT = 0
    """The event has no MxValue (``has_value`` False, ``value`` None)."""
    NONE = 1
    """An MxValue without a kind arm (``value`` None)."""
    BOOL = 2
    """``value_bool``."""
    INT = 3
    """``value_int`` (int32 or int64 arm)."""
    FLOAT = 4
    """``value_float`` (double, or float widened exactly)."""
    STRING = 5
    """``value_data[value_offsets[i]:value_offsets[i + 1]]`` (UTF-8)."""
    TIME = 6
    """``value_int``: the timestamp in nanoseconds since the epoch (``value`` is its datetime,
    floored to microseconds)."""
    ELAPSED = 7
    """``value_int``: the duration in nanoseconds (``value`` is its timedelta)."""
    OTHER = 255
    """The row's event did not fit the columns: it is in ``others``, whole."""


class ActiveAlarm(msgspec.Struct, frozen=True, gc=False):
    """An alarm active now (ActiveAlarmSnapshot), from the alarm feed or QueryActiveAlarms."""

    alarm_full_reference: str
    source_object_reference: str
    alarm_type_name: str
    severity: int
    """1..999, 1 most urgent."""
    current_state: AlarmConditionState
    category: str
    description: str
    original_raise_timestamp_ns: int | None
    last_transition_timestamp_ns: int | None
    operator_user: str
    operator_comment: str
    current_value: MxValue | None
    limit_value: MxValue | None
    degraded: bool
    area: str

    @property
    def original_raise_timestamp(self) -> datetime | None:
        """``original_raise_timestamp_ns`` as an aware UTC datetime."""
        return ns_to_datetime(self.original_raise_timestamp_ns)

    @property
    def last_transition_timestamp(self) -> datetime | None:
        """``last_transition_timestamp_ns`` as an aware UTC datetime."""
        return ns_to_datetime(self.last_transition_timestamp_ns)

    @property
    def is_active(self) -> bool:
        """True while the alarm condition is active (acknowledged or not)."""
        return alarm_is_active(self.current_state)

    @property
    def is_acked(self) -> bool:
        """True once the alarm is acknowledged (active and acked, or back to normal)."""
        return alarm_is_acked(self.current_state)


class AlarmSnapshotComplete(msgspec.Struct, frozen=True, gc=False):
    """The alarm feed's snapshot of active alarms is complete; live transitions follow."""

    active_alarm_count: int


class AlarmProviderStatus(msgspec.Struct, frozen=True, gc=False):
    """Where the gateway sources alarms, and whether that source is degraded."""

    mode: AlarmProviderMode
    degraded: bool
    reason: str
    since_ns: int | None

    @property
    def since(self) -> datetime | None:
        """``since_ns`` as an aware UTC datetime."""
        return ns_to_datetime(self.since_ns)


class AcknowledgeResult(msgspec.Struct, frozen=True, gc=False):
    """Outcome of AcknowledgeAlarm: the state the alarm is in after it.

    ACTIVE_ACKED for an alarm still active; UNSPECIFIED when the acknowledgement returned an
    inactive alarm to normal (``returned_to_normal``): the contract has no NORMAL state.
    """

    alarm_full_reference: str
    resulting_state: AlarmConditionState
    hresult: int
    statuses: tuple[MxStatus, ...]

    @property
    def returned_to_normal(self) -> bool:
        """True when the alarm is no longer in any alarm state (inactive and acknowledged)."""
        return self.resulting_state == AlarmConditionState.UNSPECIFIED


def _error_of(statuses: tuple[MxStatus, ...], hresult: int | None) -> str | None:
    """The first failing status's text (or the hresult) of an event, else None."""
    for status in statuses:
        if not status.ok:
            return status.diagnostic_text or f"MXAccess status category {status.category}"
    if hresult is not None and hresult < 0:
        return f"hresult 0x{hresult & 0xFFFFFFFF:08X}"
    return None


class WriteOutcome(msgspec.Struct, frozen=True, gc=False):
    """How a confirmed write ended: its ON_WRITE_COMPLETE event, read for you."""

    server_handle: int
    item_handle: int
    ok: bool
    hresult: int | None
    statuses: tuple[MxStatus, ...]
    event: MxEvent

    @property
    def error(self) -> str | None:
        """What MXAccess said went wrong (None when ``ok``)."""
        return None if self.ok else _error_of(self.statuses, self.hresult) or "write failed"


class ReadResult(msgspec.Struct, frozen=True, gc=False):
    """One tag of a ReadBulk (``Session.read_bulk``), with its value as a Python value.

    The fields keep BulkReadResult's names; ``value`` is the converted value (as
    ``MxEvent.value``) and ``source_timestamp_ns`` integer nanoseconds (``source_timestamp`` an
    aware datetime). ``raw`` is the generated BulkReadResult, for those who want the protobuf.
    """

    tag_address: str
    item_handle: int
    was_successful: bool
    was_cached: bool
    value: Any
    data_type: MxDataType
    quality: int
    source_timestamp_ns: int | None
    error_message: str
    hresult: int
    statuses: tuple[MxStatus, ...]
    raw: Any

    @property
    def source_timestamp(self) -> datetime | None:
        """``source_timestamp_ns`` as an aware UTC datetime."""
        return ns_to_datetime(self.source_timestamp_ns)

    @property
    def is_good(self) -> bool:
        """True for OPC DA good quality (192..255)."""
        return (self.quality & 0xC0) == 0xC0


class _TagReading:
    """What TagValue and TagChange share: ``error``, ``quality`` and ``timestamp_ns``."""

    __slots__ = ()
    error: str | None
    quality: int
    timestamp_ns: int | None

    @property
    def ok(self) -> bool:
        """True when there is no error."""
        return self.error is None

    @property
    def timestamp(self) -> datetime | None:
        """The source timestamp as an aware UTC datetime."""
        return ns_to_datetime(self.timestamp_ns)

    @property
    def is_good(self) -> bool:
        """True for OPC DA good quality (192..255)."""
        return (self.quality & 0xC0) == 0xC0


class TagValue(msgspec.Struct, _TagReading, frozen=True, gc=False):
    """One tag read by name (``GatewayClient.read``): its value as a Python value, or why not.

    ``error`` is None when the read succeeded; a tag the gateway does not know, or one MXAccess
    could not read, has ``value`` None and the reason in ``error`` (the other tags of the same
    call are unaffected).
    """

    tag: str
    value: Any
    data_type: MxDataType
    quality: int
    timestamp_ns: int | None
    error: str | None
    cached: bool
    statuses: tuple[MxStatus, ...]


class TagChange(msgspec.Struct, _TagReading, frozen=True, gc=False):
    """One change of a subscribed tag (``GatewayClient.subscribe``), or a notice.

    A tag the gateway does not know (or cannot advise) arrives once as a change whose
    ``error`` says so, with ``value`` None. Stream-wide notices (events lost to a ReplayGap or a
    session recovery) have ``tag`` ``"*"`` and the reason in ``error``. ``event`` is the MxEvent
    it came from.
    """

    tag: str
    value: Any
    data_type: MxDataType
    quality: int
    timestamp_ns: int | None
    error: str | None
    event: MxEvent | None


class AlarmFeedResync(msgspec.Struct, frozen=True, gc=False):
    """The resuming alarm feed is back after a cut or a gateway restart.

    The gateway has no resume token for the feed: every reconnect starts with a fresh
    snapshot, which the client compares with what it has already given the consumer. This
    marker comes first; exactly ``appeared + changed + cleared`` items follow, then the
    provider status (only when it differs from the last one given), then live transitions.
    The items: an ``AlarmResyncClear`` for each alarm given as active that the gateway no
    longer lists (or lists as a new occurrence); an ``ActiveAlarm`` for each alarm that
    appeared or whose state (acknowledgement included) changed. Alarms active and unchanged
    are not repeated. What happened in between (several transitions of one alarm) is not
    replayed: only the net difference.
    """

    reason: str
    """Why the feed was lost (the last error while reconnecting, e.g. ``UNAVAILABLE: ...``)."""
    down_since_ns: int
    """When the feed was lost (wall clock, ns since the epoch)."""
    outage_ns: int
    """How long the feed was down: from the loss to the fresh snapshot being complete."""
    attempts: int
    """Connection attempts it took (1: the first one succeeded)."""
    active_alarm_count: int
    """Alarms active on the gateway now (its snapshot), matching the filter."""
    appeared: int
    """``ActiveAlarm`` items that follow for alarms the consumer did not have."""
    changed: int
    """``ActiveAlarm`` items that follow for alarms whose state or acknowledgement changed."""
    cleared: int
    """``AlarmResyncClear`` items that follow."""

    @property
    def down_since(self) -> datetime:
        """``down_since_ns`` as an aware UTC datetime."""
        return _EPOCH + timedelta(microseconds=self.down_since_ns // 1000)

    @property
    def outage(self) -> timedelta:
        """``outage_ns`` as a timedelta."""
        return timedelta(microseconds=self.outage_ns // 1000)


class AlarmResyncClear(msgspec.Struct, frozen=True, gc=False):
    """An alarm the consumer was given as active that is no longer active: it cleared (and was
    acknowledged, where that was needed) while the feed was down.

    Only ever yielded right after an ``AlarmFeedResync``; a live clear is an
    ``AlarmTransition`` with ``transition_kind`` CLEAR. The gateway's snapshot does not say
    when or how it ended, so this carries what the consumer last knew of the alarm. Also
    yielded for the old occurrence when the alarm is active again with a different
    ``original_raise_timestamp`` (it ended, then was raised anew, during the outage): the new
    occurrence follows as an ``ActiveAlarm``.
    """

    alarm_full_reference: str
    source_object_reference: str
    alarm_type_name: str
    severity: int
    category: str
    description: str
    previous_state: AlarmConditionState
    """The state the consumer last had for it."""
    original_raise_timestamp_ns: int | None
    """When the occurrence that ended was raised."""
    resync_timestamp_ns: int
    """When the reconnect found it gone (wall clock): it ended before this."""

    @property
    def original_raise_timestamp(self) -> datetime | None:
        """``original_raise_timestamp_ns`` as an aware UTC datetime."""
        return ns_to_datetime(self.original_raise_timestamp_ns)

    @property
    def resync_timestamp(self) -> datetime:
        """``resync_timestamp_ns`` as an aware UTC datetime."""
        return _EPOCH + timedelta(microseconds=self.resync_timestamp_ns // 1000)
