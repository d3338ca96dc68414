"""Events into columns (twin of ext/_columns.pxi): the parts of an ``EventColumns``.

Every event is parsed into the same state as for a struct (``_decode._event_state``); a row is
written from it when the columns can hold it exactly, else the event is built whole
(``_event_struct``) and kept in ``others`` with its row (docs/codec.md, "decode_event_columns").
The columns are packed into one bytearray with the compiled decoder's layout (``LAYOUT``:
each column 8-byte aligned, in this order), which ``mxgateway.columns`` views with numpy; this
module itself needs no numpy.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable
from typing import Any, Final

from mxgateway._pycodec._decode import _batch_events, _event_state, _event_struct, _tags_of
from mxgateway._pycodec._tables import (
    _A_BOOL,
    _A_DUR,
    _A_F32,
    _A_F64,
    _A_I32,
    _A_I64,
    _A_NONE,
    _A_STR,
    _A_TS,
    _B_ALARM,
    _B_BUFFERED,
    _BODY_NAMES,
)
from mxgateway._pycodec._wire import _NS, _as_bytes
from mxgateway.types import TIMESTAMP_ABSENT, MxEvent, MxStatus, ValueKind

__all__ = ["BODY_NAMES", "LAYOUT"]

# (name, numpy dtype) of each column, in block order (ext/_columns.pxi has the same).
LAYOUT: Final = (
    ("worker_sequence", "<u8"),
    ("source_timestamp_ns", "<i8"),
    ("worker_timestamp_ns", "<i8"),
    ("gateway_receive_timestamp_ns", "<i8"),
    ("value_float", "<f8"),
    ("value_int", "<i8"),
    ("server_handle", "<i4"),
    ("item_handle", "<i4"),
    ("family", "<i4"),
    ("quality", "<i4"),
    ("data_type", "<i4"),
    ("raw_data_type", "<i4"),
    ("value_offsets", "<i4"),
    ("variant_type_index", "<i2"),
    ("status_index", "<i2"),
    ("value_kind", "u1"),
    ("value_bool", "?"),
    ("is_null", "?"),
    ("body", "u1"),
)
BODY_NAMES: Final = _BODY_NAMES
"""``body`` column value -> MxEvent.body."""

_PACK: Final = {"<u8": "Q", "<i8": "q", "<f8": "d", "<i4": "i", "<i2": "h", "u1": "B", "?": "?"}
_SIZE: Final = {"<u8": 8, "<i8": 8, "<f8": 8, "<i4": 4, "<i2": 2, "u1": 1, "?": 1}
_DICT_CAP: Final = 1024  # distinct values of a dictionary column per EventColumns
_SAFE_SECONDS: Final = 9_000_000_000  # |seconds| below this: nanoseconds fit int64
_MAX_STRINGS: Final = 0x7FFFFFFF  # string data is indexed by int32 offsets

_K_ABSENT: Final = int(ValueKind.ABSENT)
_K_NONE: Final = int(ValueKind.NONE)
_K_BOOL: Final = int(ValueKind.BOOL)
_K_INT: Final = int(ValueKind.INT)
_K_FLOAT: Final = int(ValueKind.FLOAT)
_K_STRING: Final = int(ValueKind.STRING)
_K_TIME: Final = int(ValueKind.TIME)
_K_ELAPSED: Final = int(ValueKind.ELAPSED)
_K_OTHER: Final = int(ValueKind.OTHER)


def _column_layout() -> tuple[tuple[str, str], ...]:
    """(name, numpy dtype) of each column, in block order (the compiled codec has the same)."""
    return LAYOUT


class _Dictionary:
    """Distinct values of a dictionary column, in order of first appearance."""

    __slots__ = ("index", "values")

    def __init__(self) -> None:
        self.index: dict[Any, int] = {}
        self.values: list[Any] = []

    def lookup(self, key: Any, value: Any) -> int:
        """The index of ``key`` (added with ``value`` when new); -1 when full."""
        found = self.index.get(key)
        if found is not None:
            return found
        if len(self.values) >= _DICT_CAP:
            return -1
        found = self.index[key] = len(self.values)
        self.values.append(value)
        return found


def _stamp(pair: tuple[int, int] | None) -> tuple[int, bool]:
    """A timestamp column value and whether it fits (absent: the sentinel, which fits)."""
    if pair is None:
        return TIMESTAMP_ABSENT, True
    seconds, nanos = pair
    if not -_SAFE_SECONDS < seconds < _SAFE_SECONDS:
        return TIMESTAMP_ABSENT, False
    return seconds * _NS + nanos, True


def _status_key(status: MxStatus) -> tuple[Any, ...]:
    return (
        status.success,
        int(status.category),
        int(status.detected_by),
        status.detail,
        status.raw_category,
        status.raw_detected_by,
        status.diagnostic_text,
    )


def _decode_columns(messages: Iterable[Any], tags: object, single: bool) -> tuple[Any, ...]:
    """The events of ``messages`` (serialized MxEventBatch messages, or MxEvent messages when
    ``single``) as the parts of an EventColumns: ``(n, block, offsets, strings,
    variant_types, statuses, others, session_id, tag_names)``. Internal to
    mxgateway.columns."""
    names = _tags_of(tags)
    buffers = [_as_bytes(m) for m in list(messages)]
    # The events of every message first (their framing), as the compiled decoder counts them.
    events: list[tuple[bytes, int, int, int]] = []
    for buf in buffers:
        if single:
            events.append((buf, 0, len(buf), 1))
        else:
            events.extend((buf, start, stop, 2) for start, stop in _batch_events(buf))
    n = len(events)
    columns: list[list[Any]] = [[] for _ in LAYOUT]
    (
        c_sequence,
        c_source,
        c_worker,
        c_gateway,
        c_float,
        c_int,
        c_server,
        c_item,
        c_family,
        c_quality,
        c_data_type,
        c_raw_data_type,
        c_offsets,
        c_variant,
        c_status,
        c_kind,
        c_bool,
        c_is_null,
        c_body,
    ) = columns
    c_offsets.append(0)
    strings: list[bytes] = []
    string_bytes = 0
    variants = _Dictionary()
    statuses = _Dictionary()
    others: list[tuple[int, MxEvent]] = []
    tag_names: dict[int, str] | None = {} if names is not None else None
    session_id = ""
    for i, (buf, start, stop, depth) in enumerate(events):
        state = _event_state(buf, start, stop, depth)
        (
            session,
            family,
            sequence,
            server,
            item,
            value,
            quality,
            source_ts,
            status_list,
            worker_ts,
            gateway_ts,
            hresult,
            raw_status,
            gap,
            body,
            _body_state,
        ) = state
        if i == 0:
            session_id = session
        c_sequence.append(sequence)
        c_server.append(server)
        c_item.append(item)
        c_family.append(family)
        c_quality.append(quality)
        c_body.append(body)
        stamp, fits_source = _stamp(source_ts)
        c_source.append(stamp)
        stamp, fits_worker = _stamp(worker_ts)
        c_worker.append(stamp)
        stamp, fits_gateway = _stamp(gateway_ts)
        c_gateway.append(stamp)
        fits = fits_source and fits_worker and fits_gateway
        kind = _K_ABSENT
        number_f = 0.0
        number_i = 0
        flag = False
        text = b""
        variant = ""
        if value is not None:
            data_type, variant, is_null, raw_diag, raw_dt, raw_value, arm, payload = value
            c_data_type.append(data_type)
            c_raw_data_type.append(raw_dt)
            c_is_null.append(is_null)
            if raw_value or raw_diag:
                fits = False
            elif arm == _A_NONE:
                kind = _K_NONE
            elif arm in (_A_F64, _A_F32):
                kind = _K_FLOAT
                number_f = payload
            elif arm in (_A_I32, _A_I64):
                kind = _K_INT
                number_i = payload
            elif arm == _A_BOOL:
                kind = _K_BOOL
                flag = payload
            elif arm == _A_STR:
                text = payload.encode()
                if string_bytes + len(text) > _MAX_STRINGS:
                    fits = False
                else:
                    kind = _K_STRING
            elif arm in (_A_TS, _A_DUR):
                seconds, nanos = payload
                if not -_SAFE_SECONDS < seconds < _SAFE_SECONDS:
                    fits = False
                else:
                    kind = _K_TIME if arm == _A_TS else _K_ELAPSED
                    number_i = seconds * _NS + nanos
            else:
                fits = False  # arrays, sparse arrays
        else:
            c_data_type.append(0)
            c_raw_data_type.append(0)
            c_is_null.append(False)
        if (
            hresult is not None
            or raw_status
            or len(status_list) > 1
            or gap is not None
            or body in (_B_BUFFERED, _B_ALARM)
            or session != session_id
        ):
            fits = False
        variant_index = status_index = -1
        if fits:
            variant_index = variants.lookup(variant, variant)
            if variant_index < 0:
                fits = False
            elif status_list:
                first = status_list[0]
                status_index = statuses.lookup(_status_key(first), first)
                if status_index < 0:
                    fits = False
        if tag_names is not None:
            name = names.get(item) if names is not None else None
            if name is not None:
                tag_names[item] = name
        if not fits:
            kind = _K_OTHER
            number_f = 0.0
            number_i = 0
            flag = False
            variant_index = status_index = -1
            others.append((i, _event_struct(state, names)))
        elif kind == _K_STRING:
            strings.append(text)
            string_bytes += len(text)
        c_float.append(number_f)
        c_int.append(number_i)
        c_bool.append(flag)
        c_kind.append(kind)
        c_variant.append(variant_index)
        c_status.append(status_index)
        c_offsets.append(string_bytes)
    block, offsets = _pack(n, columns)
    return (
        n,
        block,
        offsets,
        b"".join(strings),
        variants.values,
        statuses.values,
        others,
        session_id,
        tag_names,
    )


def _pack(n: int, columns: list[list[Any]]) -> tuple[bytearray, tuple[int, ...]]:
    """The columns in one block: each at an 8-byte aligned offset, little-endian."""
    offsets: list[int] = []
    size = 0
    for name, code in LAYOUT:
        size = (size + 7) & ~7
        offsets.append(size)
        size += _SIZE[code] * (n + 1 if name == "value_offsets" else n)
    block = bytearray(size)
    for (_, code), offset, values in zip(LAYOUT, offsets, columns, strict=True):
        packed = struct.pack(f"<{len(values)}{_PACK[code]}", *values)
        block[offset : offset + len(packed)] = packed
    return block, tuple(offsets)
