"""A simulated session: handles, items, the event sequence, the subscriber queue, the ring.

Everything here runs on the server's event loop without awaiting, so producing an event,
attaching a subscriber (replay snapshot) and the hand-off to live events are atomic: a resume
sees no gap and no duplicate.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import grpc

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim._config import SimConfig
from mxgateway.sim._events import FloodSpec, encode_flood, gap_event, stamp
from mxgateway.sim._plant import ItemAddress, TagState, parse_reference
from mxgateway.sim._replay import ReplayRing
from mxgateway.sim._status import E_FAIL, E_HANDLE, MxFailure, bad_status, ok_status, quoted
from mxgateway.sim._values import timestamp, to_mx_value

if TYPE_CHECKING:
    from mxgateway.sim._plant import Plant

__all__ = ["Item", "ServerHandle", "Session", "Subscriber"]

log = logging.getLogger("mxgateway.sim")

OVERFLOW = "EventQueueOverflow"
PACE_GRID_S = 0.001  # paced flood events are released on this grid
DEFAULT_BUFFER_INTERVAL_MS = 1000


class Subscriber:
    """The one attached event stream of a session."""

    __slots__ = ("error", "finished", "prefix", "wake")

    def __init__(self) -> None:
        self.wake = asyncio.Event()
        self.error: tuple[grpc.StatusCode, str] | None = None
        self.finished = False  # the session closed: end the stream normally
        self.prefix: bytes | None = None  # the ReplayGap sentinel, sent first

    def stopped(self) -> bool:
        """True once the stream must end (an error, or the session closed)."""
        return self.error is not None or self.finished

    def fail(self, code: grpc.StatusCode, details: str) -> None:
        """End the stream with ``code``."""
        self.error = (code, details)
        self.wake.set()


class Item:
    """An item added to a server handle (AddItem*, AddBufferedItem, SubscribeBulk)."""

    __slots__ = (
        "address",
        "advised",
        "buffered",
        "definition",
        "handle",
        "samples",
        "server_handle",
        "session",
        "state",
        "supervisory",
        "suspended",
    )

    def __init__(
        self,
        session: Session,
        server_handle: int,
        handle: int,
        definition: str,
        address: ItemAddress,
        state: TagState | None,
        buffered: bool,
    ) -> None:
        self.session = session
        self.server_handle = server_handle
        self.handle = handle
        self.definition = definition
        self.address = address
        self.state = state
        self.buffered = buffered
        self.advised = False
        self.supervisory = False
        self.suspended = False
        self.samples: list[pb.BufferedSample] = []

    def on_change(self, state: TagState) -> None:
        """The plant's notification: the attribute changed."""
        self.session.item_changed(self)

    def value(self) -> object:
        """The item's current value (the element for ``Tag.Arr[n]``)."""
        assert self.state is not None
        return self.state.element(self.address.index)


class ServerHandle:
    """A Register()ed client: its items and buffered update interval."""

    __slots__ = ("buffer_interval_ms", "client_name", "items", "window_start_ns")

    def __init__(self, client_name: str) -> None:
        self.client_name = client_name
        self.items: dict[int, Item] = {}
        self.buffer_interval_ms = DEFAULT_BUFFER_INTERVAL_MS
        # The buffer window opens with the first sample after a delivery and is delivered
        # once the interval has passed (not at whatever tick comes first).
        self.window_start_ns: int | None = None


def _resolve_item(plant: Plant, definition: str) -> tuple[ItemAddress, TagState | None]:
    address = parse_reference(definition)
    state = plant.lookup(address.base) if address.base else None
    if state is None:
        return address, None
    length = state.array_length
    if address.whole_array and length is None:
        return address, None
    if address.index is not None and (length is None or not 1 <= address.index <= length):
        return address, None
    return address, state


class Session:
    """One gateway session (see contract.md, "Gateway behaviour a client must survive")."""

    def __init__(
        self,
        session_id: str,
        name: str,
        config: SimConfig,
        plant: Plant,
        *,
        lease_seconds: float,
        monotonic: Callable[[], float],
        clock: Callable[[], int],
    ) -> None:
        self.session_id = session_id
        self.name = name
        self.config = config
        self.plant = plant
        self.state: pb.SessionState = pb.SESSION_STATE_READY
        self.fault_reason = ""
        self.lease_seconds = lease_seconds
        self._monotonic = monotonic
        self._clock = clock
        self.lease_expires = monotonic() + lease_seconds
        self.detached_at: float | None = None
        self.servers: dict[int, ServerHandle] = {}
        self.items: dict[int, Item] = {}
        self.users: dict[int, str] = {}
        self._next_server = 1
        self._next_item = 1
        self.next_sequence = 1
        self.ring = ReplayRing(
            session_id, config.replay_capacity, int(config.replay_seconds * 1_000_000_000)
        )
        self.pending: deque[tuple[int, bytes]] = deque()
        self.subscriber: Subscriber | None = None
        self.command_lock = asyncio.Lock()
        self.pending_commands = 0
        self._flood_groups: list[FloodSpec] | None = None
        self._flood_turn = 0
        # Paced flood (flood_rate > 0): events due since the origin, minus those produced.
        self._pace_origin: float | None = None
        self._pace_produced = 0

    def monotonic(self) -> float:
        """The session's monotonic clock (seconds)."""
        return self._monotonic()

    # ----- life cycle -----

    def touch(self) -> None:
        """A unary call: refresh the lease."""
        self.lease_expires = self._monotonic() + self.lease_seconds

    def expired(self, now: float) -> bool:
        """True when the lease ran out, or the detach grace after the last stream did."""
        if self.subscriber is not None:
            return False
        if now > self.lease_expires:
            return True
        return self.detached_at is not None and now > self.detached_at + self.config.detach_grace_s

    def close(self) -> None:
        """Close: unwatch every item, end the subscriber's stream normally."""
        for item in self.items.values():
            self._unwatch(item)
        self.items.clear()
        self.servers.clear()
        self.pending.clear()
        self.state = pb.SESSION_STATE_CLOSED
        sub = self.subscriber
        self.subscriber = None
        if sub is not None:
            sub.finished = True
            sub.wake.set()

    def _fault(self, reason: str) -> None:
        log.warning("session %s faulted: %s", self.session_id, reason)
        self.state = pb.SESSION_STATE_FAULTED
        self.fault_reason = reason
        for item in self.items.values():
            self._unwatch(item)
        self.pending.clear()

    # ----- handles -----

    def register(self, client_name: str) -> int:
        """Register(): a new server handle."""
        handle = self._next_server
        self._next_server += 1
        self.servers[handle] = ServerHandle(client_name)
        return handle

    def server(self, handle: int) -> ServerHandle:
        """The server handle, or an MXAccess failure (E_HANDLE)."""
        server = self.servers.get(handle)
        if server is None:
            raise MxFailure(
                E_HANDLE,
                pb.MX_STATUS_CATEGORY_CONFIGURATION_ERROR,
                f"invalid server handle {handle}",
            )
        return server

    def unregister(self, handle: int) -> None:
        """Unregister(): drop the server handle and its items."""
        server = self.server(handle)
        for item_handle in list(server.items):
            self.remove_item(handle, item_handle)
        del self.servers[handle]

    def add_item(self, server_handle: int, definition: str, *, buffered: bool = False) -> Item:
        """AddItem*(): an item (unknown references are accepted, as MXAccess does)."""
        server = self.server(server_handle)
        if not definition.strip():
            raise MxFailure(
                E_FAIL, pb.MX_STATUS_CATEGORY_CONFIGURATION_ERROR, "empty item definition"
            )
        address, state = _resolve_item(self.plant, definition)
        item = Item(self, server_handle, self._next_item, definition, address, state, buffered)
        self._next_item += 1
        server.items[item.handle] = item
        self.items[item.handle] = item
        return item

    def item(self, server_handle: int, item_handle: int) -> Item:
        """The item of a server handle, or an MXAccess failure (E_HANDLE)."""
        server = self.server(server_handle)
        item = server.items.get(item_handle)
        if item is None:
            raise MxFailure(
                E_HANDLE,
                pb.MX_STATUS_CATEGORY_CONFIGURATION_ERROR,
                f"invalid item handle {item_handle} for server handle {server_handle}",
            )
        return item

    def remove_item(self, server_handle: int, item_handle: int) -> None:
        """RemoveItem(): unadvise and forget the item."""
        item = self.item(server_handle, item_handle)
        self._unwatch(item)
        item.advised = False
        del self.servers[server_handle].items[item_handle]
        del self.items[item_handle]
        self._flood_groups = None

    def advise(self, item: Item, *, supervisory: bool) -> None:
        """Advise*(): start data changes; the current value (or the error) comes first."""
        item.supervisory = supervisory
        if item.advised:
            return
        item.advised = True
        item.suspended = False
        self._flood_groups = None
        if item.state is not None:
            self.plant.watch(item.state, item)
        self._initial_event(item)

    def unadvise(self, item: Item) -> None:
        """UnAdvise(): stop data changes."""
        if not item.advised:
            raise MxFailure(
                E_FAIL,
                pb.MX_STATUS_CATEGORY_OPERATIONAL_ERROR,
                f"item {item.handle} is not advised",
            )
        self._unwatch(item)
        item.advised = False
        item.samples.clear()
        self._flood_groups = None

    def suspend(self, item: Item, suspended: bool) -> None:
        """Suspend()/Activate(): pause or resume an advised item's data changes."""
        if not item.advised:
            raise MxFailure(
                E_FAIL,
                pb.MX_STATUS_CATEGORY_OPERATIONAL_ERROR,
                f"item {item.handle} is not advised",
            )
        was = item.suspended
        item.suspended = suspended
        self._flood_groups = None
        if was and not suspended:
            self._initial_event(item)

    def _unwatch(self, item: Item) -> None:
        if item.state is not None:
            self.plant.unwatch(item.state, item)

    # ----- events -----

    def emit(self, event: pb.MxEvent) -> None:
        """Give ``event`` the next sequence, encode it once, keep it in the ring, queue it."""
        if self.state != pb.SESSION_STATE_READY:
            return
        now = self._clock()
        seq = self.next_sequence
        self.next_sequence += 1
        event.session_id = self.session_id
        event.worker_sequence = seq
        stamp(event, now)
        data = event.SerializeToString()
        self.ring.add(seq, now, data)
        if len(self.pending) >= self.config.queue_capacity:
            self._overflow()
            if self.state != pb.SESSION_STATE_READY:
                return
        self.pending.append((seq, data))
        sub = self.subscriber
        if sub is not None:
            sub.wake.set()

    def emit_burst(self, count: int) -> None:
        """Test control: emit ``count`` data-change events at once (for overflow tests)."""
        for i in range(count):
            self.emit(
                pb.MxEvent(
                    family=pb.MX_EVENT_FAMILY_ON_DATA_CHANGE,
                    value=to_mx_value(i, pb.MX_DATA_TYPE_INTEGER),
                    quality=192,
                    statuses=[ok_status()],
                    on_data_change=pb.OnDataChangeEvent(),
                )
            )

    def _overflow(self) -> None:
        self.pending.clear()
        sub = self.subscriber
        if sub is not None:
            self.subscriber = None
            self.detached_at = self._monotonic()
            sub.fail(grpc.StatusCode.RESOURCE_EXHAUSTED, OVERFLOW)
        if self.config.queue_policy == "fail_fast":
            self._fault(OVERFLOW)
        else:
            log.warning("session %s: event queue overflow, subscriber dropped", self.session_id)

    def _data_event(self, item: Item) -> pb.MxEvent:
        state = item.state
        if state is None:
            return pb.MxEvent(
                family=pb.MX_EVENT_FAMILY_ON_DATA_CHANGE,
                server_handle=item.server_handle,
                item_handle=item.handle,
                value=pb.MxValue(
                    data_type=pb.MX_DATA_TYPE_NO_DATA, variant_type="VT_EMPTY", is_null=True
                ),
                quality=0,
                source_timestamp=timestamp(self._clock()),
                statuses=[
                    bad_status(
                        pb.MX_STATUS_CATEGORY_CONFIGURATION_ERROR,
                        f"unknown item reference {quoted(item.definition)}",
                        detail=1,
                    )
                ],
                hresult=E_FAIL,
                on_data_change=pb.OnDataChangeEvent(),
            )
        return pb.MxEvent(
            family=pb.MX_EVENT_FAMILY_ON_DATA_CHANGE,
            server_handle=item.server_handle,
            item_handle=item.handle,
            value=to_mx_value(item.value(), state.info.data_type),
            quality=state.quality,
            source_timestamp=timestamp(state.timestamp_ns),
            statuses=[ok_status()],
            on_data_change=pb.OnDataChangeEvent(),
        )

    def _initial_event(self, item: Item) -> None:
        if item.buffered and item.state is not None:
            self._sample(item)
        else:
            self.emit(self._data_event(item))

    def item_changed(self, item: Item) -> None:
        """An advised item's attribute changed: a data change (or a buffered sample)."""
        if not item.advised or item.suspended or self.state != pb.SESSION_STATE_READY:
            return
        if item.buffered:
            self._sample(item)
        else:
            self.emit(self._data_event(item))

    def _sample(self, item: Item) -> None:
        state = item.state
        assert state is not None
        server = self.servers[item.server_handle]
        if server.window_start_ns is None:
            server.window_start_ns = self._clock()
        item.samples.append(
            pb.BufferedSample(
                value=to_mx_value(item.value(), state.info.data_type),
                quality=state.quality,
                source_timestamp=timestamp(state.timestamp_ns),
            )
        )

    def flush_buffered(self, now_ns: int) -> None:
        """Emit ON_BUFFERED_DATA_CHANGE for buffered items whose interval has passed."""
        if self.state != pb.SESSION_STATE_READY:
            return
        for handle, server in self.servers.items():
            opened = server.window_start_ns
            if opened is None or now_ns - opened < server.buffer_interval_ms * 1_000_000:
                continue
            server.window_start_ns = None
            for item in server.items.values():
                if not item.samples:
                    continue
                samples, item.samples = item.samples, []
                last = samples[-1]
                self.emit(
                    pb.MxEvent(
                        family=pb.MX_EVENT_FAMILY_ON_BUFFERED_DATA_CHANGE,
                        server_handle=handle,
                        item_handle=item.handle,
                        value=last.value,
                        quality=last.quality,
                        source_timestamp=last.source_timestamp,
                        statuses=[ok_status()],
                        on_buffered_data_change=pb.OnBufferedDataChangeEvent(
                            data_type=last.value.data_type, samples=samples
                        ),
                    )
                )

    def drain(self, max_events: int) -> list[bytes]:
        """DrainEvents(): take up to ``max_events`` (0 = all) queued events."""
        count = len(self.pending) if max_events == 0 else min(max_events, len(self.pending))
        return [self.pending.popleft()[1] for _ in range(count)]

    # ----- subscriber -----

    def attach(self, after: int) -> Subscriber:
        """Attach the subscriber; for a resume (``after`` > 0) queue the replay first."""
        sub = Subscriber()
        if after > 0:
            now = self._clock()
            held = dict(self.ring.after(after, now))
            for seq, data in self.pending:
                if seq > after:
                    held.setdefault(seq, data)
            merged = sorted(held.items())
            first = merged[0][0] if merged else self.next_sequence
            if after + 1 < first and after + 1 < self.next_sequence:
                sub.prefix = gap_event(self.session_id, after, first, now)
            self.pending = deque(merged)
        self.subscriber = sub
        self.detached_at = None
        self._pace_origin = None
        return sub

    def detach(self, sub: Subscriber) -> None:
        """The stream ended: start the detach grace (if it was the subscriber)."""
        if self.subscriber is sub:
            self.subscriber = None
            self.detached_at = self._monotonic()

    # ----- flood -----

    def flood_groups(self) -> list[FloodSpec]:
        """Advised, active items per server handle, for flood batches."""
        if self._flood_groups is None:
            groups: list[FloodSpec] = []
            for handle, server in self.servers.items():
                handles = tuple(
                    h
                    for h, item in server.items.items()
                    if item.advised and not item.suspended and not item.buffered
                )
                if handles:
                    groups.append(FloodSpec(handle, handles))
            self._flood_groups = groups
        return self._flood_groups

    def flood_batch(self, count: int) -> bytes | None:
        """The next flood batch of ``count`` events (None when nothing is advised)."""
        groups = self.flood_groups()
        if not groups or self.state != pb.SESSION_STATE_READY:
            return None
        spec = groups[self._flood_turn % len(groups)]
        self._flood_turn += 1
        first = self.next_sequence
        self.next_sequence += count
        now = self._clock()
        self.ring.add_flood(first, count, now, spec)
        self._pace_produced += count
        return encode_flood(self.session_id, spec, first, count, now)

    def flood_due(self) -> int:
        """How many flood events are due now: unlimited (sys.maxsize) unless paced.

        Paced (``flood_rate``), events fall due evenly from the moment a subscriber attached
        with something advised, released on a 1 ms grid (so a stream takes them a millisecond's
        worth at a time, not one by one); a backlog the subscriber did not take in time that
        outgrows the queue capacity is an overflow, as a queue filling up would be.
        """
        rate = self.config.flood_rate
        if rate <= 0:
            return sys.maxsize
        now = self._monotonic()
        if self._pace_origin is None or not self.flood_groups():
            self._pace_origin = now  # nothing advised (or just attached): nothing falls due
            self._pace_produced = 0
            return 0
        grid = math.floor((now - self._pace_origin) / PACE_GRID_S) * PACE_GRID_S
        due = int(grid * rate + 1e-6) - self._pace_produced
        if due > self.config.queue_capacity - len(self.pending):
            self._overflow()
            return 0
        return due

    def flood_next_due(self) -> float | None:
        """When (monotonic seconds) the next paced flood event falls due; None if unpaced or
        nothing is advised."""
        rate = self.config.flood_rate
        if rate <= 0 or self._pace_origin is None or not self.flood_groups():
            return None
        after = (self._pace_produced + 1) / rate
        return self._pace_origin + math.ceil(after / PACE_GRID_S - 1e-6) * PACE_GRID_S
