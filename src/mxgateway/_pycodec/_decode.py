"""The decoder (twin of ext/_decode.pxi): wire bytes -> the structs of mxgateway.types.

Each message has a parser ``_<message>(buf, pos, end, depth, ...)`` that walks the fields of
``buf[pos:end]`` and compares each *tag* (field number and wire type together) with the tags
of the fields it knows (``_tables``). A known field with the wrong wire type therefore fails
every comparison and is skipped like an unknown field.

protobuf merges a singular message field seen twice, and a oneof arm repeated without another
arm in between, exactly as if the occurrences' payloads were concatenated. The parsers get
that for free: a message whose state can be merged is parsed into a plain tuple, and a
second occurrence is parsed *continuing from* the first one's state. Conversions that can
fail on values protobuf accepts (timestamps to datetime, durations to timedelta) run only on
the final state (the ``_finish``/``_native`` functions), so a replaced oneof arm never
raises, while malformed bytes anywhere always do.

An event is parsed into a state (``_event_state``), then made an MxEvent (``_event_struct``)
or a row of columns (``_columns``), as the compiled decoder does.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, Final, TypeAlias

from mxgateway._errors import MxGatewayDecodeError
from mxgateway._pycodec import _tables as _t
from mxgateway._pycodec._tables import (
    _A_ARRAY,
    _A_BOOL,
    _A_DUR,
    _A_F32,
    _A_F64,
    _A_I32,
    _A_I64,
    _A_NONE,
    _A_SPARSE,
    _A_STR,
    _A_TS,
    _B_ALARM,
    _B_BUFFERED,
    _B_DATA,
    _B_NONE,
    _B_OPERATION,
    _B_WRITE,
    _BODY_NAMES,
    _CATEGORIES,
    _CONDITION_STATES,
    _DATA_TYPES,
    _DT_BOOLEAN,
    _DT_DOUBLE,
    _DT_ELAPSED,
    _DT_FLOAT,
    _DT_INTEGER,
    _DT_TIME,
    _DT_UNSPECIFIED,
    _FAMILIES,
    _SOURCES,
    _STRING_TYPES,
    _TRANSITION_KINDS,
)
from mxgateway._pycodec._wire import (
    _EPOCH,
    _I32_MAX,
    _I64_MAX,
    _M32,
    _MAX_DEPTH,
    _NS,
    _error,
    _int32,
    _int64,
    _ld,
    _packed_fixed,
    _packed_varints,
    _skip,
    _to_int32,
    _to_int64,
    _too_deep,
    _uint32,
    _unpack_f32,
    _unpack_f64,
    _utf8,
    _varint,
    _varint32,
    _Wire,
)
from mxgateway.types import (
    AlarmTransition,
    BufferedSample,
    MxEvent,
    MxSparseArray,
    MxStatus,
    MxValue,
    ReplayGap,
)

# ---- message parsers -----------------------------------------------------------------------
#
# Parse states (merged by parsing a later occurrence on top of an earlier one):
#   Timestamp / Duration   (seconds, nanos)
#   MxValue                (data_type, variant_type, is_null, raw_diagnostic, raw_data_type,
#                           raw_value, arm, payload)   payload: the arm's native scalar, a
#                           (seconds, nanos) pair, an array state or a sparse state
#   MxArray                (element_data_type, dimensions, bools, int32s, int64s, floats,
#                           doubles, strings, timestamps, durations)   lists, appended to
#   MxSparseArray          (element_data_type, total_length, [(index, value state | None)])
#   ReplayGap              (requested_after_sequence, oldest_available_sequence)
#   OnBufferedDataChange   (data_type, [sample state])
#   BufferedSample         (value state | None, quality, (seconds, nanos) | None)
#   OnAlarmTransitionEvent a 15-tuple in field order (values and timestamps as states)

_Pair: TypeAlias = tuple[int, int]
_ValueState: TypeAlias = tuple[int, str, bool, str, int, bytes, int, Any]
_EMPTY_VALUE: Final[_ValueState] = (0, "", False, "", 0, b"", _A_NONE, None)
_ZERO_PAIR: Final[_Pair] = (0, 0)


def _seconds_nanos(
    buf: bytes, pos: int, end: int, depth: int, state: _Pair, tags: tuple[int, ...], name: str
) -> _Pair:
    if depth > _MAX_DEPTH:
        raise _too_deep(name, pos)
    t_seconds, t_nanos = tags
    seconds, nanos = state
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_seconds:
                seconds, pos = _int64(buf, pos, end)
            elif tag == t_nanos:
                nanos, pos = _int32(buf, pos, end)
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error(name, exc) from None
    return seconds, nanos


def _timestamp(buf: bytes, pos: int, end: int, depth: int, state: _Pair | None) -> _Pair:
    # _seconds_nanos for Timestamp, written out: three of these per event.
    if depth > _MAX_DEPTH:
        raise _too_deep("Timestamp", pos)
    t_seconds, t_nanos = _t._TS_TAGS
    seconds, nanos = state or _ZERO_PAIR
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_seconds:
                seconds, pos = _varint(buf, pos, end)
                if seconds > _I64_MAX:
                    seconds -= 0x10000000000000000
            elif tag == t_nanos:
                nanos, pos = _varint(buf, pos, end)
                nanos &= _M32
                if nanos > _I32_MAX:
                    nanos -= 0x100000000
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("Timestamp", exc) from None
    return seconds, nanos


def _duration(buf: bytes, pos: int, end: int, depth: int, state: _Pair | None) -> _Pair:
    return _seconds_nanos(buf, pos, end, depth, state or _ZERO_PAIR, _t._DUR_TAGS, "Duration")


def _empty(buf: bytes, pos: int, end: int, depth: int, name: str) -> None:
    """A message with no known fields (the family markers): validate and skip its content."""
    if depth > _MAX_DEPTH:
        raise _too_deep(name, pos)
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error(name, exc) from None


def _status(buf: bytes, pos: int, end: int, depth: int) -> MxStatus:
    if depth > _MAX_DEPTH:
        raise _too_deep("MxStatusProxy", pos)
    t_success, t_category, t_detected, t_detail, t_raw_cat, t_raw_det, t_text = _t._STATUS_TAGS
    success = category = detected_by = detail = raw_category = raw_detected_by = 0
    text = ""
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_success:
                if pos < end and buf[pos] < 0x80:
                    success = buf[pos]
                    pos += 1
                else:
                    success, pos = _int32(buf, pos, end)
            elif tag == t_category:
                if pos < end and buf[pos] < 0x80:
                    category = buf[pos]
                    pos += 1
                else:
                    category, pos = _int32(buf, pos, end)
            elif tag == t_detected:
                if pos < end and buf[pos] < 0x80:
                    detected_by = buf[pos]
                    pos += 1
                else:
                    detected_by, pos = _int32(buf, pos, end)
            elif tag == t_detail:
                detail, pos = _int32(buf, pos, end)
            elif tag == t_raw_cat:
                raw_category, pos = _int32(buf, pos, end)
            elif tag == t_raw_det:
                raw_detected_by, pos = _int32(buf, pos, end)
            elif tag == t_text:
                start, pos = _ld(buf, pos, end)
                text = _utf8(buf, start, pos)
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("MxStatusProxy", exc) from None
    return MxStatus(
        success,
        _CATEGORIES.get(category, category),
        _SOURCES.get(detected_by, detected_by),
        detail,
        raw_category,
        raw_detected_by,
        text,
    )


def _value(buf: bytes, pos: int, end: int, depth: int, state: _ValueState | None) -> _ValueState:
    if depth > _MAX_DEPTH:
        raise _too_deep("MxValue", pos)
    (
        t_data_type,
        t_variant,
        t_is_null,
        t_raw_diag,
        t_raw_dt,
        t_raw_value,
        t_bool,
        t_int32,
        t_int64,
        t_float,
        t_double,
        t_string,
        t_timestamp,
        t_elapsed,
        t_array,
        t_sparse,
    ) = _t._VALUE_TAGS
    data_type, variant, is_null, raw_diag, raw_dt, raw_value, arm, payload = state or _EMPTY_VALUE
    inner = depth + 1
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_data_type:
                if pos < end and buf[pos] < 0x80:
                    data_type = buf[pos]
                    pos += 1
                else:
                    data_type, pos = _int32(buf, pos, end)
            elif tag == t_variant:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                variant = _utf8(buf, start, pos)
            elif tag == t_is_null:
                raw, pos = _varint(buf, pos, end)
                is_null = raw != 0
            elif tag == t_raw_diag:
                start, pos = _ld(buf, pos, end)
                raw_diag = _utf8(buf, start, pos)
            elif tag == t_raw_dt:
                if pos < end and buf[pos] < 0x80:
                    raw_dt = buf[pos]
                    pos += 1
                else:
                    raw_dt, pos = _int32(buf, pos, end)
            elif tag == t_raw_value:
                start, pos = _ld(buf, pos, end)
                raw_value = buf[start:pos]
            elif tag == t_bool:
                if pos < end and buf[pos] < 0x80:
                    raw = buf[pos]
                    pos += 1
                else:
                    raw, pos = _varint(buf, pos, end)
                arm = _A_BOOL
                payload = raw != 0
            elif tag == t_int32:
                arm = _A_I32
                if pos < end and buf[pos] < 0x80:
                    payload = buf[pos]
                    pos += 1
                else:
                    payload, pos = _int32(buf, pos, end)
            elif tag == t_int64:
                arm = _A_I64
                payload, pos = _int64(buf, pos, end)
            elif tag == t_float:
                if pos + 4 > end:
                    raise _Wire("truncated 32-bit field", pos)
                arm = _A_F32
                payload = _unpack_f32(buf, pos)[0]
                pos += 4
            elif tag == t_double:
                if pos + 8 > end:
                    raise _Wire("truncated 64-bit field", pos)
                arm = _A_F64
                payload = _unpack_f64(buf, pos)[0]
                pos += 8
            elif tag == t_string:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                payload = _utf8(buf, start, pos)
                arm = _A_STR
            elif tag == t_timestamp:
                start, pos = _ld(buf, pos, end)
                payload = _timestamp(buf, start, pos, inner, payload if arm == _A_TS else None)
                arm = _A_TS
            elif tag == t_elapsed:
                start, pos = _ld(buf, pos, end)
                payload = _duration(buf, start, pos, inner, payload if arm == _A_DUR else None)
                arm = _A_DUR
            elif tag == t_array:
                start, pos = _ld(buf, pos, end)
                payload = _array(buf, start, pos, inner, payload if arm == _A_ARRAY else None)
                arm = _A_ARRAY
            elif tag == t_sparse:
                start, pos = _ld(buf, pos, end)
                payload = _sparse(buf, start, pos, inner, payload if arm == _A_SPARSE else None)
                arm = _A_SPARSE
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("MxValue", exc) from None
    return data_type, variant, is_null, raw_diag, raw_dt, raw_value, arm, payload


_ArrayState: TypeAlias = tuple[
    int,
    list[int],
    list[bool],
    list[int],
    list[int],
    list[float],
    list[float],
    list[str],
    list[_Pair],
    list[_Pair],
]


def _array(buf: bytes, pos: int, end: int, depth: int, state: _ArrayState | None) -> _ArrayState:
    if depth > _MAX_DEPTH:
        raise _too_deep("MxArray", pos)
    (
        t_element_type,
        t_dims,
        t_dims_packed,
        t_bools,
        t_bools_packed,
        t_int32s,
        t_int32s_packed,
        t_int64s,
        t_int64s_packed,
        t_floats,
        t_floats_packed,
        t_doubles,
        t_doubles_packed,
        t_strings,
        t_timestamps,
        t_durations,
    ) = _t._ARRAY_TAGS
    if state is None:
        element_type = 0
        dims: list[int] = []
        bools: list[bool] = []
        int32s: list[int] = []
        int64s: list[int] = []
        floats: list[float] = []
        doubles: list[float] = []
        strings: list[str] = []
        timestamps: list[_Pair] = []
        durations: list[_Pair] = []
    else:
        (
            element_type,
            dims,
            bools,
            int32s,
            int64s,
            floats,
            doubles,
            strings,
            timestamps,
            durations,
        ) = state
    inner = depth + 1
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_element_type:
                element_type, pos = _int32(buf, pos, end)
            elif tag == t_dims:
                raw, pos = _varint(buf, pos, end)
                dims.append(raw & _M32)
            elif tag == t_dims_packed:
                start, pos = _ld(buf, pos, end)
                dims.extend([v & _M32 for v in _packed_varints(buf, start, pos)])
            elif tag == t_bools:
                raw, pos = _varint(buf, pos, end)
                bools.append(raw != 0)
            elif tag == t_bools_packed:
                start, pos = _ld(buf, pos, end)
                bools.extend([v != 0 for v in _packed_varints(buf, start, pos)])
            elif tag == t_int32s:
                raw, pos = _int32(buf, pos, end)
                int32s.append(raw)
            elif tag == t_int32s_packed:
                start, pos = _ld(buf, pos, end)
                int32s.extend([_to_int32(v) for v in _packed_varints(buf, start, pos)])
            elif tag == t_int64s:
                raw, pos = _int64(buf, pos, end)
                int64s.append(raw)
            elif tag == t_int64s_packed:
                start, pos = _ld(buf, pos, end)
                int64s.extend([_to_int64(v) for v in _packed_varints(buf, start, pos)])
            elif tag == t_floats:
                if pos + 4 > end:
                    raise _Wire("truncated 32-bit field", pos)
                floats.append(_unpack_f32(buf, pos)[0])
                pos += 4
            elif tag == t_floats_packed:
                start, pos = _ld(buf, pos, end)
                floats.extend(_packed_fixed(buf, start, pos, 4, "f"))
            elif tag == t_doubles:
                if pos + 8 > end:
                    raise _Wire("truncated 64-bit field", pos)
                doubles.append(_unpack_f64(buf, pos)[0])
                pos += 8
            elif tag == t_doubles_packed:
                start, pos = _ld(buf, pos, end)
                doubles.extend(_packed_fixed(buf, start, pos, 8, "d"))
            elif tag == t_strings:
                start, pos = _ld(buf, pos, end)
                strings.append(_utf8(buf, start, pos))
            elif tag == t_timestamps:
                start, pos = _ld(buf, pos, end)
                timestamps.append(_timestamp(buf, start, pos, inner, None))
            elif tag == t_durations:
                start, pos = _ld(buf, pos, end)
                durations.append(_duration(buf, start, pos, inner, None))
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("MxArray", exc) from None
    return (
        element_type,
        dims,
        bools,
        int32s,
        int64s,
        floats,
        doubles,
        strings,
        timestamps,
        durations,
    )


_SparseState: TypeAlias = tuple[int, int, list[tuple[int, _ValueState | None]]]


def _sparse(buf: bytes, pos: int, end: int, depth: int, state: _SparseState | None) -> _SparseState:
    if depth > _MAX_DEPTH:
        raise _too_deep("MxSparseArray", pos)
    t_element_type, t_total, t_elements = _t._SPARSE_TAGS
    if state is None:
        element_type = total = 0
        elements: list[tuple[int, _ValueState | None]] = []
    else:
        element_type, total, elements = state
    inner = depth + 1
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_element_type:
                element_type, pos = _int32(buf, pos, end)
            elif tag == t_total:
                total, pos = _uint32(buf, pos, end)
            elif tag == t_elements:
                start, pos = _ld(buf, pos, end)
                elements.append(_sparse_element(buf, start, pos, inner))
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("MxSparseArray", exc) from None
    return element_type, total, elements


def _sparse_element(buf: bytes, pos: int, end: int, depth: int) -> tuple[int, _ValueState | None]:
    if depth > _MAX_DEPTH:
        raise _too_deep("MxSparseElement", pos)
    t_index, t_value = _t._ELEMENT_TAGS
    index = 0
    value: _ValueState | None = None
    inner = depth + 1
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_index:
                index, pos = _uint32(buf, pos, end)
            elif tag == t_value:
                start, pos = _ld(buf, pos, end)
                value = _value(buf, start, pos, inner, value)
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("MxSparseElement", exc) from None
    return index, value


def _replay_gap(buf: bytes, pos: int, end: int, depth: int, state: _Pair | None) -> _Pair:
    if depth > _MAX_DEPTH:
        raise _too_deep("ReplayGap", pos)
    t_requested, t_oldest = _t._GAP_TAGS
    requested, oldest = state or _ZERO_PAIR
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_requested:
                requested, pos = _varint(buf, pos, end)
            elif tag == t_oldest:
                oldest, pos = _varint(buf, pos, end)
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("ReplayGap", exc) from None
    return requested, oldest


_SampleState: TypeAlias = tuple[_ValueState | None, int, _Pair | None]
_BufferedState: TypeAlias = tuple[int, list[_SampleState]]


def _buffered(
    buf: bytes, pos: int, end: int, depth: int, state: _BufferedState | None
) -> _BufferedState:
    if depth > _MAX_DEPTH:
        raise _too_deep("OnBufferedDataChangeEvent", pos)
    t_data_type, t_samples = _t._BUFFERED_TAGS
    if state is None:
        data_type = 0
        samples: list[_SampleState] = []
    else:
        data_type, samples = state
    inner = depth + 1
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_data_type:
                data_type, pos = _int32(buf, pos, end)
            elif tag == t_samples:
                start, pos = _ld(buf, pos, end)
                samples.append(_sample(buf, start, pos, inner))
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("OnBufferedDataChangeEvent", exc) from None
    return data_type, samples


def _sample(buf: bytes, pos: int, end: int, depth: int) -> _SampleState:
    if depth > _MAX_DEPTH:
        raise _too_deep("BufferedSample", pos)
    t_value, t_quality, t_timestamp = _t._SAMPLE_TAGS
    value: _ValueState | None = None
    quality = 0
    timestamp: _Pair | None = None
    inner = depth + 1
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_value:
                start, pos = _ld(buf, pos, end)
                value = _value(buf, start, pos, inner, value)
            elif tag == t_quality:
                quality, pos = _int32(buf, pos, end)
            elif tag == t_timestamp:
                start, pos = _ld(buf, pos, end)
                timestamp = _timestamp(buf, start, pos, inner, timestamp)
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("BufferedSample", exc) from None
    return value, quality, timestamp


_AlarmState: TypeAlias = tuple[Any, ...]
_EMPTY_ALARM: Final[_AlarmState] = (
    "",
    "",
    "",
    0,
    0,
    None,
    None,
    "",
    "",
    "",
    "",
    None,
    None,
    False,
    0,
)


def _alarm(buf: bytes, pos: int, end: int, depth: int, state: _AlarmState | None) -> _AlarmState:
    if depth > _MAX_DEPTH:
        raise _too_deep("OnAlarmTransitionEvent", pos)
    (
        t_reference,
        t_source,
        t_type_name,
        t_kind,
        t_severity,
        t_raised,
        t_transition,
        t_user,
        t_comment,
        t_category,
        t_description,
        t_current,
        t_limit,
        t_degraded,
        t_state,
    ) = _t._ALARM_TAGS
    (
        reference,
        source,
        type_name,
        kind,
        severity,
        raised,
        transition,
        user,
        comment,
        category,
        description,
        current,
        limit,
        degraded,
        condition,
    ) = state or _EMPTY_ALARM
    inner = depth + 1
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_reference:
                start, pos = _ld(buf, pos, end)
                reference = _utf8(buf, start, pos)
            elif tag == t_source:
                start, pos = _ld(buf, pos, end)
                source = _utf8(buf, start, pos)
            elif tag == t_type_name:
                start, pos = _ld(buf, pos, end)
                type_name = _utf8(buf, start, pos)
            elif tag == t_kind:
                kind, pos = _int32(buf, pos, end)
            elif tag == t_severity:
                severity, pos = _int32(buf, pos, end)
            elif tag == t_raised:
                start, pos = _ld(buf, pos, end)
                raised = _timestamp(buf, start, pos, inner, raised)
            elif tag == t_transition:
                start, pos = _ld(buf, pos, end)
                transition = _timestamp(buf, start, pos, inner, transition)
            elif tag == t_user:
                start, pos = _ld(buf, pos, end)
                user = _utf8(buf, start, pos)
            elif tag == t_comment:
                start, pos = _ld(buf, pos, end)
                comment = _utf8(buf, start, pos)
            elif tag == t_category:
                start, pos = _ld(buf, pos, end)
                category = _utf8(buf, start, pos)
            elif tag == t_description:
                start, pos = _ld(buf, pos, end)
                description = _utf8(buf, start, pos)
            elif tag == t_current:
                start, pos = _ld(buf, pos, end)
                current = _value(buf, start, pos, inner, current)
            elif tag == t_limit:
                start, pos = _ld(buf, pos, end)
                limit = _value(buf, start, pos, inner, limit)
            elif tag == t_degraded:
                raw, pos = _varint(buf, pos, end)
                degraded = raw != 0
            elif tag == t_state:
                condition, pos = _int32(buf, pos, end)
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("OnAlarmTransitionEvent", exc) from None
    return (
        reference,
        source,
        type_name,
        kind,
        severity,
        raised,
        transition,
        user,
        comment,
        category,
        description,
        current,
        limit,
        degraded,
        condition,
    )


# An event's parse state: (session, family, sequence, server, item, value, quality, source
# timestamp, statuses, worker timestamp, gateway timestamp, hresult, raw_status, replay gap,
# body, body state), the values as read (value and timestamps as their states).
_EventState: TypeAlias = tuple[Any, ...]


def _event(
    buf: bytes, pos: int, end: int, depth: int, tags: dict[int, str] | None = None
) -> MxEvent:
    return _event_struct(_event_state(buf, pos, end, depth), tags)


def _event_state(buf: bytes, pos: int, end: int, depth: int) -> _EventState:
    # The hot path: one-byte lengths and varints (the common case) are read inline, anything
    # longer goes through _ld / _varint / _int32, which do the same with every check.
    if depth > _MAX_DEPTH:
        raise _too_deep("MxEvent", pos)
    (
        t_session,
        t_family,
        t_sequence,
        t_server,
        t_item,
        t_value,
        t_quality,
        t_source_ts,
        t_statuses,
        t_worker_ts,
        t_gateway_ts,
        t_hresult,
        t_raw_status,
        t_gap,
        t_on_data,
        t_on_write,
        t_operation,
        t_on_buffered,
        t_on_alarm,
    ) = _t._EVENT_TAGS
    session = raw_status = ""
    family = sequence = server = item = quality = 0
    hresult: int | None = None
    value: _ValueState | None = None
    source_ts: _Pair | None = None
    worker_ts: _Pair | None = None
    gateway_ts: _Pair | None = None
    gap: _Pair | None = None
    statuses: list[MxStatus] = []
    body = _B_NONE
    body_state: Any = None
    inner = depth + 1
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_session:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                session = _utf8(buf, start, pos)
            elif tag == t_family:
                if pos < end and buf[pos] < 0x80:
                    family = buf[pos]
                    pos += 1
                else:
                    family, pos = _int32(buf, pos, end)
            elif tag == t_sequence:
                if pos < end and buf[pos] < 0x80:
                    sequence = buf[pos]
                    pos += 1
                else:
                    sequence, pos = _varint(buf, pos, end)
            elif tag == t_server:
                if pos < end and buf[pos] < 0x80:
                    server = buf[pos]
                    pos += 1
                else:
                    server, pos = _int32(buf, pos, end)
            elif tag == t_item:
                if pos < end and buf[pos] < 0x80:
                    item = buf[pos]
                    pos += 1
                else:
                    item, pos = _int32(buf, pos, end)
            elif tag == t_value:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                value = _value(buf, start, pos, inner, value)
            elif tag == t_quality:
                if pos < end and buf[pos] < 0x80:
                    quality = buf[pos]
                    pos += 1
                else:
                    quality, pos = _int32(buf, pos, end)
            elif tag == t_source_ts:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                source_ts = _timestamp(buf, start, pos, inner, source_ts)
            elif tag == t_statuses:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                statuses.append(_status(buf, start, pos, inner))
            elif tag == t_worker_ts:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                worker_ts = _timestamp(buf, start, pos, inner, worker_ts)
            elif tag == t_gateway_ts:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                gateway_ts = _timestamp(buf, start, pos, inner, gateway_ts)
            elif tag == t_hresult:
                hresult, pos = _int32(buf, pos, end)
            elif tag == t_raw_status:
                start, pos = _ld(buf, pos, end)
                raw_status = _utf8(buf, start, pos)
            elif tag == t_gap:
                start, pos = _ld(buf, pos, end)
                gap = _replay_gap(buf, start, pos, inner, gap)
            elif tag == t_on_data:
                if pos < end and buf[pos] < 0x80:
                    start = pos + 1
                    pos = start + buf[pos]
                    if pos > end:
                        raise _Wire(f"length {buf[start - 1]} runs past the end", start - 1)
                else:
                    start, pos = _ld(buf, pos, end)
                if start != pos or inner > _MAX_DEPTH:
                    _empty(buf, start, pos, inner, "OnDataChangeEvent")
                body = _B_DATA
                body_state = None
            elif tag == t_on_write:
                start, pos = _ld(buf, pos, end)
                _empty(buf, start, pos, inner, "OnWriteCompleteEvent")
                body = _B_WRITE
                body_state = None
            elif tag == t_operation:
                start, pos = _ld(buf, pos, end)
                _empty(buf, start, pos, inner, "OperationCompleteEvent")
                body = _B_OPERATION
                body_state = None
            elif tag == t_on_buffered:
                start, pos = _ld(buf, pos, end)
                body_state = _buffered(
                    buf, start, pos, inner, body_state if body == _B_BUFFERED else None
                )
                body = _B_BUFFERED
            elif tag == t_on_alarm:
                start, pos = _ld(buf, pos, end)
                body_state = _alarm(
                    buf, start, pos, inner, body_state if body == _B_ALARM else None
                )
                body = _B_ALARM
            else:
                pos = _skip(buf, tag, pos, end, depth)
    except _Wire as exc:
        raise _error("MxEvent", exc) from None

    return (
        session,
        family,
        sequence,
        server,
        item,
        value,
        quality,
        source_ts,
        statuses,
        worker_ts,
        gateway_ts,
        hresult,
        raw_status,
        gap,
        body,
        body_state,
    )


def _event_struct(state: _EventState, tags: dict[int, str] | None) -> MxEvent:
    (
        session,
        family,
        sequence,
        server,
        item,
        value,
        quality,
        source_ts,
        statuses,
        worker_ts,
        gateway_ts,
        hresult,
        raw_status,
        gap,
        body,
        body_state,
    ) = state
    if value is None:
        native: Any = None
        data_type: Any = _DT_UNSPECIFIED
        variant, is_null, raw_diag, raw_dt, raw_value = "", False, "", 0, b""
    else:
        native, data_type, variant, is_null, raw_diag, raw_dt, raw_value = _value_fields(value)
    if body == _B_BUFFERED:
        buffered_type = _DATA_TYPES.get(body_state[0], body_state[0])
        samples = tuple([_finish_sample(s) for s in body_state[1]])
    else:
        buffered_type = _DT_UNSPECIFIED
        samples = ()
    family_member: Any = _FAMILIES.get(family, family)
    return MxEvent(
        session,
        family_member,
        sequence,
        server,
        item,
        native,
        data_type,
        variant,
        is_null,
        raw_diag,
        raw_dt,
        raw_value,
        value is not None,
        quality,
        None if source_ts is None else source_ts[0] * _NS + source_ts[1],
        tuple(statuses),
        None if worker_ts is None else worker_ts[0] * _NS + worker_ts[1],
        None if gateway_ts is None else gateway_ts[0] * _NS + gateway_ts[1],
        hresult,
        raw_status,
        None if gap is None else ReplayGap(gap[0], gap[1]),
        _BODY_NAMES[body],
        buffered_type,
        samples,
        _finish_alarm(body_state) if body == _B_ALARM else None,
        None,
        None if tags is None else tags.get(item),
    )


# ---- final states to structs and native values --------------------------------------------


def _to_datetime(state: _Pair, where: str) -> datetime:
    seconds, nanos = state
    try:
        return _EPOCH + timedelta(microseconds=(seconds * _NS + nanos) // 1000)
    except OverflowError:
        raise MxGatewayDecodeError(
            f"{where}: timestamp of {seconds} s {nanos} ns is outside datetime's range"
        ) from None


def _to_timedelta(state: _Pair, where: str) -> timedelta:
    seconds, nanos = state
    try:
        return timedelta(microseconds=(seconds * _NS + nanos) // 1000)
    except OverflowError:
        raise MxGatewayDecodeError(
            f"{where}: duration of {seconds} s {nanos} ns is outside timedelta's range"
        ) from None


def _native(state: _ValueState) -> Any:
    arm = state[6]
    if arm == _A_NONE:
        raw_value = state[5]
        return raw_value if raw_value else None
    if arm <= _A_STR:
        return state[7]
    if arm == _A_TS:
        return _to_datetime(state[7], "MxValue.timestamp_value")
    if arm == _A_DUR:
        return _to_timedelta(state[7], "MxValue.elapsed_value")
    if arm == _A_ARRAY:
        return _array_native(state[7])
    element_type, total, elements = state[7]
    return MxSparseArray(
        _DATA_TYPES.get(element_type, element_type),
        total,
        tuple([(index, None if v is None else _native(v)) for index, v in elements]),
    )


def _array_native(state: _ArrayState) -> list[Any]:
    element_type, dims, bools, int32s, int64s, floats, doubles, strings, stamps, durs = state
    values: list[Any]
    if element_type == _DT_BOOLEAN:
        values = bools
    elif element_type == _DT_INTEGER:
        values = int32s if int32s else int64s
    elif element_type == _DT_FLOAT:
        values = floats
    elif element_type == _DT_DOUBLE:
        values = doubles
    elif element_type in _STRING_TYPES:
        values = strings
    elif element_type == _DT_TIME:
        values = [_to_datetime(s, "MxArray.timestamp_values") for s in stamps]
    elif element_type == _DT_ELAPSED:
        values = [_to_timedelta(s, "MxArray.elapsed_values") for s in durs]
    elif bools:
        values = bools
    elif int32s:
        values = int32s
    elif int64s:
        values = int64s
    elif floats:
        values = floats
    elif doubles:
        values = doubles
    elif strings:
        values = strings
    elif stamps:
        values = [_to_datetime(s, "MxArray.timestamp_values") for s in stamps]
    elif durs:
        values = [_to_timedelta(s, "MxArray.elapsed_values") for s in durs]
    else:
        values = []
    if len(dims) >= 2:
        count = len(values)
        product = 1
        for d in dims:
            product *= d
            if product == 0 or product > count:
                break
        if product == count and product != 0:
            for d in reversed(dims[1:]):
                values = [values[i : i + d] for i in range(0, len(values), d)]
    return values


def _value_fields(state: _ValueState) -> tuple[Any, Any, str, bool, str, int, bytes]:
    data_type = state[0]
    return (
        _native(state),
        _DATA_TYPES.get(data_type, data_type),
        state[1],
        state[2],
        state[3],
        state[4],
        state[5],
    )


def _finish_value(state: _ValueState | None) -> MxValue | None:
    if state is None:
        return None
    return MxValue(*_value_fields(state))


def _finish_sample(state: _SampleState) -> BufferedSample:
    value, quality, stamp = state
    return BufferedSample(
        _finish_value(value), quality, None if stamp is None else stamp[0] * _NS + stamp[1]
    )


def _finish_alarm(state: _AlarmState) -> AlarmTransition:
    (
        reference,
        source,
        type_name,
        kind,
        severity,
        raised,
        transition,
        user,
        comment,
        category,
        description,
        current,
        limit,
        degraded,
        condition,
    ) = state
    transition_kind: Any = _TRANSITION_KINDS.get(kind, kind)
    condition_state: Any = _CONDITION_STATES.get(condition, condition)
    return AlarmTransition(
        reference,
        source,
        type_name,
        transition_kind,
        severity,
        None if raised is None else raised[0] * _NS + raised[1],
        None if transition is None else transition[0] * _NS + transition[1],
        user,
        comment,
        category,
        description,
        _finish_value(current),
        _finish_value(limit),
        degraded,
        condition_state,
    )


# ---- entry points (the public functions are in __init__) ------------------------------------


def _tags_of(tags: object) -> dict[int, str] | None:
    if tags is not None and type(tags) is not dict:
        raise TypeError(f"tags must be a dict of item handle -> tag, not {type(tags).__name__}")
    return tags


def _batch_events(buf: bytes) -> list[tuple[int, int]]:
    """The (start, stop) of each event of a serialized MxEventBatch, in order."""
    (t_events,) = _t._BATCH_TAGS
    pos = 0
    end = len(buf)
    spans: list[tuple[int, int]] = []
    append = spans.append
    try:
        while pos < end:
            tag = buf[pos]
            if tag < 0x80:
                pos += 1
            else:
                tag, pos = _varint32(buf, pos, end, "tag")
            if tag == t_events:
                start, pos = _ld(buf, pos, end)
                append((start, pos))
            else:
                pos = _skip(buf, tag, pos, end, 1)
    except _Wire as exc:
        raise _error("MxEventBatch", exc) from None
    return spans
