"""Stopping the bridge's own tasks when a library may swallow a cancellation."""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from typing import Any

_AGAIN_S = 0.5


async def cancel_and_wait(tasks: Collection[asyncio.Task[Any]]) -> list[Any]:
    """Cancel ``tasks`` and wait until every one has finished; their results or exceptions.

    A cancellation can be lost: on Python 3.11, ``asyncio.wait_for`` (which nats-py awaits
    every request with) returns the inner result when it completes in the same instant as
    the cancel, and a loop that catches ``Exception`` around such a call then goes on as if
    never cancelled. ``gather`` after a single ``cancel()`` waited forever on that (a bridge
    that did not stop in about one stop out of ten under a flood), so a task still running
    half a second later is cancelled again, until it ends.
    """
    for task in tasks:
        task.cancel()
    pending = set(tasks)
    while pending:
        _, pending = await asyncio.wait(pending, timeout=_AGAIN_S)
        for task in pending:
            task.cancel()
    return [_outcome(task) for task in tasks]


def _outcome(task: asyncio.Task[Any]) -> Any:
    if task.cancelled():
        return asyncio.CancelledError()
    return task.exception() or task.result()
