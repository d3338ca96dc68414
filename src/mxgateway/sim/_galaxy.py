"""The simulator's in-memory Galaxy and its GalaxyRepository service.

A :class:`Galaxy` is built from ``(size, seed)`` alone, so the same seed gives the same Galaxy:
areas (category 13, nested), automation objects with templates, contained objects with contained
and hierarchical names, and attributes of every MXAccess data type (arrays, historized and alarm
attributes, security classifications).

Scaling to 100,000 objects is cheap because an object is a handful of small integers and two
strings: its parent, its template, and the index of its *attribute set* — one of a few shared,
immutable tuples of attribute definitions, chosen by the template and by the bits of a hash of
``(seed, gobject_id)`` (optional attributes). Attribute lists, :class:`AttributeInfo` and
protobuf messages are generated only when asked for, from those tuples.

:class:`GalaxyRepositoryServicer` serves the Galaxy. A paged query (DiscoverHierarchy,
BrowseChildren) is evaluated once to a list of gobject ids, cached by a fingerprint of the query
and the deploy generation, and sliced per page. A page token is opaque: it carries the query
kind, the generation, the offset and the query fingerprint, signed with a key of this servicer.
A token of an older generation is stale and a token of another query is foreign; both end the
call with INVALID_ARGUMENT, as does a token that is not ours.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import hmac
import re
import secrets
import struct
import time
from bisect import bisect
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate, chain
from math import isqrt
from random import Random
from typing import TYPE_CHECKING, Any, Final, Literal, TypeAlias

import grpc
from google.protobuf import timestamp_pb2

from mxgateway.generated import galaxy_repository_pb2 as gpb
from mxgateway.generated import galaxy_repository_pb2_grpc as gpb_grpc

if TYPE_CHECKING:
    from grpc import aio

    Context: TypeAlias = aio.ServicerContext[Any, Any]
    AuthCheck: TypeAlias = Callable[[Context, str], Awaitable[None]]

__all__ = [
    "AREA_CATEGORY",
    "AttributeInfo",
    "Galaxy",
    "GalaxyFilter",
    "GalaxyRepositoryServicer",
    "GeneratorName",
]

GeneratorName: TypeAlias = Literal["ramp", "sine", "random_walk", "toggle", "cycle"]

AREA_CATEGORY: Final = 13
"""category_id of an area."""

_M64: Final = (1 << 64) - 1
_NS: Final = 1_000_000_000
# 2024-01-01T00:00:00Z: the first deploy of every Galaxy lies in the year after it.
_BASE_DEPLOY_S: Final = 1_704_067_200

# Native MXAccess data types (MxDataType enum number = native + 1).
(
    _NO_DATA,
    _BOOLEAN,
    _INTEGER,
    _FLOAT,
    _DOUBLE,
    _STRING,
    _TIME,
    _ELAPSED,
    _REFERENCE,
    _STATUS,
    _DATA_TYPE_ENUM,
    _SECURITY_ENUM,
    _DATA_QUALITY,
    _QUALIFIED_ENUM,
    _QUALIFIED_STRUCT,
    _INTL_STRING,
    _BIG_STRING,
) = range(17)

# Security classifications.
_FREE, _OPERATE, _SECURED, _VERIFIED, _TUNE, _CONFIGURE, _VIEW_ONLY = range(7)

# mx_attribute_category: calculated (read-only) or writeable (user, supervisory, configuration).
_CAT_CALCULATED: Final = 2
_CAT_WRITEABLE: Final = 10

# Sub-attributes every alarm attribute has: (suffix, native type, security, generator).
_ALARM_SUBS: Final[dict[str, tuple[str, int, int, GeneratorName]]] = {
    "inalarm": ("InAlarm", _BOOLEAN, _VIEW_ONLY, "toggle"),
    "acked": ("Acked", _BOOLEAN, _VIEW_ONLY, "toggle"),
    "ackmsg": ("AckMsg", _STRING, _OPERATE, "cycle"),
    "priority": ("Priority", _INTEGER, _TUNE, "cycle"),
}

# Types sample_references() returns: the ones every client decodes to a plain Python value.
_COMMON_TYPES: Final = frozenset({_BOOLEAN, _INTEGER, _FLOAT, _DOUBLE, _STRING, _TIME, _ELAPSED})


def _mix(a: int, b: int) -> int:
    """A 64-bit hash of two integers (splitmix64 finaliser): the lazy generation's randomness."""
    z = (a * 0x9E3779B97F4A7C15 + b * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def _timestamp(ns: int) -> timestamp_pb2.Timestamp:
    seconds, nanos = divmod(ns, _NS)
    return timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)


def _norm_template(name: str) -> str:
    return name.strip().lower().lstrip("$")


@dataclass(frozen=True, slots=True)
class AttributeInfo:
    """What the simulator needs to know about one item reference (see :meth:`Galaxy.resolve`).

    ``data_type`` is the MxDataType enum number (native + 1). An array element (``Tag.Arr[3]``)
    is a scalar of the element type; a whole array (``Tag.Arr[]``) has ``is_array`` and its
    ``array_length``. Numeric generators are meant to stay within ``value_low..value_high``,
    and ``alarm_limit`` (alarm attributes only) lies inside that range.
    """

    reference: str
    tag_name: str
    attribute_name: str
    data_type: int
    is_array: bool
    array_length: int
    security_classification: int
    is_historized: bool
    is_alarm: bool
    alarm_limit: float | None
    generator: GeneratorName
    value_low: float = 0.0
    value_high: float = 100.0


@dataclass(frozen=True, slots=True)
class _AttrDef:
    name: str
    native: int
    generator: GeneratorName
    security: int = _FREE
    historized: bool = False
    alarm_limit: float | None = None
    array_length: int = 0
    optional: bool = False
    description: str = ""

    @property
    def category(self) -> int:
        return _CAT_CALCULATED if self.security == _VIEW_ONLY else _CAT_WRITEABLE


@dataclass(frozen=True, slots=True)
class _Template:
    prefix: str
    chain: tuple[str, ...]
    category: int
    attrs: tuple[_AttrDef, ...]
    # Contained children: (contained name, template index, probability).
    children: tuple[tuple[str, int, float], ...] = ()

    @property
    def is_area(self) -> bool:
        return self.category == AREA_CATEGORY


_A = _AttrDef
(
    _T_AREA,
    _T_PUMP,
    _T_MOTOR,
    _T_VALVE,
    _T_TANK,
    _T_FLOW,
    _T_DIAG,
    _T_DI,
    _T_ENGINE,
    _T_PLATFORM,
) = range(10)

_TEMPLATES: Final[tuple[_Template, ...]] = (
    _Template(
        "Area",
        ("$Area",),
        AREA_CATEGORY,
        (
            _A("AlarmCount", _INTEGER, "cycle", _VIEW_ONLY, description="Active alarms"),
            _A("Description", _STRING, "cycle", _CONFIGURE, description="Area description"),
        ),
    ),
    _Template(
        "Pump",
        ("$UserDefined", "$Pump"),
        10,
        (
            _A("Speed", _DOUBLE, "sine", historized=True, alarm_limit=85.0, description="Speed"),
            _A("Speed.EngUnits", _STRING, "cycle", _CONFIGURE, description="Speed units"),
            _A("SpeedSP", _DOUBLE, "ramp", _OPERATE, description="Speed setpoint"),
            _A("Running", _BOOLEAN, "toggle", historized=True, description="Running"),
            _A("StartCmd", _BOOLEAN, "toggle", _SECURED, description="Start command"),
            _A("Mode", _INTEGER, "cycle", _OPERATE, description="Operating mode"),
            _A("Fault", _BOOLEAN, "toggle", alarm_limit=0.5, optional=True, description="Fault"),
            _A("RunHours", _ELAPSED, "ramp", historized=True, optional=True, description="Hours"),
            _A("Description", _STRING, "cycle", _CONFIGURE, optional=True),
        ),
        (("Motor", _T_MOTOR, 0.6),),
    ),
    _Template(
        "Motor",
        ("$UserDefined", "$Motor"),
        10,
        (
            _A("Current", _FLOAT, "random_walk", historized=True, alarm_limit=90.0),
            _A("Running", _BOOLEAN, "toggle", description="Running"),
            _A("Temperature", _DOUBLE, "random_walk", historized=True, optional=True),
            _A("Vibration", _FLOAT, "sine", optional=True, description="Vibration"),
        ),
    ),
    _Template(
        "Valve",
        ("$UserDefined", "$DiscreteDevice", "$Valve"),
        10,
        (
            _A("Position", _FLOAT, "ramp", historized=True, description="Position %"),
            _A("OpenCmd", _BOOLEAN, "toggle", _OPERATE, description="Open command"),
            _A("Open", _BOOLEAN, "toggle", description="Open feedback"),
            _A("Interlock", _BOOLEAN, "toggle", _VERIFIED, description="Interlock bypass"),
            _A("StateText", _STRING, "cycle", _VIEW_ONLY, description="State"),
            _A("LastChange", _TIME, "ramp", optional=True, description="Last state change"),
        ),
    ),
    _Template(
        "Tank",
        ("$UserDefined", "$Tank"),
        10,
        (
            _A("Level", _DOUBLE, "sine", historized=True, alarm_limit=80.0, description="Level"),
            _A("Level.HiLimit", _DOUBLE, "cycle", _TUNE, description="High level limit"),
            _A("Temperature", _FLOAT, "random_walk", historized=True, alarm_limit=75.0),
            _A("LevelProfile", _FLOAT, "sine", array_length=10, description="Level profile"),
            _A("BatchId", _STRING, "cycle", _OPERATE, description="Batch"),
            _A("Label", _INTL_STRING, "cycle", description="Label"),
            _A("Recipe", _BIG_STRING, "cycle", _CONFIGURE, optional=True, description="Recipe"),
        ),
        (
            ("InletValve", _T_VALVE, 0.5),
            ("OutletValve", _T_VALVE, 0.5),
            ("Agitator", _T_PUMP, 0.3),
        ),
    ),
    _Template(
        "FT",
        ("$AnalogDevice", "$FlowMeter"),
        10,
        (
            _A("Flow", _DOUBLE, "random_walk", historized=True, alarm_limit=90.0),
            _A("Flow.EngUnits", _STRING, "cycle", _CONFIGURE, description="Flow units"),
            _A("Totalizer", _DOUBLE, "ramp", historized=True, description="Total"),
            _A("Samples", _INTEGER, "random_walk", array_length=8, description="Raw samples"),
            _A("SignalQuality", _DATA_QUALITY, "cycle", _VIEW_ONLY, optional=True),
        ),
    ),
    _Template(
        "Diag",
        ("$UserDefined", "$Diagnostics"),
        10,
        (
            _A("Heartbeat", _INTEGER, "ramp", historized=True, description="Heartbeat"),
            _A("NoDataValue", _NO_DATA, "cycle", _VIEW_ONLY),
            _A("ItemReference", _REFERENCE, "cycle"),
            _A("LastStatus", _STATUS, "cycle", _VIEW_ONLY),
            _A("ValueType", _DATA_TYPE_ENUM, "cycle"),
            _A("AccessLevel", _SECURITY_ENUM, "cycle"),
            _A("Quality", _DATA_QUALITY, "cycle"),
            _A("State", _QUALIFIED_ENUM, "cycle"),
            _A("Record", _QUALIFIED_STRUCT, "cycle", _VIEW_ONLY),
            _A("Message", _INTL_STRING, "cycle"),
            _A("Log", _BIG_STRING, "cycle"),
            _A("StartTime", _TIME, "ramp"),
            _A("Uptime", _ELAPSED, "ramp", historized=True),
            _A("Load", _FLOAT, "sine", historized=True, alarm_limit=95.0, description="Load"),
            _A("Flags", _BOOLEAN, "toggle", array_length=16),
            _A("Names", _STRING, "cycle", array_length=4),
            _A("Stamps", _TIME, "ramp", array_length=3),
            _A("Durations", _ELAPSED, "ramp", array_length=3),
            _A("Values", _DOUBLE, "sine", array_length=5),
            _A("Counters", _INTEGER, "ramp", array_length=5),
            _A("Gains", _FLOAT, "random_walk", array_length=4, security=_TUNE),
            _A("Password", _STRING, "cycle", _SECURED),
            _A("Setpoint", _DOUBLE, "ramp", _VERIFIED),
            _A("Gain", _DOUBLE, "cycle", _TUNE),
        ),
    ),
    _Template(
        "DI",
        ("$DDESuiteLinkClient",),
        11,
        (
            _A("ConnectionStatus", _BOOLEAN, "toggle", _VIEW_ONLY, historized=True),
            _A("ScanState", _BOOLEAN, "toggle", _OPERATE),
            _A("ItemCount", _INTEGER, "cycle", _VIEW_ONLY),
        ),
    ),
    _Template(
        "AppEngine",
        ("$AppEngine",),
        3,
        (
            _A("ScanPeriod", _INTEGER, "cycle", _CONFIGURE),
            _A("ScanOverruns", _INTEGER, "ramp", _VIEW_ONLY, historized=True),
            _A("CPULoad", _FLOAT, "sine", _VIEW_ONLY, alarm_limit=95.0),
        ),
    ),
    _Template(
        "Platform",
        ("$WinPlatform",),
        1,
        (
            _A("CPULoad", _FLOAT, "sine", _VIEW_ONLY, historized=True, alarm_limit=90.0),
            _A("MemoryAvailable", _DOUBLE, "random_walk", _VIEW_ONLY),
            _A("Scheduler.ScanPeriod", _INTEGER, "cycle", _CONFIGURE),
        ),
    ),
)

# Top-level objects placed in areas, with weights; the first ones of a Galaxy take each in turn.
_UNIT_WEIGHTS: Final = (
    (_T_PUMP, 25),
    (_T_TANK, 15),
    (_T_VALVE, 25),
    (_T_FLOW, 20),
    (_T_DIAG, 5),
    (_T_DI, 5),
    (_T_ENGINE, 3),
    (_T_PLATFORM, 2),
)
_UNIT_TEMPLATES: Final = tuple(t for t, _ in _UNIT_WEIGHTS)
_UNIT_CUM_WEIGHTS: Final = tuple(accumulate(w for _, w in _UNIT_WEIGHTS))
_MAX_AREA_DEPTH: Final = 3


@dataclass(frozen=True, slots=True)
class _AttrSet:
    defs: tuple[_AttrDef, ...]
    by_name: dict[str, _AttrDef]
    has_alarm: bool
    has_historized: bool


@dataclass(frozen=True, slots=True)
class GalaxyFilter:
    """The object filters shared by DiscoverHierarchy and BrowseChildren.

    ``category_ids`` and ``template_chain_contains`` accept an object matching any listed value
    (template names compare case-insensitively, the leading ``$`` optional); ``tag_name_glob``
    is anchored and case-insensitive with ``*`` and ``?``; the two flags keep objects with at
    least one alarm / historized attribute. The filters select objects; they never prune the
    traversal, so a matching object below a non-matching one is still found.
    """

    category_ids: frozenset[int] = frozenset()
    template_chain_contains: frozenset[str] = frozenset()
    tag_name_glob: str = ""
    alarm_bearing_only: bool = False
    historized_only: bool = False

    @classmethod
    def of(
        cls,
        category_ids: Iterable[int] = (),
        template_chain_contains: Iterable[str] = (),
        tag_name_glob: str = "",
        alarm_bearing_only: bool = False,
        historized_only: bool = False,
    ) -> GalaxyFilter:
        """A normalised filter (template names lower-cased without ``$``)."""
        return cls(
            frozenset(category_ids),
            frozenset(_norm_template(t) for t in template_chain_contains if t.strip()),
            tag_name_glob,
            alarm_bearing_only,
            historized_only,
        )

    def key(self) -> tuple[object, ...]:
        """A canonical, order-independent description (for query fingerprints)."""
        return (
            tuple(sorted(self.category_ids)),
            tuple(sorted(self.template_chain_contains)),
            self.tag_name_glob.lower(),
            self.alarm_bearing_only,
            self.historized_only,
        )

    def glob_pattern(self) -> re.Pattern[str] | None:
        """The compiled anchored, case-insensitive glob, or None without one."""
        if not self.tag_name_glob:
            return None
        parts = [
            ".*" if c == "*" else "." if c == "?" else re.escape(c) for c in self.tag_name_glob
        ]
        return re.compile("".join(parts), re.IGNORECASE | re.DOTALL)


class _DeployWatcher:
    """One WatchDeployEvents subscriber: a bounded buffer (oldest dropped) and a wake-up."""

    def __init__(self, capacity: int) -> None:
        self._queue: deque[gpb.DeployEvent] = deque(maxlen=capacity)
        self._ready = asyncio.Event()

    def push(self, event: gpb.DeployEvent) -> None:
        self._queue.append(event)
        self._ready.set()

    async def get(self) -> gpb.DeployEvent:
        while not self._queue:
            self._ready.clear()
            await self._ready.wait()
        return self._queue.popleft()


class Galaxy:
    """A deterministic in-memory Galaxy of about ``size`` objects (areas included) for ``seed``.

    Build cost is linear and small (about 0.25 s and 30 MB for 100,000 objects); see the module
    docstring for how attributes are generated lazily. ``areas`` overrides the number of areas
    (default: one per fifty objects). Not thread-safe: use it from the event loop's thread.
    """

    def __init__(self, size: int, seed: int, *, areas: int | None = None) -> None:
        if size < 1:
            raise ValueError("a Galaxy needs at least one object")
        self._seed = seed
        self.available = True
        """False simulates an unreachable Galaxy Repository database (TestConnection ok=false)."""
        self._parent: list[int] = [0]  # indexed by gobject_id; 0 is no object
        self._tmpl: list[int] = [0]
        self._aset: list[int] = [0]
        self._tag: list[str] = [""]
        self._cname: list[str] = [""]
        self._area: list[int] = [0]
        self._children: dict[int, list[int]] = {}
        self._roots: list[int] = []
        self._areas: list[int] = []
        self._by_tag: dict[str, int] = {}
        self._counters = [0] * len(_TEMPLATES)
        self._attrsets: list[_AttrSet] = []
        self._attrset_index: dict[tuple[int, int], int] = {}
        self._optional_count = [sum(d.optional for d in t.attrs) for t in _TEMPLATES]
        self._attribute_total = 0
        self._generation = 0
        self._deploy_sequence = 1
        self._deploy_time_ns = (_BASE_DEPLOY_S + _mix(seed, 7) % (365 * 86_400)) * _NS
        self._watchers: set[_DeployWatcher] = set()
        self._order_generation = -1
        self._order: list[int] = []
        self._pos: list[int] = []
        self._span: list[int] = []
        self._depth: list[int] = []
        self._alarm_refs: tuple[int, list[str]] | None = None
        self._build(size, areas)

    # ----- construction -----

    def _build(self, size: int, areas: int | None) -> None:
        rng = Random(_mix(self._seed, 0))
        n_areas = max(1, min(size, areas if areas is not None else 1 + size // 50))
        n_top = max(1, min(n_areas, isqrt(n_areas)))
        nestable: list[int] = []
        area_depth: dict[int, int] = {}
        for i in range(n_areas):
            parent = 0 if i < n_top or not nestable else rng.choice(nestable)
            gid = self._add(_T_AREA, parent, "")
            depth = area_depth[parent] + 1 if parent else 0
            area_depth[gid] = depth
            if depth < _MAX_AREA_DEPTH:
                nestable.append(gid)
        self._add_units(rng, size - n_areas)

    def _add_units(self, rng: Random, budget: int) -> int:
        added = 0
        total = _UNIT_CUM_WEIGHTS[-1]
        while added < budget:
            first = sum(self._counters[t] > 0 for t in _UNIT_TEMPLATES)
            if first < len(_UNIT_TEMPLATES):
                tidx = _UNIT_TEMPLATES[first]
            else:
                tidx = _UNIT_TEMPLATES[bisect(_UNIT_CUM_WEIGHTS, rng.random() * total)]
            area = self._areas[int(rng.random() * len(self._areas))]
            added += self._add_unit(rng, tidx, area, "", budget - added)
        return added

    def _add_unit(self, rng: Random, tidx: int, parent: int, cname: str, budget: int) -> int:
        gid = self._add(tidx, parent, cname)
        added = 1
        for child_name, child_tidx, probability in _TEMPLATES[tidx].children:
            if added >= budget:
                break
            if rng.random() < probability:
                added += self._add_unit(rng, child_tidx, gid, child_name, budget - added)
        return added

    def _add(self, tidx: int, parent: int, cname: str) -> int:
        gid = len(self._parent)
        template = _TEMPLATES[tidx]
        self._counters[tidx] += 1
        tag = f"{template.prefix}_{self._counters[tidx]:03d}"
        k = self._optional_count[tidx]
        bits = 0
        if k:
            h = _mix(self._seed, gid)
            bits = (h | (h >> 16)) & ((1 << k) - 1)  # each optional attribute: probability 3/4
        aset = self._attrset_of(tidx, bits)
        self._parent.append(parent)
        self._tmpl.append(tidx)
        self._aset.append(aset)
        self._tag.append(tag)
        self._cname.append(cname)
        in_area = parent == 0 or _TEMPLATES[self._tmpl[parent]].is_area
        self._area.append(parent if in_area else self._area[parent])
        if parent:
            self._children.setdefault(parent, []).append(gid)
        else:
            self._roots.append(gid)
        if template.is_area:
            self._areas.append(gid)
        self._by_tag[tag.lower()] = gid
        self._attribute_total += len(self._attrsets[aset].defs)
        return gid

    def _attrset_of(self, tidx: int, bits: int) -> int:
        key = (tidx, bits)
        index = self._attrset_index.get(key)
        if index is None:
            defs: list[_AttrDef] = []
            j = 0
            for d in _TEMPLATES[tidx].attrs:
                if d.optional:
                    keep = bool(bits >> j & 1)
                    j += 1
                    if not keep:
                        continue
                defs.append(d)
            attr_set = _AttrSet(
                tuple(defs),
                {d.name.lower(): d for d in defs},
                any(d.alarm_limit is not None for d in defs),
                any(d.historized for d in defs),
            )
            index = len(self._attrsets)
            self._attrsets.append(attr_set)
            self._attrset_index[key] = index
        return index

    # ----- deploys -----

    @property
    def seed(self) -> int:
        """The seed this Galaxy was generated from."""
        return self._seed

    @property
    def generation(self) -> int:
        """0 for the initial deploy, +1 per :meth:`redeploy`."""
        return self._generation

    @property
    def object_count(self) -> int:
        """Number of objects, areas included."""
        return len(self._parent) - 1

    @property
    def attribute_count(self) -> int:
        """Number of attributes over all objects (alarm sub-attributes not counted)."""
        return self._attribute_total

    @property
    def deploy_time_ns(self) -> int:
        """Time of the last deploy, integer nanoseconds since the epoch."""
        return self._deploy_time_ns

    @property
    def deploy_sequence(self) -> int:
        """Sequence of the last deploy (1 for the initial one), as in DeployEvent.sequence."""
        return self._deploy_sequence

    def deploy_event(self) -> gpb.DeployEvent:
        """The DeployEvent describing the current deploy (the WatchDeployEvents bootstrap)."""
        return gpb.DeployEvent(
            sequence=self._deploy_sequence,
            time_of_last_deploy=_timestamp(self._deploy_time_ns),
            time_of_last_deploy_present=True,
            object_count=self.object_count,
            attribute_count=self._attribute_total,
        )

    def redeploy(self) -> None:
        """Simulate a deploy: a few objects are added (deterministic for the seed and the
        generation), the deploy time moves forward, page tokens become stale, and every
        watcher receives a DeployEvent.
        """
        generation = self._generation + 1
        rng = Random(_mix(self._seed, 1_000_000 + generation))
        self._add_units(rng, 1 + int(rng.random() * 3))
        self._generation = generation
        now_ns = time.time_ns() // 1_000_000 * 1_000_000
        self._deploy_time_ns = max(now_ns, self._deploy_time_ns + 1_000_000)
        self._deploy_sequence += 1
        self._alarm_refs = None
        event = self.deploy_event()
        for watcher in list(self._watchers):
            watcher.push(event)

    def restart_deploy_sequence(self) -> None:
        """The gateway restarted: DeployEvent.sequence counts from 1 again (it is monotonic per
        gateway start, contract.md); the deploy itself, and its time, are unchanged."""
        self._deploy_sequence = 1

    def add_deploy_watcher(self, capacity: int = 256) -> _DeployWatcher:
        """Register a subscriber that receives every later DeployEvent (call in the loop).

        Its buffer keeps the newest ``capacity`` events; dropped ones show as a sequence gap.
        """
        watcher = _DeployWatcher(capacity)
        self._watchers.add(watcher)
        return watcher

    def remove_deploy_watcher(self, watcher: _DeployWatcher) -> None:
        """Unregister a subscriber (idempotent)."""
        self._watchers.discard(watcher)

    @property
    def watcher_count(self) -> int:
        """Number of registered deploy watchers (open WatchDeployEvents streams)."""
        return len(self._watchers)

    # ----- references -----

    def resolve(self, reference: str) -> AttributeInfo | None:
        """What ``reference`` names, or None when it names nothing in this Galaxy.

        Accepts ``Tag.Attribute``, dotted attribute names (``Tag.Attr.SubAttr``), whole arrays
        (``Tag.Arr[]``, also ``Tag.Arr``), elements (``Tag.Arr[3]``, 1-based) and the alarm
        sub-attributes ``.InAlarm``, ``.Acked``, ``.AckMsg``, ``.Priority`` of alarm attributes.
        Names are case-insensitive; the result carries the Galaxy's spelling.
        """
        tag, dot, rest = reference.strip().partition(".")
        if not dot or not rest:
            return None
        gid = self._by_tag.get(tag.lower())
        if gid is None:
            return None
        tag = self._tag[gid]
        attrs = self._attrsets[self._aset[gid]]
        index: int | None = None  # None: no brackets; 0: "[]"; n: element n
        name = rest
        if rest.endswith("]"):
            bracket = rest.rfind("[")
            if bracket <= 0:
                return None
            name, inside = rest[:bracket], rest[bracket + 1 : -1].strip()
            if inside:
                if not inside.isdigit():
                    return None
                index = int(inside)
                if index < 1:
                    return None
            else:
                index = 0
        d = attrs.by_name.get(name.lower())
        if d is None:
            if index is not None:
                return None
            return self._alarm_sub(gid, tag, attrs, name)
        limit = self._alarm_limit(gid, d)
        if d.array_length == 0:
            if index is not None:
                return None
            return self._info(f"{tag}.{d.name}", tag, d.name, d, limit)
        if index is None or index == 0:
            suffix = "" if index is None else "[]"
            return self._info(f"{tag}.{d.name}{suffix}", tag, d.name, d, limit, whole=True)
        if index > d.array_length:
            return None
        return self._info(f"{tag}.{d.name}[{index}]", tag, d.name, d, limit)

    def _alarm_sub(self, gid: int, tag: str, attrs: _AttrSet, name: str) -> AttributeInfo | None:
        base, sep, sub = name.rpartition(".")
        spec = _ALARM_SUBS.get(sub.lower()) if sep else None
        if spec is None:
            return None
        d = attrs.by_name.get(base.lower())
        if d is None or d.alarm_limit is None:
            return None
        suffix, native, security, generator = spec
        attribute_name = f"{d.name}.{suffix}"
        return AttributeInfo(
            reference=f"{tag}.{attribute_name}",
            tag_name=tag,
            attribute_name=attribute_name,
            data_type=native + 1,
            is_array=False,
            array_length=0,
            security_classification=security,
            is_historized=False,
            is_alarm=False,
            alarm_limit=None,
            generator=generator,
        )

    def _alarm_limit(self, gid: int, d: _AttrDef) -> float | None:
        if d.alarm_limit is None or d.native == _BOOLEAN:
            return d.alarm_limit
        # Each object's limit lies within ±5 of the template's, in steps of 0.5.
        jitter = (_mix(self._seed ^ 0x5A5A, gid) >> 40) % 21 - 10
        return d.alarm_limit + jitter * 0.5

    @staticmethod
    def _info(
        reference: str,
        tag: str,
        name: str,
        d: _AttrDef,
        limit: float | None,
        *,
        whole: bool = False,
    ) -> AttributeInfo:
        return AttributeInfo(
            reference=reference,
            tag_name=tag,
            attribute_name=name,
            data_type=d.native + 1,
            is_array=whole,
            array_length=d.array_length if whole else 0,
            security_classification=d.security,
            is_historized=d.historized,
            is_alarm=limit is not None,
            alarm_limit=limit,
            generator=d.generator,
        )

    def sample_references(self, n: int) -> list[str]:
        """Up to ``n`` scalar references of common types (bool, int, float, double, string,
        time, elapsed time), objects in gobject-id order then areas: a deterministic set for
        tests and benchmarks.
        """
        out: list[str] = []
        tmpl = self._tmpl
        every = range(1, len(self._parent))
        objects = (g for g in every if tmpl[g] != _T_AREA)
        areas = (g for g in every if tmpl[g] == _T_AREA)
        for gid in chain(objects, areas):  # process objects first, area attributes last
            if len(out) >= n:
                break
            tag = self._tag[gid]
            for d in self._attrsets[self._aset[gid]].defs:
                if d.array_length == 0 and d.native in _COMMON_TYPES:
                    out.append(f"{tag}.{d.name}")
                    if len(out) >= n:
                        break
        return out

    def alarm_references(self) -> list[str]:
        """Every alarm attribute (``Tag.Attr``), in gobject-id order."""
        cached = self._alarm_refs
        if cached is None or cached[0] != self._generation:
            refs: list[str] = []
            alarm_defs = [
                tuple(d for d in s.defs if d.alarm_limit is not None) for s in self._attrsets
            ]
            for gid in range(1, len(self._parent)):
                defs = alarm_defs[self._aset[gid]]
                if defs:
                    tag = self._tag[gid]
                    refs.extend(f"{tag}.{d.name}" for d in defs)
            cached = (self._generation, refs)
            self._alarm_refs = cached
        return list(cached[1])

    # ----- objects -----

    def find_object(
        self,
        *,
        gobject_id: int | None = None,
        tag_name: str | None = None,
        contained_path: str | None = None,
    ) -> int | None:
        """The gobject_id named by an id, a tag name or a contained path; None if unknown.

        A contained path is either a hierarchical name (``Tank_001.Agitator.Motor``) or a
        browse path from the roots joined by ``/`` (``Area_001/Area_004/Tank_001/Agitator``).
        Names are case-insensitive.
        """
        if gobject_id is not None:
            return gobject_id if 0 < gobject_id < len(self._parent) else None
        if tag_name is not None:
            return self._by_tag.get(tag_name.strip().lower())
        if contained_path is None:
            return None
        path = contained_path.strip()
        if "/" in path:
            level: Sequence[int] = self._roots
            found: int | None = None
            for segment in path.strip("/").split("/"):
                wanted = segment.strip().lower()
                found = next((g for g in level if self._browse_name(g).lower() == wanted), None)
                if found is None:
                    return None
                level = self._children.get(found, ())
            return found
        head, *rest = path.split(".")
        gid = self._by_tag.get(head.lower())
        for segment in rest:
            if gid is None:
                return None
            wanted = segment.lower()
            kids = self._children.get(gid, ())
            gid = next((g for g in kids if self._cname[g].lower() == wanted), None)
        return gid

    def _browse_name(self, gid: int) -> str:
        return self._cname[gid] or self._tag[gid]

    def tag_name(self, gid: int) -> str:
        """Tag name of an object."""
        return self._tag[gid]

    def area_tag_name(self, tag_name: str) -> str:
        """Tag name of the area an object (given by tag name) belongs to; "" if none."""
        gid = self._by_tag.get(tag_name.lower())
        return self._tag[self._area[gid]] if gid else ""

    def hierarchical_name(self, gid: int) -> str:
        """``Container.Contained...`` up to the first object without a contained name."""
        parts: list[str] = []
        while True:
            cname = self._cname[gid]
            if not cname or not self._parent[gid]:
                parts.append(self._tag[gid])
                break
            parts.append(cname)
            gid = self._parent[gid]
        return ".".join(reversed(parts))

    def has_children(self, gid: int) -> bool:
        """Whether an object has child objects (before any filter)."""
        return gid in self._children

    def _ensure_order(self) -> None:
        """Preorder of the whole browse tree: a subtree is the slice [pos, pos + span)."""
        if self._order_generation == self._generation:
            return
        n = len(self._parent)
        parent = self._parent
        span = [1] * n
        for gid in range(n - 1, 0, -1):  # a child's id is always above its parent's
            p = parent[gid]
            if p:
                span[p] += span[gid]
        depth = [0] * n
        for gid in range(1, n):
            p = parent[gid]
            if p:
                depth[gid] = depth[p] + 1
        order: list[int] = []
        pos = [0] * n
        stack = list(reversed(self._roots))
        children = self._children
        while stack:
            gid = stack.pop()
            pos[gid] = len(order)
            order.append(gid)
            kids = children.get(gid)
            if kids:
                stack.extend(reversed(kids))
        self._order, self._pos, self._span, self._depth = order, pos, span, depth
        self._order_generation = self._generation

    def discover(self, root: int | None, max_depth: int | None, filt: GalaxyFilter) -> list[int]:
        """Gobject ids of a DiscoverHierarchy query, parents before children (preorder).

        With a root, the root is included at depth 0; without one, the whole Galaxy with the
        top-level areas at depth 0. ``max_depth`` bounds the depth below that start.
        """
        self._ensure_order()
        if root is None:
            ids = self._order
            base = 0
        else:
            start = self._pos[root]
            ids = self._order[start : start + self._span[root]]
            base = self._depth[root]
        if max_depth is not None:
            limit = base + max_depth
            depth = self._depth
            ids = [g for g in ids if depth[g] <= limit]
        return self._filter(ids, filt)

    def children(self, parent: int | None, filt: GalaxyFilter) -> list[int]:
        """Gobject ids of the children of ``parent`` (None: the roots) that pass ``filt``."""
        ids = self._roots if parent is None else self._children.get(parent, [])
        return self._filter(ids, filt)

    def _filter(self, ids: list[int], filt: GalaxyFilter) -> list[int]:
        out = ids
        if filt.category_ids or filt.template_chain_contains:
            allowed = {
                i
                for i, t in enumerate(_TEMPLATES)
                if (not filt.category_ids or t.category in filt.category_ids)
                and (
                    not filt.template_chain_contains
                    or any(_norm_template(c) in filt.template_chain_contains for c in t.chain)
                )
            }
            tmpl = self._tmpl
            out = [g for g in out if tmpl[g] in allowed]
        pattern = filt.glob_pattern()
        if pattern is not None:
            match = pattern.fullmatch
            tag = self._tag
            out = [g for g in out if match(tag[g])]
        if filt.alarm_bearing_only or filt.historized_only:
            keep = {
                i
                for i, s in enumerate(self._attrsets)
                if (s.has_alarm or not filt.alarm_bearing_only)
                and (s.has_historized or not filt.historized_only)
            }
            aset = self._aset
            out = [g for g in out if aset[g] in keep]
        return out if out is not ids else list(ids)

    def object_proto(self, gid: int, include_attributes: bool = True) -> gpb.GalaxyObject:
        """The GalaxyObject message of an object (its attributes generated on the fly)."""
        tag = self._tag[gid]
        cname = self._cname[gid]
        template = _TEMPLATES[self._tmpl[gid]]
        area = self._area[gid]
        obj = gpb.GalaxyObject(
            gobject_id=gid,
            tag_name=tag,
            contained_name=cname,
            browse_name=cname or tag,
            parent_gobject_id=self._parent[gid],
            is_area=template.is_area,
            category_id=template.category,
            template_chain=template.chain,
            hierarchical_name=self.hierarchical_name(gid),
            area_tag_name=self._tag[area] if area else "",
        )
        if include_attributes:
            obj.attributes.extend(
                gpb.GalaxyAttribute(
                    attribute_name=d.name,
                    full_tag_reference=f"{tag}.{d.name}",
                    mx_data_type=d.native,
                    is_array=d.array_length > 0,
                    array_dimension=d.array_length,
                    mx_attribute_category=d.category,
                    security_classification=d.security,
                    is_configured=True,
                    description=d.description,
                    is_historized=d.historized,
                    is_alarm=d.alarm_limit is not None,
                )
                for d in self._attrsets[self._aset[gid]].defs
            )
        return obj


# ----- the service -----

_SCOPE: Final = "metadata:read"
_DEFAULT_PAGE: Final = 500
_MAX_PAGE: Final = 5000
_TOKEN_VERSION: Final = 1
_KIND_DISCOVER: Final = 1
_KIND_BROWSE: Final = 2
_TOKEN_HEAD: Final = struct.Struct(">BBQI")
_FP_LEN: Final = 16
_MAC_LEN: Final = 12


class _BadToken(Exception):
    """A page token that cannot be used; the message says why."""


class GalaxyRepositoryServicer(gpb_grpc.GalaxyRepositoryServicer):
    """The GalaxyRepository service over a :class:`Galaxy`.

    ``auth_check(context, "metadata:read")`` runs first in every rpc and aborts the call when
    the caller may not read metadata. Paging: ``page_size`` 0 means 500, more than 5000 means
    5000, negative is INVALID_ARGUMENT (the same for DiscoverHierarchy and BrowseChildren).
    """

    def __init__(self, galaxy: Galaxy, auth_check: AuthCheck, *, cached_queries: int = 16) -> None:
        self._galaxy = galaxy
        self._auth_check = auth_check
        self._key = secrets.token_bytes(32)
        self._cache: OrderedDict[tuple[bytes, int], list[int]] = OrderedDict()
        self._cache_size = cached_queries

    def add_to_server(self, server: aio.Server) -> None:
        """Register this service on a grpc.aio server."""
        gpb_grpc.add_GalaxyRepositoryServicer_to_server(self, server)

    # ----- paging helpers -----

    def _token(self, kind: int, fingerprint: bytes, offset: int) -> str:
        head = _TOKEN_HEAD.pack(_TOKEN_VERSION, kind, self._galaxy.generation, offset)
        body = head + fingerprint
        mac = hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_LEN]
        return base64.urlsafe_b64encode(body + mac).rstrip(b"=").decode("ascii")

    def _offset(self, token: str, kind: int, fingerprint: bytes) -> int:
        try:
            raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        except (binascii.Error, ValueError) as exc:
            raise _BadToken("malformed page_token") from exc
        size = _TOKEN_HEAD.size + _FP_LEN + _MAC_LEN
        if len(raw) != size:
            raise _BadToken("malformed page_token")
        body, mac = raw[:-_MAC_LEN], raw[-_MAC_LEN:]
        expected = hmac.new(self._key, body, hashlib.sha256).digest()[:_MAC_LEN]
        if not hmac.compare_digest(mac, expected):
            raise _BadToken("page_token was not issued by this server")
        version, token_kind, generation, offset = _TOKEN_HEAD.unpack(body[: _TOKEN_HEAD.size])
        if version != _TOKEN_VERSION or token_kind != kind:
            raise _BadToken("page_token belongs to another rpc")
        if body[_TOKEN_HEAD.size :] != fingerprint:
            raise _BadToken("page_token belongs to another query (request fields changed)")
        if generation != self._galaxy.generation:
            raise _BadToken("page_token is stale: the Galaxy was redeployed; start again")
        return int(offset)

    def _ids(self, fingerprint: bytes, compute: Callable[[], list[int]]) -> list[int]:
        key = (fingerprint, self._galaxy.generation)
        ids = self._cache.get(key)
        if ids is None:
            ids = compute()
            self._cache[key] = ids
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        else:
            self._cache.move_to_end(key)
        return ids

    @staticmethod
    def _fingerprint(kind: int, query: tuple[object, ...]) -> bytes:
        return hashlib.sha256(repr((kind, query)).encode()).digest()[:_FP_LEN]

    @staticmethod
    async def _page_size(requested: int, context: Context) -> int:
        if requested < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "page_size must be >= 0")
        return min(requested or _DEFAULT_PAGE, _MAX_PAGE)

    async def _start_offset(
        self, token: str, kind: int, fingerprint: bytes, context: Context
    ) -> int:
        if not token:
            return 0
        try:
            return self._offset(token, kind, fingerprint)
        except _BadToken as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    async def _locate(self, which: str | None, value: object, what: str, context: Context) -> int:
        galaxy = self._galaxy
        gid: int | None = None
        if which is not None and which.endswith("gobject_id"):
            gid = galaxy.find_object(gobject_id=int(str(value)))
        elif which is not None and which.endswith("tag_name"):
            gid = galaxy.find_object(tag_name=str(value))
        elif which is not None and which.endswith("contained_path"):
            gid = galaxy.find_object(contained_path=str(value))
        if gid is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"unknown {what} {which}={value!r}")
        return gid

    # ----- rpcs -----

    async def TestConnection(
        self, request: gpb.TestConnectionRequest, context: Context
    ) -> gpb.TestConnectionReply:
        """ok=false (never an error) when the simulated database is unavailable."""
        await self._auth_check(context, _SCOPE)
        return gpb.TestConnectionReply(ok=self._galaxy.available)

    async def GetLastDeployTime(
        self, request: gpb.GetLastDeployTimeRequest, context: Context
    ) -> gpb.GetLastDeployTimeReply:
        """The time of the last (simulated) deploy."""
        await self._auth_check(context, _SCOPE)
        return gpb.GetLastDeployTimeReply(
            present=True, time_of_last_deploy=_timestamp(self._galaxy.deploy_time_ns)
        )

    async def DiscoverHierarchy(
        self, request: gpb.DiscoverHierarchyRequest, context: Context
    ) -> gpb.DiscoverHierarchyReply:
        """A page of the (filtered) hierarchy in preorder, with total_object_count."""
        await self._auth_check(context, _SCOPE)
        page_size = await self._page_size(request.page_size, context)
        max_depth = request.max_depth.value if request.HasField("max_depth") else None
        if max_depth is not None and max_depth < 0:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "max_depth must be >= 0")
        filt = GalaxyFilter.of(
            request.category_ids,
            request.template_chain_contains,
            request.tag_name_glob,
            request.alarm_bearing_only,
            request.historized_only,
        )
        include = request.include_attributes if request.HasField("include_attributes") else True
        which = request.WhichOneof("root")
        root_value = getattr(request, which) if which else None
        if isinstance(root_value, str):
            root_value = root_value.strip().lower()
        fingerprint = self._fingerprint(
            _KIND_DISCOVER, (which, root_value, max_depth, filt.key(), include)
        )
        offset = await self._start_offset(request.page_token, _KIND_DISCOVER, fingerprint, context)
        root = None
        if which is not None:
            root = await self._locate(which, getattr(request, which), "root", context)
        ids = self._ids(fingerprint, lambda: self._galaxy.discover(root, max_depth, filt))
        page = ids[offset : offset + page_size]
        reply = gpb.DiscoverHierarchyReply(
            objects=[self._galaxy.object_proto(g, include) for g in page],
            total_object_count=len(ids),
        )
        if offset + page_size < len(ids):
            reply.next_page_token = self._token(_KIND_DISCOVER, fingerprint, offset + page_size)
        return reply

    async def BrowseChildren(
        self, request: gpb.BrowseChildrenRequest, context: Context
    ) -> gpb.BrowseChildrenReply:
        """A page of the (filtered) children of a parent, or of the roots without one."""
        await self._auth_check(context, _SCOPE)
        page_size = await self._page_size(request.page_size, context)
        filt = GalaxyFilter.of(
            request.category_ids,
            request.template_chain_contains,
            request.tag_name_glob,
            request.alarm_bearing_only,
            request.historized_only,
        )
        include = request.include_attributes if request.HasField("include_attributes") else True
        which = request.WhichOneof("parent")
        parent_value = getattr(request, which) if which else None
        if isinstance(parent_value, str):
            parent_value = parent_value.strip().lower()
        fingerprint = self._fingerprint(_KIND_BROWSE, (which, parent_value, filt.key(), include))
        offset = await self._start_offset(request.page_token, _KIND_BROWSE, fingerprint, context)
        parent = None
        if which is not None:
            parent = await self._locate(which, getattr(request, which), "parent", context)
        ids = self._ids(fingerprint, lambda: self._galaxy.children(parent, filt))
        page = ids[offset : offset + page_size]
        galaxy = self._galaxy
        reply = gpb.BrowseChildrenReply(
            children=[galaxy.object_proto(g, include) for g in page],
            child_has_children=[galaxy.has_children(g) for g in page],
        )
        if offset + page_size < len(ids):
            reply.next_page_token = self._token(_KIND_BROWSE, fingerprint, offset + page_size)
        return reply

    async def WatchDeployEvents(
        self, request: gpb.WatchDeployEventsRequest, context: Context
    ) -> AsyncIterator[gpb.DeployEvent]:
        """The current deploy first (unless the caller has seen it), then one event per deploy,
        until the caller cancels.
        """
        await self._auth_check(context, _SCOPE)
        galaxy = self._galaxy
        # Register before reading the current state: no deploy can fall between the two.
        watcher = galaxy.add_deploy_watcher()
        try:
            seen = request.last_seen_deploy_time
            seen_ns = seen.seconds * _NS + seen.nanos
            if not (request.HasField("last_seen_deploy_time") and seen_ns == galaxy.deploy_time_ns):
                yield galaxy.deploy_event()
            while True:
                yield await watcher.get()
        finally:
            galaxy.remove_deploy_watcher(watcher)
