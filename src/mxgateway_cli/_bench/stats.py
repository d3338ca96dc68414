"""What a consumer measured (``StreamStats``), latency percentiles and the CPU clocks read.

CPU time is read at the start and at the end of the measured window from several clocks:

* ``process``: ``time.process_time()`` of this (the client's) process, every thread included:
  the receiver thread, gRPC's own threads, the event loop;
* ``loopThread``: ``time.thread_time()`` of the event loop's thread (the consumer runs there;
  with the aio receiver so does gRPC's reading);
* ``receiverThread``: the CPU clock of the thread receiver's reader thread (Linux and other
  systems with ``pthread_getcpuclockid``), for StreamEvents read by the thread receiver;
* ``simulator``: the child simulator's CPU from ``/proc`` (the built-in simulator on Linux).

A clock that cannot be read at both ends gives no figure (never a guess).
"""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "CpuClock",
    "StreamStats",
    "percentiles",
    "receiver_thread_clock",
]

CpuClock = Callable[[], float | None]
"""A CPU clock in seconds (None when it cannot be read now)."""

_US = 1e6


@dataclass(slots=True)
class StreamStats:
    """What one consumer saw: the measured window and the whole run's sequence checks.

    ``cpu`` maps a clock name (``process``, ``loopThread``, ``receiverThread``, ``simulator``)
    to its CPU seconds over the window. ``error`` is set when the stream ended with a failure
    the benchmark reports rather than raises (the consumer fell behind a paced source and the
    gateway's queue overflowed); the counts are then those up to the failure. ``checked`` is
    False for a consumer that decodes nothing (no sequence checks, no latency).
    """

    consumer: str
    receiver: str | None = None
    events: int = 0
    messages: int = 0
    wire_bytes: int | None = None
    seconds: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    dropped: int = 0
    duplicates: int = 0
    replay_gaps: int = 0
    first_sequence: int | None = None
    last_sequence: int | None = None
    latencies_ns: array[int] = field(default_factory=lambda: array("q"))
    latency_weights: array[int] | None = None
    path: str = ""
    error: str | None = None
    checked: bool = True

    @property
    def label(self) -> str:
        """The consumer's name in reports: ``consumer/receiver`` where a receiver applies."""
        return f"{self.consumer}/{self.receiver}" if self.receiver else self.consumer

    @property
    def cpu_seconds(self) -> float:
        """CPU seconds of the client process over the window."""
        return self.cpu.get("process", 0.0)

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds > 0 else 0.0

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds if self.seconds > 0 else 0.0

    def cpu_per_event_us(self, clock: str = "process") -> float | None:
        """Microseconds of ``clock``'s CPU per event of the window (None without both)."""
        seconds = self.cpu.get(clock)
        if seconds is None or not self.events:
            return None
        return seconds / self.events * _US

    def latency_ms(self) -> dict[str, float | None]:
        """p50/p90/p99/max in ms, event-weighted (None without samples)."""
        return percentiles(self.latencies_ns, self.latency_weights)


def summary(runs: list[StreamStats]) -> dict[str, Any]:
    """The JSON fields (camelCase) of one consumer over its rounds (one or more windows).

    Rates are totals over total seconds; latency percentiles are over every sample of every
    round; ``perRound`` keeps each round's events/s and CPU per event.
    """
    first = runs[0]
    events = sum(r.events for r in runs)
    messages = sum(r.messages for r in runs)
    seconds = sum(r.seconds for r in runs)
    out: dict[str, Any] = {
        "consumer": first.consumer,
        "elapsedSeconds": round(seconds, 4),
        "events": events,
        "eventsPerSecond": round(events / seconds, 1) if seconds > 0 else 0.0,
        "messages": messages,
        "messagesPerSecond": round(messages / seconds, 1) if seconds > 0 else 0.0,
        "path": first.path,
        "rounds": len(runs),
    }
    if first.receiver:
        out["receiver"] = first.receiver
    if first.checked:
        out["droppedSequences"] = sum(r.dropped for r in runs)
        out["duplicateSequences"] = sum(r.duplicates for r in runs)
        out["replayGaps"] = sum(r.replay_gaps for r in runs)
    if len(runs) == 1:
        if first.checked:
            out["firstSequence"] = first.first_sequence
            out["lastSequence"] = first.last_sequence
    else:
        out["perRound"] = [_round(r) for r in runs]
    _cpu_fields(out, runs, events, messages, seconds)
    counted = [r.wire_bytes for r in runs]
    if all(b is not None for b in counted):
        total = sum(b for b in counted if b is not None)
        out["bytes"] = total
        out["mbPerSecond"] = round(total / 1e6 / seconds, 2) if seconds > 0 else 0.0
    if any(r.latency_weights is not None or r.latencies_ns for r in runs):
        out["latencyMs"] = _merged_latency(runs)
    errors = [r.error for r in runs if r.error]
    if errors:
        out["error"] = errors[0]
        out["failedRounds"] = len(errors)
    return out


def _round(stats: StreamStats) -> dict[str, Any]:
    out: dict[str, Any] = {"events": stats.events, "eventsPerSecond": round(stats.events_per_s, 1)}
    if stats.checked:
        out["firstSequence"] = stats.first_sequence
        out["lastSequence"] = stats.last_sequence
    per_event = stats.cpu_per_event_us()
    if per_event is not None:
        out["cpuPerEventUs"] = round(per_event, 3)
    if stats.latency_weights is not None or stats.latencies_ns:
        out["latencyMs"] = stats.latency_ms()
    if stats.error:
        out["error"] = stats.error
    return out


# (clock, field prefix): the report's fields are <prefix>CpuSeconds and <prefix>CpuPerEventUs.
_THREAD_CLOCKS = (("loopThread", "loopThread"), ("receiverThread", "receiverThread"))


def _cpu_fields(
    out: dict[str, Any], runs: list[StreamStats], events: int, messages: int, seconds: float
) -> None:
    """CPU fields: only for clocks every round could read (a partial sum would mislead)."""

    def total(clock: str) -> float | None:
        values = [r.cpu.get(clock) for r in runs]
        if any(v is None for v in values):
            return None
        return sum(v for v in values if v is not None)

    process = total("process")
    if process is not None:
        out["cpuSeconds"] = round(process, 4)
        if events:
            out["cpuPerEventUs"] = round(process / events * _US, 3)
    for clock, prefix in _THREAD_CLOCKS:
        value = total(clock)
        if value is not None:
            out[f"{prefix}CpuSeconds"] = round(value, 4)
            if events:
                out[f"{prefix}CpuPerEventUs"] = round(value / events * _US, 3)
    simulator = total("simulator")
    if simulator is not None:
        out["simulatorCpuSeconds"] = round(simulator, 3)
        if seconds > 0:
            # Fraction of one core the simulator was busy while this consumer was measured.
            out["simulatorCpuShare"] = round(simulator / seconds, 3)
        if messages:
            out["simulatorCpuPerMessageUs"] = round(simulator / messages * _US, 3)


def _merged_latency(runs: list[StreamStats]) -> dict[str, float | None]:
    if all(r.latency_weights is None for r in runs):
        values = array("q")
        for r in runs:
            values.extend(r.latencies_ns)
        return percentiles(values, None)
    values, weights = array("q"), array("q")
    for r in runs:
        values.extend(r.latencies_ns)
        if r.latency_weights is not None:
            weights.extend(r.latency_weights)
        else:
            weights.extend([1] * len(r.latencies_ns))
    return percentiles(values, weights)


def percentiles(values: Iterable[int], weights: Iterable[int] | None) -> dict[str, float | None]:
    """p50/p90/p99/max of ``values`` (ns) in ms, each value counted ``weight`` times.

    The nearest-rank percentile: the smallest value with at least q of the weight at or below.
    """
    keys = ("p50", "p90", "p99", "max")
    if weights is None:
        ordered = sorted(values)
        n = len(ordered)
        if not n:
            return dict.fromkeys(keys)

        def at(q: float) -> int:
            return ordered[min(n - 1, max(0, math.ceil(q * n) - 1))]

        picks = [at(0.50), at(0.90), at(0.99), ordered[-1]]
    else:
        pairs = sorted(zip(values, weights, strict=True))
        if not pairs:
            return dict.fromkeys(keys)
        total = sum(w for _, w in pairs)
        picks = []
        for q in (0.50, 0.90, 0.99):
            rank = max(1, math.ceil(q * total))
            running = 0
            for value, weight in pairs:
                running += weight
                if running >= rank:
                    picks.append(value)
                    break
        picks.append(pairs[-1][0])
    return {k: round(v / 1e6, 3) for k, v in zip(keys, picks, strict=True)}


def receiver_thread_clock(name: str) -> CpuClock | None:
    """The CPU clock of the live thread called ``name`` (the thread receiver names its reader
    thread after the session), or None when there is none or the platform has no per-thread
    clocks. The clock reads None once the thread has ended."""
    getclock = getattr(time, "pthread_getcpuclockid", None)
    if getclock is None:
        return None
    for thread in threading.enumerate():
        if thread.name == name and thread.ident is not None:
            try:
                clock_id = getclock(thread.ident)
            except OSError:
                return None

            def read(clock_id: int = clock_id) -> float | None:
                try:
                    return time.clock_gettime(clock_id)
                except OSError:
                    return None

            return read
    return None
