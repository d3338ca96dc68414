"""Stopping the library's own tasks (pumps, the bridge's workers) even when a cancellation
is swallowed on the way."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

# Longer than any clean-up the library bounds (the thread receiver's join waits at most 5 s):
# cancelling again cuts a task's clean-up short, which only a lost cancellation should earn.
_AGAIN_S = 10.0


async def cancel_and_wait(
    tasks: Collection[asyncio.Task[Any]], again_s: float = _AGAIN_S
) -> list[Any]:
    """Cancel ``tasks`` and wait until every one has finished; their results or exceptions.

    A cancellation can be lost: on Python 3.11, ``asyncio.wait_for`` (which nats-py awaits
    every request with, and this library its retry pauses) returns the inner result when it
    completes in the same instant as the cancel, and a loop around such a call then goes on
    as if never cancelled. ``gather`` after a single ``cancel()`` waited forever on that (the
    bridge did not stop in about one stop out of ten under a flood), so a task still running
    ``again_s`` later is cancelled again, until it ends.
    """
    for task in tasks:
        task.cancel()
    pending = set(tasks)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=again_s)
        for task in pending:
            task.cancel()
    return [_outcome(task) for task in tasks]


def _outcome(task: asyncio.Task[Any]) -> Any:
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception() or task.result()
