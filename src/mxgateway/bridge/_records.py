"""What the bridge writes into JetStream: subjects, headers, payloads (docs/bridge.md).

Subjects under the prefix ``P`` (``--subject-prefix``; the stream holds ``P.>``):

==========================  =====================  ==============================================
subject                     ``Mx-Layout``          payload
==========================  =====================  ==============================================
``P.events``                ``batch/1``            an MxEventBatch, the gateway's bytes as the
                                                   codec reads them (``decode_event_batch``)
``P.items.<tag tokens>``    ``item/1``             one MxEvent (``decode_event``); the tag is the
                                                   subject (``_tokens``)
``P.handles.<srv>.<item>``  ``item/1``             an event whose item the bridge cannot name
``P.gaps``                  ``gap/1``              the gateway's ReplayGap sentinel, an MxEvent:
                                                   events ``Mx-First`` .. ``Mx-Last`` are lost
``P.sessions``              ``recovered/1``        JSON of SessionRecovered: the session changed
``P.alarms.<ref tokens>``   ``alarm/1``            JSON of an alarm feed item
``P.deploys``               ``deploy/1``           JSON (protobuf JSON) of a DeployEvent
==========================  =====================  ==============================================

Every message carries ``Nats-Msg-Id`` (JetStream de-duplicates on it), ``Mx-Bridge`` (the
bridge's name), ``Mx-Session`` and ``Mx-Last`` (the gateway session and the last
worker_sequence the stream accounts for once this message is stored: what a restarted bridge
resumes after); event messages also ``Mx-First`` (their first worker_sequence) and batches
``Mx-Count``. ``Mx-Layout`` is ``<kind>/<version>``: a consumer reads the versions it knows and
refuses the others. Ids: ``<session>:<first>-<last>`` (a batch), ``<session>:<sequence>`` (an
item), ``<session>:gap:<after>-<oldest>``, ``<new session>:recovered:<old session>``; alarm and
deploy records ``<run>:alarm:<n>`` / ``<run>:deploy:<n>`` (unique per bridge run).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

import msgspec

from mxgateway import _codec
from mxgateway.bridge._tokens import tag_tokens
from mxgateway.types import MxEvent, SessionRecovered

__all__ = [
    "HDR_BRIDGE",
    "HDR_COUNT",
    "HDR_FIRST",
    "HDR_LAST",
    "HDR_LAYOUT",
    "HDR_SESSION",
    "LAYOUT_VERSION",
    "Outbound",
    "Part",
    "Records",
]

HDR_LAYOUT = "Mx-Layout"
HDR_SESSION = "Mx-Session"
HDR_FIRST = "Mx-First"
HDR_LAST = "Mx-Last"
HDR_COUNT = "Mx-Count"
HDR_BRIDGE = "Mx-Bridge"

LAYOUT_VERSION = 1
KIND_BATCH = f"batch/{LAYOUT_VERSION}"
KIND_ITEM = f"item/{LAYOUT_VERSION}"
KIND_GAP = f"gap/{LAYOUT_VERSION}"
KIND_RECOVERED = f"recovered/{LAYOUT_VERSION}"
KIND_ALARM = f"alarm/{LAYOUT_VERSION}"
KIND_DEPLOY = f"deploy/{LAYOUT_VERSION}"

# Room left in a message for its headers (subject, ids, chain) under the server's max_payload.
_HEADER_ROOM = 4096
_EVENT_KEY = b"\x0a"  # MxEventBatch.events: field 1, length-delimited

_json = msgspec.json.Encoder(order="sorted")
_HEADER_KEY = re.compile(r"[!-9;-~]+")  # printable ASCII but ':'


def header_value(value: str) -> str:
    """A header value as nats-py would send it (stripped, no line breaks)."""
    return value.strip().replace("\r", " ").replace("\n", " ")


def encode_headers(headers: dict[str, str]) -> bytes:
    """``headers`` as the lines of a NATS header block (``Key: value\r\n`` each)."""
    out = bytearray()
    for key, value in headers.items():
        if not _HEADER_KEY.fullmatch(key):
            raise ValueError(f"not a NATS header name: {key!r}")
        out += f"{key}: {header_value(value)}\r\n".encode()
    return bytes(out)


class Outbound:
    """One message for the stream: subject, payload, its own headers (``head``: encoded
    header lines, without the id and chain headers the publisher adds), its ``Nats-Msg-Id``,
    the position it accounts for (session, last worker_sequence) and how many events it
    carries (``count``: 0 for records). Header bytes are built once per message, from
    templates per session in the hot paths: nats-py's own header encoding cost more CPU per
    message than everything else the bridge does for an event in the items layout."""

    __slots__ = ("count", "head", "last", "msg_id", "payload", "session", "size", "subject")

    def __init__(
        self,
        subject: str,
        payload: bytes,
        headers: dict[str, str] | bytes,
        msg_id: str,
        session: str,
        last: int,
        count: int = 0,
    ) -> None:
        self.count = count
        self.subject = subject
        self.payload = payload
        self.head = headers if isinstance(headers, bytes) else encode_headers(headers)
        self.msg_id = msg_id
        self.session = session
        self.last = last
        self.size = len(payload) + 256

    def __repr__(self) -> str:
        return f"<Outbound {self.subject} {self.msg_id} {len(self.payload)} bytes>"

    @property
    def headers(self) -> dict[str, str]:
        """``head`` decoded (for reading; the hot paths never need it)."""
        out: dict[str, str] = {}
        for line in self.head.decode().split("\r\n"):
            if line:
                key, _, value = line.partition(": ")
                out[key] = value
        return out


@dataclass(slots=True)
class Part:
    """Events of one gateway message: ``raw`` its bytes (an MxEventBatch, or one MxEvent when
    ``single``) when they are exactly these events, else None (re-encoded when needed)."""

    events: list[MxEvent]
    raw: bytes | None = None
    single: bool = False


def _varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def split_events(batch: bytes) -> list[bytes]:
    """The encoded MxEvents of a serialized MxEventBatch (its ``events`` entries, as bytes)."""
    decode_varint = _codec.impl.decode_varint
    out: list[bytes] = []
    pos, end = 0, len(batch)
    view = memoryview(batch)
    while pos < end:
        if batch[pos] != 0x0A:
            raise ValueError(f"unexpected field at offset {pos} of an MxEventBatch")
        length, pos = decode_varint(batch, pos + 1)
        out.append(bytes(view[pos : pos + length]))
        pos += length
    return out


class Records:
    """Builds the messages of one bridge (module docstring): ``prefix``, bridge ``name``,
    ``max_payload`` (the server's; larger batches are split)."""

    def __init__(self, prefix: str, name: str, max_payload: int, run: str) -> None:
        self.prefix = prefix
        self.name = name
        self.max_payload = max_payload
        self.run = run
        self._events_subject = prefix + ".events"
        self._items = prefix + ".items."
        self._handles = prefix + ".handles."
        self._serial = 0
        self.batch_limit = max_payload - _HEADER_ROOM
        """The largest batch payload: the server's max_payload less room for headers."""
        self._subjects: dict[str, str] = {}
        self._item_heads: dict[str, bytes] = {}

    # -- events ------------------------------------------------------------------------------

    def batch(self, part: Part) -> Iterator[Outbound]:
        """The batch-layout messages of ``part`` (one, unless over max_payload)."""
        events = part.events
        raw = part.raw
        if raw is not None and part.single:
            raw = _EVENT_KEY + _varint(len(raw)) + raw  # one event framed as a batch
        if raw is None or len(raw) > self.max_payload - _HEADER_ROOM:
            yield from self._batches_of(events)
            return
        yield self._batch_message(raw, events[0], events[-1], len(events))

    def _batches_of(self, events: list[MxEvent]) -> Iterator[Outbound]:
        encode = _codec.impl.encode_event_batch
        limit = self.max_payload - _HEADER_ROOM
        start = 0
        while start < len(events):
            # Grow a chunk while it fits (events are of similar size: estimate, then check).
            count = len(events) - start
            while True:
                chunk = events[start : start + count]
                payload = encode(chunk)
                if len(payload) <= limit or count == 1:
                    break
                count = max(1, count * limit // len(payload) - 1)
            if len(payload) > limit:
                raise ValueError(
                    f"event {chunk[0].worker_sequence} alone is {len(payload)} bytes, over "
                    f"the NATS server's max_payload of {self.max_payload}"
                )
            yield self._batch_message(payload, chunk[0], chunk[-1], len(chunk))
            start += count

    def _batch_message(self, payload: bytes, first: MxEvent, last: MxEvent, n: int) -> Outbound:
        session = first.session_id
        a, b = first.worker_sequence, last.worker_sequence
        return Outbound(
            self._events_subject,
            payload,
            {
                HDR_LAYOUT: KIND_BATCH,
                HDR_BRIDGE: self.name,
                HDR_SESSION: session,
                HDR_FIRST: str(a),
                HDR_LAST: str(b),
                HDR_COUNT: str(n),
            },
            f"{session}:{a}-{b}",
            session,
            b,
            n,
        )

    def items(self, part: Part) -> Iterator[Outbound]:
        """The items-layout messages of ``part``: one per event, on its tag's subject."""
        events = part.events
        raws: list[bytes] | None = None
        if part.raw is not None:
            raws = [part.raw] if part.single else split_events(part.raw)
            if len(raws) != len(events):
                raws = None
        encode = _codec.impl.encode_event
        subjects = self._subjects
        heads = self._item_heads
        for index, event in enumerate(events):
            tag = event.tag
            if tag is not None:
                subject = subjects.get(tag)
                if subject is None:
                    subject = self._items + tag_tokens(tag)
                    if len(subjects) < 500_000:
                        subjects[tag] = subject
            else:
                subject = f"{self._handles}{event.server_handle}.{event.item_handle}"
            session = event.session_id
            head = heads.get(session)
            if head is None:
                head = self._item_head(session)
            sequence = event.worker_sequence
            yield Outbound(
                subject,
                raws[index] if raws is not None else encode(event),
                head % (sequence, sequence),
                f"{session}:{sequence}",
                session,
                sequence,
                1,
            )

    def _item_head(self, session: str) -> bytes:
        head = encode_headers({HDR_LAYOUT: KIND_ITEM, HDR_BRIDGE: self.name, HDR_SESSION: session})
        template = head.replace(b"%", b"%%") + b"Mx-First: %d\r\nMx-Last: %d\r\n"
        if len(self._item_heads) > 1000:
            self._item_heads.clear()
        self._item_heads[session] = template
        return template

    # -- control records ---------------------------------------------------------------------

    def gap(self, event: MxEvent) -> Outbound:
        """The record of a ReplayGap sentinel: the events between are lost."""
        gap = event.replay_gap
        assert gap is not None
        after, oldest = gap.requested_after_sequence, gap.oldest_available_sequence
        session = event.session_id
        return Outbound(
            self.prefix + ".gaps",
            _codec.impl.encode_event(event),
            {
                HDR_LAYOUT: KIND_GAP,
                HDR_BRIDGE: self.name,
                HDR_SESSION: session,
                HDR_FIRST: str(after + 1),
                HDR_LAST: str(oldest - 1),
            },
            f"{session}:gap:{after}-{oldest}",
            session,
            oldest - 1,
        )

    def recovered(self, recovered: SessionRecovered) -> Outbound:
        """The record of a session change: ``old_session_id``'s events after
        ``last_sequence`` are lost; ``new_session_id``'s follow from its first."""
        new = recovered.new_session_id
        return Outbound(
            self.prefix + ".sessions",
            _json.encode(recovered),
            {
                HDR_LAYOUT: KIND_RECOVERED,
                HDR_BRIDGE: self.name,
                HDR_SESSION: new,
                HDR_FIRST: "0",
                HDR_LAST: "0",
            },
            f"{new}:recovered:{recovered.old_session_id}",
            new,
            0,
        )

    def side(self, kind: str, subject: str, payload: bytes, position: tuple[str, int]) -> Outbound:
        """An alarm or deploy record, at the current gateway ``position``."""
        self._serial += 1
        session, last = position
        layout = KIND_ALARM if kind == "alarm" else KIND_DEPLOY
        return Outbound(
            subject,
            payload,
            {
                HDR_LAYOUT: layout,
                HDR_BRIDGE: self.name,
                HDR_SESSION: session,
                HDR_LAST: str(last),
            },
            f"{self.run}:{kind}:{self._serial}",
            session,
            last,
        )
