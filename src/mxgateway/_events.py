"""The event hot path: raw bytes from gRPC, decoded by the codec, resumed after cuts.

No protobuf objects are made here: the stream's response deserializer is the identity, and
the codec turns each message's bytes into MxEvent structs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Literal

import grpc

from mxgateway import _codec
from mxgateway._errors import MxGatewayStreamLostError
from mxgateway._rpc import translate_rpc_error
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.types import MxEvent

if TYPE_CHECKING:
    from mxgateway._client import GatewayClient

__all__ = ["EventPath", "stream_event_batches"]

logger = logging.getLogger("mxgateway")

EventPath = Literal["batches", "single"]

# Codes a cut connection or a restarting gateway produce; anything else is final.
_RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN}
)
# Words of a FAILED_PRECONDITION that no wait cures (the others mean: the slot is still taken).
_SESSION_ENDING = ("FAULTED", "EVENTQUEUEOVERFLOW", "CLOSING", "CLOSED")
_BACKOFF_FIRST_S = 0.05
_BACKOFF_MAX_S = 2.0
# A stream closed just before (this program's, or a CLI run stopped a moment ago) can still hold
# the session's one subscriber slot until the gateway sees its cancellation. The first attach
# waits this long for it to leave; a subscriber still there after that is a live one.
_ATTACH_GRACE_S = 2.0
_ATTACH_RETRY_S = 0.1


async def stream_event_batches(
    client: GatewayClient,
    session_id: str,
    *,
    path: EventPath,
    max_batch_events: int = 0,
    after_worker_sequence: int = 0,
    resume: bool = True,
    retry_budget_s: float = 30.0,
    on_path: Callable[[EventPath], None] | None = None,
    on_trouble: Callable[[str | None], None] | None = None,
    closed: Callable[[], bool] | None = None,
) -> AsyncIterator[list[MxEvent]]:
    """Yield decoded events in lists (one list per gRPC message) from ``path``.

    ``batches`` falls back to ``single`` on UNIMPLEMENTED. With ``resume`` a retryable failure
    reconnects after the last sequence yielded; events at or below it that a replay repeats are
    dropped, so each worker_sequence is yielded once and in order. A stream the gateway ends
    normally is also resumed (a restarting gateway ends streams that way) unless ``closed()``
    says the session was closed here; a session the gateway no longer knows then raises
    MxGatewaySessionNotFoundError. The first attach waits up to ``_ATTACH_GRACE_S`` for a
    subscriber that is leaving; one still attached after that raises MxGatewayProtocolError.
    """
    if after_worker_sequence < 0:
        raise ValueError("after_worker_sequence must be >= 0")
    if retry_budget_s <= 0:
        raise ValueError("retry_budget_s must be positive")
    last = after_worker_sequence
    backoff = _BACKOFF_FIRST_S
    failing_since: float | None = None
    metadata = client.options.metadata
    decode_batch = _codec.impl.decode_event_batch
    decode_event = _codec.impl.decode_event
    attempts = 0
    refused_since: float | None = None
    while True:
        client._live_channel()  # a closed client cannot stream
        if on_path is not None:
            on_path(path)
        request = pb.StreamEventsRequest(
            session_id=session_id,
            after_worker_sequence=last,
            max_batch_events=max_batch_events if path == "batches" else 0,
        )
        multicallable = client._raw_batches if path == "batches" else client._raw_events
        stream = multicallable(request, metadata=metadata)
        received = False
        try:
            async for raw in stream:
                received = True
                if failing_since is not None and on_trouble is not None:
                    on_trouble(None)  # healthy again
                failing_since = None
                backoff = _BACKOFF_FIRST_S
                events = decode_batch(raw) if path == "batches" else [decode_event(raw)]
                if not events:
                    continue
                # Drop what a replay repeats (only on resume; gap sentinels always pass).
                first = events[0]
                if last and first.replay_gap is None and 0 < first.worker_sequence <= last:
                    events = [
                        e for e in events if e.replay_gap is not None or e.worker_sequence > last
                    ]
                    if not events:
                        continue
                sequence = events[-1].worker_sequence
                if sequence > last:
                    last = sequence
                yield events
            if not resume or (closed is not None and closed()):
                return
            logger.info("event stream of session %s ended; resuming", session_id)
            if on_trouble is not None:
                on_trouble("stream ended by the gateway")
            failing_since, backoff = await _back_off(
                session_id, failing_since, backoff, retry_budget_s, "stream ended"
            )
        except grpc.aio.AioRpcError as error:
            code = error.code()
            if path == "batches" and code == grpc.StatusCode.UNIMPLEMENTED and not received:
                logger.info("gateway lacks StreamEventBatches; falling back to StreamEvents")
                path = "single"
                continue
            if attempts == 0 and _still_subscribed(code, error.details()):
                now = time.monotonic()
                refused_since = now if refused_since is None else refused_since
                if now - refused_since < _ATTACH_GRACE_S:
                    await asyncio.sleep(_ATTACH_RETRY_S)
                    continue
            # After a break, the gateway may not have noticed yet that our previous stream is
            # gone (a silent partition, or a reconnect faster than its close): it refuses the
            # new one as a second subscriber until it does. Keep trying within the budget.
            reattaching = resume and attempts > 0 and _still_subscribed(code, error.details())
            if not resume or (code not in _RETRYABLE and not reattaching):
                raise translate_rpc_error(
                    error, "StreamEvents", not_found_is_session=True
                ) from None
            logger.warning(
                "event stream of session %s broke (%s); resuming after sequence %d",
                session_id,
                code.name,
                last,
            )
            if on_trouble is not None:
                on_trouble(f"{code.name}: {error.details()}")
            failing_since, backoff = await _back_off(
                session_id,
                failing_since,
                backoff,
                retry_budget_s,
                f"{code.name}: {error.details()}",
            )
        finally:
            stream.cancel()
        attempts += 1


def _still_subscribed(code: grpc.StatusCode, details: str | None) -> bool:
    """FAILED_PRECONDITION because the session still has a subscriber (not because the session
    is faulted, overflowed, closing or closed: those do not pass by waiting)."""
    text = (details or "").upper()
    return code == grpc.StatusCode.FAILED_PRECONDITION and not any(
        word in text for word in _SESSION_ENDING
    )


async def _back_off(
    session_id: str,
    failing_since: float | None,
    backoff: float,
    retry_budget_s: float,
    last_error: str,
) -> tuple[float, float]:
    """Sleep before the next reconnect (jittered, doubling), or raise once the budget is spent.

    The budget counts from the first failure since events last arrived.
    """
    now = time.monotonic()
    if failing_since is None:
        failing_since = now
    if now - failing_since >= retry_budget_s:
        raise MxGatewayStreamLostError(
            f"event stream of session {session_id} lost: no reconnect within "
            f"{retry_budget_s} s (last error {last_error})"
        )
    await asyncio.sleep(backoff * (0.5 + random.random()))
    return failing_since, min(backoff * 2, _BACKOFF_MAX_S)
