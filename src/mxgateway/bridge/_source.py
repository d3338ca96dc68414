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

__all__ = ["session_parts"]


async def session_parts(
    session: Session,
    *,
    after_worker_sequence: int,
    retry_budget_s: float,
    max_batch_events: int = 0,
) -> AsyncIterator[list[Part]]:
    """The session's events after ``after_worker_sequence`` (0: what the gateway has queued),
    one list of parts per read of the stream core."""
    async with contextlib.aclosing(
        event_lists(
            session,
            prefer="batches",
            max_batch_events=max_batch_events,
            after_worker_sequence=after_worker_sequence,
            retry_budget_s=retry_budget_s,
        )
    ) as lists:
        async for events in lists:
            yield [Part(events)]
