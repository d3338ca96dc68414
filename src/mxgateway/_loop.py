"""Event loop choice: uvloop where it exists (not on Windows), else asyncio."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

__all__ = ["LoopName", "preferred_event_loop", "run"]

T = TypeVar("T")
LoopName = Literal["uvloop", "asyncio"]


def _uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    if sys.platform == "win32":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def preferred_event_loop() -> LoopName:
    """Return ``"uvloop"`` when uvloop can be used here, else ``"asyncio"``."""
    return "uvloop" if _uvloop_factory() is not None else "asyncio"


def run(main: Coroutine[Any, Any, T], *, loop: LoopName | None = None) -> T:
    """Run ``main`` to completion on uvloop where available (or on the ``loop`` asked for).

    Asking for ``"uvloop"`` where it is missing raises RuntimeError rather than silently
    measuring or running something else.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        pass  # no loop runs in this thread: the normal case
    else:
        main.close()
        raise RuntimeError(
            "mxgateway.run() cannot run inside a running event loop (Jupyter, an async "
            "function): await the coroutine there instead, or use mxgateway.sync"
        )
    name: str = loop or preferred_event_loop()
    factory: Callable[[], asyncio.AbstractEventLoop] | None
    if name == "uvloop":
        factory = _uvloop_factory()
        if factory is None:
            main.close()
            raise RuntimeError("uvloop is not available on this platform or not installed")
    elif name == "asyncio":
        factory = None
    else:
        main.close()
        raise ValueError(f"unknown event loop {name!r}: expected 'uvloop' or 'asyncio'")
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
