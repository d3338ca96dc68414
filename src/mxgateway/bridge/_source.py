"""The bridge's view of a session's event stream: the stream core, in parts.

The bridge reads the session like every consumer does, through the one stream core
(``mxgateway._stream_core``: attach, batches or single, resume, de-duplication, ReplayGap,
recovery markers, retry); it never has a loop of its own. Each read is a list of ``Part``:
events and, where the core hands them over, the gateway's own bytes for them, which the batch
layout forwards untouched.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from mxgateway._stream_core import event_lists
from mxgateway.bridge._records import Part

if TYPE_CHECKING:
    from mxgateway._session import Session
    from mxgateway.types import MxEvent

__all__ = ["session_parts"]


async def session_parts(
    session: Session,
    *,
    after_worker_sequence: int,
    retry_budget_s: float,
    max_batch_events: int = 0,
    max_bytes: int = 0,
) -> AsyncIterator[list[Part]]:
    """The session's events after ``after_worker_sequence`` (0: what the gateway has queued),
    one list of parts per read of the stream core. Where the core hands over the gateway's
    MxEventBatch bytes for the events, a part carries them (``raw``), consecutive batches
    joined up to ``max_bytes`` (serialized MxEventBatch messages concatenate into one):
    forwarded as they are, never decoded and encoded again."""
    handed: list[tuple[list[bytes] | None, list[int] | None]] = []

    def sink(raws: list[bytes] | None, counts: list[int] | None) -> None:
        handed.append((raws, counts))

    async with contextlib.aclosing(
        event_lists(
            session,
            prefer="batches",
            max_batch_events=max_batch_events,
            after_worker_sequence=after_worker_sequence,
            retry_budget_s=retry_budget_s,
            raw_sink=sink if max_bytes > 0 else None,
        )
    ) as lists:
        async for events in lists:
            raws, counts = handed[-1] if handed else (None, None)
            handed.clear()
            if raws is None or counts is None:
                yield [Part(events)]
                continue
            yield _parts(events, raws, counts, max_bytes)


def _parts(events: list[MxEvent], raws: list[bytes], counts: list[int], limit: int) -> list[Part]:
    parts: list[Part] = []
    group: list[bytes] = []
    size = start = end = 0
    for raw, count in zip(raws, counts, strict=True):
        if group and size + len(raw) > limit:
            if end > start:
                parts.append(Part(events[start:end], b"".join(group)))
            group, size, start = [], 0, end
        group.append(raw)
        size += len(raw)
        end += count
    if group and end > start:
        parts.append(Part(events[start:end], b"".join(group)))
    return parts
