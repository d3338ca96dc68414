"""Pipelined JetStream publishing that never loses, doubles or reorders a message.

Every message carries a ``Nats-Msg-Id`` and names its predecessor: the first message after a
(re)synchronisation carries ``Nats-Expected-Last-Sequence`` (the stream's last sequence, read
just before), every later one ``Nats-Expected-Last-Msg-Id`` (the id of the message sent before
it). JetStream stores a message only when its predecessor is the stream's last message, so what
the stream holds is always an unbroken chain, in order, whatever happens on the way:

- a message lost in flight (a cut connection, a cluster leader change) makes every later one
  fail its check instead of leaving a hole;
- an acknowledgement of message *n* therefore means every message before *n* is stored too, so
  only some messages ask for one (every ``ack_every``-th and the last of each burst), which is
  what makes one message per event affordable;
- a republished message that JetStream already has is dropped by its de-duplication
  (``Nats-Msg-Id``);
- a second writer (a standby that took over, a bridge restarted while the old one still runs)
  breaks the chain of the other, which finds the stream's last message is not one of its own
  and stops (``BridgeFencedError``): a fence without clocks.

Up to ``max_pending`` messages (and ``max_pending_bytes``) are unacknowledged at a time; when
the window is full ``put`` waits, so the caller stops reading its source (backpressure). On any
failure (an error reply, no acknowledgement within ``ack_timeout_s``, a disconnect) the
publisher waits for NATS, reads the stream's last message, drops from its window what is
stored, and sends the rest again. Nothing is reported stored (``on_stored``) before JetStream
acknowledged it.
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from mxgateway._tasks import cancel_and_wait
from mxgateway.bridge._errors import BridgeError, BridgeFencedError
from mxgateway.bridge._records import HDR_BRIDGE, HDR_LAST, HDR_SESSION, Outbound

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription
    from nats.js.client import JetStreamContext

__all__ = ["ChainPublisher", "StreamTail", "read_tail"]

logger = logging.getLogger("mxgateway.bridge")

MSG_ID = "Nats-Msg-Id"
EXPECTED_LAST_MSG_ID = "Nats-Expected-Last-Msg-Id"
EXPECTED_LAST_SEQUENCE = "Nats-Expected-Last-Sequence"
MSG_ID_B = b"Nats-Msg-Id: "
EXPECTED_LAST_MSG_ID_B = b"Nats-Expected-Last-Msg-Id: "
EXPECTED_LAST_SEQUENCE_B = b"Nats-Expected-Last-Sequence"
_HEADER_LINE = b"NATS/1.0\r\n"
# nats-py internals the raw publish path uses (2.x); without them, its public publish.
_RAW_API = ("_send_command", "_flush_pending", "_flush_queue", "_pending_data_size")


def _parse_head(head: bytes) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in head.decode().split("\r\n")[1:]:
        if line:
            key, _, value = line.partition(": ")
            out[key] = value
    return out


# How often the window is checked for overdue acknowledgements.
_CHECK_EVERY_S = 0.2
# Backoff while JetStream does not answer a resynchronisation.
_RETRY_MIN_S, _RETRY_MAX_S = 0.1, 2.0
# How long an API request (stream info, message get) may take before it is tried again.
_API_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class StreamTail:
    """The stream's last message as a resynchronisation reads it: its stream sequence (0:
    the stream is empty), its ``Nats-Msg-Id`` and headers (None when it has none or it was
    deleted, e.g. by ``max_age``)."""

    sequence: int
    msg_id: str | None
    headers: dict[str, str] | None

    @property
    def bridge(self) -> str | None:
        """The bridge that wrote it (its ``Mx-Bridge`` header)."""
        return None if self.headers is None else self.headers.get(HDR_BRIDGE)

    @property
    def position(self) -> tuple[str, int] | None:
        """The gateway session and last worker_sequence it accounts for."""
        if self.headers is None:
            return None
        session = self.headers.get(HDR_SESSION)
        last = self.headers.get(HDR_LAST)
        if session is None or last is None or not last.isdigit():
            return None
        return session, int(last)


def _temporary(error: Exception) -> bool:
    """Errors a resynchronisation waits out (JetStream away, electing a leader, slow)."""
    from nats.errors import Error as NatsError
    from nats.js.errors import APIError, NotFoundError

    if isinstance(error, NotFoundError):
        return False
    if isinstance(error, APIError):
        if error.err_code == 10039:  # JetStream is not enabled on this server: no wait cures it
            return False
        return error.code in (None, 408, 500, 503) or error.err_code in (10008, 10077)
    return isinstance(error, NatsError | TimeoutError | OSError)


async def read_tail(js: JetStreamContext, stream: str) -> StreamTail:
    """The last message of ``stream`` (raises what stream info raises)."""
    from nats.js.errors import NotFoundError

    info = await js.stream_info(stream)
    last = info.state.last_seq
    if not last:
        return StreamTail(0, None, None)
    try:
        message = await js.get_msg(stream, last)
    except NotFoundError:
        return StreamTail(last, None, None)  # deleted (max_age, max_msgs): no id to chain on
    headers = dict(message.headers or {})
    return StreamTail(last, headers.get(MSG_ID), headers)


class Gate(Protocol):
    """What may hold sends back: the lease (``_state.Lease``), which must be fresh."""

    def fresh(self) -> bool: ...
    async def wait_fresh(self) -> None: ...


class _Entry:
    __slots__ = ("asked", "head", "message", "sent_at", "serial")

    def __init__(self, message: Outbound, serial: int) -> None:
        self.message = message
        self.serial = serial
        self.head = b""  # the header block as last sent (with its id and chain headers)
        self.asked = False  # the last copy sent asked for an acknowledgement
        self.sent_at = 0.0


class ChainPublisher:
    """Publish ``Outbound`` messages into one stream as an unbroken chain (module docstring).

    ``start(tail)`` begins after ``tail`` (what ``read_tail`` gave); ``put`` sends one message,
    waiting while the window is full; ``drain`` waits until everything sent is stored.
    ``on_stored`` is called, in order, for each run of messages JetStream stored: with its
    last message, the events the run carried and its messages that carry events. ``bridge``
    names this writer: a stream tail written by another bridge raises BridgeFencedError.
    ``gate`` (the lease) holds every send until it is fresh.
    """

    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        stream: str,
        *,
        bridge: str,
        max_pending: int = 512,
        max_pending_bytes: int = 32 * 1024 * 1024,
        ack_every: int = 64,
        ack_timeout_s: float = 10.0,
        on_stored: Callable[[Outbound, int, int], None] | None = None,
        gate: Gate | None = None,
    ) -> None:
        if not 1 <= max_pending <= 1_000_000:
            raise ValueError("max_pending must be in 1 .. 1000000")
        if not 1 <= ack_every <= max_pending:
            raise ValueError("ack_every must be in 1 .. max_pending")
        if not 0 < ack_timeout_s <= 3600:
            raise ValueError("ack_timeout_s must be in (0, 3600]")
        if max_pending_bytes < 1024:
            raise ValueError("max_pending_bytes must be at least 1024")
        self._nc = nc
        self._raw = all(hasattr(nc, name) for name in _RAW_API)
        from nats import errors

        self._errors = errors
        self._js = js
        self._stream = stream
        self._bridge = bridge
        self._max_pending = max_pending
        self._max_bytes = max_pending_bytes
        self._ack_every = ack_every
        self._ack_timeout_s = ack_timeout_s
        self._on_stored = on_stored
        self._gate = gate
        self._window: collections.deque[_Entry] = collections.deque()
        self._window_bytes = 0
        self._serial = 0
        self._epoch = 0
        self._since_ask = 0
        # The stored message the window follows: its stream sequence and id.
        self._tip_sequence = 0
        self._tip_id: str | None = None
        self._prev_id: str | None = None  # the id the next send names as its predecessor
        self._first = True  # the next send is the first since a (re)synchronisation
        self._broken: str | None = None
        self._fenced: BaseException | None = None
        self._changed = asyncio.Event()
        # Sends and resynchronisations in order, whichever task puts (events, alarms, deploys).
        self._lock = asyncio.Lock()
        self._inbox = ""
        self._sub: Subscription | None = None
        self._checker: asyncio.Task[None] | None = None
        self.resyncs = 0
        """How many times the publisher resynchronised with the stream."""
        self.published = 0
        """Messages sent (copies sent again after a resynchronisation included)."""
        self.stored = 0
        """Messages known stored."""

    # -- life --------------------------------------------------------------------------------

    async def start(self, tail: StreamTail) -> None:
        """Begin after ``tail``, the stream's last message (``read_tail``)."""
        if tail.headers is not None and tail.bridge not in (None, self._bridge):
            raise BridgeError(
                f"stream {self._stream} is fed by bridge {tail.bridge!r}, not "
                f"{self._bridge!r}: give each bridge its own stream"
            )
        self._tip_sequence = tail.sequence
        self._tip_id = tail.msg_id
        self._prev_id = tail.msg_id
        self._first = True
        self._inbox = self._nc.new_inbox()
        self._sub = await self._nc.subscribe(self._inbox + ".*", cb=self._on_reply)
        self._checker = asyncio.create_task(self._check_overdue(), name="mxgateway-bridge-acks")

    async def close(self) -> None:
        """Stop listening for acknowledgements (what is unacknowledged stays so)."""
        if self._checker is not None:
            await cancel_and_wait([self._checker])
            self._checker = None
        if self._sub is not None:
            sub, self._sub = self._sub, None
            try:
                await sub.unsubscribe()
            except Exception as error:  # a closed connection: nothing to unsubscribe
                logger.debug("unsubscribing the acknowledgements failed: %r", error)

    @property
    def pending(self) -> int:
        """Messages sent and not yet known stored."""
        return len(self._window)

    @property
    def tip(self) -> tuple[int, str | None]:
        """The stream sequence and id of the last message known stored."""
        return self._tip_sequence, self._tip_id

    def disconnected(self) -> None:
        """NATS went away: what is in flight is uncertain until a resynchronisation."""
        if self._window:
            self._break("NATS disconnected")

    # -- sending -----------------------------------------------------------------------------

    async def put(self, message: Outbound, *, flush: bool = True) -> None:
        """Send ``message`` after everything put before it; ``flush`` asks JetStream to
        acknowledge it now (the last message of a burst), otherwise every ``ack_every``-th
        message asks. Waits while the window is full or the stream must be resynchronised."""
        while True:
            self._raise_fenced()
            if self._broken is not None:
                async with self._lock:
                    if self._broken is not None:
                        await self._resync()
                continue
            if len(self._window) < self._max_pending and (
                self._window_bytes < self._max_bytes or not self._window
            ):
                break
            self._changed.clear()
            await self._changed.wait()
        async with self._lock:
            self._serial += 1
            entry = _Entry(message, self._serial)
            self._window.append(entry)
            self._window_bytes += message.size
            self._since_ask += 1
            await self._send(entry, flush or self._since_ask >= self._ack_every)

    async def put_many(self, messages: list[Outbound]) -> None:
        """``put`` each of ``messages`` in order, the last asking for an acknowledgement;
        the window is taken as many messages at a time as it has room for."""
        index, count = 0, len(messages)
        window = self._window
        while index < count:
            while True:
                self._raise_fenced()
                if self._broken is not None:
                    async with self._lock:
                        if self._broken is not None:
                            await self._resync()
                    continue
                if len(window) < self._max_pending and (
                    self._window_bytes < self._max_bytes or not window
                ):
                    break
                self._changed.clear()
                await self._changed.wait()
            async with self._lock:
                room = self._max_pending - len(window)
                end = min(count, index + max(room, 1))
                ack_every = self._ack_every
                while index < end and self._broken is None:
                    message = messages[index]
                    if window and self._window_bytes >= self._max_bytes:
                        break
                    index += 1
                    self._serial += 1
                    entry = _Entry(message, self._serial)
                    window.append(entry)
                    self._window_bytes += message.size
                    self._since_ask += 1
                    await self._send(entry, index == count or self._since_ask >= ack_every)

    async def _send(self, entry: _Entry, ask: bool) -> None:
        message = entry.message
        msg_id = message.msg_id
        if self._first or self._prev_id is None:
            chain = b"%s: %d\r\n" % (EXPECTED_LAST_SEQUENCE_B, self._tip_sequence)
            self._first = False
            ask = True  # the first of a chain says at once whether the chain holds
        else:
            chain = EXPECTED_LAST_MSG_ID_B + self._prev_id.encode() + b"\r\n"
        self._prev_id = msg_id
        entry.head = b"".join(
            (_HEADER_LINE, message.head, MSG_ID_B, msg_id.encode(), b"\r\n", chain, b"\r\n")
        )
        await self._publish(entry, ask)

    async def _publish(self, entry: _Entry, ask: bool) -> None:
        gate = self._gate
        if gate is not None and not gate.fresh():
            await gate.wait_fresh()  # a lease not renewed lately may be someone else's now
        reply = ""
        if ask:
            reply = f"{self._inbox}.{self._epoch}_{entry.serial}"
            entry.asked = True
            entry.sent_at = time.monotonic()
            self._since_ask = 0
        else:
            entry.asked = False
        self.published += 1
        message = entry.message
        await self._send_hpub(message.subject, reply, entry.head, message.payload)

    async def _send_hpub(self, subject: str, reply: str, head: bytes, payload: bytes) -> None:
        """What nats-py's ``publish`` does for a message with headers, the header block
        already encoded (nats-py validates and encodes a header dict on every message)."""
        nc: Any = self._nc
        if not self._raw:
            await nc.publish(subject, payload, reply=reply, headers=_parse_head(head))
            return
        errors = self._errors
        if nc.is_closed:
            raise errors.ConnectionClosedError
        if nc.is_draining_pubs:
            raise errors.ConnectionDrainingError
        size = len(payload)
        if not nc.is_connected and (
            nc._max_pending_size <= 0 or size + nc._pending_data_size > nc._max_pending_size
        ):
            raise errors.OutboundBufferLimitError
        if size > nc._max_payload:
            raise errors.MaxPayloadError
        hlen = len(head)
        command = b"HPUB %s %s %d %d\r\n%s%s\r\n" % (
            subject.encode(),
            reply.encode(),
            hlen,
            hlen + size,
            head,
            payload,
        )
        stats = nc.stats
        stats["out_msgs"] += 1
        stats["out_bytes"] += size
        await nc._send_command(command)
        flush_queue = nc._flush_queue
        if flush_queue is not None and flush_queue.empty():
            await nc._flush_pending()

    async def drain(self, timeout_s: float) -> bool:
        """Wait (at most ``timeout_s``) until every message sent is stored; True if so."""
        deadline = time.monotonic() + timeout_s
        async with self._lock:
            if self._window and not self._window[-1].asked and self._broken is None:
                # The last copy sent did not ask: send it again, exactly as it was (same id,
                # same predecessor), asking; JetStream stores it or acknowledges a duplicate.
                await self._publish(self._window[-1], True)
        while self._window:
            self._raise_fenced()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            if self._broken is not None:
                try:
                    async with asyncio.timeout(remaining), self._lock:
                        if self._broken is not None:
                            await self._resync()
                except TimeoutError:
                    return False
                continue
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.5))
            except TimeoutError:
                continue
        return True

    # -- acknowledgements --------------------------------------------------------------------

    async def _on_reply(self, msg: Msg) -> None:
        token = msg.subject[len(self._inbox) + 1 :]
        epoch_text, _, serial_text = token.partition("_")
        try:
            epoch, serial = int(epoch_text), int(serial_text)
        except ValueError:
            return
        if msg.headers and msg.headers.get("Status") == "503":
            if epoch == self._epoch:
                self._break("JetStream did not answer (no responders)")
            return
        try:
            reply: dict[str, Any] = json.loads(msg.data)
        except ValueError:
            if epoch == self._epoch:
                self._break("JetStream answered with something that is not JSON")
            return
        error = reply.get("error")
        if error is not None:
            # An old copy's refusal means nothing now; a current one breaks the chain.
            if epoch == self._epoch:
                self._break(f"JetStream refused a message: {error.get('description', error)}")
            return
        sequence = reply.get("seq")
        if not isinstance(sequence, int):
            return
        # Stored (or a duplicate of a stored one): it and everything before it are stored,
        # whichever epoch sent this copy.
        self._stored_through(serial, sequence)

    def _stored_through(self, serial: int, sequence: int) -> None:
        window = self._window
        last: _Entry | None = None
        events = messages = 0
        while window and window[0].serial <= serial:
            last = window.popleft()
            message = last.message
            self._window_bytes -= message.size
            self.stored += 1
            if message.count:
                events += message.count
                messages += 1
        if last is None:
            return
        if sequence > self._tip_sequence:
            self._tip_sequence = sequence
        self._tip_id = last.message.msg_id
        if self._on_stored is not None:
            self._on_stored(last.message, events, messages)
        self._changed.set()

    def _break(self, reason: str) -> None:
        if self._broken is None:
            logger.warning("JetStream publishing: %s; resynchronising with the stream", reason)
            self._broken = reason
        self._changed.set()

    def _raise_fenced(self) -> None:
        if self._fenced is not None:
            raise self._fenced

    async def _check_overdue(self) -> None:
        while True:
            await asyncio.sleep(_CHECK_EVERY_S)
            if self._broken is not None or not self._window:
                continue
            now = time.monotonic()
            for entry in self._window:
                if entry.asked:
                    if now - entry.sent_at > self._ack_timeout_s:
                        self._break(f"no acknowledgement within {self._ack_timeout_s:g} s")
                    break

    # -- resynchronisation -------------------------------------------------------------------

    async def _resync(self) -> None:
        """Find what of the window the stream holds, drop it, send the rest again."""
        self.resyncs += 1
        self._epoch += 1
        delay = _RETRY_MIN_S
        reported = time.monotonic()
        while True:
            try:
                if not self._nc.is_connected:
                    raise ConnectionError("NATS is not connected")
                try:
                    await self._nc.flush(timeout=int(_API_TIMEOUT_S))
                except Exception as error:
                    raise ConnectionError(f"NATS flush: {error!r}") from None
                tail = await asyncio.wait_for(read_tail(self._js, self._stream), _API_TIMEOUT_S * 2)
                break
            except Exception as error:
                if not isinstance(error, ConnectionError) and not _temporary(error):
                    raise BridgeError(
                        f"cannot read the tail of stream {self._stream}: {error!r}"
                    ) from error
                now = time.monotonic()
                if now - reported > 10:
                    logger.warning("still waiting for JetStream (%s)", error or type(error))
                    reported = now
                await asyncio.sleep(delay)
                delay = min(delay * 2, _RETRY_MAX_S)
        self._adopt(tail)
        self._broken = None
        self._first = True
        self._prev_id = self._tip_id
        self._since_ask = 0
        for entry in list(self._window):
            entry.asked = False
            await self._send(entry, entry is self._window[-1])
        self._changed.set()

    def _adopt(self, tail: StreamTail) -> None:
        """Drop from the window what ``tail`` shows stored (or fence, see the module)."""
        if tail.sequence == self._tip_sequence:
            return  # nothing stored since the tip
        if tail.sequence < self._tip_sequence:
            self._fence(
                f"stream {self._stream} went back from sequence {self._tip_sequence} to "
                f"{tail.sequence} (purged or recreated)"
            )
        for entry in self._window:
            if entry.message.msg_id == tail.msg_id:
                self._stored_through(entry.serial, tail.sequence)
                self._tip_sequence = tail.sequence
                return
        writer = tail.bridge
        who = f"bridge {writer!r}" if writer else "another writer"
        self._fence(
            f"{who} wrote to stream {self._stream} after this bridge (sequence "
            f"{tail.sequence}): another bridge of this name took over"
        )

    def _fence(self, reason: str) -> None:
        self._fenced = BridgeFencedError(reason)
        raise self._fenced
