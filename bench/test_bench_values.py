"""Value conversion and command encoding: the write path, against plain protobuf.

- ``to-mx-value``: one of every kind of value (bool, int32, int64, float, double, string,
  time, elapsed time, bytes, an int array, a double matrix, a sparse array) converted per call
  by the compiled codec and its twin; the reference builds the same messages with the generated
  classes and serializes them (what code on the plain stubs does, without any checks).
- ``from-mx-value``: the same values read back into ``MxValue`` structs; the reference is
  protobuf's parser plus ``value_from_pb`` (reading every field, as the library does for
  protobuf it already holds).
- ``encode-commands``: a WriteBulk of 1000 doubles made into its serialized Invoke request
  (MxCommandRequest) the way ``Session.write_bulk`` makes it (each value checked and converted
  by the codec); the reference puts unchecked ``MxValue`` messages into the same request.

Each records ``items`` per call; bench/conftest.py adds the ratio to the group's reference.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from types import ModuleType
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from mxgateway import _pycodec
from mxgateway._command import command_for
from mxgateway._pbconvert import value_from_pb
from mxgateway.generated import mxaccess_gateway_pb2
from mxgateway.types import MxDataType, MxSparseArray, MxValue

try:
    from mxgateway import _speedups
except ImportError:  # pragma: no cover - only without a compiler
    _speedups = None  # type: ignore[assignment]

pb: Any = mxaccess_gateway_pb2
DT = MxDataType
WHEN = datetime(2026, 1, 1, 8, 30, 15, 250000, tzinfo=UTC)
F32 = struct.unpack("<f", struct.pack("<f", 21.5))[0]

# (value, data_type, the same as a generated message built by hand)
SAMPLES: list[tuple[Any, Any, Any]] = [
    (True, None, pb.MxValue(data_type=DT.BOOLEAN, bool_value=True)),
    (42, None, pb.MxValue(data_type=DT.INTEGER, int32_value=42)),
    (2**40, None, pb.MxValue(data_type=DT.INTEGER, int64_value=2**40)),
    (F32, DT.FLOAT, pb.MxValue(data_type=DT.FLOAT, float_value=F32)),
    (math.pi, None, pb.MxValue(data_type=DT.DOUBLE, double_value=math.pi)),
    ("Tank 3 high", None, pb.MxValue(data_type=DT.STRING, string_value="Tank 3 high")),
    (
        WHEN,
        None,
        pb.MxValue(
            data_type=DT.TIME, timestamp_value=Timestamp(seconds=1767256215, nanos=250_000_000)
        ),
    ),
    (
        timedelta(seconds=90),
        None,
        pb.MxValue(data_type=DT.ELAPSED_TIME, elapsed_value=Duration(seconds=90)),
    ),
    (b"\x01\x02\x03", None, pb.MxValue(variant_type="VT_RECORD", raw_value=b"\x01\x02\x03")),
    (
        list(range(16)),
        None,
        pb.MxValue(
            data_type=DT.INTEGER,
            array_value=pb.MxArray(
                element_data_type=DT.INTEGER, dimensions=[16], int32_values=list(range(16))
            ),
        ),
    ),
    (
        [[1.5, 2.5], [3.5, 4.5]],
        None,
        pb.MxValue(
            data_type=DT.DOUBLE,
            array_value=pb.MxArray(
                element_data_type=DT.DOUBLE, dimensions=[2, 2], double_values=[1.5, 2.5, 3.5, 4.5]
            ),
        ),
    ),
    (
        MxSparseArray(DT.INTEGER, 8, ((1, 5), (6, 7))),
        None,
        pb.MxValue(
            data_type=DT.INTEGER,
            sparse_array_value=pb.MxSparseArray(
                element_data_type=DT.INTEGER,
                total_length=8,
                elements=[
                    pb.MxSparseElement(
                        index=1, value=pb.MxValue(data_type=DT.INTEGER, int32_value=5)
                    ),
                    pb.MxSparseElement(
                        index=6, value=pb.MxValue(data_type=DT.INTEGER, int32_value=7)
                    ),
                ],
            ),
        ),
    ),
]
SERIALIZED = [message.SerializeToString() for _, _, message in SAMPLES]

IMPLEMENTATIONS: list[tuple[ModuleType, str]] = [(_pycodec, "python")]
if _speedups is not None:
    IMPLEMENTATIONS.insert(0, (_speedups, "cython"))


def _record(benchmark: Any, items: int) -> None:
    if getattr(benchmark, "stats", None) is not None:  # not under --benchmark-disable
        benchmark.extra_info["items"] = items


# ---- to MxValue ------------------------------------------------------------------------------


def _codec_to(codec: ModuleType) -> Callable[[], list[bytes]]:
    convert = codec.to_mx_value
    pairs = [(value, data_type) for value, data_type, _ in SAMPLES]
    return lambda: [convert(value, data_type) for value, data_type in pairs]


def _protobuf_to() -> list[bytes]:
    # What the stubs alone do: build each message by hand (no checks), serialize it.
    return [
        pb.MxValue(data_type=DT.BOOLEAN, bool_value=True).SerializeToString(),
        pb.MxValue(data_type=DT.INTEGER, int32_value=42).SerializeToString(),
        pb.MxValue(data_type=DT.INTEGER, int64_value=2**40).SerializeToString(),
        pb.MxValue(data_type=DT.FLOAT, float_value=F32).SerializeToString(),
        pb.MxValue(data_type=DT.DOUBLE, double_value=math.pi).SerializeToString(),
        pb.MxValue(data_type=DT.STRING, string_value="Tank 3 high").SerializeToString(),
        pb.MxValue(
            data_type=DT.TIME, timestamp_value=Timestamp(seconds=1767256215, nanos=250_000_000)
        ).SerializeToString(),
        pb.MxValue(
            data_type=DT.ELAPSED_TIME, elapsed_value=Duration(seconds=90)
        ).SerializeToString(),
        pb.MxValue(variant_type="VT_RECORD", raw_value=b"\x01\x02\x03").SerializeToString(),
        pb.MxValue(
            data_type=DT.INTEGER,
            array_value=pb.MxArray(
                element_data_type=DT.INTEGER, dimensions=[16], int32_values=list(range(16))
            ),
        ).SerializeToString(),
        pb.MxValue(
            data_type=DT.DOUBLE,
            array_value=pb.MxArray(
                element_data_type=DT.DOUBLE, dimensions=[2, 2], double_values=[1.5, 2.5, 3.5, 4.5]
            ),
        ).SerializeToString(),
        pb.MxValue(
            data_type=DT.INTEGER,
            sparse_array_value=pb.MxSparseArray(
                element_data_type=DT.INTEGER,
                total_length=8,
                elements=[
                    pb.MxSparseElement(
                        index=1, value=pb.MxValue(data_type=DT.INTEGER, int32_value=5)
                    ),
                    pb.MxSparseElement(
                        index=6, value=pb.MxValue(data_type=DT.INTEGER, int32_value=7)
                    ),
                ],
            ),
        ).SerializeToString(),
    ]


TO_CASES = [
    *(pytest.param(_codec_to(module), id=name) for module, name in IMPLEMENTATIONS),
    pytest.param(_protobuf_to, id="protobuf"),
]


@pytest.mark.benchmark(group="to-mx-value")
@pytest.mark.parametrize("convert", TO_CASES)
def test_to_mx_value(benchmark: Any, convert: Callable[[], list[bytes]]) -> None:
    out = benchmark(convert)
    _record(benchmark, len(SAMPLES))
    assert out == SERIALIZED


# ---- from MxValue ----------------------------------------------------------------------------


def _codec_from(codec: ModuleType) -> Callable[[], list[MxValue]]:
    convert = codec.from_mx_value
    return lambda: [convert(data) for data in SERIALIZED]


def _protobuf_from() -> list[MxValue]:
    parse = pb.MxValue.FromString
    return [value_from_pb(parse(data)) for data in SERIALIZED]


FROM_CASES = [
    *(pytest.param(_codec_from(module), id=name) for module, name in IMPLEMENTATIONS),
    pytest.param(_protobuf_from, id="protobuf"),
]


@pytest.mark.benchmark(group="from-mx-value")
@pytest.mark.parametrize("convert", FROM_CASES)
def test_from_mx_value(benchmark: Any, convert: Callable[[], list[MxValue]]) -> None:
    out = benchmark(convert)
    _record(benchmark, len(SAMPLES))
    assert out == _protobuf_from()


# ---- commands: WriteBulk of 1000 doubles -----------------------------------------------------

BULK = [(handle, 20.0 + handle / 8) for handle in range(1, 1001)]
SESSION = "3f2b8c1e-5d4a-4e6f-9a7b-1c2d3e4f5a6b"


def _request(entries: list[Any]) -> bytes:
    command = command_for("write_bulk", pb.WriteBulkCommand(server_handle=1, entries=entries))
    data: bytes = pb.MxCommandRequest(session_id=SESSION, command=command).SerializeToString()
    return data


def _codec_bulk(codec: ModuleType) -> Callable[[], bytes]:
    # As Session.write_bulk: every value checked and converted by the codec first.
    convert, parse, entry = codec.to_mx_value, pb.MxValue.FromString, pb.WriteBulkEntry
    return lambda: _request(
        [entry(item_handle=h, value=parse(convert(v, None)), user_id=0) for h, v in BULK]
    )


def _protobuf_bulk() -> bytes:
    entry, value = pb.WriteBulkEntry, pb.MxValue
    return _request(
        [
            entry(item_handle=h, value=value(data_type=DT.DOUBLE, double_value=v), user_id=0)
            for h, v in BULK
        ]
    )


BULK_CASES = [
    *(pytest.param(_codec_bulk(module), id=name) for module, name in IMPLEMENTATIONS),
    pytest.param(_protobuf_bulk, id="protobuf"),
]


@pytest.mark.benchmark(group="encode-commands")
@pytest.mark.parametrize("encode", BULK_CASES)
def test_encode_write_bulk(benchmark: Any, encode: Callable[[], bytes]) -> None:
    out = benchmark(encode)
    _record(benchmark, len(BULK))
    assert pb.MxCommandRequest.FromString(out) == pb.MxCommandRequest.FromString(_protobuf_bulk())
