"""Bounded consumption of a stream: stop at a count or after some seconds, then close it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

__all__ = ["consume"]

T = TypeVar("T")


async def consume(
    source: AsyncIterator[T],
    handle: Callable[[T], None],
    *,
    max_items: int | None,
    seconds: float | None,
) -> int:
    """Call ``handle`` for each item of ``source`` until ``max_items`` were handled, the
    stream ends, or ``seconds`` passed (not an error: the bound was reached). Returns how many
    were handled. The stream is always closed (its gRPC call cancelled) before returning; its
    errors propagate.
    """
    count = 0
    deadline = asyncio.timeout(seconds)
    try:
        async with deadline:
            async for item in source:
                handle(item)
                count += 1
                if max_items is not None and count >= max_items:
                    break
    except TimeoutError:
        if not deadline.expired():
            raise  # a TimeoutError from inside the stream, not our bound
    finally:
        # The library's streams are async generators; closing one cancels its gRPC call.
        close = getattr(source, "aclose", None)
        if close is not None:
            await close()
    return count
