"""Tags by name: ``GatewayClient.read``, ``write`` and ``subscribe`` on a session kept for you.

Built only from the handles level (``Session``): one session per client, opened on first use
with ``recover=True`` (so it outlives a gateway restart), registered once, closed with the
client. A tag gets an item handle the first time it is used and keeps it; writing and
subscribing advise it (MXAccess needs an advised item to write). One event stream (the pump)
runs while anything subscribes, and hands each change to the subscriptions that asked for its
tag, and each write outcome to the write that waits for it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import AsyncIterator, Iterable
from typing import TYPE_CHECKING, Any

from mxgateway._errors import MxGatewayClientClosedError
from mxgateway._tasks import cancel_and_wait
from mxgateway.types import (
    MxDataType,
    MxEvent,
    MxEventFamily,
    ReadResult,
    TagChange,
    TagValue,
    WriteOutcome,
)

if TYPE_CHECKING:
    from mxgateway._client import GatewayClient
    from mxgateway._session import Session

__all__ = ["TagSession"]

logger = logging.getLogger(__name__)

_NAME = "mxgateway tags"
# Changes a subscription may hold unread before the pump waits for it (the gateway then holds
# the rest, as for any slow reader).
_QUEUE_SIZE = 10_000
_ADVISE_CHUNK = 5_000


def _tags(tags: str | Iterable[str]) -> list[str]:
    if isinstance(tags, str):
        return [tags]
    listed = list(tags)
    for tag in listed:
        if not isinstance(tag, str) or not tag.strip():
            raise ValueError(f"a tag must be a non-empty string, not {tag!r}")
    return listed


def _event_error(event: MxEvent) -> str | None:
    for status in event.statuses:
        if not status.ok:
            return status.diagnostic_text or "MXAccess reported a failure"
    if event.hresult is not None and event.hresult < 0:
        return f"hresult 0x{event.hresult & 0xFFFFFFFF:08X}"
    return None


class _Subscription:
    __slots__ = ("handles", "queue")

    def __init__(self, handles: set[int]) -> None:
        self.handles = handles
        # None: the pump failed (TagSession.failure says why).
        self.queue: asyncio.Queue[TagChange | None] = asyncio.Queue(_QUEUE_SIZE)


class TagSession:
    """The session behind a client's tag-level calls (one per client, created on first use)."""

    def __init__(self, client: GatewayClient) -> None:
        self._client = client
        self._session: Session | None = None
        self._server = 0
        self._lock = asyncio.Lock()
        self._opening = asyncio.Lock()
        self._handles: dict[str, int] = {}
        self._tag_of: dict[int, str] = {}
        self._advised: set[int] = set()
        self._subscriptions: set[_Subscription] = set()
        self._pump: asyncio.Task[None] | None = None
        self._failure: BaseException | None = None
        self._closed = False

    # -- the session ---------------------------------------------------------------------------

    async def _open(self) -> tuple[Session, int]:
        if self._closed:
            raise MxGatewayClientClosedError("the client is closed")
        if self._session is None:
            # One session for concurrent first calls (a second would leak on the gateway).
            async with self._opening:
                if self._session is None:
                    session = await self._client.open_session(_NAME, recover=True)
                    try:
                        self._server = await session.register(_NAME)
                    except BaseException:
                        await _close_quietly(session)
                        raise
                    self._session = session
        return self._session, self._server

    async def close(self) -> None:
        """Stop the pump and close the session (best effort: the client is closing)."""
        self._closed = True
        pump, self._pump = self._pump, None
        if pump is not None:
            await cancel_and_wait([pump])
        session, self._session = self._session, None
        if session is not None:
            await _close_quietly(session)

    async def _resolve(
        self, tags: list[str], *, advise: bool, into: _Subscription | None = None
    ) -> dict[str, int | str]:
        """Item handles for ``tags`` (adding and advising what is new); a tag MXAccess refused
        maps to the reason (a str). The handles go ``into`` a subscription before they are
        advised, so the first value an advise brings is not missed."""
        session, server = await self._open()
        async with self._lock:
            out: dict[str, int | str] = {}
            new = list(dict.fromkeys(t for t in tags if t not in self._handles))
            for start in range(0, len(new), _ADVISE_CHUNK):
                chunk = new[start : start + _ADVISE_CHUNK]
                for result in await session.add_item_bulk(server, chunk):
                    if result.was_successful:
                        self._handles[result.tag_address] = result.item_handle
                        self._tag_of[result.item_handle] = result.tag_address
                    else:
                        out[result.tag_address] = result.error_message or "AddItem failed"
            if into is not None:
                into.handles.update(self._handles[t] for t in tags if t in self._handles)
            if advise:
                pending = [
                    self._handles[t]
                    for t in dict.fromkeys(tags)
                    if t in self._handles and self._handles[t] not in self._advised
                ]
                for start in range(0, len(pending), _ADVISE_CHUNK):
                    handles = pending[start : start + _ADVISE_CHUNK]
                    for result in await session.advise_item_bulk(server, handles):
                        if result.was_successful:
                            self._advised.add(result.item_handle)
                        else:
                            tag = self._tag_of.get(result.item_handle, "")
                            out[tag] = result.error_message or "Advise failed"
            for tag in tags:
                if tag not in out and tag in self._handles:
                    out[tag] = self._handles[tag]
            return out

    # -- read ----------------------------------------------------------------------------------

    async def read(
        self, tags: str | Iterable[str], *, timeout: float | None
    ) -> dict[str, TagValue]:
        """See ``GatewayClient.read``."""
        listed = _tags(tags)
        session, server = await self._open()
        values: dict[str, TagValue] = {}
        for start in range(0, len(listed), _ADVISE_CHUNK):
            chunk = listed[start : start + _ADVISE_CHUNK]
            for result in await session.read_bulk(server, chunk, timeout=timeout):
                values[result.tag_address] = _tag_value(result)
        return values

    # -- write ---------------------------------------------------------------------------------

    async def write(
        self,
        tag: str,
        value: Any,
        *,
        data_type: MxDataType | int | None,
        confirm: bool,
        timeout: float | None,
    ) -> WriteOutcome | None:
        """See ``GatewayClient.write``."""
        if not isinstance(tag, str) or not tag.strip():
            raise ValueError(f"tag must be a non-empty string, not {tag!r}")
        from mxgateway._errors import MxAccessError

        resolved = (await self._resolve([tag], advise=True))[tag]
        if isinstance(resolved, str):
            raise MxAccessError(f"write to {tag} refused: {resolved}")
        session, server = await self._open()
        return await session.write(
            server, resolved, value, data_type=data_type, confirm=confirm, timeout=timeout
        )

    # -- subscribe -----------------------------------------------------------------------------

    async def subscribe(
        self, tags: str | Iterable[str], *, duration: float | None
    ) -> AsyncIterator[TagChange]:
        """See ``GatewayClient.subscribe``."""
        listed = _tags(tags)
        if duration is not None and not (math.isfinite(duration) and duration > 0):
            raise ValueError(f"duration must be positive seconds or None, not {duration!r}")
        await self._open()
        subscription = _Subscription(set())
        self._subscriptions.add(subscription)
        try:
            self._ensure_pump()  # reading before advising: the first values are not missed
            # A tag advised before (by a write, or another subscription) brings no first value
            # of its own: it is read instead. A new advise brings one as an event.
            advised_before = {t for t in listed if self._handles.get(t) in self._advised}
            resolved = await self._resolve(listed, advise=True, into=subscription)
            for tag, handle in resolved.items():
                if isinstance(handle, str):
                    subscription.queue.put_nowait(_error_change(tag, handle))
            await self._seed(subscription, [t for t in resolved if t in advised_before])
            async with asyncio.timeout(duration):
                while True:
                    change = await subscription.queue.get()
                    if change is None:
                        assert self._failure is not None
                        raise self._failure
                    yield change
        except TimeoutError:
            if duration is None:
                raise
        finally:
            self._subscriptions.discard(subscription)
            pump = self._pump
            if not self._subscriptions and pump is not None:
                self._pump = None
                await cancel_and_wait([pump])

    async def _seed(self, subscription: _Subscription, tags: list[str]) -> None:
        """The current value of ``tags``, advised before this subscription."""
        if tags:
            for tag, value in (await self.read(tags, timeout=None)).items():
                subscription.queue.put_nowait(
                    TagChange(
                        tag,
                        value.value,
                        value.data_type,
                        value.quality,
                        value.timestamp_ns,
                        value.error,
                        None,
                    )
                )

    def _ensure_pump(self) -> None:
        if self._pump is None or self._pump.done():
            self._failure = None
            self._pump = asyncio.get_running_loop().create_task(
                self._run_pump(), name="mxgateway-tags-pump"
            )

    async def _run_pump(self) -> None:
        session = self._session
        assert session is not None
        try:
            async with contextlib.aclosing(session.stream_event_batches()) as lists:
                async for events in lists:
                    for event in events:
                        await self._dispatch(event)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # Every subscription raises it (the stream resumed and recovered what it could).
            self._failure = exc
            for subscription in list(self._subscriptions):
                with contextlib.suppress(asyncio.QueueFull):
                    subscription.queue.put_nowait(None)

    async def _dispatch(self, event: MxEvent) -> None:
        if event.replay_gap is not None or event.session_recovered is not None:
            notice = _notice(event)
            for subscription in list(self._subscriptions):
                await subscription.queue.put(notice)
            return
        if event.family not in (
            MxEventFamily.ON_DATA_CHANGE,
            MxEventFamily.ON_BUFFERED_DATA_CHANGE,
        ):
            return
        handle = event.item_handle
        change: TagChange | None = None
        for subscription in list(self._subscriptions):
            if handle in subscription.handles:
                if change is None:
                    change = TagChange(
                        self._tag_of.get(handle, ""),
                        event.value,
                        event.data_type,
                        event.quality,
                        event.source_timestamp_ns,
                        _event_error(event),
                        event,
                    )
                await subscription.queue.put(change)


def _error_change(tag: str, error: str) -> TagChange:
    return TagChange(tag, None, MxDataType.UNSPECIFIED, 0, None, error, None)


def _notice(event: MxEvent) -> TagChange:
    if event.session_recovered is not None:
        recovered = event.session_recovered
        text = f"events lost: the gateway lost the session; recovered as {recovered.new_session_id}"
    else:
        gap = event.replay_gap
        assert gap is not None
        text = (
            f"events lost: sequences {gap.requested_after_sequence + 1} to "
            f"{gap.oldest_available_sequence - 1} were older than the gateway kept"
        )
    return TagChange("*", None, MxDataType.UNSPECIFIED, 0, None, text, event)


def _tag_value(result: ReadResult) -> TagValue:
    error = None
    if not result.was_successful:
        error = result.error_message or f"hresult 0x{result.hresult & 0xFFFFFFFF:08X}"
    return TagValue(
        tag=result.tag_address,
        value=result.value,
        data_type=result.data_type,
        quality=result.quality,
        timestamp_ns=result.source_timestamp_ns,
        error=error,
        cached=result.was_cached,
        statuses=result.statuses,
    )


async def _close_quietly(session: Session) -> None:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(5.0):
            await session.close()
