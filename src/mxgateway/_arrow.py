"""EventColumns exports: Arrow (``mxgateway[arrow]``) and pandas.

The Arrow record batch shares the numpy columns' memory wherever Arrow's layout is numpy's:
every integer and float column, the timestamps (their absent sentinel becomes a null through
a validity bitmap), and the strings (``value_offsets`` and ``value_data`` are Arrow's offsets
and data buffers as they are). Booleans are bit-packed and dictionary indices of the status
fields gathered, which copies.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

import numpy as np

from mxgateway.types import TIMESTAMP_ABSENT, ValueKind

if TYPE_CHECKING:
    from mxgateway.columns import EventColumns

__all__ = ["ARROW_COLUMNS", "columns_to_arrow", "columns_to_pandas"]

ARROW_COLUMNS = (
    "session_id",
    "worker_sequence",
    "server_handle",
    "item_handle",
    "tag",
    "family",
    "quality",
    "data_type",
    "raw_data_type",
    "source_timestamp",
    "worker_timestamp",
    "gateway_receive_timestamp",
    "value_kind",
    "value_float",
    "value_int",
    "value_bool",
    "value_str",
    "value_time",
    "value_elapsed",
    "is_null",
    "variant_type",
    "status_success",
    "status_category",
    "status_detected_by",
    "status_detail",
    "status_raw_category",
    "status_raw_detected_by",
    "status_diagnostic_text",
    "body",
    "other",
)
"""The columns of ``EventColumns.to_arrow()``, in order."""

_STATUS_FIELDS = (
    "success",
    "category",
    "detected_by",
    "detail",
    "raw_category",
    "raw_detected_by",
)


def _pyarrow() -> Any:
    try:
        pyarrow = importlib.import_module("pyarrow")
    except ImportError:
        raise ImportError(
            "EventColumns.to_arrow() needs pyarrow: pip install 'mxgateway[arrow]'"
        ) from None
    return pyarrow


def _primitive(pa: Any, arrow_type: Any, values: Any, valid: Any = None) -> Any:
    """An Arrow array over ``values``' memory (no copy), null where ``valid`` is False."""
    values = np.ascontiguousarray(values)
    bitmap = None
    nulls = 0
    if valid is not None:
        nulls = len(valid) - int(np.count_nonzero(valid))
        if nulls:
            bitmap = pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(
        arrow_type, len(values), [bitmap, pa.py_buffer(values)], null_count=nulls
    )


def _dictionary(pa: Any, indices: Any, index_type: Any, values: Any) -> Any:
    """A dictionary array: ``indices`` (-1: null) into ``values`` (strings)."""
    valid = indices >= 0
    return pa.DictionaryArray.from_arrays(
        _primitive(pa, index_type, indices, valid), pa.array(list(values), pa.string())
    )


def _tag_codes(columns: EventColumns) -> tuple[Any, list[str]]:
    """Each row's index into the distinct tag names (-1: unknown), and those names."""
    tags = columns.tags or {}
    items = columns.item_handle
    if not len(items):
        return np.zeros(0, dtype=np.int32), []
    code_of_name: dict[str, int] = {}
    low, high = int(items.min()), int(items.max())
    if high - low <= 4 * len(items) + 1024:
        # Handles in a small range (the usual case): a lookup table, no sort.
        table = np.full(high - low + 1, -1, dtype=np.int32)
        for handle, name in tags.items():
            if low <= handle <= high:
                table[handle - low] = code_of_name.setdefault(name, len(code_of_name))
        return table[items - low], list(code_of_name)
    unique, inverse = np.unique(items, return_inverse=True)
    code_of = []
    for handle in unique.tolist():
        tag = tags.get(handle)
        code_of.append(-1 if tag is None else code_of_name.setdefault(tag, len(code_of_name)))
    return np.array(code_of, dtype=np.int32)[inverse.reshape(-1)], list(code_of_name)


def _status_column(columns: EventColumns, field: str) -> Any:
    table = np.array([int(getattr(s, field)) for s in columns.status_values] + [0], dtype=np.int32)
    index = columns.status_index.astype(np.intp)
    index[index < 0] = len(table) - 1
    return table[index]


def columns_to_arrow(columns: EventColumns) -> Any:
    """``EventColumns.to_arrow()``: a pyarrow RecordBatch of ``ARROW_COLUMNS``."""
    pa = _pyarrow()
    from mxgateway._codec import encode_event
    from mxgateway.columns import BODY_NAMES

    n = len(columns)
    kind = columns.value_kind
    utc = pa.timestamp("ns", tz="UTC")
    arrays: dict[str, Any] = {}
    arrays["session_id"] = pa.DictionaryArray.from_arrays(
        pa.array(np.zeros(n, dtype=np.int8)), pa.array([columns.session_id], pa.string())
    )
    arrays["worker_sequence"] = _primitive(pa, pa.uint64(), columns.worker_sequence)
    arrays["server_handle"] = _primitive(pa, pa.int32(), columns.server_handle)
    arrays["item_handle"] = _primitive(pa, pa.int32(), columns.item_handle)
    codes, names = _tag_codes(columns)
    arrays["tag"] = _dictionary(pa, codes, pa.int32(), names)
    for name in ("family", "quality", "data_type", "raw_data_type"):
        arrays[name] = _primitive(pa, pa.int32(), getattr(columns, name))
    for name in ("source_timestamp", "worker_timestamp", "gateway_receive_timestamp"):
        stamps = getattr(columns, name + "_ns")
        arrays[name] = _primitive(pa, utc, stamps, stamps != TIMESTAMP_ABSENT)
    arrays["value_kind"] = _primitive(pa, pa.uint8(), kind)
    arrays["value_float"] = _primitive(
        pa, pa.float64(), columns.value_float, kind == ValueKind.FLOAT
    )
    arrays["value_int"] = _primitive(pa, pa.int64(), columns.value_int, kind == ValueKind.INT)
    arrays["value_bool"] = pa.array(columns.value_bool, mask=kind != ValueKind.BOOL)
    valid = kind == ValueKind.STRING
    nulls = n - int(np.count_nonzero(valid))
    arrays["value_str"] = pa.Array.from_buffers(
        pa.string(),
        n,
        [
            pa.py_buffer(np.packbits(valid, bitorder="little")) if nulls else None,
            pa.py_buffer(np.ascontiguousarray(columns.value_offsets)),
            pa.py_buffer(columns.value_data),
        ],
        null_count=nulls,
    )
    arrays["value_time"] = _primitive(pa, utc, columns.value_int, kind == ValueKind.TIME)
    arrays["value_elapsed"] = _primitive(
        pa, pa.duration("ns"), columns.value_int, kind == ValueKind.ELAPSED
    )
    arrays["is_null"] = pa.array(columns.is_null)
    arrays["variant_type"] = _dictionary(
        pa, columns.variant_type_index, pa.int16(), columns.variant_type_values
    )
    has_status = columns.status_index >= 0
    for field in _STATUS_FIELDS:
        arrays["status_" + field] = _primitive(
            pa, pa.int32(), _status_column(columns, field), has_status
        )
    texts: dict[str, int] = {}
    text_codes = np.array(
        [texts.setdefault(s.diagnostic_text, len(texts)) for s in columns.status_values] + [-1],
        dtype=np.int16,
    )
    arrays["status_diagnostic_text"] = _dictionary(
        pa, text_codes[columns.status_index.astype(np.intp)], pa.int16(), list(texts)
    )
    arrays["body"] = pa.DictionaryArray.from_arrays(
        _primitive(pa, pa.uint8(), columns.body), pa.array(list(BODY_NAMES), pa.string())
    )
    others = columns.others
    if others:
        encoded = [encode_event(event) for _, event in others]
        lengths = np.zeros(n, dtype=np.int64)
        lengths[[row for row, _ in others]] = [len(b) for b in encoded]
        offsets = np.zeros(n + 1, dtype=np.int32)
        np.cumsum(lengths, out=offsets[1:])
        arrays["other"] = pa.Array.from_buffers(
            pa.binary(),
            n,
            [
                pa.py_buffer(np.packbits(kind == ValueKind.OTHER, bitorder="little")),
                pa.py_buffer(offsets),
                pa.py_buffer(b"".join(encoded)),
            ],
            null_count=n - len(others),
        )
    else:
        arrays["other"] = pa.nulls(n, pa.binary())
    return pa.RecordBatch.from_arrays(
        [arrays[name] for name in ARROW_COLUMNS], names=list(ARROW_COLUMNS)
    )


def columns_to_pandas(columns: EventColumns) -> Any:
    """``EventColumns.to_pandas()``: a DataFrame built from the numpy columns."""
    try:
        pd: Any = importlib.import_module("pandas")
    except ImportError:
        raise ImportError("EventColumns.to_pandas() needs pandas: pip install pandas") from None
    from mxgateway.columns import BODY_NAMES

    n = len(columns)
    kind = columns.value_kind

    def stamps(values: Any) -> Any:
        return pd.Series(np.asarray(values, dtype=np.int64).view("M8[ns]")).dt.tz_localize("UTC")

    data: dict[str, Any] = {}
    data["session_id"] = pd.Categorical.from_codes(
        np.zeros(n, dtype=np.int8), categories=[columns.session_id]
    )
    data["worker_sequence"] = columns.worker_sequence
    data["server_handle"] = columns.server_handle
    data["item_handle"] = columns.item_handle
    codes, names = _tag_codes(columns)
    data["tag"] = pd.Categorical.from_codes(codes, categories=names)
    for name in ("family", "quality", "data_type", "raw_data_type"):
        data[name] = getattr(columns, name)
    for name in ("source_timestamp", "worker_timestamp", "gateway_receive_timestamp"):
        data[name] = stamps(getattr(columns, name + "_ns"))
    data["value_kind"] = kind
    data["value_float"] = pd.arrays.FloatingArray(
        columns.value_float.copy(), kind != ValueKind.FLOAT
    )
    data["value_int"] = pd.arrays.IntegerArray(columns.value_int.copy(), kind != ValueKind.INT)
    data["value_bool"] = pd.arrays.BooleanArray(columns.value_bool.copy(), kind != ValueKind.BOOL)
    data["value_str"] = columns.string_values()
    data["value_time"] = stamps(
        np.where(kind == ValueKind.TIME, columns.value_int, TIMESTAMP_ABSENT)
    )
    data["value_elapsed"] = pd.Series(
        np.where(kind == ValueKind.ELAPSED, columns.value_int, TIMESTAMP_ABSENT).view("m8[ns]")
    )
    data["is_null"] = columns.is_null
    data["variant_type"] = pd.Categorical.from_codes(
        columns.variant_type_index.astype(np.int64), categories=list(columns.variant_type_values)
    )
    has_status = columns.status_index >= 0
    for field in _STATUS_FIELDS:
        data["status_" + field] = pd.arrays.IntegerArray(
            _status_column(columns, field), ~has_status
        )
    texts = np.array([s.diagnostic_text for s in columns.status_values] + [None], dtype=object)
    index = columns.status_index.astype(np.intp)
    index[index < 0] = len(texts) - 1
    data["status_diagnostic_text"] = texts[index]
    data["body"] = pd.Categorical.from_codes(columns.body.astype(np.int64), categories=BODY_NAMES)
    other = np.full(n, None, dtype=object)
    for row, event in columns.others:
        other[row] = event
    data["other"] = other
    return pd.DataFrame(data)
