"""Shared helpers of the codec tests: wire builders, outcomes, strategies, pb builders.

Field numbers in hand-built wire bytes come from the generated descriptors (``num()``), like
the codec's own: the tests hold no field-number literals either.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from enum import IntEnum
from types import ModuleType
from typing import Any

import msgspec
from google.protobuf.message import DecodeError, Message
from hypothesis import strategies as st

from mxgateway import MxGatewayDecodeError
from mxgateway._pbconvert import event_from_pb, events_from_pb, value_from_pb
from mxgateway.generated import mxaccess_gateway_pb2
from mxgateway.types import MxDataType, MxEvent, MxSparseArray, MxValue

# The generated module, untyped: its stubs model enums as closed NewTypes, while these tests
# deliberately put unknown enum numbers (proto3 enums are open) into messages.
pb: Any = mxaccess_gateway_pb2

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
I32 = (-(2**31), 2**31 - 1)
I64 = (-(2**63), 2**63 - 1)

# ---- field numbers and wire bytes ------------------------------------------------------------


def num(message: str, field: str) -> int:
    """The field number of ``message.field`` from the generated descriptors."""
    if message in ("Timestamp", "Duration"):
        for dep in pb.DESCRIPTOR.dependencies:
            if message in dep.message_types_by_name:
                return int(dep.message_types_by_name[message].fields_by_name[field].number)
    return int(pb.DESCRIPTOR.message_types_by_name[message].fields_by_name[field].number)


def varint(value: int) -> bytes:
    """A varint; negative values as 64-bit two's complement (10 bytes)."""
    if value < 0:
        value += 1 << 64
    out = bytearray()
    while True:
        if value < 0x80:
            out.append(value)
            return bytes(out)
        out.append((value & 0x7F) | 0x80)
        value >>= 7


def key(number: int, wire: int) -> bytes:
    return varint((number << 3) | wire)


def fv(message: str, field: str, value: int) -> bytes:
    """A varint field."""
    return key(num(message, field), 0) + varint(value)


def fl(message: str, field: str, payload: bytes | str) -> bytes:
    """A length-delimited field."""
    if isinstance(payload, str):
        payload = payload.encode()
    return key(num(message, field), 2) + varint(len(payload)) + payload


def f32(message: str, field: str, value: float) -> bytes:
    return key(num(message, field), 5) + struct.pack("<f", value)


def f64(message: str, field: str, value: float) -> bytes:
    return key(num(message, field), 1) + struct.pack("<d", value)


def group(number: int, content: bytes = b"") -> bytes:
    return key(number, 3) + content + key(number, 4)


def fields_of(data: bytes) -> list[bytes]:
    """Split a serialized message into its top-level fields (each tag + value)."""
    out = []
    pos = 0
    while pos < len(data):
        start = pos
        tag = 0
        shift = 0
        while True:
            b = data[pos]
            pos += 1
            tag |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        wire = tag & 7
        if wire == 0:
            while data[pos] & 0x80:
                pos += 1
            pos += 1
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        elif wire == 2:
            n = 0
            shift = 0
            while True:
                b = data[pos]
                pos += 1
                n |= (b & 0x7F) << shift
                shift += 7
                if b < 0x80:
                    break
            pos += n
        else:
            raise AssertionError("groups are not expected here")
        out.append(data[start:pos])
    return out


# ---- canonical comparison ---------------------------------------------------------------------


def canon(x: Any) -> Any:
    """A comparable form that keeps types apart (True vs 1, 1.0 vs 1, enum member vs int,
    list vs tuple) and compares nan equal to nan."""
    if x is None:
        return None
    if isinstance(x, msgspec.Struct):
        return (type(x).__name__, tuple(canon(getattr(x, f)) for f in x.__struct_fields__))
    if isinstance(x, IntEnum):
        return (type(x).__name__, int(x))
    if isinstance(x, bool):
        return ("bool", x)
    if isinstance(x, int):
        return ("int", x)
    if isinstance(x, float):
        return ("float", repr(x))
    if isinstance(x, list):
        return ("list", [canon(v) for v in x])
    if isinstance(x, tuple):
        return ("tuple", tuple(canon(v) for v in x))
    if isinstance(x, datetime):
        return ("datetime", x.isoformat(), str(x.tzinfo))
    if isinstance(x, timedelta | str | bytes):
        return (type(x).__name__, x)
    raise AssertionError(f"unexpected type in a decoded struct: {type(x).__name__}")


def outcome(fn: Callable[[], Any]) -> tuple[str, Any]:
    """("ok", canonical result) or ("error", None) for MxGatewayDecodeError; anything else
    propagates and fails the test."""
    try:
        result = fn()
    except MxGatewayDecodeError:
        return ("error", None)
    return ("ok", canon(result))


def pb_parse(cls: type[Message], data: bytes) -> Message | None:
    msg = cls()
    try:
        msg.ParseFromString(data)
    except DecodeError:
        return None
    return msg


def oracle(kind: str, data: bytes) -> tuple[str, Any]:
    """protobuf's parse, then _pbconvert: the expected outcome of decoding ``data``."""
    cls, convert = {
        "event": (pb.MxEvent, event_from_pb),
        "batch": (pb.MxEventBatch, events_from_pb),
        "value": (pb.MxValue, value_from_pb),
    }[kind]
    msg = pb_parse(cls, data)
    if msg is None:
        return ("error", None)
    return outcome(lambda: convert(msg))


def decoder(codec: ModuleType, kind: str) -> Callable[[bytes], Any]:
    decode: Callable[[bytes], Any] = {
        "event": codec.decode_event,
        "batch": codec.decode_event_batch,
        "value": codec.from_mx_value,
    }[kind]
    return decode


def stricter_than_protobuf(kind: str, data: bytes) -> bool:
    """True when the twin rejects ``data`` for one of the two documented ways in which the
    codec is stricter than protobuf (docs D5a): nesting beyond 64 levels, or field number 0
    inside a group or a field-less message. The twin's error text is the classifier for
    both implementations (texts are not part of the contract, D2)."""
    from mxgateway import _pycodec

    try:
        decoder(_pycodec, kind)(data)
    except MxGatewayDecodeError as exc:
        return "nested deeper than" in str(exc) or "field number 0" in str(exc)
    return False


def assert_like_protobuf(codec: ModuleType, kind: str, data: bytes) -> tuple[str, Any]:
    """Our outcome equals protobuf's (+ _pbconvert), apart from the documented strictness."""
    ours = outcome(lambda: decoder(codec, kind)(data))
    expected = oracle(kind, data)
    if ours != expected and ours[0] == "error" and stricter_than_protobuf(kind, data):
        return ours
    assert ours == expected, (data.hex(), ours, expected)
    return ours


# ---- hypothesis strategies for generated messages ---------------------------------------------

i32s = st.integers(*I32)
i64s = st.integers(*I64)
u32s = st.integers(0, 2**32 - 1)
u64s = st.integers(0, 2**64 - 1)
small_ints = st.integers(-3, 300)
# Known enum numbers most of the time, some unknown ones (positive and negative).
enum_numbers = st.one_of(st.integers(0, 19), st.sampled_from([99, 1000, -1, -(2**31)]), i32s)
texts = st.text(max_size=8)
normal_stamp = st.tuples(st.integers(-62135596800, 253402300799), st.integers(0, 999_999_999))
extreme_stamp = st.tuples(i64s, i32s)
stamps = st.integers(0, 9).flatmap(lambda k: extreme_stamp if k == 0 else normal_stamp)
normal_span = st.tuples(st.integers(-(10**12), 10**12), st.integers(-999_999_999, 999_999_999))
spans = st.integers(0, 9).flatmap(lambda k: extreme_stamp if k == 0 else normal_span)
floats64 = st.floats(allow_nan=True, allow_infinity=True)
floats32 = st.floats(width=32, allow_nan=True, allow_infinity=True)

ARRAY_LISTS = (
    "bool_values",
    "int32_values",
    "int64_values",
    "float_values",
    "double_values",
    "string_values",
    "timestamp_values",
    "elapsed_values",
)
_LIST_ELEMENTS: dict[str, Any] = {
    "bool_values": st.booleans(),
    "int32_values": st.one_of(small_ints, i32s),
    "int64_values": st.one_of(small_ints, i64s),
    "float_values": floats32,
    "double_values": floats64,
    "string_values": texts,
    "timestamp_values": stamps,
    "elapsed_values": spans,
}
element_types = st.one_of(st.integers(0, 18), st.sampled_from([99, -1]))


def _set_pair(msg: Any, pair: tuple[int, int]) -> None:
    msg.SetInParent()
    msg.seconds, msg.nanos = pair


@st.composite
def pb_arrays(draw: st.DrawFn) -> Any:
    array = pb.MxArray()
    array.element_data_type = draw(element_types)
    lengths = []
    for name in draw(st.lists(st.sampled_from(ARRAY_LISTS), max_size=3, unique=True)):
        items = draw(st.lists(_LIST_ELEMENTS[name], max_size=7))
        target = getattr(array, name)
        if name in ("timestamp_values", "elapsed_values"):
            for pair in items:
                _set_pair(target.add(), pair)
        else:
            target.extend(items)
        lengths.append(len(items))
    shape = draw(st.integers(0, 3))
    if shape == 0 and lengths:
        # dims whose product is one list's length (often the selected one): nested output
        n = draw(st.sampled_from(lengths))
        dims = []
        rest = n
        for _ in range(draw(st.integers(1, 3))):
            divisors = [d for d in range(1, rest + 1) if rest % d == 0] or [0]
            d = draw(st.sampled_from(divisors))
            dims.append(d)
            rest = rest // d if d else 0
        dims.append(rest)
        array.dimensions.extend(dims)
    elif shape == 1:
        array.dimensions.extend(draw(st.lists(st.integers(0, 9), max_size=4)))
    elif shape == 2:
        array.dimensions.extend(draw(st.lists(u32s, max_size=3)))
    return array


@st.composite
def pb_values(draw: st.DrawFn, depth: int = 0) -> Any:
    value = pb.MxValue()
    if draw(st.booleans()):
        value.data_type = draw(enum_numbers)
    value.variant_type = draw(st.sampled_from(["", "VT_I4", "VT_R8", "VT_EMPTY", "VT_RECORD"]))
    value.is_null = draw(st.booleans())
    value.raw_diagnostic = draw(st.sampled_from(["", "diag", "ü€😀"]))
    value.raw_data_type = draw(st.one_of(st.integers(-1, 17), i32s))
    value.raw_value = draw(st.one_of(st.just(b""), st.binary(max_size=6)))
    arms = [
        None,
        "bool_value",
        "int32_value",
        "int64_value",
        "float_value",
        "double_value",
        "string_value",
        "timestamp_value",
        "elapsed_value",
        "array_value",
    ]
    if depth < 2:
        arms.append("sparse_array_value")
    arm = draw(st.sampled_from(arms))
    if arm == "bool_value":
        value.bool_value = draw(st.booleans())
    elif arm == "int32_value":
        value.int32_value = draw(st.one_of(small_ints, i32s))
    elif arm == "int64_value":
        value.int64_value = draw(st.one_of(small_ints, i64s))
    elif arm == "float_value":
        value.float_value = draw(floats32)
    elif arm == "double_value":
        value.double_value = draw(floats64)
    elif arm == "string_value":
        value.string_value = draw(texts)
    elif arm == "timestamp_value":
        _set_pair(value.timestamp_value, draw(stamps))
    elif arm == "elapsed_value":
        _set_pair(value.elapsed_value, draw(spans))
    elif arm == "array_value":
        value.array_value.CopyFrom(draw(pb_arrays()))
    elif arm == "sparse_array_value":
        sparse = value.sparse_array_value
        sparse.SetInParent()
        sparse.element_data_type = draw(element_types)
        sparse.total_length = draw(st.one_of(st.integers(0, 20), u32s))
        for _ in range(draw(st.integers(0, 3))):
            element = sparse.elements.add()
            element.index = draw(st.one_of(st.integers(0, 20), u32s))
            if draw(st.booleans()):
                element.value.CopyFrom(draw(pb_values(depth + 1)))
    return value


@st.composite
def pb_statuses(draw: st.DrawFn) -> Any:
    return pb.MxStatusProxy(
        success=draw(st.one_of(st.sampled_from([0, 1]), i32s)),
        category=draw(enum_numbers),
        detected_by=draw(enum_numbers),
        detail=draw(st.one_of(st.just(0), i32s)),
        raw_category=draw(st.one_of(st.integers(-1, 8), i32s)),
        raw_detected_by=draw(st.one_of(st.integers(-1, 5), i32s)),
        diagnostic_text=draw(texts),
    )


def _maybe_stamp(draw: st.DrawFn, msg: Any, field: str) -> None:
    if draw(st.booleans()):
        _set_pair(getattr(msg, field), draw(stamps))


@st.composite
def pb_alarms(draw: st.DrawFn) -> Any:
    alarm = pb.OnAlarmTransitionEvent(
        alarm_full_reference=draw(texts),
        source_object_reference=draw(texts),
        alarm_type_name=draw(texts),
        transition_kind=draw(enum_numbers),
        severity=draw(st.one_of(st.integers(1, 999), i32s)),
        operator_user=draw(texts),
        operator_comment=draw(texts),
        category=draw(texts),
        description=draw(texts),
        degraded=draw(st.booleans()),
        current_state=draw(enum_numbers),
    )
    _maybe_stamp(draw, alarm, "original_raise_timestamp")
    _maybe_stamp(draw, alarm, "transition_timestamp")
    if draw(st.booleans()):
        alarm.current_value.CopyFrom(draw(pb_values()))
    if draw(st.booleans()):
        alarm.limit_value.CopyFrom(draw(pb_values()))
    return alarm


BODY_ARMS = (
    None,
    "on_data_change",
    "on_write_complete",
    "operation_complete",
    "on_buffered_data_change",
    "on_alarm_transition",
)


@st.composite
def pb_events(draw: st.DrawFn) -> Any:
    event = pb.MxEvent(
        session_id=draw(texts),
        family=draw(enum_numbers),
        worker_sequence=draw(st.one_of(st.integers(0, 1000), u64s)),
        server_handle=draw(st.one_of(small_ints, i32s)),
        item_handle=draw(st.one_of(small_ints, i32s)),
        quality=draw(st.one_of(st.sampled_from([0, 192, 64]), i32s)),
        raw_status=draw(texts),
    )
    if draw(st.booleans()):
        event.value.CopyFrom(draw(pb_values()))
    _maybe_stamp(draw, event, "source_timestamp")
    _maybe_stamp(draw, event, "worker_timestamp")
    _maybe_stamp(draw, event, "gateway_receive_timestamp")
    for status in draw(st.lists(pb_statuses(), max_size=3)):
        event.statuses.append(status)
    if draw(st.booleans()):
        event.hresult = draw(st.one_of(st.just(0), i32s))
    if draw(st.booleans()):
        event.replay_gap.SetInParent()
        event.replay_gap.requested_after_sequence = draw(st.one_of(st.just(0), u64s))
        event.replay_gap.oldest_available_sequence = draw(st.one_of(st.just(0), u64s))
    body = draw(st.sampled_from(BODY_ARMS))
    if body == "on_buffered_data_change":
        buffered = event.on_buffered_data_change
        buffered.SetInParent()
        buffered.data_type = draw(enum_numbers)
        for _ in range(draw(st.integers(0, 3))):
            sample = buffered.samples.add()
            if draw(st.booleans()):
                sample.value.CopyFrom(draw(pb_values()))
            sample.quality = draw(st.one_of(st.just(192), i32s))
            _maybe_stamp(draw, sample, "source_timestamp")
    elif body == "on_alarm_transition":
        event.on_alarm_transition.CopyFrom(draw(pb_alarms()))
    elif body is not None:
        getattr(event, body).SetInParent()
    return event


@st.composite
def pb_batches(draw: st.DrawFn) -> Any:
    return pb.MxEventBatch(events=draw(st.lists(pb_events(), max_size=4)))


# ---- structs back to pb messages (docs/codec.md D22-D25), for byte-identity checks -----------


def _f32_exact(value: float) -> bool:
    if math.isnan(value) or math.isinf(value):
        return True
    try:
        return bool(struct.unpack("<f", struct.pack("<f", value))[0] == value)
    except OverflowError:
        return False


def _set_datetime(msg: Any, value: datetime) -> None:
    delta = value - EPOCH
    msg.SetInParent()
    msg.seconds = delta.days * 86400 + delta.seconds
    msg.nanos = delta.microseconds * 1000


def _set_timedelta(msg: Any, value: timedelta) -> None:
    micros = value // timedelta(microseconds=1)
    sign = -1 if micros < 0 else 1
    msg.SetInParent()
    msg.seconds = sign * (abs(micros) // 1_000_000)
    msg.nanos = sign * (abs(micros) % 1_000_000) * 1000


def _set_ns(msg: Any, ns: int) -> None:
    msg.SetInParent()
    msg.seconds, msg.nanos = divmod(ns, 1_000_000_000)


def _shape(value: Any) -> tuple[list[int], list[Any]]:
    dims = []
    probe = value
    while isinstance(probe, list | tuple):
        dims.append(len(probe))
        if not probe:
            break
        probe = probe[0]
    leaves = [value]
    for _ in dims:
        leaves = [leaf for node in leaves for leaf in node]
    return dims, leaves


def _fill_array(array: Any, value: Any, data_type: int) -> None:
    dims, leaves = _shape(value)
    array.SetInParent()
    array.dimensions.extend(dims)
    if not leaves:
        array.element_data_type = int(data_type)
        return
    first = leaves[0]
    if isinstance(first, bool):
        array.element_data_type = MxDataType.BOOLEAN
        array.bool_values.extend(leaves)
    elif isinstance(first, int):
        array.element_data_type = MxDataType.INTEGER
        if all(I32[0] <= v <= I32[1] for v in leaves):
            array.int32_values.extend(leaves)
        else:
            array.int64_values.extend(leaves)
    elif isinstance(first, float):
        if data_type == MxDataType.FLOAT and all(_f32_exact(v) for v in leaves):
            array.element_data_type = MxDataType.FLOAT
            array.float_values.extend(leaves)
        else:
            array.element_data_type = MxDataType.DOUBLE
            array.double_values.extend(leaves)
    elif isinstance(first, str):
        strings = {
            MxDataType.STRING,
            MxDataType.BIG_STRING,
            MxDataType.INTERNATIONALIZED_STRING,
            MxDataType.REFERENCE,
        }
        array.element_data_type = int(data_type) if data_type in strings else MxDataType.STRING
        array.string_values.extend(leaves)
    elif isinstance(first, datetime):
        array.element_data_type = MxDataType.TIME
        for leaf in leaves:
            _set_datetime(array.timestamp_values.add(), leaf)
    else:
        array.element_data_type = MxDataType.ELAPSED_TIME
        for leaf in leaves:
            _set_timedelta(array.elapsed_values.add(), leaf)


def set_native_arm(msg: Any, native: Any, data_type: int) -> None:
    """D23: the kind arm of an MxValue message for a native value."""
    if native is None or isinstance(native, bytes | bytearray):
        return
    if isinstance(native, bool):
        msg.bool_value = native
    elif isinstance(native, int):
        if I32[0] <= native <= I32[1]:
            msg.int32_value = native
        else:
            msg.int64_value = native
    elif isinstance(native, float):
        if data_type == MxDataType.FLOAT and _f32_exact(native):
            msg.float_value = native
        else:
            msg.double_value = native
    elif isinstance(native, str):
        msg.string_value = native
    elif isinstance(native, datetime):
        _set_datetime(msg.timestamp_value, native)
    elif isinstance(native, timedelta):
        _set_timedelta(msg.elapsed_value, native)
    elif isinstance(native, list | tuple):
        _fill_array(msg.array_value, native, data_type)
    elif isinstance(native, MxSparseArray):
        sparse = msg.sparse_array_value
        sparse.SetInParent()
        sparse.element_data_type = int(native.element_data_type)
        sparse.total_length = native.total_length
        for index, element_native in native.elements:
            element = sparse.elements.add()
            element.index = index
            if element_native is not None:
                element.value.SetInParent()
                if isinstance(element_native, bytes):
                    element.value.raw_value = element_native
                set_native_arm(element.value, element_native, int(native.element_data_type))
    else:
        raise AssertionError(type(native))


def pb_value_from_struct(value: MxValue) -> Any:
    msg = pb.MxValue(
        data_type=int(value.data_type),
        variant_type=value.variant_type,
        is_null=value.is_null,
        raw_diagnostic=value.raw_diagnostic,
        raw_data_type=value.raw_data_type,
        raw_value=value.raw_value,
    )
    set_native_arm(msg, value.value, int(value.data_type))
    return msg


def pb_event_from_struct(event: MxEvent) -> Any:
    msg = pb.MxEvent(
        session_id=event.session_id,
        family=int(event.family),
        worker_sequence=event.worker_sequence,
        server_handle=event.server_handle,
        item_handle=event.item_handle,
        quality=event.quality,
        raw_status=event.raw_status,
    )
    if event.has_value:
        mv = event.mx_value
        assert mv is not None
        msg.value.CopyFrom(pb_value_from_struct(mv))
    for field in ("source_timestamp", "worker_timestamp", "gateway_receive_timestamp"):
        ns = getattr(event, field + "_ns")
        if ns is not None:
            _set_ns(getattr(msg, field), ns)
    for status in event.statuses:
        msg.statuses.add(
            success=status.success,
            category=int(status.category),
            detected_by=int(status.detected_by),
            detail=status.detail,
            raw_category=status.raw_category,
            raw_detected_by=status.raw_detected_by,
            diagnostic_text=status.diagnostic_text,
        )
    if event.hresult is not None:
        msg.hresult = event.hresult
    if event.replay_gap is not None:
        msg.replay_gap.SetInParent()
        msg.replay_gap.requested_after_sequence = event.replay_gap.requested_after_sequence
        msg.replay_gap.oldest_available_sequence = event.replay_gap.oldest_available_sequence
    if event.body == "on_buffered_data_change":
        buffered = msg.on_buffered_data_change
        buffered.SetInParent()
        buffered.data_type = int(event.buffered_data_type)
        for sample in event.samples:
            s = buffered.samples.add(quality=sample.quality)
            if sample.value is not None:
                s.value.CopyFrom(pb_value_from_struct(sample.value))
            if sample.source_timestamp_ns is not None:
                _set_ns(s.source_timestamp, sample.source_timestamp_ns)
    elif event.body == "on_alarm_transition":
        alarm = msg.on_alarm_transition
        alarm.SetInParent()
        a = event.alarm_transition
        if a is not None:
            alarm.alarm_full_reference = a.alarm_full_reference
            alarm.source_object_reference = a.source_object_reference
            alarm.alarm_type_name = a.alarm_type_name
            alarm.transition_kind = int(a.transition_kind)
            alarm.severity = a.severity
            if a.original_raise_timestamp_ns is not None:
                _set_ns(alarm.original_raise_timestamp, a.original_raise_timestamp_ns)
            if a.transition_timestamp_ns is not None:
                _set_ns(alarm.transition_timestamp, a.transition_timestamp_ns)
            alarm.operator_user = a.operator_user
            alarm.operator_comment = a.operator_comment
            alarm.category = a.category
            alarm.description = a.description
            if a.current_value is not None:
                alarm.current_value.CopyFrom(pb_value_from_struct(a.current_value))
            if a.limit_value is not None:
                alarm.limit_value.CopyFrom(pb_value_from_struct(a.limit_value))
            alarm.degraded = a.degraded
            alarm.current_state = int(a.current_state)
    elif event.body:
        getattr(msg, event.body).SetInParent()
    return msg


def event_timestamps_encodable(event: MxEvent) -> bool:
    """False when some timestamp's seconds (floor of ns / 1e9) fall outside int64 (D20)."""
    stamps = [event.source_timestamp_ns, event.worker_timestamp_ns]
    stamps.append(event.gateway_receive_timestamp_ns)
    stamps += [s.source_timestamp_ns for s in event.samples]
    if event.alarm_transition is not None:
        stamps.append(event.alarm_transition.original_raise_timestamp_ns)
        stamps.append(event.alarm_transition.transition_timestamp_ns)
    return all(ns is None or I64[0] <= ns // 1_000_000_000 <= I64[1] for ns in stamps)
