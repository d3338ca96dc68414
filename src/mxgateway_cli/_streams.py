"""Bounded consumption of a stream (stop at a count or after some seconds, then close it), and
the ``--retry-budget`` of the commands whose stream reconnects."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

from mxgateway import MxGatewayStreamLostError
from mxgateway._retry import MAX_BUDGET_S
from mxgateway_cli._connection import seconds

__all__ = ["DEFAULT_RETRY_BUDGET_S", "Trouble", "add_retry_budget", "consume", "retry_budget"]

DEFAULT_RETRY_BUDGET_S = 30.0  # the library's default

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


def retry_budget(text: str) -> float:
    """A retry budget: positive finite seconds, at most a week (the library's bound)."""
    value = seconds(text)
    if value > MAX_BUDGET_S:
        raise argparse.ArgumentTypeError(f"must be at most {MAX_BUDGET_S:g} seconds: {text!r}")
    return value


def add_retry_budget(parser: argparse.ArgumentParser, what: str) -> None:
    """``--retry-budget SECONDS``: how long ``what`` keeps reconnecting before exit 3."""
    parser.add_argument(
        "--retry-budget",
        type=retry_budget,
        default=DEFAULT_RETRY_BUDGET_S,
        metavar="SECONDS",
        help=(
            f"keep reconnecting a broken {what} this long, then exit 3 "
            f"(default {DEFAULT_RETRY_BUDGET_S:g})"
        ),
    )


class Trouble:
    """The ``on_trouble`` of a resuming stream: why it is reconnecting now (None: healthy)."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.reason: str | None = None

    def __call__(self, reason: str | None) -> None:
        self.reason = reason

    def check(self) -> None:
        """At a bound (``--timeout``, ``--max-*``): a stream still reconnecting is a lost
        gateway (exit 3), not a quiet success."""
        if self.reason is not None:
            raise MxGatewayStreamLostError(
                f"{self.what} was still reconnecting at the bound ({self.reason})"
            )
