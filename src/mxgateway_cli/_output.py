"""Deterministic output: sorted-key JSON, one object per line, the same bytes for the same input."""

from __future__ import annotations

import sys
from typing import Any

import msgspec

__all__ = ["emit_json"]

# Built once and reused (msgspec's advice); order="sorted" makes the bytes deterministic.
_ENCODER = msgspec.json.Encoder(order="sorted")


def emit_json(obj: Any) -> None:
    """Write ``obj`` as one line of sorted-key JSON to stdout."""
    out = sys.stdout.buffer
    out.write(_ENCODER.encode(obj))
    out.write(b"\n")
    out.flush()
