"""The simulated plant: the current value of every attribute in use, its generator, its watchers.

Values are global (as on a real Galaxy): a write from one session is seen by every session
advising the attribute, and the alarm manager observes every change of an alarm attribute.
The ticker advances the attributes somebody advises (and the alarm attributes, when the Galaxy
lists them) at ``rate`` steps per second; a written attribute holds its written value.

The ticker keeps a schedule: each advised attribute changes every 1/rate s at its own phase
(phases spread evenly by a golden-ratio sequence), and the ticker sleeps until the next change
is due, so changes come when due (within the event loop's timer resolution, ~1 ms) and evenly,
not in bursts. Alarm attributes nobody advises tick on a coarse 50 ms grid, as cheaply as
before. With nothing advised it wakes only for the tick callbacks (buffered deliveries).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol, cast

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim._values import Generator, from_mx_value, to_mx_value

__all__ = [
    "AlarmObserver",
    "AttributeLike",
    "GalaxyLike",
    "ItemAddress",
    "Plant",
    "TagState",
    "Watcher",
    "parse_reference",
]

log = logging.getLogger("mxgateway.sim")

_ARRAY_SUFFIX = re.compile(r"^(?P<base>.+?)\[(?P<index>\d*)\]$")
_ALARM_SUBATTRIBUTES = frozenset({"InAlarm", "Acked", "AckMsg", "Priority"})
_MAX_ALIASES = 1_000_000
MAX_TICKED_ALARMS = 1000  # alarm attributes advanced even when nobody advises them
TICK_S = 0.05  # tick callbacks (buffered deliveries); the grid of unadvised alarm attributes
_MAX_STEPS_PER_WAKE = 20_000  # then let the loop breathe; the rest are due at once after
_GOLDEN = (math.sqrt(5) - 1) / 2


class AttributeLike(Protocol):
    """What the simulator reads from the Galaxy's AttributeInfo."""

    @property
    def reference(self) -> str: ...
    @property
    def data_type(self) -> int: ...
    @property
    def is_array(self) -> bool: ...
    @property
    def array_length(self) -> int: ...
    @property
    def security_classification(self) -> int: ...
    @property
    def is_alarm(self) -> bool: ...
    @property
    def alarm_limit(self) -> float | None: ...
    @property
    def generator(self) -> str: ...


class GalaxyLike(Protocol):
    """What the simulator calls on the Galaxy (see mxgateway.sim._galaxy)."""

    def resolve(self, reference: str) -> AttributeLike | None: ...
    def redeploy(self) -> None: ...
    def sample_references(self, n: int) -> list[str]: ...


class AlarmObserver(Protocol):
    """What the simulator calls on the alarm manager (see mxgateway.sim._alarms)."""

    def observe(self, reference: str, value: object, timestamp_ns: int) -> None: ...


class Watcher(Protocol):
    """An advised item: told about every change of its attribute."""

    def on_change(self, state: TagState) -> None: ...


@dataclass(frozen=True, slots=True)
class ItemAddress:
    """A parsed item definition: the attribute, and the 1-based element for ``Tag.Arr[3]``."""

    base: str
    index: int | None
    whole_array: bool


def parse_reference(definition: str) -> ItemAddress:
    """``Tag.Attr``, ``Tag.Arr[]`` (whole array) or ``Tag.Arr[3]`` (1-based element)."""
    match = _ARRAY_SUFFIX.match(definition.strip())
    if match is None:
        return ItemAddress(definition.strip(), None, False)
    index = match["index"]
    if index == "":
        return ItemAddress(match["base"], None, True)
    return ItemAddress(match["base"], int(index), False)


class TagState:
    """One attribute's current value, quality, timestamp and watchers."""

    __slots__ = (
        "coarse",
        "derived",
        "due",
        "generator",
        "held",
        "info",
        "parent",
        "quality",
        "sub_attribute",
        "ticked",
        "timestamp_ns",
        "value",
        "watchers",
    )

    def __init__(self, info: AttributeLike, generator: Generator | None, now_ns: int) -> None:
        self.info = info
        self.generator = generator
        self.value: object = generator.initial(now_ns) if generator is not None else None
        self.quality = 192
        self.timestamp_ns = now_ns
        self.held = False  # written: the generator stops
        self.watchers: set[Watcher] = set()
        self.derived: list[TagState] = []
        self.parent: TagState | None = None
        self.sub_attribute = ""  # InAlarm, Acked, AckMsg, Priority: derived from the alarm
        self.ticked = False  # advanced by the ticker even when nobody advises it
        self.due: float | None = None  # the ticker's next step (monotonic s), when scheduled
        self.coarse = False  # scheduled on the coarse grid (nobody advises it)

    @property
    def reference(self) -> str:
        """The attribute's reference (no array suffix)."""
        return self.info.reference

    @property
    def array_length(self) -> int | None:
        """The array length, or None for a scalar attribute."""
        return self.info.array_length if self.info.is_array else None

    def element(self, index: int | None) -> object:
        """The whole value, or the 1-based element ``index`` of an array."""
        if index is None:
            return self.value
        return cast(list[object], self.value)[index - 1]


def now_ns() -> int:
    """Wall-clock nanoseconds (timestamps of values and events)."""
    return time.time_ns()


class Plant:
    """Attribute values, generators and the ticker."""

    def __init__(
        self,
        galaxy: GalaxyLike,
        alarms: AlarmObserver | None,
        *,
        seed: int,
        rate: float,
        generate: bool = True,
        clock: Callable[[], int] = now_ns,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._galaxy = galaxy
        self._alarms = alarms
        self._seed = seed
        self._rate = rate
        self._generate = generate
        self._clock = clock
        self._states: dict[str, TagState] = {}
        self._aliases: dict[str, TagState] = {}
        self.on_tick: list[Callable[[int], None]] = []
        self._monotonic = monotonic
        self._period = 1.0 / rate if rate > 0 and generate else 0.0
        self._schedule: list[tuple[float, int, TagState]] = []  # (due, order, state), a heap
        self._order = itertools.count()
        self._phase = 0.0
        self._waiter: asyncio.Future[None] | None = None
        self._waiter_due = math.inf

    def start_alarm_refs(self, limit: int = MAX_TICKED_ALARMS) -> None:
        """Tick the first ``limit`` alarm attributes the Galaxy lists, advised or not, so the
        alarm feed lives by itself; follow alarm transitions for the sub-attributes."""
        lister = getattr(self._galaxy, "alarm_references", None)
        if callable(lister):
            for ref in list(lister())[:limit]:
                state = self.lookup(str(ref))
                if state is not None:
                    state.ticked = True
                    self._plan(state)
        listen = getattr(self._alarms, "add_transition_listener", None)
        if callable(listen):
            listen(self._on_alarm_transition)

    def _on_alarm_transition(self, event: pb.OnAlarmTransitionEvent) -> None:
        state = self._states.get(event.alarm_full_reference)
        if state is not None and state.derived:
            self._refresh_derived(state, self._clock())

    def lookup(self, base: str) -> TagState | None:
        """The state of attribute ``base`` (created on first use), or None if unknown.

        ``base`` has no array suffix (see parse_reference); names are resolved by the Galaxy
        (case-insensitive), so every spelling shares one state.
        """
        state = self._aliases.get(base)
        if state is not None:
            return state
        info = self._galaxy.resolve(base)
        if info is None:
            return None
        state = self._states.get(info.reference)
        if state is None:
            state = self._create(info)
            if state is None:
                return None
        if len(self._aliases) < _MAX_ALIASES:
            self._aliases[base] = state
        return state

    def _create(self, info: AttributeLike) -> TagState | None:
        parent_ref, _, name = info.reference.rpartition(".")
        if name in _ALARM_SUBATTRIBUTES and parent_ref:
            parent = self.lookup(parent_ref)
            if parent is not None and parent.info.is_alarm:
                state = TagState(info, None, self._clock())
                state.sub_attribute = name
                state.parent = parent
                state.value = self._derived_value(parent, name)
                parent.derived.append(state)
                self._states[info.reference] = state
                return state
        low = float(getattr(info, "value_low", 0.0))
        high = float(getattr(info, "value_high", 100.0))
        generator = Generator(
            info.reference,
            info.generator,
            info.data_type,
            info.array_length if info.is_array else 0,
            self._seed,
            low=low,
            high=high,
        )
        state = TagState(info, generator, self._clock())
        self._states[info.reference] = state
        if info.is_alarm and self._alarms is not None:
            self._alarms.observe(info.reference, state.value, state.timestamp_ns)
        return state

    def _derived_value(self, parent: TagState, name: str) -> object:
        query = getattr(self._alarms, "sub_attribute_value", None)
        if callable(query):
            value = query(f"{parent.reference}.{name}")
            if value is not None:
                return value
        if name == "InAlarm":
            limit = parent.info.alarm_limit
            value = parent.value
            return bool(limit is not None and isinstance(value, int | float) and value > limit)
        if name == "Acked":
            return True
        if name == "AckMsg":
            return ""
        return 500

    def _refresh_derived(self, parent: TagState, now: int) -> None:
        for sub in parent.derived:
            if sub.held:
                continue
            value = self._derived_value(parent, sub.sub_attribute)
            if value != sub.value:
                sub.value = value
                self._changed(sub, now)

    def redeploy(self) -> None:
        """Redeploy the Galaxy (attributes keep their values)."""
        self._galaxy.redeploy()

    def _changed(self, state: TagState, now: int) -> None:
        state.timestamp_ns = now
        if state.info.is_alarm and self._alarms is not None:
            self._alarms.observe(state.reference, state.value, now)
        for watcher in list(state.watchers):
            watcher.on_change(state)
        if state.derived:
            self._refresh_derived(state, now)

    def write(
        self, state: TagState, index: int | None, value_msg: pb.MxValue, ts_ns: int | None
    ) -> None:
        """Store a written MxValue (whole value or 1-based element); raise MxFailure if it
        does not fit the attribute. The attribute then holds the written value."""
        if index is None:
            value = from_mx_value(value_msg, state.info.data_type, state.array_length)
        else:
            element = from_mx_value(value_msg, state.info.data_type, None)
            value = list(cast(list[object], state.value))
            value[index - 1] = element
        if state.sub_attribute == "AckMsg" and state.parent is not None:
            acknowledge = getattr(self._alarms, "acknowledge", None)
            if callable(acknowledge):
                # Writing AckMsg acknowledges the alarm with that comment, as in ArchestrA.
                acknowledge(state.parent.reference, str(value), "")
                self._refresh_derived(state.parent, self._clock())
                return
        state.value = value
        state.held = True
        self._changed(state, ts_ns if ts_ns is not None else self._clock())

    def set_value(self, reference: str, value: object) -> None:
        """Test control: set an attribute (or array element) to a Python value, as a write."""
        address = parse_reference(reference)
        state = self.lookup(address.base)
        if state is None:
            raise KeyError(f"unknown attribute {address.base!r}")
        length = state.array_length
        if address.index is not None and (length is None or not 1 <= address.index <= length):
            raise KeyError(f"no element {address.index} in {address.base!r}")
        if isinstance(value, list) != (length is not None and address.index is None):
            raise ValueError(f"{reference}: an array attribute takes a list, a scalar does not")
        try:  # reject a value the attribute's type cannot carry before storing it
            to_mx_value(value, state.info.data_type)
        except (TypeError, ValueError, OverflowError) as exc:
            name = pb.MxDataType.Name(cast(pb.MxDataType, state.info.data_type))
            raise ValueError(f"{value!r} does not suit {reference} ({name})") from exc
        if address.index is not None:
            whole = list(cast(list[object], state.value))
            whole[address.index - 1] = value
            value = whole
        state.value = value
        state.held = True
        self._changed(state, self._clock())

    def set_quality(self, reference: str, quality: int) -> None:
        """Test control: change an attribute's quality (192 good, 0 bad) and notify watchers."""
        state = self.lookup(parse_reference(reference).base)
        if state is None:
            raise KeyError(f"unknown attribute {reference!r}")
        state.quality = quality
        self._changed(state, self._clock())

    # ----- advising and the schedule -----

    def watch(self, state: TagState, watcher: Watcher) -> None:
        """``watcher`` (an advised item) follows ``state``; the ticker steps it when due."""
        state.watchers.add(watcher)
        self._plan(state)

    def unwatch(self, state: TagState, watcher: Watcher) -> None:
        """``watcher`` no longer follows ``state`` (its schedule lapses when next due)."""
        state.watchers.discard(watcher)

    def _plan(self, state: TagState) -> None:
        # Put ``state`` on the schedule: precise when advised, on the coarse grid otherwise.
        period = self._period
        if period <= 0 or state.generator is None or state.held:
            return
        now = self._monotonic()
        if state.watchers:
            if state.due is not None and not state.coarse:
                return
            self._phase = (self._phase + _GOLDEN) % 1.0
            self._push(state, now + period * self._phase, coarse=False)
        elif state.ticked and state.due is None:
            self._push(state, self._on_grid(now + period), coarse=True)

    @staticmethod
    def _on_grid(when: float) -> float:
        return math.ceil(when / TICK_S) * TICK_S

    def _push(self, state: TagState, due: float, *, coarse: bool) -> None:
        state.due = due
        state.coarse = coarse
        heapq.heappush(self._schedule, (due, next(self._order), state))
        if due < self._waiter_due and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)  # the ticker sleeps past this: wake it

    def step_due(self) -> int:
        """Step every scheduled attribute whose change is due (once each); return how many."""
        schedule = self._schedule
        period = self._period
        now = self._monotonic()
        stamp = self._clock()
        stepped = 0
        while schedule and schedule[0][0] <= now and stepped < _MAX_STEPS_PER_WAKE:
            due, _, state = heapq.heappop(schedule)
            if state.due != due:
                continue  # rescheduled since
            state.due = None
            if state.held or state.generator is None or not (state.watchers or state.ticked):
                continue
            try:
                state.value = state.generator.step(stamp)
                self._changed(state, stamp)
            except Exception:
                log.exception("simulated value step failed")
            stepped += 1
            if state.watchers:
                following = due + period
                if following <= now:  # late by a period or more: skip, never catch up in a burst
                    following += math.ceil((now - following) / period + 1e-9) * period
                self._push(state, following, coarse=False)
            elif state.ticked:
                self._push(state, self._on_grid(max(due + period, now)), coarse=True)
        return stepped

    def step_all(self) -> None:
        """Advance every watched (or alarm) attribute one generator step, now (for tests;
        the schedule is not changed)."""
        now = self._clock()
        for state in list(self._states.values()):
            if state.held or state.generator is None:
                continue
            if not state.watchers and not state.ticked:
                continue
            state.value = state.generator.step(now)
            self._changed(state, now)

    async def run(self) -> None:
        """The ticker: scheduled changes when due, and the tick callbacks every TICK_S."""
        loop = asyncio.get_running_loop()
        next_tick = self._monotonic() + TICK_S
        while True:
            self.step_due()
            now = self._monotonic()
            if now >= next_tick:
                next_tick = now + TICK_S
                stamp = self._clock()
                for callback in list(self.on_tick):
                    try:
                        callback(stamp)
                    except Exception:
                        log.exception("simulator tick callback failed")
            due = min(next_tick, self._schedule[0][0]) if self._schedule else next_tick
            delay = due - self._monotonic()
            if delay <= 0:
                await asyncio.sleep(0)
                continue
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiter, self._waiter_due = waiter, due
            handle = loop.call_later(delay, _wake, waiter)
            try:
                await waiter
            finally:
                handle.cancel()
                self._waiter, self._waiter_due = None, math.inf


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
