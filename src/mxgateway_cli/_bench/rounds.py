"""Alternating rounds of consumers against one gateway, and the ratios between them.

This small shared machine swings two to four times with other load, so figures measured one
after the other at different moments compare badly. The two consumers a ratio compares (the
first two) run back to back in every round, the one going first alternating (A B, B A, A B,
...); the others of the round follow. A ratio is taken per round, between two windows that saw
nearly the same conditions, and its median over the rounds is the figure to quote.
"""

from __future__ import annotations

import statistics
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from mxgateway_cli._bench.stats import StreamStats

__all__ = ["Measure", "ratio", "run_rounds"]

Measure = Callable[[], Awaitable[StreamStats]]
"""One consumer's measurement (a fresh session and window each time it is called)."""


async def run_rounds(consumers: Sequence[Measure], rounds: int) -> list[list[StreamStats]]:
    """Run every consumer once per round; return each consumer's windows, in round order.

    The first two swap places every other round; the rest run after them in their order.
    """
    if rounds < 1:
        raise ValueError("rounds must be at least 1")
    runs: list[list[StreamStats]] = [[] for _ in consumers]
    for round_ in range(rounds):
        order = list(range(len(consumers)))
        if round_ % 2 and len(order) >= 2:
            order[0], order[1] = order[1], order[0]
        for index in order:
            runs[index].append(await consumers[index]())
    return runs


def _median(values: list[float]) -> float | None:
    return round(statistics.median(values), 3) if values else None


def ratio(numerator: list[StreamStats], denominator: list[StreamStats]) -> dict[str, Any]:
    """``numerator`` ÷ ``denominator`` per round (rounds where either failed are left out):
    of events per second, and of the client process's CPU per event (below 1: the numerator
    spends less CPU per event); with the median of each."""
    rates: list[float] = []
    cpu: list[float] = []
    for a, b in zip(numerator, denominator, strict=True):
        if a.error or b.error:
            continue
        if b.events_per_s:
            rates.append(a.events_per_s / b.events_per_s)
        a_cpu, b_cpu = a.cpu_per_event_us(), b.cpu_per_event_us()
        if a_cpu is not None and b_cpu:
            cpu.append(a_cpu / b_cpu)
    return {
        "cpuPerEvent": [round(r, 3) for r in cpu],
        "cpuPerEventMedian": _median(cpu),
        "denominator": denominator[0].label,
        "eventsPerSecond": [round(r, 3) for r in rates],
        "eventsPerSecondMedian": _median(rates),
        "numerator": numerator[0].label,
    }
