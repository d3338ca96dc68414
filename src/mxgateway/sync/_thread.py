"""LoopThread: one event loop on its own thread, which a blocking client hands its calls to.

A blocking call creates the async library's coroutine *on* the loop (so every line of the
async client runs on its own loop's thread), waits for its task, and returns or raises what the
task did. An exception that interrupts the wait (KeyboardInterrupt from Ctrl-C, SystemExit)
cancels the task and waits briefly for it to end before it propagates, so the gRPC call is not
left running behind the caller's back.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from mxgateway._errors import MxGatewayClientClosedError
from mxgateway._loop import LoopName, _uvloop_factory, preferred_event_loop

__all__ = ["LoopThread"]

logger = logging.getLogger("mxgateway")

T = TypeVar("T")

# How often a waiting caller wakes to let the interpreter run signal handlers (Ctrl-C): a lock
# wait is not interrupted by every signal source (Windows, _thread.interrupt_main).
_POLL_S = 0.1
# How long an interrupted caller waits for the cancelled call to end before it goes on.
_CANCEL_GRACE_S = 5.0
# How long close() waits for the loop to finish its clean-up (cancelled tasks, async
# generators, the default executor) before it leaves the daemon thread behind.
_JOIN_S = 10.0

# The loop the threads run: None is mxgateway's choice (uvloop where it exists); tests set it
# to run the suite on each loop.
loop_override: LoopName | None = None


class LoopThread:
    """An event loop running on a daemon thread until ``close()``.

    ``run(fn)`` calls ``fn()`` on the loop, awaits what it returns and hands the outcome to the
    calling thread. Calls from several threads at once are fine; a call from the loop's own
    thread raises RuntimeError (it would wait for itself forever). After ``close()`` every call
    raises MxGatewayClientClosedError naming ``owner``.
    """

    def __init__(self, owner: str, *, name: str) -> None:
        self.owner = owner
        self.loop_name: LoopName = loop_override or preferred_event_loop()
        factory = _uvloop_factory() if self.loop_name == "uvloop" else None
        if self.loop_name == "uvloop" and factory is None:
            raise RuntimeError("uvloop is not available on this platform or not installed")
        self._closing = False
        self._pending: set[concurrent.futures.Future[Any]] = set()
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._finishing: asyncio.Task[None] | None = None
        started = threading.Event()
        self._thread = threading.Thread(
            target=self._main, args=(factory, started), name=name, daemon=True
        )
        self._thread.start()
        started.wait()
        if self._loop is None:
            raise RuntimeError(f"the event loop thread of {owner} did not start")

    # -- the thread ----------------------------------------------------------------------------

    def _main(
        self, factory: Callable[[], asyncio.AbstractEventLoop] | None, started: threading.Event
    ) -> None:
        try:
            # Runner's clean-up cancels what is left, closes async generators and the executor.
            with asyncio.Runner(loop_factory=factory) as runner:
                runner.run(self._serve(started))
        finally:
            started.set()  # also when the loop failed to start: the constructor must not hang
            self._fail_pending()

    async def _serve(self, started: threading.Event) -> None:
        self._stop = asyncio.Event()
        self._loop = asyncio.get_running_loop()
        started.set()
        await self._stop.wait()

    # -- state ---------------------------------------------------------------------------------

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        """The loop (for code that must schedule on it)."""
        assert self._loop is not None
        return self._loop

    @property
    def closed(self) -> bool:
        """True once ``close()`` began: no new call is accepted."""
        return self._closing

    def in_loop_thread(self) -> bool:
        """True when called on the loop's own thread."""
        return threading.current_thread() is self._thread

    def check_caller(self) -> None:
        """Raise RuntimeError on the loop's own thread, MxGatewayClientClosedError once closed."""
        if self.in_loop_thread():
            raise RuntimeError(
                f"a blocking mxgateway.sync call was made on the event-loop thread of its own "
                f"{self.owner}, where it would wait for itself forever; code running on that "
                "loop must use the async API (mxgateway)"
            )
        if self._closing:
            raise MxGatewayClientClosedError(f"{self.owner} is closed")

    # -- calls ---------------------------------------------------------------------------------

    def run(self, fn: Callable[[], Awaitable[T]]) -> T:
        """Call ``fn()`` on the loop, await its result there, and return it here."""
        self.check_caller()
        return self._run(fn)

    def run_sync(self, fn: Callable[[], T]) -> T:
        """Call the plain function ``fn()`` on the loop (to read state the loop changes)."""
        return self.run(lambda: _resolved(fn))

    def call_soon(self, fn: Callable[[], object]) -> None:
        """Schedule ``fn()`` on the loop without waiting; nothing happens once it is closed."""
        loop = self._loop
        if loop is None or self._closing:
            return
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(fn)

    def _run(self, fn: Callable[[], Awaitable[T]]) -> T:
        loop = self.loop
        outcome: concurrent.futures.Future[T] = concurrent.futures.Future()
        tasks: list[asyncio.Task[T]] = []

        def start() -> None:
            task = loop.create_task(_awaited(fn))
            tasks.append(task)
            task.add_done_callback(lambda done: _settle(outcome, done))

        def cancel() -> None:  # runs after start(): call_soon_threadsafe keeps the order
            for task in tasks:
                task.cancel()

        with self._lock:
            self._pending.add(outcome)
        try:
            try:
                loop.call_soon_threadsafe(start)
            except RuntimeError:  # the loop is closed
                raise MxGatewayClientClosedError(f"{self.owner} is closed") from None
            try:
                return _wait(outcome)
            except concurrent.futures.CancelledError:
                # Only the loop's shutdown cancels our tasks (an interrupted wait is below).
                raise MxGatewayClientClosedError(
                    f"{self.owner} was closed while the call was waiting"
                ) from None
            except BaseException:
                if not outcome.done():
                    # Interrupted (Ctrl-C, SystemExit): cancel the call, let it end, go on.
                    with contextlib.suppress(RuntimeError):
                        loop.call_soon_threadsafe(cancel)
                    concurrent.futures.wait([outcome], timeout=_CANCEL_GRACE_S)
                raise
        finally:
            with self._lock:
                self._pending.discard(outcome)

    # -- closing -------------------------------------------------------------------------------

    def close(self, aclose: Callable[[], Awaitable[object]] | None = None) -> None:
        """Run ``aclose()`` on the loop (the async client's close), then stop the loop and join
        its thread. Idempotent. From the loop's own thread it only schedules all that."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
        if self.in_loop_thread():
            self._schedule_stop(aclose)
            return
        try:
            if aclose is not None:
                self._run(aclose)
        finally:
            self._schedule_stop(None)
            self._thread.join(_JOIN_S)
            if self._thread.is_alive():
                logger.warning("the event loop thread of %s did not stop in time", self.owner)
            self._fail_pending()

    def _schedule_stop(self, aclose: Callable[[], Awaitable[object]] | None) -> None:
        loop, stop = self._loop, self._stop
        if loop is None or stop is None:
            return

        async def finish() -> None:
            try:
                if aclose is not None:
                    await aclose()
            finally:
                stop.set()

        def begin() -> None:
            self._finishing = loop.create_task(finish())

        with contextlib.suppress(RuntimeError):  # already closed
            loop.call_soon_threadsafe(begin)

    def _fail_pending(self) -> None:
        """Wake every caller still waiting (the loop is gone: nothing else will)."""
        with self._lock:
            pending = list(self._pending)
        for outcome in pending:
            if not outcome.done():
                with contextlib.suppress(concurrent.futures.InvalidStateError):
                    outcome.set_exception(
                        MxGatewayClientClosedError(
                            f"{self.owner} was closed while the call was waiting"
                        )
                    )


async def _awaited(fn: Callable[[], Awaitable[T]]) -> T:
    return await fn()


async def _resolved(fn: Callable[[], T]) -> T:
    return fn()


def _settle(outcome: concurrent.futures.Future[T], task: asyncio.Task[T]) -> None:
    if outcome.done():
        return
    if task.cancelled():
        outcome.set_exception(concurrent.futures.CancelledError())
        return
    error = task.exception()
    if error is not None:
        outcome.set_exception(error)
    else:
        outcome.set_result(task.result())


def _wait(outcome: concurrent.futures.Future[T]) -> T:
    while True:
        try:
            return outcome.result(timeout=_POLL_S)
        except TimeoutError:
            if outcome.done():  # the call itself raised TimeoutError
                raise
