"""Reading a bridge's stream back: ``consume`` (events), ``consume_batches`` (lists),
``consume_columns`` (EventColumns).

A pull consumer on the stream, filtered to the event subjects (``P.events``, ``P.items.>``,
``P.handles.>``, ``P.gaps``, ``P.sessions``), decodes each message with the same codec the
gateway stream uses: a batch message into its events (tags named from the session's items the
bridge saved in the key-value bucket), an item message into its event (the tag from its
subject), a gap record into the gateway's ReplayGap sentinel, a session record into the marker
a recovering stream yields (``MxEvent.session_recovered``). So a consumer sees what
``Session.stream_events()`` would have given it, in the same order.

One code path fetches, checks for lost deliveries and acknowledges (``_fetches``,
``_consumed``); the shapes differ only in how a fetch's messages are decoded (``_Decoder``).
A fetch's messages are acknowledged once the caller has taken everything they hold (when the
iterator is asked for what follows), so a consumer that dies gets them again. With ``durable``
several processes on one name share the messages (each gets some); separate names each get
everything. Without it the consumer is ephemeral (gone when the iterator is closed).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import secrets
import time
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import msgspec

from mxgateway import _codec
from mxgateway._recovery import marker_event
from mxgateway.bridge._errors import BridgeError
from mxgateway.bridge._records import (
    HDR_BRIDGE,
    HDR_LAYOUT,
    HDR_SESSION,
    KIND_BATCH,
    KIND_ITEM,
    LAYOUT_VERSION,
)
from mxgateway.bridge._tokens import tag_of_tokens
from mxgateway.types import MxEvent, SessionRecovered

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg
    from nats.js.api import ConsumerConfig
    from nats.js.client import JetStreamContext

    from mxgateway.columns import EventColumns

__all__ = [
    "DEFAULT_BATCH",
    "consume",
    "consume_batches",
    "consume_columns",
    "decode_message",
    "item_names",
]

logger = logging.getLogger("mxgateway.bridge")

_recovered = msgspec.json.Decoder(SessionRecovered)
_MAX_FETCH = 10_000
DEFAULT_BATCH = 64
"""Messages one fetch asks for by default."""
_UNSET: Any = object()
_U = TypeVar("_U")
# Bytes one fetch asks for at most (nats-server cuts a reader over 64 MB behind).
_FETCH_BYTES = 8 * 1024 * 1024


async def _prefix_of(js: JetStreamContext, stream: str) -> str:
    info = await js.stream_info(stream)
    for subject in info.config.subjects or []:
        if subject.endswith(".>"):
            return subject[:-2]
    raise BridgeError(f"stream {stream} holds no '<prefix>.>' subjects: not a bridge's stream")


class _Names:
    """Item handle → reference per session, from the bridge's key-value bucket (batch layout:
    the bytes carry handles only)."""

    def __init__(self, js: JetStreamContext, bucket: str | None, bridge: str | None) -> None:
        self._js = js
        self._bucket = bucket
        self._bridge = bridge
        self._kv: Any = None
        self._by_session: dict[str, dict[int, str]] = {}

    async def of(self, session_id: str, bridge: str | None) -> dict[int, str]:
        names = self._by_session.get(session_id)
        if names is not None:
            return names
        names = {}
        name = self._bridge or bridge
        if self._bucket and name:
            from mxgateway.bridge._state import StateStore

            try:
                if self._kv is None:
                    self._kv = await self._js.key_value(self._bucket)
                known = await StateStore(self._kv, name).load_items(session_id)
                if known is not None:
                    names = known.names()
            except Exception as error:  # no bucket, no key: events without tags
                logger.debug("no item names for session %s: %r", session_id, error)
        self._by_session[session_id] = names
        return names


async def item_names(
    nc: NATS, session_id: str, bridge: str, *, kv_bucket: str = "mxgw-bridge"
) -> dict[int, str]:
    """Item handle → reference of a session bridge ``bridge`` forwarded (what it saved in
    ``kv_bucket``; {} when nothing was saved): the names for ``decode_message`` of a batch
    message, whose bytes carry handles only."""
    return await _Names(nc.jetstream(), kv_bucket, bridge).of(session_id, bridge)


def decode_message(msg: Msg, prefix: str, names: dict[int, str] | None = None) -> list[MxEvent]:
    """The events a bridge message holds (see the module docstring); [] for alarm and deploy
    records. Raises BridgeError for a layout version this mxgateway does not know and
    MxGatewayDecodeError for bytes that do not decode."""
    headers = msg.headers or {}
    layout = headers.get(HDR_LAYOUT, "")
    kind, _, version = layout.partition("/")
    if version != str(LAYOUT_VERSION):
        raise BridgeError(
            f"message {msg.subject} has layout {layout!r}; this mxgateway reads version "
            f"{LAYOUT_VERSION}"
        )
    impl = _codec.impl
    if kind == "batch":
        events: list[MxEvent] = impl.decode_event_batch(msg.data, names)
        return events
    if kind == "item":
        event: MxEvent = impl.decode_event(msg.data)
        head = prefix + ".items."
        if msg.subject.startswith(head):
            event = msgspec.structs.replace(event, tag=tag_of_tokens(msg.subject[len(head) :]))
        return [event]
    if kind == "gap":
        return [impl.decode_event(msg.data)]
    if kind == "recovered":
        return [marker_event(_recovered.decode(msg.data))]
    return []


# How long one pull request waits on the server for its messages (a new one follows).
_EXPIRES_S = 5.0
_STATUS = "Status"
_HEARTBEAT = "100"


async def _consumer_of(
    js: JetStreamContext, stream: str, durable: str | None, config: ConsumerConfig
) -> str:
    """The name of the pull consumer to read: ``durable`` (made when missing) or a new
    ephemeral one."""
    from nats.js.errors import NotFoundError

    if durable:
        try:
            await js.consumer_info(stream, durable)
            return durable
        except NotFoundError:
            config = dataclasses.replace(config, name=durable, durable_name=durable)
    else:
        config = dataclasses.replace(config, name=secrets.token_hex(11))
    info = await js.add_consumer(stream, config)
    return str(info.name)


class _Puller:
    """A pull consumer's messages, by nats-py's public core API: a subscription on an inbox
    and pull requests (``$JS.API.CONSUMER.MSG.NEXT``) naming it as the reply subject.

    nats-py's ``PullSubscription.fetch`` takes each message with ``next_msg``: a uuid, two
    tasks and a ``wait_for`` per message, most of the consumer's CPU in the items layout
    (one message per event). Here a message costs one callback appending it to a list; a
    fetch takes what arrived (waiting only when nothing has) and the next request is sent at
    once, so the server delivers while the caller works. One request is open at a time
    (it ends with its last message or a status: 404, 408, 409), so at most two fetches'
    worth of messages are on their way (``_fetches`` bounds a fetch in bytes).
    """

    def __init__(self, nc: NATS, stream: str, consumer: str) -> None:
        self._nc = nc
        self.consumer = consumer
        self._subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"
        self._inbox = nc.new_inbox()
        self._buffer: list[Msg] = []
        self._arrived = asyncio.Event()
        self._open = 0  # messages the open request may still bring
        self._deadline = 0.0  # when it is taken for lost (expired, or gone with a connection)
        self._sub: Any = None

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(self._inbox, cb=self._on_message)

    async def unsubscribe(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()

    async def _on_message(self, msg: Msg) -> None:
        if not msg.data:
            headers = msg.headers
            if headers and _STATUS in headers:
                if headers[_STATUS] != _HEARTBEAT:
                    self._open = 0  # the request ended
                self._arrived.set()
                return
        self._buffer.append(msg)
        self._open -= 1
        self._arrived.set()

    async def _request(self, want: int) -> None:
        now = time.monotonic()
        if (self._open > 0 and now < self._deadline) or len(self._buffer) >= want:
            return
        self._open = want
        self._deadline = now + _EXPIRES_S + 2.0
        request = b'{"batch":%d,"expires":%d}' % (want, int(_EXPIRES_S * 1e9))
        await self._nc.publish(self._subject, request, reply=self._inbox)

    async def take(self, want: int, timeout: float) -> list[Msg]:
        """Up to ``want`` messages in delivery order; [] when none came within ``timeout``."""
        deadline = time.monotonic() + timeout
        while not self._buffer:
            self._arrived.clear()
            await self._request(want)
            if self._buffer:
                break
            left = deadline - time.monotonic()
            if left <= 0:
                return []
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(left):
                    await self._arrived.wait()
        msgs = self._buffer[:want]
        del self._buffer[:want]
        await self._request(want)  # the next ones travel while the caller works
        return msgs


async def _fetches(
    nc: NATS,
    stream: str,
    *,
    durable: str | None,
    from_start: bool,
    subject_prefix: str | None,
    batch: int,
) -> AsyncGenerator[tuple[str, list[Msg]], None]:
    """(the stream's subject prefix, the messages of one fetch) until closed: every message
    delivered in order, none lost. The caller acknowledges them (``_acknowledge``) once its
    own caller has them, before asking for the next fetch."""
    from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

    if not 1 <= batch <= _MAX_FETCH:
        raise ValueError(f"batch must be in 1 .. {_MAX_FETCH}")
    js = nc.jetstream()
    prefix = subject_prefix or await _prefix_of(js, stream)
    subjects = [
        f"{prefix}.events",
        f"{prefix}.items.>",
        f"{prefix}.handles.>",
        f"{prefix}.gaps",
        f"{prefix}.sessions",
    ]
    base = ConsumerConfig(
        deliver_policy=DeliverPolicy.ALL if from_start else DeliverPolicy.NEW,
        # A durable consumer may be shared: each message is acknowledged on its own. An
        # ephemeral one is this reader's alone: acknowledging the last of a fetch is enough.
        ack_policy=AckPolicy.EXPLICIT if durable else AckPolicy.ALL,
        filter_subjects=subjects,
        max_ack_pending=max(1000, batch * 4),
        inactive_threshold=None if durable else 60.0,
    )
    info = await js.stream_info(stream)
    state = info.state
    size = state.bytes // state.messages if state.messages else 1024
    # The stream sequence of the last message handed out (or of the stream's last one when
    # only new ones are wanted): an ephemeral consumer that lost deliveries is made again
    # after it.
    after = 0 if from_start else state.last_seq
    while True:
        config = base
        if after and not durable:
            config = dataclasses.replace(
                base, deliver_policy=DeliverPolicy.BY_START_SEQUENCE, opt_start_seq=after + 1
            )
        sub = _Puller(nc, stream, await _consumer_of(js, stream, durable, config))
        await sub.start()
        delivered = 0
        try:
            while True:
                # Bounded in bytes: a fetch that asks for more than nats-server's
                # per-connection max_pending (64 MB) gets the reader cut as a slow consumer
                # and the messages in flight lost.
                want = max(1, min(batch, _FETCH_BYTES // max(size, 1)))
                msgs = await sub.take(want, timeout=1.0)
                if not msgs:
                    continue
                lost = False
                if not durable:
                    # Consumer sequences rise by one per delivery: the first and the last
                    # show whether any in between was lost (a cut connection).
                    whole = len(msgs) - 1
                    if msgs[-1].metadata.sequence.consumer != delivered + 1 + whole:
                        for index, msg in enumerate(msgs):
                            if msg.metadata.sequence.consumer != delivered + 1 + index:
                                del msgs[index:]
                                lost = True
                                break
                    delivered += len(msgs)
                if msgs:
                    seen = max(len(msg.data) for msg in msgs)
                    size = max(seen + 256, (size + seen) // 2)
                    after = msgs[-1].metadata.sequence.stream
                    yield prefix, msgs
                if lost:
                    # Acknowledging a later message would acknowledge the lost ones too
                    # (AckPolicy.ALL): read again after the last one handed out.
                    logger.warning(
                        "stream %s: deliveries lost after sequence %d; reading again",
                        stream,
                        after,
                    )
                    break
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        with contextlib.suppress(Exception):  # the one that lost deliveries (else: expires)
            await js.delete_consumer(stream, sub.consumer)


class _Decoder:
    """Turns a fetch's messages into what a consumer yields: per-message event lists
    (``lists``) or EventColumns (``columns``), by the same codec and the same rules as
    ``decode_message``; item names of batch messages from the key-value bucket."""

    def __init__(self, nc: NATS, kv_bucket: str | None) -> None:
        self._names = _Names(nc.jetstream(), kv_bucket, None)
        self._tags: dict[str, str | None] = {}  # item subject -> its tag (None: a handle)

    def _tag(self, subject: str, prefix: str) -> str | None:
        tag = self._tags.get(subject, _UNSET)
        if tag is _UNSET:
            head = prefix + ".items."
            tag = tag_of_tokens(subject[len(head) :]) if subject.startswith(head) else None
            if len(self._tags) > 500_000:
                self._tags.clear()
            self._tags[subject] = tag
        return tag  # type: ignore[no-any-return]

    async def _table(self, headers: dict[str, str]) -> dict[int, str]:
        return await self._names.of(headers.get(HDR_SESSION, ""), headers.get(HDR_BRIDGE))

    async def lists(self, prefix: str, msgs: list[Msg]) -> list[list[MxEvent]]:
        """The events of each message (alarm and deploy records hold none: left out)."""
        impl = _codec.impl
        replace = msgspec.structs.replace
        out: list[list[MxEvent]] = []
        for msg in msgs:
            headers = msg.headers or {}
            layout = headers.get(HDR_LAYOUT)
            if layout == KIND_ITEM:
                event: MxEvent = impl.decode_event(msg.data)
                tag = self._tag(msg.subject, prefix)
                if tag is not None:
                    event = replace(event, tag=tag)
                out.append([event])
            elif layout == KIND_BATCH:
                out.append(impl.decode_event_batch(msg.data, await self._table(headers)))
            else:
                events = decode_message(msg, prefix)
                if events:
                    out.append(events)
        return out

    async def columns(self, prefix: str, msgs: list[Msg]) -> list[EventColumns]:
        """EventColumns of the fetch: one per run of consecutive batch (or item) messages of
        one session, decoded together; a gap record or a session record on its own (its
        event in ``others``, as ``Session.stream_event_columns`` yields them)."""
        from mxgateway import columns as cols

        impl = _codec.impl
        out: list[EventColumns] = []
        run: list[Msg] = []
        run_key: tuple[str, str] | None = None

        async def flush() -> None:
            if not run:
                return
            assert run_key is not None
            datas = [msg.data for msg in run]
            if run_key[0] == KIND_BATCH:
                table = await self._table(run[0].headers or {})
                out.append(cols._from_parts(impl._decode_columns(datas, table, False)))
            else:
                unit = cols._from_parts(impl._decode_columns(datas, None, True))
                out.extend(self._named(unit, [msg.subject for msg in run], prefix))
            run.clear()

        for msg in msgs:
            headers = msg.headers or {}
            layout = headers.get(HDR_LAYOUT, "")
            if layout in (KIND_BATCH, KIND_ITEM):
                key = (layout, headers.get(HDR_SESSION, ""))
                if key != run_key:
                    await flush()
                    run_key = key
                run.append(msg)
                continue
            await flush()
            run_key = None
            events = decode_message(msg, prefix)
            if events:
                out.append(cols._of_events(events))
        await flush()
        return out

    def _named(
        self, unit: EventColumns, subjects: list[str], prefix: str
    ) -> Iterator[EventColumns]:
        """``unit`` (item messages, one row each) with the tags their subjects name: split
        where an item handle would name two tags (one table per EventColumns)."""
        handles = unit.item_handle.tolist()
        start = 0
        tags: dict[int, str | None] = {}  # None: a P.handles subject (no name)
        for row, subject in enumerate(subjects):
            tag = self._tag(subject, prefix)
            known = tags.setdefault(handles[row], tag)
            if known != tag:
                yield _with_tags(unit[start:row], tags)
                start, tags = row, {handles[row]: tag}
        yield _with_tags(unit[start:] if start else unit, tags)


def _with_tags(unit: EventColumns, named: dict[int, str | None]) -> EventColumns:
    """``unit`` naming its items by ``named`` (its ``others`` too, as the codec names them)."""
    tags = {handle: tag for handle, tag in named.items() if tag is not None}
    unit.tags = tags or None
    if tags and unit.others:
        replace = msgspec.structs.replace
        unit.others = [
            (row, replace(event, tag=tags[event.item_handle]))
            if event.item_handle in tags and event.replay_gap is None
            else (row, event)
            for row, event in unit.others
        ]
        unit._others_by_row = None
    return unit


async def _consumed(
    nc: NATS,
    stream: str,
    decode: Callable[[str, list[Msg]], Awaitable[list[_U]]],
    *,
    durable: str | None,
    from_start: bool,
    subject_prefix: str | None,
    batch: int,
) -> AsyncGenerator[_U, None]:
    """What ``decode`` makes of each fetch, acknowledged when the caller asks for what
    follows the fetch's last (each message of a durable consumer, which others may share;
    the last of the fetch for an ephemeral one: AckPolicy.ALL)."""
    async with contextlib.aclosing(
        _fetches(
            nc,
            stream,
            durable=durable,
            from_start=from_start,
            subject_prefix=subject_prefix,
            batch=batch,
        )
    ) as fetches:
        async for prefix, msgs in fetches:
            for unit in await decode(prefix, msgs):
                yield unit
            if durable:
                for msg in msgs:
                    await msg.ack()
            else:
                await msgs[-1].ack()


async def consume(
    nc: NATS,
    stream: str,
    *,
    durable: str | None = None,
    from_start: bool = False,
    subject_prefix: str | None = None,
    batch: int = DEFAULT_BATCH,
    kv_bucket: str | None = "mxgw-bridge",
) -> AsyncIterator[MxEvent]:
    """The events of a bridge's ``stream`` as ``MxEvent``, in stream order (module docstring).

    ``nc`` is a connected nats-py client (``connect_nats``); ``durable`` a consumer name to
    share or resume (created when missing); ``from_start`` reads the stream from its first
    message (new consumers only; default: what arrives from now on); up to ``batch`` messages
    are fetched at a time (fewer when large: 8 MB at most); ``kv_bucket`` is where the bridge
    saved the item names (None: batch events carry no tag). Markers (gap sentinels, session
    changes) come as the gateway stream gives them. Runs until the caller stops iterating.
    """
    async with contextlib.aclosing(
        _consumed(
            nc,
            stream,
            _Decoder(nc, kv_bucket).lists,
            durable=durable,
            from_start=from_start,
            subject_prefix=subject_prefix,
            batch=batch,
        )
    ) as lists:
        async for events in lists:
            for event in events:
                yield event


async def consume_batches(
    nc: NATS,
    stream: str,
    *,
    durable: str | None = None,
    from_start: bool = False,
    subject_prefix: str | None = None,
    batch: int = DEFAULT_BATCH,
    kv_bucket: str | None = "mxgw-bridge",
) -> AsyncIterator[list[MxEvent]]:
    """As ``consume``, one list per stream message (a gateway batch in the batch layout, one
    event in the items layout)."""
    async with contextlib.aclosing(
        _consumed(
            nc,
            stream,
            _Decoder(nc, kv_bucket).lists,
            durable=durable,
            from_start=from_start,
            subject_prefix=subject_prefix,
            batch=batch,
        )
    ) as lists:
        async for events in lists:
            yield events


async def consume_columns(
    nc: NATS,
    stream: str,
    *,
    durable: str | None = None,
    from_start: bool = False,
    subject_prefix: str | None = None,
    batch: int = DEFAULT_BATCH,
    kv_bucket: str | None = "mxgw-bridge",
) -> AsyncIterator[EventColumns]:
    """As ``consume``, as ``EventColumns`` (numpy columns: ``mxgateway[columns]``): the
    messages of a fetch decoded together by the codec's columns decoder, one EventColumns
    per run of consecutive messages of one session and layout (batch messages; item
    messages, tags from their subjects). Gap records and session records come as an
    EventColumns of their own whose one row is in ``others`` (the ReplayGap sentinel, the
    recovery marker), as ``Session.stream_event_columns`` yields them."""
    import mxgateway.columns  # noqa: F401  (numpy missing: the columns extra's ImportError)

    async with contextlib.aclosing(
        _consumed(
            nc,
            stream,
            _Decoder(nc, kv_bucket).columns,
            durable=durable,
            from_start=from_start,
            subject_prefix=subject_prefix,
            batch=batch,
        )
    ) as units:
        async for unit in units:
            yield unit
