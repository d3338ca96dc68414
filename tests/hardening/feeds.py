"""Helpers for the alarm-feed and deploy-watch resume tests: a consumer that builds its view of
the active alarms only from what the feed gives it (and records every double report), and
controls that raise, clear and acknowledge the simulator's alarms."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from mxgateway import (
    ActiveAlarm,
    AlarmConditionState,
    AlarmFeedItem,
    AlarmFeedResync,
    AlarmProviderStatus,
    AlarmResyncClear,
    AlarmSnapshotComplete,
    AlarmTransition,
    AlarmTransitionKind,
)
from mxgateway.sim import SimulatedGateway

__all__ = ["AlarmConsumer", "AlarmDriver", "wait_for"]

NORMAL = AlarmConditionState.UNSPECIFIED
ACTIVE = AlarmConditionState.ACTIVE
ACKED = AlarmConditionState.ACTIVE_ACKED
UNACKED = AlarmConditionState.INACTIVE_UNACKED


async def wait_for(predicate: Callable[..., bool], within: float = 20.0) -> None:
    """Poll until ``predicate()`` holds (fails after ``within`` seconds: a hang guard)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@dataclass
class AlarmConsumer:
    """What an application following the feed holds, from the items alone.

    ``held`` maps a reference to (state, original raise time) for every alarm it was told is
    in any state but normal. ``violations`` lists every report that repeats what it already
    holds: an alarm reported active (RAISE, or an ActiveAlarm it did not hold) while it is
    held, an ActiveAlarm identical to what it holds, a clear of an alarm it does not hold.
    """

    held: dict[str, tuple[int, int | None]] = field(default_factory=dict)
    items: list[AlarmFeedItem] = field(default_factory=list)
    resyncs: list[AlarmFeedResync] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    announced: set[tuple[str, int | None]] = field(default_factory=set)
    snapshot_completes: int = 0
    provider_statuses: int = 0

    def states(self) -> dict[str, int]:
        return {reference: state for reference, (state, _) in self.held.items()}

    def transitions(self) -> int:
        return sum(1 for item in self.items if isinstance(item, AlarmTransition))

    def _announce(self, reference: str, raised: int | None, how: str) -> None:
        occurrence = (reference, raised)
        if occurrence in self.announced:
            self.violations.append(f"{how}: occurrence {occurrence} reported active again")
        self.announced.add(occurrence)

    def apply(self, item: AlarmFeedItem) -> None:
        self.items.append(item)
        if isinstance(item, AlarmFeedResync):
            self.resyncs.append(item)
        elif isinstance(item, AlarmSnapshotComplete):
            self.snapshot_completes += 1
        elif isinstance(item, ActiveAlarm):
            reference = item.alarm_full_reference
            now = (int(item.current_state), item.original_raise_timestamp_ns)
            before = self.held.get(reference)
            if before is None:
                self._announce(reference, item.original_raise_timestamp_ns, "ActiveAlarm")
            elif before == now:
                self.violations.append(f"ActiveAlarm {reference} repeated unchanged {now}")
            elif before[1] != now[1]:
                self.violations.append(f"ActiveAlarm {reference}: new occurrence without a clear")
            self.held[reference] = now
        elif isinstance(item, AlarmTransition):
            reference = item.alarm_full_reference
            if item.transition_kind == AlarmTransitionKind.RAISE:
                if reference in self.held:
                    self.violations.append(f"RAISE {reference} while held {self.held[reference]}")
                self._announce(reference, item.original_raise_timestamp_ns, "RAISE")
            if item.current_state == NORMAL:
                self.held.pop(reference, None)
            else:
                self.held[reference] = (
                    int(item.current_state),
                    item.original_raise_timestamp_ns,
                )
        elif isinstance(item, AlarmResyncClear):
            if self.held.pop(item.alarm_full_reference, None) is None:
                self.violations.append(f"resync clear of {item.alarm_full_reference}, not held")
        elif isinstance(item, AlarmProviderStatus):
            self.provider_statuses += 1

    async def follow(self, feed: AsyncIterator[AlarmFeedItem]) -> None:
        async for item in feed:
            self.apply(item)

    def after_last_resync(self) -> list[AlarmFeedItem]:
        """The items given since the last resync marker (the marker excluded)."""
        last = max(i for i, item in enumerate(self.items) if isinstance(item, AlarmFeedResync))
        return self.items[last + 1 :]


class AlarmDriver:
    """Raises, clears and acknowledges the simulator's alarms (limits on held values)."""

    def __init__(self, sim: SimulatedGateway, seed: int = 7) -> None:
        self.sim = sim
        self.references: list[str] = list(sim.galaxy.alarm_references())
        self.random = random.Random(seed)
        self.operations = 0

    def states(self) -> dict[str, int]:
        """The simulator's own view: every alarm not normal, and its state."""
        return {
            s.alarm_full_reference: int(s.current_state) for s in self.sim.alarms.active_alarms()
        }

    def with_state(self, state: int) -> list[str]:
        states = self.states()
        return [reference for reference in self.references if states.get(reference, 0) == state]

    def _value(self, reference: str, over: bool) -> object:
        info = self.sim.galaxy.resolve(reference)
        assert info is not None and info.alarm_limit is not None
        if info.data_type == 2:  # BOOLEAN alarms are on when True
            return over
        if info.data_type == 3:  # INTEGER
            return int(info.alarm_limit) + (10 if over else -10)
        return float(info.alarm_limit) + (10.0 if over else -10.0)

    def over(self, reference: str) -> None:
        """Value beyond the limit: RAISE (normal) or RETRIGGER (inactive unacked)."""
        self.sim.set_value(reference, self._value(reference, True))
        self.operations += 1

    def back(self, reference: str) -> None:
        """Value back inside the limit: CLEAR (active, active acked)."""
        self.sim.set_value(reference, self._value(reference, False))
        self.operations += 1

    def ack(self, reference: str) -> None:
        """Acknowledge: ACTIVE → ACTIVE_ACKED, INACTIVE_UNACKED → normal."""
        self.sim.alarms.acknowledge(reference, "seen", "operator")
        self.operations += 1

    def ensure(self, state: int, count: int) -> list[str]:
        """At least ``count`` alarms in ``state`` (made from normal ones); ``count`` of them."""
        while len(found := self.with_state(state)) < count:
            reference = self.with_state(NORMAL)[0]
            self.over(reference)
            if state == ACKED:
                self.ack(reference)
            elif state == UNACKED:
                self.back(reference)
        return found[:count]

    def random_step(self) -> None:
        reference = self.random.choice(self.references)
        action = self.random.choice((self.over, self.back, self.ack))
        action(reference)

    async def churn(self, period: float = 0.003) -> None:
        """Random raises, clears and acknowledgements until cancelled."""
        while True:
            self.random_step()
            await asyncio.sleep(period)
