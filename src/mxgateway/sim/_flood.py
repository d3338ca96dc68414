"""The simulator's flood batches: ``encode_flood_batch`` and the encoder the simulator uses.

``encode_flood_batch`` here is the pure-Python twin of the compiled one (ext/_flood.pxi), with
the same arguments, results and errors (docs/codec.md, "encode_flood_batch", D26-D28). Only
the simulator encodes floods, so the twin lives beside it, written with the twin codec's
writers. The compiled one stays inside ``mxgateway._speedups``: it is built on that module's C
writer and field tables (``configure()``), which a second extension module could only reach
through an exported C API or a second copy of them (docs/codec.md says so too).

``impl`` is the module whose ``encode_flood_batch`` the simulator calls: the compiled codec
unless ``MXGATEWAY_NO_EXTENSIONS=1`` or it is not built (the rule of ``mxgateway._codec``),
else this module.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import Final

from mxgateway._pycodec._encode import _status_bytes, _timestamp_ns_bytes
from mxgateway._pycodec._tables import _DT_BOOLEAN, _DT_DOUBLE, _DT_INTEGER, _DT_STRING, _KEYS
from mxgateway._pycodec._values import (
    _check_int,
    _check_str,
    _join,
    _len_prefixed,
    _Parts,
    _put_int32,
    _put_str,
    _svarint,
    _uvarint,
)
from mxgateway._pycodec._wire import _I32_MAX, _I32_MIN, _M64, _pack_f64
from mxgateway.types import MxEventFamily, MxStatus, MxStatusCategory, MxStatusSource

__all__ = ["encode_flood_batch", "impl"]

_FLOOD_VALUES: Final = (
    # h % 4 -> data type, variant type
    (_DT_DOUBLE, "VT_R8"),
    (_DT_INTEGER, "VT_I4"),
    (_DT_BOOLEAN, "VT_BOOL"),
    (_DT_STRING, "VT_BSTR"),
)


def encode_flood_batch(
    session_id: str,
    server_handle: int,
    item_handles: Sequence[int],
    first_sequence: int,
    count: int,
    timestamp_ns: int,
) -> bytes:
    """The simulator's flood mode: a serialized ``MxEventBatch`` of ``count`` data changes.

    Sequences ``first_sequence`` .. ``first_sequence + count - 1``; event i uses
    ``item_handles[(first_sequence + i) % len(item_handles)]``; the value depends on the
    handle (``h % 4``: DOUBLE, INTEGER, BOOLEAN, STRING). See docs/codec.md (and its
    decisions D26-D28) for every field. The same arguments give the same bytes in both
    implementations.
    """
    session_bytes = _check_str(session_id, "session_id")
    _check_int(server_handle, _I32_MIN, _I32_MAX, "server_handle")
    handles = [_check_int(h, _I32_MIN, _I32_MAX, "item handle") for h in item_handles]
    if not handles:
        raise ValueError("item_handles must not be empty")
    _check_int(first_sequence, 0, _M64, "first_sequence")
    _check_int(count, 0, _M64, "count")
    if count and first_sequence + count - 1 > _M64:
        raise ValueError("first_sequence + count - 1 exceeds the uint64 range")
    stamp = _timestamp_ns_bytes(timestamp_ns, "timestamp_ns")
    keys = _KEYS["MxEvent"]
    value_keys = _KEYS["MxValue"]

    def const(name: str, chunk: bytes) -> tuple[int, bytes | int]:
        return keys[name][0], chunk

    status_payload = _status_bytes(
        MxStatus(1, MxStatusCategory.OK, MxStatusSource.RESPONDING_LMX, 0, 0, 0, "")
    )
    pieces: list[tuple[int, bytes | int]] = [
        const("family", keys["family"][1] + _svarint(int(MxEventFamily.ON_DATA_CHANGE))),
        (keys["worker_sequence"][0], 0),
        (keys["item_handle"][0], 1),
        (keys["value"][0], 2),
        const("quality", keys["quality"][1] + _svarint(192)),
        const("source_timestamp", keys["source_timestamp"][1] + _len_prefixed(stamp)),
        const("statuses", keys["statuses"][1] + _len_prefixed(status_payload)),
        const("worker_timestamp", keys["worker_timestamp"][1] + _len_prefixed(stamp)),
        const(
            "gateway_receive_timestamp",
            keys["gateway_receive_timestamp"][1] + _len_prefixed(stamp),
        ),
        const("on_data_change", keys["on_data_change"][1] + b"\x00"),
    ]
    if session_bytes:
        pieces.append(const("session_id", keys["session_id"][1] + _len_prefixed(session_bytes)))
    if server_handle:
        pieces.append(const("server_handle", keys["server_handle"][1] + _svarint(server_handle)))
    pieces.sort(key=lambda piece: piece[0])
    template = [chunk for _, chunk in pieces]
    # The value's fixed fields per h % 4: data_type, variant_type, raw_data_type (native).
    value_heads: list[list[tuple[int, bytes]]] = []
    for data_type, variant in _FLOOD_VALUES:
        head: _Parts = []
        _put_int32(head, value_keys["data_type"], data_type, "data_type")
        _put_str(head, value_keys["variant_type"], variant, "variant_type")
        _put_int32(head, value_keys["raw_data_type"], data_type - 1, "raw_data_type")
        value_heads.append(head)
    seq_key = keys["worker_sequence"][1]
    item_key = keys["item_handle"][1]
    value_key = keys["value"][1]
    events_key = _KEYS["MxEventBatch"]["events"][1]
    n = len(handles)
    out: list[bytes] = []
    for i in range(count):
        sequence = first_sequence + i
        h = handles[sequence % n]
        mode = h % 4
        if mode == 0:
            arm = (
                value_keys["double_value"][0],
                value_keys["double_value"][1] + _pack_f64(float(h) + float(sequence) * 0.5),
            )
        elif mode == 1:
            arm = (
                value_keys["int32_value"][0],
                value_keys["int32_value"][1] + _svarint(sequence % 100000),
            )
        elif mode == 2:
            arm = (
                value_keys["bool_value"][0],
                value_keys["bool_value"][1] + (b"\x01" if sequence % 2 == 1 else b"\x00"),
            )
        else:
            text = f"v{sequence % 1000}".encode()
            arm = value_keys["string_value"][0], value_keys["string_value"][1] + _len_prefixed(text)
        value_payload = _join([*value_heads[mode], arm])
        variable = (
            (seq_key + _uvarint(sequence)) if sequence else b"",
            (item_key + _svarint(h)) if h else b"",
            value_key + _len_prefixed(value_payload),
        )
        event = b"".join([c if isinstance(c, bytes) else variable[c] for c in template])
        out.append(events_key + _len_prefixed(event))
    return b"".join(out)


def _select() -> ModuleType:
    if os.environ.get("MXGATEWAY_NO_EXTENSIONS", "") != "1":
        try:
            from mxgateway import _speedups
        except ImportError:
            pass
        else:
            if callable(getattr(_speedups, "encode_flood_batch", None)):
                return _speedups
    return sys.modules[__name__]


impl: ModuleType = _select()
"""The module whose ``encode_flood_batch`` the simulator calls."""
