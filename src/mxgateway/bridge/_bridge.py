"""The bridge: a gateway session's events into a JetStream stream, exactly once.

One ``Bridge.run`` is a standby until it holds its lease (``_state.Lease``), then forwards:

1. read the stream's last message (``read_tail``): the session and last worker_sequence the
   stream accounts for, which is where to resume; the key-value state is the fallback;
2. attach to that session (its server and items rebuilt from the bucket, so a lost session
   can be recovered), or open one (``items``) or take the one named (``session_id``);
3. read its events through the stream core after that sequence, turn each read into messages
   (``_records``) and publish them through the chained publisher (``_publisher``), which
   stops the reading when JetStream falls behind;
4. save the state about once a second, renew the lease, and forward alarm-feed and deploy
   records when asked.

It stops at ``stop`` or ``duration`` (then drains what is in flight, saves the state and hands
the lease over at once), and goes back to waiting when another bridge took over.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

import msgspec

from mxgateway._client import GatewayClient
from mxgateway._errors import (
    MxGatewayEventQueueOverflowError,
    MxGatewayProtocolError,
    MxGatewaySessionNotFoundError,
)
from mxgateway._options import ClientOptions
from mxgateway._recovery import _Server
from mxgateway._session import Session
from mxgateway._tasks import cancel_and_wait
from mxgateway.bridge._errors import BridgeError, BridgeFencedError
from mxgateway.bridge._jetstream import ensure_stream
from mxgateway.bridge._nats import NatsOptions, connect_nats
from mxgateway.bridge._publisher import ChainPublisher, StreamTail, read_tail
from mxgateway.bridge._records import Outbound, Part, Records
from mxgateway.bridge._source import session_parts
from mxgateway.bridge._state import BridgeState, Lease, SessionItems, StateStore, open_store
from mxgateway.bridge._tokens import tag_tokens
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.types import EMPTY_EVENT, MxEvent, ReplayGap, SessionRecovered

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.js.client import JetStreamContext

__all__ = ["Bridge", "BridgeConfig", "BridgeStats", "Layout"]

logger = logging.getLogger("mxgateway.bridge")

Layout = Literal["batch", "items"]

_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PREFIX = re.compile(r"[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*")
_SUBSCRIBE_CHUNK = 5000
_MAX_ITEMS = 1_000_000
_STATE_EVERY_S = 1.0
_DRAIN_S = 10.0


@dataclass(frozen=True)
class BridgeConfig:
    """What to forward where (validated at construction; errors name the field).

    ``stream`` is the JetStream stream (created when missing with ``replicas``, ``max_age_s``,
    ``max_bytes``); ``name`` the bridge's name (default: the stream's): bridges of one name
    are one active and its standbys, sharing the lease and the state in bucket ``kv_bucket``;
    one name per stream. ``subject_prefix`` (default ``mxgw.<name>``) heads every subject.
    The bridge opens its own session with ``items`` (references, subscribed with
    SubscribeBulk) or forwards the existing ``session_id`` (not both). ``layout`` is
    ``"batch"`` (one message per gateway batch) or ``"items"`` (one per event, a subject per
    tag). ``alarms`` (a reference prefix; "" for all) forwards the central alarm feed and
    ``deploys`` the Galaxy deploy events. ``takeover_s``: a standby takes over after this long
    without a renewal of the lease. ``max_pending`` / ``max_pending_bytes``: unacknowledged
    messages at most; ``ack_every``: every n-th message asks for an acknowledgement (and the
    last of each read); ``ack_timeout_s``: one not acknowledged in time triggers a
    resynchronisation. ``retry_budget_s``: how long a broken gateway stream is retried.
    ``close_session``: on a clean stop, close the gateway session and forget the state
    (otherwise a restarted bridge continues it).
    """

    stream: str
    name: str | None = None
    subject_prefix: str | None = None
    layout: Layout = "batch"
    items: tuple[str, ...] = ()
    session_id: str | None = None
    client_name: str = "mxgw-py bridge"
    replicas: int = 1
    max_age_s: float | None = None
    max_bytes: int | None = None
    kv_bucket: str = "mxgw-bridge"
    takeover_s: float = 6.0
    max_pending: int = 512
    max_pending_bytes: int = 32 * 1024 * 1024
    ack_every: int = 64
    ack_timeout_s: float = 10.0
    retry_budget_s: float = 30.0
    max_batch_events: int = 0
    alarms: str | None = None
    deploys: bool = False
    close_session: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.stream, str) or not _NAME.fullmatch(self.stream):
            raise ValueError("stream must be 1-64 letters, digits, '_' or '-'")
        name = self.stream if self.name is None else self.name
        if not _NAME.fullmatch(name):
            raise ValueError("name must be 1-64 letters, digits, '_' or '-'")
        object.__setattr__(self, "name", name)
        prefix = f"mxgw.{name}" if self.subject_prefix is None else self.subject_prefix
        if not _PREFIX.fullmatch(prefix) or len(prefix) > 128:
            raise ValueError(
                "subject_prefix must be dot-separated tokens of letters, digits, '_' or '-' "
                "(no wildcards), at most 128 characters"
            )
        object.__setattr__(self, "subject_prefix", prefix)
        if self.layout not in ("batch", "items"):
            raise ValueError(f"layout must be 'batch' or 'items', not {self.layout!r}")
        items = tuple(self.items)
        object.__setattr__(self, "items", items)
        if self.session_id is not None:
            if not self.session_id.strip():
                raise ValueError("session_id is empty")
            if items:
                raise ValueError("give items (the bridge opens a session) or session_id, not both")
        elif not items:
            raise ValueError("give items (the bridge opens a session) or a session_id")
        if len(items) > _MAX_ITEMS:
            raise ValueError(f"at most {_MAX_ITEMS} items")
        for item in items:
            if not isinstance(item, str) or not item.strip():
                raise ValueError("an item reference is empty")
        if not _NAME.fullmatch(self.kv_bucket):
            raise ValueError("kv_bucket must be 1-64 letters, digits, '_' or '-'")
        _check_range("replicas", self.replicas, 1, 5)
        if self.max_age_s is not None:
            _check_range("max_age_s", self.max_age_s, 1e-3, 1e9)
        if self.max_bytes is not None:
            _check_range("max_bytes", self.max_bytes, 1024, 2**62)
        _check_range("takeover_s", self.takeover_s, 1.0, 600.0)
        _check_range("max_pending", self.max_pending, 1, 100_000)
        _check_range("max_pending_bytes", self.max_pending_bytes, 64 * 1024, 2**34)
        _check_range("ack_every", self.ack_every, 1, self.max_pending)
        _check_range("ack_timeout_s", self.ack_timeout_s, 0.1, 3600.0)
        _check_range("retry_budget_s", self.retry_budget_s, 0.001, 7 * 86400.0)
        _check_range("max_batch_events", self.max_batch_events, 0, 2**32 - 1)

    @property
    def prefix(self) -> str:
        """The subject prefix (``subject_prefix`` or its default)."""
        assert self.subject_prefix is not None
        return self.subject_prefix

    @property
    def bridge_name(self) -> str:
        """The bridge's name (``name`` or the stream's)."""
        assert self.name is not None
        return self.name


def _check_range(name: str, value: Any, low: float, high: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"{name} must be a number")
    if not low <= value <= high:
        raise ValueError(f"{name} must be in {low:g} .. {high:g}, not {value!r}")


@dataclass
class BridgeStats:
    """What a bridge run did (``Bridge.stats``)."""

    events: int = 0
    messages: int = 0
    gaps: int = 0
    sessions: list[str] = field(default_factory=list)
    resyncs: int = 0
    takeovers: int = 0
    fenced: int = 0
    alarms: int = 0
    deploys: int = 0
    last_stored: tuple[str, int] | None = None
    drained: bool = True

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready (camelCase keys, as the CLI prints)."""
        stored = self.last_stored
        return {
            "alarms": self.alarms,
            "deploys": self.deploys,
            "drained": self.drained,
            "events": self.events,
            "fenced": self.fenced,
            "gaps": self.gaps,
            "lastSequence": str(stored[1]) if stored else "0",
            "messages": self.messages,
            "resyncs": self.resyncs,
            "sessionId": stored[0] if stored else "",
            "sessions": list(self.sessions),
            "takeovers": self.takeovers,
        }


Notify = Callable[[str, dict[str, Any]], None]


class Bridge:
    """Forward a gateway session's events into JetStream (module docstring).

    ``gateway`` are the gateway's ClientOptions, ``nats`` where JetStream is, ``config`` what
    to forward. ``notify(kind, details)`` hears the phases (``standby``, ``active``,
    ``fenced``, ``stopped``) for a caller's output.
    """

    def __init__(
        self,
        gateway: ClientOptions,
        nats: NatsOptions,
        config: BridgeConfig,
        *,
        notify: Notify | None = None,
    ) -> None:
        self.gateway = gateway
        self.nats = nats
        self.config = config
        self.stats = BridgeStats()
        self._notify = notify or (lambda kind, details: None)
        self._publisher: ChainPublisher | None = None
        self._position: tuple[str, int] = ("", 0)  # the last event position enqueued
        self._stored: tuple[str, int] | None = None
        self._saved: tuple[str, int] | None = None
        self._owned = config.session_id is None
        self._deploy_time: str | None = None
        self._run_id = uuid.uuid4().hex[:12]

    def __repr__(self) -> str:
        return (
            f"<Bridge {self.config.bridge_name} {self.gateway.endpoint} -> "
            f"{self.nats!r} stream {self.config.stream}>"
        )

    # -- the run -----------------------------------------------------------------------------

    async def run(
        self, *, stop: asyncio.Event | None = None, duration: float | None = None
    ) -> BridgeStats:
        """Run until ``stop`` is set or ``duration`` seconds passed; returns the stats.

        Raises NatsUnavailableError when NATS cannot be reached at the start, BridgeError when
        the stream or bucket cannot be used, and the gateway's errors (a session the gateway
        does not know, a stream lost beyond ``retry_budget_s``).
        """
        stop = stop or asyncio.Event()
        timer = None
        if duration is not None:
            timer = asyncio.get_running_loop().call_later(duration, stop.set)
        try:
            return await self._run(stop)
        finally:
            if timer is not None:
                timer.cancel()

    async def _run(self, stop: asyncio.Event) -> BridgeStats:
        config = self.config

        async def on_disconnected() -> None:
            if self._publisher is not None:
                self._publisher.disconnected()

        nc = await connect_nats(self.nats, disconnected=on_disconnected)
        try:
            js = nc.jetstream(timeout=5.0)
            store = await self._prepare(js)
            lease = Lease(store, config.takeover_s)
            async with await GatewayClient.connect(options=self.gateway) as client:
                held = False
                while not stop.is_set():
                    if not held:
                        self._notify("standby", {"bridge": config.bridge_name})
                        if not await lease.acquire(stop):
                            break
                        self.stats.takeovers += 1
                    held = False
                    try:
                        await self._active(nc, js, store, lease, client, stop)
                    except BridgeFencedError as fenced:
                        if await lease.confirm():
                            # The lease is still ours: a bridge that held it before (frozen,
                            # then thawed) appended to the stream. Its messages continue the
                            # chain; go on after them.
                            logger.warning("%s; the lease is still ours: resuming", fenced)
                            held = True
                            continue
                        self.stats.fenced += 1
                        logger.warning("stopped forwarding: %s", fenced)
                        self._notify("fenced", {"reason": str(fenced)})
        finally:
            with contextlib.suppress(Exception):
                await nc.close()
        self._notify("stopped", self.stats.as_dict())
        return self.stats

    async def _prepare(self, js: JetStreamContext) -> StateStore:
        """The stream and the bucket (created when missing). A JetStream that is not ready
        yet (a cluster electing its leaders) is waited for within the retry budget."""
        from mxgateway.bridge._errors import NatsUnavailableError
        from mxgateway.bridge._publisher import _temporary

        config = self.config
        deadline = time.monotonic() + config.retry_budget_s
        delay = 0.1
        while True:
            try:
                await ensure_stream(
                    js,
                    config.stream,
                    config.prefix,
                    replicas=config.replicas,
                    max_age_s=config.max_age_s,
                    max_bytes=config.max_bytes,
                )
                return await open_store(
                    js, config.kv_bucket, config.bridge_name, replicas=config.replicas
                )
            except BridgeError as error:
                cause = error.__cause__
                if not isinstance(cause, Exception) or not _temporary(cause):
                    raise
                last: Exception = cause
            except Exception as error:
                if not _temporary(error):
                    raise
                last = error
            if time.monotonic() > deadline:
                raise NatsUnavailableError(
                    f"JetStream did not answer within {config.retry_budget_s:g} s: {last!r}"
                ) from last
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _active(
        self,
        nc: NATS,
        js: JetStreamContext,
        store: StateStore,
        lease: Lease,
        client: GatewayClient,
        stop: asyncio.Event,
    ) -> None:
        config = self.config
        tail = await _with_retry(lambda: read_tail(js, config.stream), stop)
        if tail is None:
            await lease.release()
            return
        records = Records(config.prefix, config.bridge_name, nc.max_payload, self._run_id)
        publisher = ChainPublisher(
            nc,
            js,
            config.stream,
            bridge=config.bridge_name,
            max_pending=config.max_pending,
            max_pending_bytes=config.max_pending_bytes,
            ack_every=config.ack_every,
            ack_timeout_s=config.ack_timeout_s,
            on_stored=self._on_stored,
            gate=lease,
        )
        await publisher.start(tail)
        self._publisher = publisher
        clean = False
        fenced = False
        session: Session | None = None
        try:
            session, after, check_first = await self._session(
                client, store, tail, publisher, records
            )
            self._notify(
                "active",
                {"bridge": config.bridge_name, "sessionId": session.session_id, "after": after},
            )
            tasks = {
                asyncio.create_task(
                    self._forward(session, store, publisher, records, after, check_first),
                    name="mxgateway-bridge-forward",
                ),
                asyncio.create_task(lease.keep(), name="mxgateway-bridge-lease"),
                asyncio.create_task(self._save_state(store), name="mxgateway-bridge-state"),
                asyncio.create_task(stop.wait(), name="mxgateway-bridge-stop"),
            }
            if config.alarms is not None:
                tasks.add(asyncio.create_task(self._alarms(client, publisher, records)))
            if config.deploys:
                tasks.add(asyncio.create_task(self._deploys(publisher, records)))
            try:
                await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                results = await cancel_and_wait(tasks)
            errors = [
                r
                for r in results
                if isinstance(r, BaseException) and not isinstance(r, asyncio.CancelledError)
            ]
            fence = next((e for e in errors if isinstance(e, BridgeFencedError)), None)
            if fence is not None:
                fenced = True
                raise fence
            if errors:
                raise errors[0]
            clean = True
        except BridgeFencedError:
            fenced = True
            raise
        finally:
            self._publisher = None
            self.stats.resyncs += publisher.resyncs
            if not fenced:
                # Whatever ended the run: what was sent should be stored before the lease is
                # handed over (a standby resumes after the stream's last message anyway).
                try:
                    self.stats.drained = await publisher.drain(_DRAIN_S)
                except BridgeFencedError:
                    fenced = True
                if not fenced:
                    await self._flush_state(store)
                    if clean and config.close_session and session is not None and self._owned:
                        await _close_quietly(session)
                        await store.clear_state()
                    await lease.release()
            await publisher.close()

    def _on_stored(self, message: Outbound, events: int, messages: int) -> None:
        # Counted when stored, not when sent: a stop cancels forwarding with a window in
        # flight, which the drain then stores.
        self._stored = (message.session, message.last)
        stats = self.stats
        stats.last_stored = self._stored
        stats.events += events
        stats.messages += messages

    # -- the session -------------------------------------------------------------------------

    async def _session(
        self,
        client: GatewayClient,
        store: StateStore,
        tail: StreamTail,
        publisher: ChainPublisher,
        records: Records,
    ) -> tuple[Session, int, bool]:
        """The session to forward, the sequence to resume after, and whether the first event
        must be checked for events another (dead) reader took before anything was stored."""
        config = self.config
        state = await store.load_state()
        position = tail.position if tail.bridge == config.bridge_name else None
        if position is not None:
            session_id: str | None = position[0]
            last = position[1]
        elif state is not None:
            session_id, last = state.session_id, state.last_sequence
        else:
            session_id, last = None, 0
        if state is not None:
            self._deploy_time = state.deploy_time
        if session_id is not None:
            self._position = self._stored = self._saved = (session_id, last)

        if config.session_id is not None:  # forward a session someone else built
            fresh = session_id != config.session_id
            if fresh and session_id is not None:
                await publisher.put(
                    records.recovered(
                        SessionRecovered(
                            old_session_id=session_id,
                            new_session_id=config.session_id,
                            last_sequence=last,
                            failed=(),
                            reason="the bridge was started on another session",
                        )
                    )
                )
            session_id = config.session_id
            session = Session(client, pb.OpenSessionReply(session_id=session_id))
            known = await store.load_items(session_id)
            if known is not None:
                _fill(session, known)
        elif session_id is None:
            session = await self._open_session(client, store)
            fresh = True
        else:
            fresh = False
            known = await store.load_items(session_id)
            session = Session(
                client,
                pb.OpenSessionReply(session_id=session_id),
                name=config.client_name,
                recover=known is not None,
            )
            if known is not None:
                _fill(session, known)
            await self._add_missing(session, store, publisher, records, last)
        if fresh:
            last = 0
        if session.session_id not in self.stats.sessions:
            self.stats.sessions.append(session.session_id)
        self._position = (session.session_id, last)
        await store.save_state(
            BridgeState(session.session_id, self._owned, last, self._deploy_time)
        )
        return session, last, not fresh and last == 0

    async def _open_session(self, client: GatewayClient, store: StateStore) -> Session:
        config = self.config
        session = await client.open_session(config.client_name, recover=True)
        session.leave_open()  # a restarted bridge (or the standby) continues it
        server = await session.register(config.client_name)
        await _subscribe(session, server, list(config.items))
        # Items first, then the state naming the session: whoever finds the state finds them.
        await store.save_items(session.session_id, _live_items(session))
        await store.save_state(BridgeState(session.session_id, True, 0, self._deploy_time))
        logger.info("opened session %s with %d item(s)", session.session_id, len(session.items))
        return session

    async def _add_missing(
        self,
        session: Session,
        store: StateStore,
        publisher: ChainPublisher,
        records: Records,
        last: int,
    ) -> None:
        """Items asked for now that the saved session lacks: subscribe them on it."""
        have = {item.definition for item in session.items.values()}
        missing = [ref for ref in dict.fromkeys(self.config.items) if ref not in have]
        if not missing:
            return
        servers = list(session._state.servers)
        try:
            server = servers[0] if servers else await session.register(self.config.client_name)
            await _subscribe(session, server, missing)
        except MxGatewaySessionNotFoundError as lost:
            if not session.recovers:
                raise
            old = session.session_id
            await session._recover(old, last, f"NOT_FOUND: {lost}")
            await self._record_recovery(session, store, publisher, records)
            await self._add_missing(session, store, publisher, records, 0)
            return
        await store.save_items(session.session_id, _live_items(session))

    async def _record_recovery(
        self,
        session: Session,
        store: StateStore,
        publisher: ChainPublisher,
        records: Records,
        recovered: SessionRecovered | None = None,
    ) -> None:
        recovered = recovered or session.last_recovery
        assert recovered is not None
        await store.save_items(recovered.new_session_id, _live_items(session))
        await publisher.put(records.recovered(recovered))
        self._position = (recovered.new_session_id, 0)
        if recovered.new_session_id not in self.stats.sessions:
            self.stats.sessions.append(recovered.new_session_id)

    # -- forwarding --------------------------------------------------------------------------

    async def _forward(
        self,
        session: Session,
        store: StateStore,
        publisher: ChainPublisher,
        records: Records,
        after: int,
        check_first: bool,
    ) -> None:
        """Forward the session's events; a stream the gateway refuses because the session
        still has a subscriber (the bridge this one took over from, not yet gone) is tried
        again within the retry budget; a session whose queue overflowed (JetStream was away
        longer than the gateway could queue) is replaced by a new one when the bridge owns it."""
        refused_since: float | None = None
        while True:
            try:
                await self._forward_stream(session, store, publisher, records, after, check_first)
                return
            except MxGatewayEventQueueOverflowError as overflow:
                if not session.recovers:
                    raise
                logger.warning(
                    "session %s overflowed (%s); recovering", session.session_id, overflow
                )
                old, last = session.session_id, self._position[1]
                await session._recover(old, last, f"overflow: {overflow}")
                await self._record_recovery(session, store, publisher, records)
            except MxGatewayProtocolError as refused:
                if refused.grpc_code != "FAILED_PRECONDITION" or "subscriber" not in str(refused):
                    raise
                now = time.monotonic()
                refused_since = refused_since or now
                if now - refused_since > self.config.retry_budget_s:
                    raise
                logger.warning(
                    "session %s still has another subscriber; waiting", session.session_id
                )
                await asyncio.sleep(1.0)
            check_first = False
            session_id, after = self._position
            if session_id != session.session_id:
                after = 0

    async def _forward_stream(
        self,
        session: Session,
        store: StateStore,
        publisher: ChainPublisher,
        records: Records,
        after: int,
        check_first: bool,
    ) -> None:
        items_layout = self.config.layout == "items"
        stats = self.stats
        put = publisher.put
        put_many = publisher.put_many
        async for parts in session_parts(
            session,
            after_worker_sequence=after,
            retry_budget_s=self.config.retry_budget_s,
            max_batch_events=self.config.max_batch_events,
            max_bytes=0 if items_layout else records.batch_limit,
        ):
            for part in parts:
                events = part.events
                first = events[0]
                if first.session_recovered is not None:
                    await self._record_recovery(
                        session, store, publisher, records, first.session_recovered
                    )
                    check_first = False
                    continue
                if check_first:
                    check_first = False
                    if first.replay_gap is None and first.worker_sequence > 1:
                        # Restarted before anything of this session was stored: what the
                        # dead reader took off the gateway's queue is not in the ring's
                        # reach (a resume needs a sequence to resume after). Say so.
                        gap = _gap_event(first.session_id, 0, first.worker_sequence)
                        await put(records.gap(gap))
                        stats.gaps += 1
                if first.replay_gap is not None:
                    await put(records.gap(first))
                    stats.gaps += 1
                    self._position = (
                        first.session_id,
                        first.replay_gap.oldest_available_sequence - 1,
                    )
                    events = events[1:]
                    if not events:
                        continue
                    part = Part(events)
                messages = list(records.items(part) if items_layout else records.batch(part))
                await put_many(messages)
                self._position = (events[-1].session_id, events[-1].worker_sequence)

    async def _save_state(self, store: StateStore) -> None:
        task = asyncio.current_task()
        while True:
            await asyncio.sleep(_STATE_EVERY_S)
            try:
                await self._flush_state(store)
            except Exception as error:
                logger.warning("saving the bridge state failed (%s); trying again", error)
            if task is not None and task.cancelling():
                # The stop's cancel arrived during the save and was lost in it (nats-py's
                # request on Python 3.11: asyncio.wait_for): honour it now, not in 10 s.
                raise asyncio.CancelledError

    async def _flush_state(self, store: StateStore) -> None:
        stored = self._stored
        if stored is None or stored == self._saved or not stored[0]:
            return
        await store.save_state(BridgeState(stored[0], self._owned, stored[1], self._deploy_time))
        self._saved = stored

    # -- alarms and deploys ------------------------------------------------------------------

    async def _alarms(
        self, client: GatewayClient, publisher: ChainPublisher, records: Records
    ) -> None:
        prefix = self.config.prefix
        encoder = msgspec.json.Encoder(order="sorted")
        async for item in client.stream_alarms(
            self.config.alarms or "", retry_budget_s=self.config.retry_budget_s
        ):
            reference = getattr(item, "alarm_full_reference", None)
            if reference:
                subject = f"{prefix}.alarms.{tag_tokens(reference)}"
            else:
                subject = f"{prefix}.alarmfeed"
            payload = encoder.encode({"type": type(item).__name__, "item": item})
            await publisher.put(records.side("alarm", subject, payload, self._position))
            self.stats.alarms += 1

    async def _deploys(self, publisher: ChainPublisher, records: Records) -> None:
        from datetime import UTC, datetime

        from google.protobuf.json_format import MessageToJson

        from mxgateway._galaxy import GalaxyRepositoryClient

        seen = None
        if self._deploy_time is not None:
            with contextlib.suppress(ValueError):
                seen = datetime.fromisoformat(self._deploy_time)
        async with await GalaxyRepositoryClient.connect(options=self.gateway) as galaxy:
            async for event in galaxy.watch_deploy_events(
                last_seen_deploy_time=seen, retry_budget_s=self.config.retry_budget_s
            ):
                payload = MessageToJson(event, indent=None, sort_keys=True).encode()
                subject = f"{self.config.prefix}.deploys"
                await publisher.put(records.side("deploy", subject, payload, self._position))
                if event.time_of_last_deploy_present:
                    when = event.time_of_last_deploy.ToDatetime(tzinfo=UTC)
                    self._deploy_time = when.isoformat()
                self.stats.deploys += 1


# -- helpers ----------------------------------------------------------------------------------


async def _with_retry(call: Callable[[], Any], stop: asyncio.Event, what: str = "JetStream") -> Any:
    """``call()`` until it answers, waiting out JetStream being away (None when stopped)."""
    delay = 0.1
    reported = time.monotonic()
    while not stop.is_set():
        try:
            return await asyncio.wait_for(call(), 10.0)
        except BridgeError:
            raise
        except Exception as error:
            from mxgateway.bridge._publisher import _temporary

            if not _temporary(error):
                raise BridgeError(f"{what}: {error!r}") from error
            if time.monotonic() - reported > 10:
                logger.warning("still waiting for %s (%r)", what, error)
                reported = time.monotonic()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
        delay = min(delay * 2, 2.0)
    return None


async def _subscribe(session: Session, server: int, references: list[str]) -> None:
    failed = []
    for start in range(0, len(references), _SUBSCRIBE_CHUNK):
        chunk = references[start : start + _SUBSCRIBE_CHUNK]
        for result in await session.subscribe_bulk(server, chunk):
            if not result.was_successful:
                failed.append(f"{result.tag_address}: {result.error_message}")
    if failed:
        shown = "; ".join(failed[:5]) + (
            f" (and {len(failed) - 5} more)" if len(failed) > 5 else ""
        )
        logger.warning("%d item(s) were not subscribed: %s", len(failed), shown)


def _live_items(session: Session) -> SessionItems:
    """The session's servers and items in the gateway's (live) handles."""
    handles = session._handles
    state = session._state
    servers = {
        handles.server_to_live.get(h, h): server.client_name for h, server in state.servers.items()
    }
    items = {
        handles.item_to_live.get(h, h): (
            handles.server_to_live.get(item.server_handle, item.server_handle),
            item.definition,
        )
        for h, item in state.items.items()
    }
    return SessionItems(servers, items)


def _fill(session: Session, known: SessionItems) -> None:
    """Give a Session object made for an existing session its servers and items (as the
    bridge that built it saved them), for tags and for a recovery."""
    state = session._state
    for handle, client_name in known.servers.items():
        state.servers[handle] = _Server(client_name)
    for handle, (server, reference) in known.items.items():
        state._add(server, handle, reference, "add_item", "", "advise")


def _gap_event(session_id: str, after: int, oldest: int) -> MxEvent:
    return msgspec.structs.replace(
        EMPTY_EVENT,
        session_id=session_id,
        replay_gap=ReplayGap(requested_after_sequence=after, oldest_available_sequence=oldest),
    )


async def _close_quietly(session: Session) -> None:
    try:
        await session.close()
    except Exception as error:
        logger.warning("closing session %s failed: %s", session.session_id, error)
