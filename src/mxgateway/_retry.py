"""The reconnect policy every resuming stream shares: jittered doubling backoff, a retry budget.

Event streams, the alarm feed and the deploy watch all reconnect the same way: after a failure
they wait (50 ms doubling to 2 s, with jitter), and give up with MxGatewayStreamLostError once
``budget_s`` seconds passed since the first failure after data last arrived. The last wait is
cut short so the error comes when the budget ends, not one backoff step later.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable, Callable

import grpc

from mxgateway._errors import MxGatewayStreamLostError

__all__ = ["BACKOFF_FIRST_S", "BACKOFF_MAX_S", "TRANSIENT_CODES", "Reconnect", "check_budget"]

BACKOFF_FIRST_S = 0.05
# gRPC's own reconnect backoff is capped at 2 s too (see _channel.py): a gateway that is back
# is used within about 2 s.
BACKOFF_MAX_S = 2.0
# Far beyond any plant outage worth waiting for, and inside what asyncio can sleep.
MAX_BUDGET_S = 7 * 24 * 3600.0
# What a cut connection, a restarting gateway (UNAVAILABLE "Cancelling all calls") or a server
# that resets its streams on shutdown (CANCELLED) produce: retried within the budget. Anything
# else (UNAUTHENTICATED, PERMISSION_DENIED, INVALID_ARGUMENT, ...) is final.
TRANSIENT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.INTERNAL,
        grpc.StatusCode.UNKNOWN,
        grpc.StatusCode.CANCELLED,
    }
)


def check_budget(name: str, budget_s: float) -> float:
    """Validate a retry budget argument (seconds, positive, finite, at most a week)."""
    if isinstance(budget_s, bool) or not isinstance(budget_s, int | float):
        raise TypeError(f"{name} must be a number of seconds, not {type(budget_s).__name__}")
    if not (math.isfinite(budget_s) and 0 < budget_s <= MAX_BUDGET_S):
        raise ValueError(f"{name} must be positive seconds, at most {MAX_BUDGET_S:g}")
    return float(budget_s)


class Reconnect:
    """Backoff and budget of one resuming stream.

    Call ``healthy()`` whenever data arrives, and ``await wait(reason)`` after every failure
    before trying again: it sleeps the next backoff step or raises MxGatewayStreamLostError
    (naming ``what`` and the last reason) once the budget is spent. ``trouble`` is the reason
    while the stream is failing, None while it is healthy; ``on_trouble`` hears each change.
    """

    __slots__ = (
        "_backoff",
        "_budget_s",
        "_clock",
        "_failing_since",
        "on_trouble",
        "trouble",
        "what",
    )

    def __init__(
        self,
        what: str,
        budget_s: float,
        *,
        on_trouble: Callable[[str | None], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self._budget_s = check_budget("retry_budget_s", budget_s)
        self._clock = clock
        self._failing_since: float | None = None
        self._backoff = BACKOFF_FIRST_S
        self.trouble: str | None = None
        self.on_trouble = on_trouble

    @property
    def failing(self) -> bool:
        """True between a failure and the next data."""
        return self._failing_since is not None

    def healthy(self) -> None:
        """Data arrived: the next failure starts a fresh budget and backoff."""
        if self._failing_since is None:
            return
        self._failing_since = None
        self._backoff = BACKOFF_FIRST_S
        self._set_trouble(None)

    def _set_trouble(self, trouble: str | None) -> None:
        self.trouble = trouble
        if self.on_trouble is not None:
            self.on_trouble(trouble)

    async def wait(
        self, reason: str, *, ready: Callable[[], Awaitable[object]] | None = None
    ) -> None:
        """Sleep before the next attempt, or raise MxGatewayStreamLostError past the budget.

        ``ready``, when given, is awaited during the sleep and ends it early: pass the
        channel's readiness when the connection is down, so the stream is back as soon as the
        gateway is (not up to one backoff step later).
        """
        now = self._clock()
        if self._failing_since is None:
            self._failing_since = now
        self._set_trouble(reason)
        remaining = self._failing_since + self._budget_s - now
        if remaining <= 0:
            raise MxGatewayStreamLostError(
                f"{self.what} lost: no reconnect within {self._budget_s:g} s (last error: {reason})"
            )
        delay = min(self._backoff * (0.5 + random.random()), remaining)
        self._backoff = min(self._backoff * 2, BACKOFF_MAX_S)
        if ready is None:
            await asyncio.sleep(delay)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(ready(), delay)
