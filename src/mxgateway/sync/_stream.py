"""Stream: one of the async library's streams (events, tag changes, alarms, Galaxy pages) as a
blocking iterator.

A pump task on the client's loop reads the async iterator a little ahead of the caller (at most
``read_ahead`` items: the gateway holds the rest, as it does for any slow reader), so the
caller pays one hand-over between threads per batch of ready items rather than per item, and
the stream goes on being read (write outcomes, recovery) while the caller's loop body runs.
Items, then the stream's end or its error, arrive in order. Closing the stream, leaving its
``with`` block, or dropping it after ``break`` cancels the pump and so the call; an interrupted
``next()`` (Ctrl-C) closes it before the interrupt propagates.
"""

from __future__ import annotations

import asyncio
import collections
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from types import TracebackType
from typing import Generic, Self, TypeVar

from mxgateway._tasks import cancel_and_wait
from mxgateway.sync._thread import LoopThread

__all__ = ["Stream"]

T = TypeVar("T")


class _End:
    """The stream ended: normally (``error`` None) or with ``error``."""

    __slots__ = ("error",)

    def __init__(self, error: Exception | None) -> None:
        self.error = error


class _Feed(Generic[T]):
    """The loop side of a Stream: the pump, and the bounded list of items it fills."""

    def __init__(self, iterator: AsyncIterator[T], read_ahead: int) -> None:
        self._iterator = iterator
        self._read_ahead = read_ahead
        self._items: list[T | _End] = []
        self._filled = asyncio.Event()  # items (or the end) wait to be taken
        self._drained = asyncio.Event()  # there is room again
        self._pump: asyncio.Task[None] | None = None
        self._closing: asyncio.Task[None] | None = None
        self._closed = False

    async def take(self) -> list[T | _End]:
        """Every item ready now; waits for the first one (the pump starts on the first take)."""
        if self._pump is None and not self._closed:
            self._pump = asyncio.get_running_loop().create_task(self._read())
        while not self._items:
            self._filled.clear()
            await self._filled.wait()
        items, self._items = self._items, []
        self._drained.set()
        return items

    def _put(self, item: T | _End) -> None:
        self._items.append(item)
        self._filled.set()

    async def _read(self) -> None:
        end = _End(None)
        try:
            async for item in self._iterator:
                self._put(item)
                if len(self._items) >= self._read_ahead:
                    self._drained.clear()
                    await self._drained.wait()  # the gateway holds the rest meanwhile
        except Exception as error:  # the stream's own failure: raised to the caller in turn
            end = _End(error)
        finally:
            await _aclose(self._iterator)
        self._put(end)

    async def close(self) -> None:
        """Cancel the pump (and with it the call) and close the async iterator."""
        if self._closed:
            return
        self._closed = True
        pump = self._pump
        if pump is not None:
            await cancel_and_wait([pump])
        else:
            await _aclose(self._iterator)
        self._put(_End(None))  # wakes a take() another thread may still wait in

    def close_soon(self) -> None:
        """``close()`` in a task of its own (from a finalizer: nobody waits)."""
        if self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self.close())


async def _aclose(iterator: AsyncIterator[object]) -> None:
    aclose = getattr(iterator, "aclose", None)
    if aclose is not None:
        await aclose()


class Stream(Iterator[T]):
    """A blocking iterator over one stream of the async client (see the module docstring).

    Use it in a ``for`` loop; ``with`` (or ``close()``) ends the call at a known point, and so
    does dropping the iterator after ``break``. Errors are the library's own, raised in the
    order the stream met them.
    """

    def __init__(
        self,
        portal: LoopThread,
        make: Callable[[], AsyncIterator[T]],
        *,
        owner: object,
        read_ahead: int,
    ) -> None:
        self._closed = True  # until the feed exists (a failing make() leaves nothing to close)
        self._portal = portal
        self._owner = owner  # keeps the client, and so its loop, alive while the stream is
        self._ready: collections.deque[T | _End] = collections.deque()
        self._lock = threading.Lock()
        # make() runs on the loop: the async library's code never runs on the caller's thread.
        self._feed: _Feed[T] = portal.run_sync(lambda: _Feed(make(), read_ahead))
        self._closed = False

    @property
    def closed(self) -> bool:
        """True once the stream ended, failed or was closed."""
        return self._closed

    def __iter__(self) -> Self:
        return self

    def __next__(self) -> T:
        try:
            item = self._ready.popleft()  # atomic: no lock while items are at hand
        except IndexError:
            item = self._fetch()
        if isinstance(item, _End):
            self._closed = True  # the pump ended and closed the async iterator
            self._ready.clear()
            if item.error is not None:
                raise item.error
            raise StopIteration
        return item

    def _fetch(self) -> T | _End:
        """The next item, taken from the loop (one thread at a time)."""
        with self._lock:
            if not self._ready:
                if self._closed:
                    raise StopIteration
                try:
                    self._ready.extend(self._portal.run(self._feed.take))
                except BaseException:
                    self.close()
                    raise
            return self._ready.popleft()

    def close(self) -> None:
        """End the stream: cancel its call and close the async iterator. Idempotent."""
        if self._closed:
            return
        self._closed = True
        feed = self._feed
        if self._portal.closed:
            return  # the client's close already ended every stream
        if self._portal.in_loop_thread():
            self._portal.call_soon(feed.close_soon)
            return
        self._portal.run(feed.close)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __del__(self) -> None:
        # Dropped without close() (a ``for`` left by ``break``): end the call, without waiting
        # (a finalizer must not block, and may run on any thread).
        if not self._closed:
            self._closed = True
            self._portal.call_soon(self._feed.close_soon)
