"""EventColumns: many events as numpy columns, for historians and analytics (numpy needed:
``pip install 'mxgateway[columns]'``; Arrow exports need ``mxgateway[arrow]``).

The codec decodes a serialized MxEventBatch straight into typed columns, one C loop over the
events, no Python object per event (``mxgateway.decode_event_columns``;
``Session.stream_event_columns`` yields them from a stream). Columns are numpy arrays of one
length, named like MxEvent's fields where they mean the same:

=================================  ===========  ==============================================
column                             dtype        holds
=================================  ===========  ==============================================
``worker_sequence``                uint64
``server_handle``, ``item_handle`` int32
``family``, ``data_type``          int32        the enum's number (``MxEventFamily(v)``)
``quality``, ``raw_data_type``     int32
``source_timestamp_ns``,           int64        nanoseconds since the epoch;
``worker_timestamp_ns``,                        ``TIMESTAMP_ABSENT`` (numpy's NaT) when absent
``gateway_receive_timestamp_ns``
``is_null``                        bool
``body``                           uint8        index in ``BODY_NAMES``
``value_kind``                     uint8        a ``ValueKind``: which value column holds it
``value_float``                    float64      FLOAT values (0 elsewhere)
``value_int``                      int64        INT values; TIME / ELAPSED as nanoseconds
``value_bool``                     bool         BOOL values
``value_offsets``                  int32        n + 1 offsets into ``value_data`` (UTF-8):
                                                row i's STRING value is
                                                ``value_data[value_offsets[i]:value_offsets[i+1]]``
``variant_type_index``             int16        index into ``variant_type_values`` (-1: OTHER)
``status_index``                   int16        the first status: index into ``status_values``
                                                (-1: none, or OTHER)
=================================  ===========  ==============================================

Strings are decoded on demand (``string_values()``, ``row(i)``). A row whose event does not fit
the columns (an array, sparse-array, raw or diagnostic value; buffered samples, an alarm
transition, a replay gap, a session-recovered marker; an hresult, raw status or more than one
status; a timestamp beyond about year 2255; another session id) has ``value_kind == OTHER``
and its MxEvent, whole, in ``others`` (``(row, event)`` pairs): nothing is dropped, and its
other columns hold what fits (sequence, handles, family, quality, data type, timestamps).

``row(i)`` (or ``columns[i]``) is the MxEvent ``decode_event_batch()`` gives for that event,
field for field; ``to_arrow()`` / ``to_pandas()`` / ``to_polars()`` export the batch.
"""

from __future__ import annotations

import importlib
import struct
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, overload

try:
    import numpy as np
except ImportError as _exc:  # pragma: no cover - exercised without numpy only
    raise ImportError(
        "mxgateway's columns API needs numpy: pip install 'mxgateway[columns]'"
    ) from _exc

from mxgateway._pycodec._columns import BODY_NAMES, LAYOUT
from mxgateway.types import (
    TIMESTAMP_ABSENT,
    MxDataType,
    MxEvent,
    MxEventFamily,
    MxStatus,
    ValueKind,
)

if TYPE_CHECKING:
    import numpy.typing as npt

    Array = npt.NDArray[Any]

__all__ = ["BODY_NAMES", "TIMESTAMP_ABSENT", "EventColumns", "ValueKind"]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_FAMILIES: Final[dict[int, Any]] = {int(m): m for m in MxEventFamily}
_DATA_TYPES: Final[dict[int, Any]] = {int(m): m for m in MxDataType}
_INDEX: Final = {name: i for i, (name, _) in enumerate(LAYOUT)}
_DTYPES: Final = tuple(np.dtype(code) for _, code in LAYOUT)
_OFFSETS_COLUMN: Final = _INDEX["value_offsets"]
_SEQ: Final = _INDEX["worker_sequence"]
_GATEWAY: Final = _INDEX["gateway_receive_timestamp_ns"]
_KIND: Final = _INDEX["value_kind"]
_unpack_u64 = struct.Struct("<Q").unpack_from
_unpack_i64 = struct.Struct("<q").unpack_from

_K_ABSENT: Final = int(ValueKind.ABSENT)
_K_BOOL: Final = int(ValueKind.BOOL)
_K_INT: Final = int(ValueKind.INT)
_K_FLOAT: Final = int(ValueKind.FLOAT)
_K_STRING: Final = int(ValueKind.STRING)
_K_TIME: Final = int(ValueKind.TIME)
_K_ELAPSED: Final = int(ValueKind.ELAPSED)
_K_OTHER: Final = int(ValueKind.OTHER)


class _Column:
    """A column of EventColumns: a numpy view of the decoded block, made on first access."""

    __slots__ = ("index", "name")

    def __init__(self, name: str) -> None:
        self.name = name
        self.index = _INDEX[name]

    def __get__(self, obj: EventColumns | None, owner: type | None = None) -> Any:
        if obj is None:
            return self
        view = obj._views[self.index]
        if view is None:
            view = obj._view(self.index)
        return view

    def __set__(self, obj: EventColumns, value: Any) -> None:
        raise AttributeError(f"EventColumns.{self.name} is read-only")


class EventColumns:
    """Events as numpy columns (module docstring). ``len()`` rows; ``columns[i]`` or
    ``row(i)`` is row i as an MxEvent; iterating yields every row as an MxEvent."""

    __slots__ = (
        "_block",
        "_n",
        "_offsets",
        "_others_by_row",
        "_views",
        "others",
        "session_id",
        "status_values",
        "tags",
        "value_data",
        "variant_type_values",
    )

    if TYPE_CHECKING:
        worker_sequence: Array
        source_timestamp_ns: Array
        worker_timestamp_ns: Array
        gateway_receive_timestamp_ns: Array
        value_float: Array
        value_int: Array
        server_handle: Array
        item_handle: Array
        family: Array
        quality: Array
        data_type: Array
        raw_data_type: Array
        value_offsets: Array
        variant_type_index: Array
        status_index: Array
        value_kind: Array
        value_bool: Array
        is_null: Array
        body: Array

    _n: int
    _block: bytearray | None
    _offsets: tuple[int, ...]
    _views: list[Any]
    _others_by_row: dict[int, MxEvent] | None
    value_data: bytes
    """The UTF-8 of the STRING values (``value_offsets`` index it)."""
    variant_type_values: Sequence[str]
    """The distinct variant types (``variant_type_index`` indexes it)."""
    status_values: Sequence[MxStatus]
    """The distinct first statuses (``status_index`` indexes it)."""
    others: Sequence[tuple[int, MxEvent]]
    """``(row, event)`` of the rows whose value_kind is OTHER, rows ascending."""
    session_id: str
    """The session of the rows (a row of another session is in ``others``)."""
    tags: dict[int, str] | None
    """Item handle -> tag name for the items of these rows that had one when decoded
    (None when decoded without names)."""

    def __init__(self) -> None:
        raise TypeError(
            "EventColumns come from decode_event_columns() or Session.stream_event_columns()"
        )

    # -- construction (internal) ---------------------------------------------------------------

    def _view(self, index: int) -> Any:
        block = self._block
        assert block is not None
        count = self._n + 1 if index == _OFFSETS_COLUMN else self._n
        view = np.ndarray((count,), _DTYPES[index], block, self._offsets[index])
        self._views[index] = view
        return view

    def _materialize(self) -> list[Any]:
        """Every column as an array (views of the block, made now where not yet made)."""
        return [self._views[i] if self._views[i] is not None else self._view(i) for i in _ALL]

    def __len__(self) -> int:
        return self._n

    def __repr__(self) -> str:
        return (
            f"<EventColumns {self._n} rows, {len(self.others)} in others, "
            f"session {self.session_id!r}>"
        )

    # -- rows ------------------------------------------------------------------------------------

    @overload
    def __getitem__(self, key: int) -> MxEvent: ...
    @overload
    def __getitem__(self, key: slice) -> EventColumns: ...

    def __getitem__(self, key: int | slice) -> MxEvent | EventColumns:
        if isinstance(key, slice):
            start, stop, step = key.indices(self._n)
            if step != 1:
                return self.take(np.arange(start, stop, step))
            return self._slice(start, stop)
        return self.row(key)

    def __iter__(self) -> Iterator[MxEvent]:
        for i in range(self._n):
            yield self.row(i)

    def to_events(self) -> list[MxEvent]:
        """Every row as an MxEvent (what ``decode_event_batch`` gives for the same bytes)."""
        return [self.row(i) for i in range(self._n)]

    def row(self, i: int) -> MxEvent:
        """Row ``i`` as the MxEvent ``decode_event_batch`` gives for that event."""
        n = self._n
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"row {i} of {n}")
        kind = int(self.value_kind[i])
        if kind == _K_OTHER:
            return self._others_map()[i]
        value: Any = None
        if kind == _K_FLOAT:
            value = float(self.value_float[i])
        elif kind == _K_INT:
            value = int(self.value_int[i])
        elif kind == _K_BOOL:
            value = bool(self.value_bool[i])
        elif kind == _K_STRING:
            offsets = self.value_offsets
            value = self.value_data[offsets[i] : offsets[i + 1]].decode()
        elif kind == _K_TIME:
            value = _EPOCH + timedelta(microseconds=int(self.value_int[i]) // 1000)
        elif kind == _K_ELAPSED:
            value = timedelta(microseconds=int(self.value_int[i]) // 1000)
        status = int(self.status_index[i])
        item = int(self.item_handle[i])
        family = int(self.family[i])
        data_type = int(self.data_type[i])
        tags = self.tags
        return MxEvent(
            self.session_id,
            _FAMILIES.get(family, family),
            int(self.worker_sequence[i]),
            int(self.server_handle[i]),
            item,
            value,
            _DATA_TYPES.get(data_type, data_type),
            self.variant_type_values[int(self.variant_type_index[i])],
            bool(self.is_null[i]),
            "",
            int(self.raw_data_type[i]),
            b"",
            kind != _K_ABSENT,
            int(self.quality[i]),
            _ns(self.source_timestamp_ns[i]),
            () if status < 0 else (self.status_values[status],),
            _ns(self.worker_timestamp_ns[i]),
            _ns(self.gateway_receive_timestamp_ns[i]),
            None,
            "",
            None,
            BODY_NAMES[int(self.body[i])],
            MxDataType.UNSPECIFIED,
            (),
            None,
            None,
            None if tags is None else tags.get(item),
        )

    def _others_map(self) -> dict[int, MxEvent]:
        by_row = self._others_by_row
        if by_row is None:
            by_row = self._others_by_row = dict(self.others)
        return by_row

    # -- values on demand ------------------------------------------------------------------------

    def string_values(self) -> Array:
        """An object array: the STRING rows' values as str, None elsewhere."""
        out = np.full(self._n, None, dtype=object)
        rows = np.flatnonzero(self.value_kind == _K_STRING)
        offsets = self.value_offsets
        data = self.value_data
        for i in rows.tolist():
            out[i] = data[offsets[i] : offsets[i + 1]].decode()
        return out

    def tag_values(self) -> Array:
        """An object array: each row's tag name (None when unknown)."""
        tags = self.tags or {}
        items = self.item_handle
        unique, inverse = np.unique(items, return_inverse=True)
        names = np.array([tags.get(int(h)) for h in unique.tolist()] + [None], dtype=object)
        return names[:-1][inverse] if len(unique) else np.full(self._n, None, dtype=object)

    def _status_field(self, field: Callable[[MxStatus], int]) -> Array:
        table = np.array([field(s) for s in self.status_values] + [0], dtype=np.int32)
        index = self.status_index.astype(np.intp)
        index[index < 0] = len(table) - 1
        return table[index]

    @property
    def status_success(self) -> Array:
        """The first status's ``success`` (int32; 0 without a status)."""
        return self._status_field(lambda s: s.success)

    @property
    def status_category(self) -> Array:
        """The first status's ``category`` number (int32; 0 without a status)."""
        return self._status_field(lambda s: int(s.category))

    @property
    def status_detected_by(self) -> Array:
        """The first status's ``detected_by`` number (int32; 0 without a status)."""
        return self._status_field(lambda s: int(s.detected_by))

    @property
    def status_detail(self) -> Array:
        """The first status's ``detail`` (int32; 0 without a status)."""
        return self._status_field(lambda s: s.detail)

    # -- first/last (the stream core reads these per batch, without numpy views) -----------------

    def _sequence_at(self, i: int) -> int:
        view = self._views[_SEQ]
        if view is not None or self._block is None:
            return int(self.worker_sequence[i])
        value: int = _unpack_u64(self._block, self._offsets[_SEQ] + 8 * i)[0]
        return value

    def _gateway_ns_at(self, i: int) -> int | None:
        view = self._views[_GATEWAY]
        if view is not None or self._block is None:
            return _ns(self.gateway_receive_timestamp_ns[i])
        value: int = _unpack_i64(self._block, self._offsets[_GATEWAY] + 8 * i)[0]
        return None if value == TIMESTAMP_ABSENT else value

    # -- subsets ---------------------------------------------------------------------------------

    def _slice(self, start: int, stop: int) -> EventColumns:
        """Rows ``start:stop`` (views: no copy; string offsets stay absolute)."""
        stop = max(start, stop)
        columns = self._materialize()
        views = [
            column[start : stop + 1] if i == _OFFSETS_COLUMN else column[start:stop]
            for i, column in enumerate(columns)
        ]
        others = [(row - start, event) for row, event in self.others if start <= row < stop]
        return _build(
            stop - start,
            views,
            self.value_data,
            self.variant_type_values,
            self.status_values,
            others,
            self.session_id,
            self.tags,
        )

    def take(self, rows: Any) -> EventColumns:
        """The rows at the given indices (an int array or a boolean mask), in that order."""
        rows = np.asarray(rows)
        if rows.dtype == np.bool_:
            rows = np.flatnonzero(rows)
        rows = rows.astype(np.intp, copy=False)
        n = self._n
        rows = np.where(rows < 0, rows + n, rows)
        if rows.size and (rows.min() < 0 or rows.max() >= n):
            raise IndexError("row index out of range")
        columns = self._materialize()
        views: list[Any] = []
        for i, column in enumerate(columns):
            if i == _OFFSETS_COLUMN:
                continue
            views.append(column[rows])
        offsets = columns[_OFFSETS_COLUMN]
        starts = offsets[:-1][rows].astype(np.int64)
        lengths = offsets[1:][rows].astype(np.int64) - starts
        new_offsets = np.zeros(len(rows) + 1, dtype=np.int32)
        np.cumsum(lengths, out=new_offsets[1:], dtype=np.int32) if len(rows) else None
        total = int(new_offsets[-1])
        if total:
            gather = np.repeat(starts - new_offsets[:-1], lengths) + np.arange(total)
            data = np.frombuffer(self.value_data, dtype=np.uint8)[gather].tobytes()
        else:
            data = b""
        views.insert(_OFFSETS_COLUMN, new_offsets)
        by_row = self._others_map()
        others = [(j, by_row[r]) for j, r in enumerate(rows.tolist()) if r in by_row]
        return _build(
            len(rows),
            views,
            data,
            self.variant_type_values,
            self.status_values,
            others,
            self.session_id,
            self.tags,
        )

    @classmethod
    def concat(cls, parts: Sequence[EventColumns]) -> EventColumns:
        """The rows of several EventColumns of one session, one after the other."""
        if not parts:
            raise ValueError("concat needs at least one EventColumns")
        if len(parts) == 1:
            return parts[0]
        session_id = parts[0].session_id
        variant_values: list[str] = []
        variant_at: dict[str, int] = {}
        status_values: list[MxStatus] = []
        status_at: dict[MxStatus, int] = {}
        per_part: list[list[Any]] = []
        others: list[tuple[int, MxEvent]] = []
        tags: dict[int, str] | None = None
        data: list[bytes] = []
        base = 0
        data_base = 0
        offsets_parts: list[Any] = []
        for part in parts:
            columns = part._materialize()
            extra_others: list[tuple[int, MxEvent]] = []
            if part.session_id != session_id and len(part):
                # Rows of another session do not fit: every row becomes an "other".
                extra_others = [(i, part.row(i)) for i in range(len(part))]
                columns = [c.copy() for c in columns]
                columns[_KIND][:] = _K_OTHER
            variant_map = np.array(
                [variant_at.setdefault(v, len(variant_at)) for v in part.variant_type_values]
                + [-1],
                dtype=np.int16,
            )
            for v in part.variant_type_values:
                if len(variant_values) < len(variant_at) and v not in variant_values:
                    variant_values.append(v)
            status_map = np.array(
                [status_at.setdefault(s, len(status_at)) for s in part.status_values] + [-1],
                dtype=np.int16,
            )
            for s in part.status_values:
                if len(status_values) < len(status_at) and s not in status_values:
                    status_values.append(s)
            columns = list(columns)
            columns[_INDEX["variant_type_index"]] = variant_map[
                columns[_INDEX["variant_type_index"]].astype(np.intp)
            ]
            columns[_INDEX["status_index"]] = status_map[
                columns[_INDEX["status_index"]].astype(np.intp)
            ]
            offsets = columns[_OFFSETS_COLUMN]
            first = int(offsets[0]) if len(offsets) else 0
            last = int(offsets[-1]) if len(offsets) else 0
            data.append(part.value_data[first:last])
            offsets_parts.append(offsets[1:].astype(np.int64) - first + data_base)
            data_base += last - first
            per_part.append(columns)
            if extra_others:
                others.extend((base + row, event) for row, event in extra_others)
            else:
                others.extend((base + row, event) for row, event in part.others)
            if part.tags is not None:
                tags = {**(tags or {}), **part.tags}
            base += len(part)
        views: list[Any] = []
        for i in range(len(LAYOUT)):
            if i == _OFFSETS_COLUMN:
                joined = np.concatenate([np.zeros(1, np.int64), *offsets_parts])
                if joined[-1] > 0x7FFFFFFF:
                    raise ValueError("the string values of these columns exceed 2 GiB")
                views.append(joined.astype(np.int32))
            else:
                views.append(np.concatenate([columns[i] for columns in per_part]))
        return _build(
            base,
            views,
            b"".join(data),
            tuple(variant_at),
            tuple(status_at),
            others,
            session_id,
            tags,
        )

    # -- exports ---------------------------------------------------------------------------------

    def to_arrow(self) -> Any:
        """A ``pyarrow.RecordBatch`` of the rows (``mxgateway[arrow]``).

        Numeric columns share memory with the numpy columns; strings keep ``value_data`` and
        ``value_offsets`` as Arrow buffers. Timestamps are ``timestamp[ns, UTC]`` (null when
        absent); value columns are null outside their kind (``value_time`` and
        ``value_elapsed`` are the TIME and ELAPSED rows of ``value_int``); ``variant_type``,
        ``body``, ``tag`` and ``session_id`` are dictionary-encoded; the first status is
        ``status_*`` columns; ``other`` holds the serialized MxEvent (``encode_event``) of
        the rows in ``others`` (their handles as this batch has them).
        """
        from mxgateway._arrow import columns_to_arrow

        return columns_to_arrow(self)

    def to_pandas(self) -> Any:
        """A ``pandas.DataFrame`` of the rows (built from the numpy columns; pyarrow is not
        needed). Timestamps are ``datetime64[ns, UTC]`` (NaT when absent); value columns
        are nullable (``Float64``, ``Int64``, ``boolean``) and missing outside their kind;
        ``variant_type``, ``body`` and ``tag`` are categoricals; ``other`` holds the
        MxEvent of the rows in ``others``."""
        from mxgateway._arrow import columns_to_pandas

        return columns_to_pandas(self)

    def to_polars(self) -> Any:
        """A ``polars.DataFrame`` of the rows (through ``to_arrow()``: needs pyarrow)."""
        try:
            pl: Any = importlib.import_module("polars")
        except ImportError:
            raise ImportError("EventColumns.to_polars() needs polars: pip install polars") from None
        return pl.from_arrow(self.to_arrow())


_ALL: Final = range(len(LAYOUT))

for _name, _ in LAYOUT:
    setattr(EventColumns, _name, _Column(_name))


def _ns(value: Any) -> int | None:
    ns = int(value)
    return None if ns == TIMESTAMP_ABSENT else ns


def _build(
    n: int,
    views: list[Any],
    value_data: bytes,
    variant_type_values: Sequence[str],
    status_values: Sequence[MxStatus],
    others: Sequence[tuple[int, MxEvent]],
    session_id: str,
    tags: dict[int, str] | None,
) -> EventColumns:
    columns: EventColumns = object.__new__(EventColumns)
    columns._n = n
    columns._block = None
    columns._offsets = ()
    columns._views = views
    columns._others_by_row = None
    columns.value_data = value_data
    columns.variant_type_values = variant_type_values
    columns.status_values = status_values
    columns.others = others
    columns.session_id = session_id
    columns.tags = tags
    return columns


def _from_parts(parts: tuple[Any, ...]) -> EventColumns:
    """An EventColumns of what a codec's ``_decode_columns`` returned (no copy)."""
    n, block, offsets, strings, variants, statuses, others, session_id, tags = parts
    columns: EventColumns = object.__new__(EventColumns)
    columns._n = n
    columns._block = block
    columns._offsets = offsets
    columns._views = [None] * len(LAYOUT)
    columns._others_by_row = None
    columns.value_data = strings
    columns.variant_type_values = variants
    columns.status_values = statuses
    columns.others = others
    columns.session_id = session_id
    columns.tags = tags
    return columns


def _of_events(events: Sequence[MxEvent]) -> EventColumns:
    """EventColumns holding ``events`` whole, every row in ``others`` (the stream's markers)."""
    n = len(events)
    columns: list[Any] = []
    for name, code in LAYOUT:
        count = n + 1 if name == "value_offsets" else n
        columns.append(np.zeros(count, dtype=code))
    for i, event in enumerate(events):
        columns[_SEQ][i] = event.worker_sequence
        columns[_INDEX["server_handle"]][i] = event.server_handle
        columns[_INDEX["item_handle"]][i] = event.item_handle
        columns[_INDEX["family"]][i] = event.family
        columns[_INDEX["quality"]][i] = event.quality
    for name in ("source_timestamp_ns", "worker_timestamp_ns", "gateway_receive_timestamp_ns"):
        column = columns[_INDEX[name]]
        for i, event in enumerate(events):
            stamp = getattr(event, name)
            column[i] = TIMESTAMP_ABSENT if stamp is None or not -(2**63) < stamp < 2**63 else stamp
    columns[_KIND][:] = _K_OTHER
    columns[_INDEX["variant_type_index"]][:] = -1
    columns[_INDEX["status_index"]][:] = -1
    session_id = events[0].session_id if events else ""
    return _build(n, columns, b"", (), (), list(enumerate(events)), session_id, None)


def _map_handles(
    columns: EventColumns, servers: dict[int, int], items: dict[int, int]
) -> EventColumns:
    """``columns`` with live server/item handles replaced by the caller's (a recovery moved
    them); its tags are keyed by the caller's handles too."""
    if not (servers or items) or not len(columns):
        return columns
    views = list(columns._materialize())
    for name, mapping in (("server_handle", servers), ("item_handle", items)):
        if not mapping:
            continue
        index = _INDEX[name]
        unique, inverse = np.unique(views[index], return_inverse=True)
        mapped = np.array([mapping.get(h, h) for h in unique.tolist()], dtype=np.int32)
        views[index] = mapped[inverse].astype(np.int32)
    replace = _replace_handles
    others = [(row, replace(event, servers, items)) for row, event in columns.others]
    tags = columns.tags
    if tags is not None and items:
        tags = {items.get(h, h): name for h, name in tags.items()}
    return _build(
        len(columns),
        views,
        columns.value_data,
        columns.variant_type_values,
        columns.status_values,
        others,
        columns.session_id,
        tags,
    )


def _replace_handles(event: MxEvent, servers: dict[int, int], items: dict[int, int]) -> MxEvent:
    import msgspec

    server = servers.get(event.server_handle)
    item = items.get(event.item_handle)
    if server is None and item is None:
        return event
    return msgspec.structs.replace(
        event,
        server_handle=event.server_handle if server is None else server,
        item_handle=event.item_handle if item is None else item,
    )
