"""Fuzz inputs shared by the CI fuzz test (hypothesis) and bench/hardening/fuzz_codec.py (a
seeded mutation loop): protobuf-shaped byte streams built from the real field numbers, and
the outcome of one codec call (a value, or the one error the codec may raise)."""

from __future__ import annotations

import random
from collections.abc import Callable
from types import ModuleType
from typing import Any

from mxgateway import MxGatewayDecodeError
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from tests.codec_support import canon

__all__ = ["FIELD_NUMBERS", "KINDS", "decode_outcome", "encode_outcome", "random_message"]

KINDS = ("event", "batch", "value", "varint")

# Every field number of the messages the codec reads, so random bytes hit real fields often.
FIELD_NUMBERS: tuple[int, ...] = tuple(
    sorted(
        {
            field.number
            for message in (
                pb.MxEvent,
                pb.MxEventBatch,
                pb.MxValue,
                pb.MxArray,
                pb.MxSparseArray,
                pb.MxSparseElement,
                pb.MxStatusProxy,
                pb.ReplayGap,
                pb.OnBufferedDataChangeEvent,
                pb.BufferedSample,
                pb.OnAlarmTransitionEvent,
            )
            for field in message.DESCRIPTOR.fields
        }
        | {0, 1, 2, 3, 15, 16, 2047, 2048, 536_870_911}
    )
)

_INTERESTING_VARINTS = (0, 1, 127, 128, 255, 2**31 - 1, 2**31, 2**32, 2**63, 2**64 - 1)


def _varint(value: int) -> bytes:
    out = bytearray()
    value &= 2**64 - 1
    while value > 0x7F:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _field(rng: random.Random, depth: int) -> bytes:
    number = rng.choice(FIELD_NUMBERS)
    wire = rng.choice((0, 0, 1, 2, 2, 2, 3, 4, 5, rng.randrange(8)))
    tag = _varint(number << 3 | wire)
    if wire == 0:
        roll = rng.random()
        if roll < 0.05:
            return tag + b"\xff" * rng.randrange(9, 14)  # an overlong varint
        value = rng.choice(_INTERESTING_VARINTS) if roll < 0.5 else rng.getrandbits(64)
        return tag + _varint(value)
    if wire == 1:
        return tag + rng.randbytes(rng.choice((8, 8, rng.randrange(9))))
    if wire == 5:
        return tag + rng.randbytes(rng.choice((4, 4, rng.randrange(5))))
    if wire == 2:
        if depth < 70 and rng.random() < 0.6:
            body = random_message(rng, depth + 1, rng.randrange(4))
        else:
            body = rng.randbytes(rng.randrange(12))
        roll = rng.random()
        if roll < 0.05:
            claimed = rng.choice((2**31, 2**32 + len(body), 2**64 - 1))
        elif roll < 0.15:
            claimed = len(body) + rng.choice((-2, -1, 1, 2))
        else:
            claimed = len(body)
        return tag + _varint(max(claimed, 0)) + body
    if wire == 3:  # a group: start, content, (usually) the matching end
        body = random_message(rng, depth + 1, rng.randrange(3)) if depth < 70 else b""
        end_number = number if rng.random() < 0.8 else rng.choice(FIELD_NUMBERS)
        return tag + body + _varint(end_number << 3 | 4)
    return tag  # a stray end-group, or wire type 6/7


def _deep(rng: random.Random) -> bytes:
    # A chain of nested messages or groups around 64 levels deep (the codec's limit).
    body = random_message(rng, 70, rng.randrange(3))
    for _ in range(rng.randrange(55, 75)):
        number = rng.choice(FIELD_NUMBERS[1:])
        if rng.random() < 0.7:
            body = _varint(number << 3 | 2) + _varint(len(body)) + body
        else:
            body = _varint(number << 3 | 3) + body + _varint(number << 3 | 4)
    return body


def random_message(rng: random.Random, depth: int = 0, fields: int | None = None) -> bytes:
    """Protobuf-shaped bytes: fields of the codec's messages with every wire type, nested
    messages and groups up to past the 64-level limit, wrong and huge lengths."""
    if depth == 0 and fields is None and rng.random() < 0.05:
        return _deep(rng)
    count = rng.randrange(1, 12) if fields is None else fields
    return b"".join(_field(rng, depth) for _ in range(count))


def _decoder(codec: ModuleType, kind: str) -> Callable[[Any], Any]:
    if kind == "varint":
        return lambda data: codec.decode_varint(data, len(data) // 3)
    decoders: dict[str, Callable[[Any], Any]] = {
        "event": codec.decode_event,
        "batch": codec.decode_event_batch,
        "value": codec.from_mx_value,
    }
    return decoders[kind]


def decode_outcome(codec: ModuleType, kind: str, data: Any) -> tuple[str, Any]:
    """``("ok", canonical value)`` or ``("error", None)`` for MxGatewayDecodeError; any other
    exception propagates (a fuzz failure)."""
    try:
        result = _decoder(codec, kind)(data)
    except MxGatewayDecodeError:
        return ("error", None)
    if kind == "varint":
        return ("ok", result)
    return ("ok", canon(result))


def encode_outcome(codec: ModuleType, value: Any, data_type: Any) -> tuple[str, Any]:
    """``("ok", bytes)`` or the exception type for ValueError/TypeError (the encoder's two
    documented errors); anything else propagates."""
    try:
        return ("ok", codec.to_mx_value(value, data_type))
    except (ValueError, TypeError) as exc:
        return (type(exc).__name__, None)
