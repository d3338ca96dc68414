"""Python values to ``MxValue`` messages for commands, and the serialized form for hot paths.

``to_mx_value`` is what the original client documents: the conversion its ``Session.write``
and bulk helpers use, returning a generated ``MxValue`` that drops straight into a command
(``pb.WriteCommand(value=to_mx_value(1.5))``). ``to_mx_value_bytes`` is the codec's own form,
the serialized message, for callers that build requests from bytes and want to skip a parse.
Both run the same checks (nan/inf, integer ranges, float32 range, shapes, timezone-aware
times) before anything is sent.
"""

from __future__ import annotations

from typing import Any

from mxgateway import _codec
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.types import MxDataType

__all__ = ["to_mx_value", "to_mx_value_bytes"]


def to_mx_value_bytes(value: Any, data_type: MxDataType | int | None = None) -> bytes:
    """Convert a Python value to a serialized ``MxValue`` (the codec's fast path).

    ``data_type`` picks the MXAccess type; without it the type is inferred (bool, int, float
    as double, str, datetime, timedelta, bytes, nested lists, ``MxSparseArray``). Raises
    ``ValueError`` for nan/inf and out-of-range numbers and ``TypeError`` for values that do
    not fit the type.
    """
    return _codec.to_mx_value(value, data_type)


def to_mx_value(value: Any, data_type: MxDataType | int | None = None) -> pb.MxValue:
    """Convert a Python value to a generated ``MxValue`` message, ready for a command.

    Same rules and errors as :func:`to_mx_value_bytes`; the message is parsed from those bytes,
    so both forms always agree.
    """
    return pb.MxValue.FromString(_codec.to_mx_value(value, data_type))
