"""Receivers: where the raw messages of one event-stream call come from.

Both receivers give the stream core the same thing: an async iterator of lists of raw message
bytes (no protobuf objects), ending normally when the gateway ends the call and raising the
call's ``grpc.RpcError`` when it fails; ``aclose()`` cancels the call. The core decodes,
resumes and de-duplicates the same way whichever receiver ran.

- ``aio_messages``: the call on the client's grpc.aio channel, one message per list. grpc.aio
  costs tens of microseconds of CPU per message, which does not matter when a message carries
  a thousand events (StreamEventBatches).
- ``ThreadReceiver``: the call on a sync channel of its own, iterated in a daemon thread with
  gRPC's single-threaded unary-stream option; messages reach the loop in lists, one wake-up per
  drain. Several times cheaper per message: the receiver for StreamEvents, the only event rpc of
  the genuine gateway. While ``max_pending`` messages wait, the thread stops reading, so a slow
  consumer holds the gateway back by HTTP/2 flow control instead of filling memory. The thread
  and its channel end with the call, always before ``aclose()`` returns.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import threading
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import grpc

__all__ = ["MAX_PENDING_MESSAGES", "CallError", "ThreadReceiver", "aio_messages"]

logger = logging.getLogger(__name__)

# Messages read ahead of the consumer before the reader thread stops reading. Enough to keep
# the thread busy while the loop decodes a drain; small enough to be a few MB at most.
MAX_PENDING_MESSAGES = 4096
# How long the first message of a drain may wait for others, and how many wake the loop at once.
_COALESCE_S = 0.001
_WAKE_BATCH = 64
# A reader waiting for room looks again this often (a notify it missed costs no more).
_ROOM_CHECK_S = 0.05
# How long aclose() waits for the reader thread once its call is cancelled (it is woken in
# well under a millisecond; this is only a bound for a wedged gRPC).
_JOIN_TIMEOUT_S = 5.0


async def aio_messages(
    multicallable: grpc.aio.UnaryStreamMultiCallable[Any, bytes],
    request: Any,
    *,
    metadata: Sequence[tuple[str, str]],
    timeout: float | None = None,
) -> AsyncIterator[list[bytes]]:
    """The messages of a grpc.aio unary-stream call, one per list; the call is cancelled when
    the iterator is closed."""
    call = multicallable(request, metadata=metadata, timeout=timeout)
    try:
        async for message in call:
            yield [message]
    finally:
        call.cancel()


class ThreadReceiver:
    """One unary-stream call read by a dedicated thread on a sync channel of its own.

    ``open_channel`` makes the channel (in the reader thread; the receiver closes it when the
    call ends). Iterate with ``async for messages in receiver``; always ``await aclose()``.
    """

    def __init__(
        self,
        open_channel: Callable[[], grpc.Channel],
        method: str,
        request: bytes,
        *,
        metadata: Sequence[tuple[str, str]],
        timeout: float | None = None,
        max_pending: int = MAX_PENDING_MESSAGES,
        name: str = "mxgateway-events",
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._open_channel = open_channel
        self._method = method
        self._request = request
        self._metadata = tuple(metadata)
        self._timeout = timeout
        self._max_pending = max_pending
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)
        # The hand-off takes no lock per message: deque appends and pops are atomic, and the
        # waiter is set before the queue is checked again (see __anext__), so no wake-up is
        # lost. The lock guards only the channel, the end and waiting for room.
        self._messages: collections.deque[bytes] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._want_room = False
        self._finished = False
        self._error: BaseException | None = None
        self._closed = False
        self._channel: grpc.Channel | None = None
        self._ended: asyncio.Future[None] = self._loop.create_future()
        self._thread = threading.Thread(target=self._read, name=name, daemon=True)
        self._thread.start()

    # -- the reader thread ---------------------------------------------------------------------

    def _read(self) -> None:
        error: BaseException | None = None
        channel: grpc.Channel | None = None
        try:
            channel = self._open_channel()
            with self._lock:
                if self._closed:
                    return
                self._channel = channel
            multicallable: Any = channel.unary_stream(
                self._method, request_serializer=None, response_deserializer=None
            )
            call = multicallable(self._request, metadata=self._metadata, timeout=self._timeout)
            try:
                # Once closed, read on to the call's end (CANCELLED, moments after the channel
                # was closed): a single-threaded call left with a receive pending keeps its
                # connection open.
                for message in call:
                    self._offer(message)
            finally:
                _finish(call)
        except grpc.RpcError as exc:
            # A sync call's error is the call itself: keeping it would keep the connection.
            error = CallError.of(exc)
        except BaseException as exc:  # handed to the consumer, not lost in this thread
            error = exc
        finally:
            if channel is not None:
                channel.close()
            with self._lock:
                self._finished = True
                if not self._closed:
                    self._error = error
                waiter, self._waiter = self._waiter, None
            # A closed loop (RuntimeError) has nobody waiting any more.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._thread_ended, waiter)

    def _offer(self, message: bytes) -> None:
        """Queue ``message`` for the loop (waiting for room first); drop it once closed."""
        messages = self._messages
        if len(messages) >= self._max_pending:
            with self._room:
                while len(messages) >= self._max_pending and not self._closed:
                    self._want_room = True
                    self._room.wait(_ROOM_CHECK_S)
        if self._closed:
            return
        messages.append(message)
        waiter = self._waiter
        if waiter is None:
            return
        # Coalesce: the first message after the loop began waiting wakes it within
        # _COALESCE_S; a full batch wakes it at once. One wake-up per ~_WAKE_BATCH messages
        # at high rates instead of one per message (each costs a self-pipe write and a loop
        # turn), at most _COALESCE_S later at low ones.
        queued = len(messages)
        if queued >= _WAKE_BATCH:
            self._waiter = None
            self._loop.call_soon_threadsafe(_wake, waiter)
        elif queued == 1:
            self._loop.call_soon_threadsafe(self._wake_soon, waiter)

    def _wake_soon(self, waiter: asyncio.Future[None]) -> None:
        if not waiter.done():
            self._loop.call_later(_COALESCE_S, _wake, waiter)

    def _thread_ended(self, waiter: asyncio.Future[None] | None) -> None:
        if not self._ended.done():
            self._ended.set_result(None)
        if waiter is not None:
            _wake(waiter)

    # -- the consumer (event loop) -------------------------------------------------------------

    def __aiter__(self) -> ThreadReceiver:
        return self

    async def __anext__(self) -> list[bytes]:
        messages = self._messages
        while True:
            count = len(messages)
            if count:
                popleft = messages.popleft
                drained = [popleft() for _ in range(count)]
                if self._want_room:
                    with self._room:
                        self._want_room = False
                        self._room.notify()
                return drained
            if self._finished:  # set after the last message was queued
                if messages:
                    continue
                error, self._error = self._error, None
                if error is not None:
                    raise error
                raise StopAsyncIteration
            waiter: asyncio.Future[None] = self._loop.create_future()
            self._waiter = waiter
            # Checked again after the waiter is set: a message queued before the reader could
            # see the waiter is taken now instead of waiting for the next one.
            if messages or self._finished:
                self._waiter = None
                continue
            await waiter

    def cancel(self) -> None:
        """End the call (from the loop's thread; the reader thread then ends).

        The channel is closed rather than the call cancelled: a single-threaded call cancelled
        on its own keeps its connection open after the channel is closed (grpcio 1.85), one
        leaked connection per reconnect; closing the channel ends both.
        """
        with self._lock:
            self._closed = True
            self._messages.clear()
            self._room.notify_all()
            channel = self._channel
        if channel is not None:
            channel.close()

    async def aclose(self) -> None:
        """Cancel the call and wait until the reader thread has closed its channel."""
        self.cancel()
        if not self._ended.done():
            try:
                await asyncio.wait_for(asyncio.shield(self._ended), _JOIN_TIMEOUT_S)
            except TimeoutError:
                logger.warning("event reader thread did not end within %s s", _JOIN_TIMEOUT_S)
                return
        # The thread has closed its channel and is returning: a join of microseconds.
        self._thread.join(_JOIN_TIMEOUT_S)


class CallError(grpc.RpcError):
    """The status of a failed sync call, detached from the call (and its connection)."""

    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(f"{code.name}: {details}")
        self._code = code
        self._details = details

    @classmethod
    def of(cls, error: grpc.RpcError) -> CallError:
        """A copy of the code and details of ``error``."""
        call: Any = error
        code = call.code() if hasattr(call, "code") else grpc.StatusCode.UNKNOWN
        details = call.details() if hasattr(call, "details") else str(error)
        return cls(code, details or "")

    def code(self) -> grpc.StatusCode:
        """The call's status code."""
        return self._code

    def details(self) -> str:
        """The call's status details."""
        return self._details


def _finish(call: Any) -> None:
    """Take the operations a single-threaded call has left on its queue.

    Such a call keeps its channel alive until every operation it started was taken: the send
    operations of a call that failed before it was sent, the status of one that was
    cancelled. Left there, a closed channel goes on reconnecting and holds a connection open
    for good (grpcio 1.85: one leaked connection per reconnect of a stream). The rendezvous has
    no public way to take them, hence its private ``_state.due`` and ``_consume_next_event``;
    a gRPC without them has nothing to take.
    """
    state = getattr(call, "_state", None)
    consume = getattr(call, "_consume_next_event", None)
    if state is None or consume is None:
        return
    for _ in range(16):  # each call starts at most a handful of operations
        if not getattr(state, "due", None):
            return
        try:
            consume()
        except Exception:
            return


def _wake(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)
