"""Deterministic benchmark data: MxEventBatch bytes with a realistic mix of values.

Built with the generated protobuf classes from a seeded generator, so every run (and every
implementation) decodes exactly the same bytes. Each event is an ON_DATA_CHANGE with a value
(about 40 % doubles, 25 % int32, 20 % bools, 15 % short strings, each with its variant type),
quality, one status and three distinct timestamps, like the gateway's StreamEventBatches.
"""

from __future__ import annotations

import random
from functools import cache

from google.protobuf.timestamp_pb2 import Timestamp

from mxgateway.generated import mxaccess_gateway_pb2 as pb

__all__ = ["SESSION_ID", "realistic_batch", "single_event"]

SESSION_ID = "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b"
_START_NS = 1_767_225_600_000_000_000  # 2026-01-01T00:00:00Z
_STRINGS = ("RUNNING", "STOPPED", "AUTO", "MANUAL", "Tank 3 high", "OK", "batch-0042")
_KINDS = ("double", "int32", "bool", "string")
_WEIGHTS = (40, 25, 20, 15)


def _stamp(ts: Timestamp, ns: int) -> None:
    ts.seconds, ts.nanos = divmod(ns, 1_000_000_000)


def _event(rng: random.Random, sequence: int, now_ns: int) -> pb.MxEvent:
    item = rng.randrange(1, 501)
    event = pb.MxEvent(
        session_id=SESSION_ID,
        family=pb.MX_EVENT_FAMILY_ON_DATA_CHANGE,
        worker_sequence=sequence,
        server_handle=1,
        item_handle=item,
        quality=192 if rng.random() < 0.97 else 0,
    )
    value = event.value
    kind = rng.choices(_KINDS, _WEIGHTS)[0]
    if kind == "double":
        value.data_type = pb.MX_DATA_TYPE_DOUBLE
        value.variant_type = "VT_R8"
        value.double_value = round(rng.uniform(-1000.0, 1000.0), 3)
    elif kind == "int32":
        value.data_type = pb.MX_DATA_TYPE_INTEGER
        value.variant_type = "VT_I4"
        value.int32_value = rng.randint(-100_000, 100_000)
    elif kind == "bool":
        value.data_type = pb.MX_DATA_TYPE_BOOLEAN
        value.variant_type = "VT_BOOL"
        value.bool_value = rng.random() < 0.5
    else:
        value.data_type = pb.MX_DATA_TYPE_STRING
        value.variant_type = "VT_BSTR"
        value.string_value = rng.choice(_STRINGS)
    value.raw_data_type = value.data_type - 1
    source_ns = now_ns - rng.randrange(1_000_000, 50_000_000)
    worker_ns = now_ns
    gateway_ns = now_ns + rng.randrange(50_000, 900_000)
    _stamp(event.source_timestamp, source_ns)
    _stamp(event.worker_timestamp, worker_ns)
    _stamp(event.gateway_receive_timestamp, gateway_ns)
    event.statuses.add(
        success=1,
        category=pb.MX_STATUS_CATEGORY_OK,
        detected_by=pb.MX_STATUS_SOURCE_RESPONDING_LMX,
        raw_category=0,
        raw_detected_by=1,
    )
    event.on_data_change.SetInParent()
    return event


@cache
def realistic_batch(count: int = 1000, seed: int = 20260101) -> bytes:
    """A serialized MxEventBatch of ``count`` events (the same bytes for the same arguments)."""
    rng = random.Random(seed)
    batch = pb.MxEventBatch()
    now_ns = _START_NS
    for i in range(count):
        now_ns += rng.randrange(100_000, 2_000_000)
        batch.events.append(_event(rng, 1_000_000 + i, now_ns))
    return batch.SerializeToString()


@cache
def single_event(seed: int = 7) -> bytes:
    """One serialized MxEvent of the same mix (a double value)."""
    rng = random.Random(seed)
    return _event(rng, 123_456, _START_NS).SerializeToString()
