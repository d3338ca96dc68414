"""Reading a bridge's stream back: ``consume`` (events), ``consume_batches`` (lists).

A pull consumer on the stream, filtered to the event subjects (``P.events``, ``P.items.>``,
``P.handles.>``, ``P.gaps``, ``P.sessions``), decodes each message with the same codec the
gateway stream uses: a batch message into its events (tags named from the session's items the
bridge saved in the key-value bucket), an item message into its event (the tag from its
subject), a gap record into the gateway's ReplayGap sentinel, a session record into the marker
a recovering stream yields (``MxEvent.session_recovered``). So a consumer sees what
``Session.stream_events()`` would have given it, in the same order.

A message is acknowledged once the caller has taken everything it holds (when the iterator is
asked for what follows), so a consumer that dies gets the message again. With ``durable``
several processes on one name share the messages (each gets some); separate names each get
everything. Without it the consumer is ephemeral (gone when the iterator is closed).
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import TYPE_CHECKING, Any

import msgspec

from mxgateway import _codec
from mxgateway._recovery import marker_event
from mxgateway.bridge._errors import BridgeError
from mxgateway.bridge._records import HDR_LAYOUT, HDR_SESSION, LAYOUT_VERSION
from mxgateway.bridge._tokens import tag_of_tokens
from mxgateway.types import MxEvent, SessionRecovered

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg
    from nats.js.client import JetStreamContext

__all__ = ["consume", "consume_batches", "decode_message", "item_names"]

logger = logging.getLogger("mxgateway.bridge")

_recovered = msgspec.json.Decoder(SessionRecovered)
_MAX_FETCH = 10_000
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


async def _decoded(
    nc: NATS,
    stream: str,
    *,
    durable: str | None,
    from_start: bool,
    subject_prefix: str | None,
    batch: int,
    kv_bucket: str | None,
) -> AsyncGenerator[tuple[Msg, list[MxEvent], bool], None]:
    """(message, its events, whether it is the last of its fetch) until closed."""
    from nats.errors import TimeoutError as NatsTimeoutError
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
    names = _Names(js, kv_bucket, None)
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
        sub = await js.pull_subscribe("", durable=durable, stream=stream, config=config)
        delivered = 0
        try:
            while True:
                # Bounded in bytes: a fetch that asks for more than nats-server's
                # per-connection max_pending (64 MB) gets the reader cut as a slow consumer
                # and the messages in flight lost.
                want = max(1, min(batch, _FETCH_BYTES // max(size, 1)))
                try:
                    msgs = await sub.fetch(want, timeout=1.0)
                except NatsTimeoutError:
                    continue
                if not durable and msgs[0].metadata.sequence.consumer != delivered + 1:
                    # Deliveries lost in flight (a cut connection): acknowledging a later
                    # message would acknowledge them too (AckPolicy.ALL). Read again.
                    logger.warning(
                        "stream %s: deliveries lost after sequence %d; reading again",
                        stream,
                        after,
                    )
                    break
                seen = 0
                last = len(msgs) - 1
                for index, msg in enumerate(msgs):
                    seen = max(seen, len(msg.data))
                    if not durable:
                        if msg.metadata.sequence.consumer != delivered + 1:
                            last = -1
                            break
                        delivered += 1
                    headers = msg.headers or {}
                    table = None
                    if headers.get(HDR_LAYOUT, "").startswith("batch/"):
                        session = headers.get(HDR_SESSION, "")
                        table = await names.of(session, headers.get("Mx-Bridge"))
                    after = msg.metadata.sequence.stream
                    yield msg, decode_message(msg, prefix, table), index == last
                size = max(seen + 256, (size + seen) // 2)
                if last == -1:
                    break
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        with contextlib.suppress(Exception):  # the one that lost deliveries (else: expires)
            await js.delete_consumer(stream, getattr(sub, "_consumer", ""))


async def consume(
    nc: NATS,
    stream: str,
    *,
    durable: str | None = None,
    from_start: bool = False,
    subject_prefix: str | None = None,
    batch: int = 64,
    kv_bucket: str | None = "mxgw-bridge",
) -> AsyncIterator[MxEvent]:
    """The events of a bridge's ``stream`` as ``MxEvent``, in stream order (module docstring).

    ``nc`` is a connected nats-py client (``connect_nats``); ``durable`` a consumer name to
    share or resume (created when missing); ``from_start`` reads the stream from its first
    message (new consumers only; default: what arrives from now on); ``batch`` messages are
    fetched at a time; ``kv_bucket`` is where the bridge saved the item names (None: batch
    events carry no tag). Markers (gap sentinels, session changes) come as the gateway
    stream gives them. Runs until the caller stops iterating.
    """
    async with contextlib.aclosing(
        _decoded(
            nc,
            stream,
            durable=durable,
            from_start=from_start,
            subject_prefix=subject_prefix,
            batch=batch,
            kv_bucket=kv_bucket,
        )
    ) as messages:
        async for msg, events, last_of_fetch in messages:
            for event in events:
                yield event
            if durable or last_of_fetch:
                await msg.ack()  # the caller has every event of it


async def consume_batches(
    nc: NATS,
    stream: str,
    *,
    durable: str | None = None,
    from_start: bool = False,
    subject_prefix: str | None = None,
    batch: int = 64,
    kv_bucket: str | None = "mxgw-bridge",
) -> AsyncIterator[list[MxEvent]]:
    """As ``consume``, one list per stream message (a gateway batch in the batch layout, one
    event in the items layout), acknowledged when the next is asked for."""
    async with contextlib.aclosing(
        _decoded(
            nc,
            stream,
            durable=durable,
            from_start=from_start,
            subject_prefix=subject_prefix,
            batch=batch,
            kv_bucket=kv_bucket,
        )
    ) as messages:
        async for msg, events, last_of_fetch in messages:
            if events:
                yield events
            if durable or last_of_fetch:
                await msg.ack()
