"""Shared fixtures: both codec implementations, so every codec test runs against each."""

from __future__ import annotations

import asyncio
import inspect
import os
import signal
from collections.abc import Callable
from types import ModuleType

import pytest

from mxgateway import _pycodec

# The Ctrl+C tests (here, and in the processes they start) need SIGINT to be delivered. A run
# started in the background of a non-interactive shell (`cmd &`, nohup, some CI runners)
# inherits SIGINT ignored, which no test could then simulate, and children inherit the
# ignore across exec: restore Python's default handler, as an interactive run has it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

NO_EXTENSIONS = os.environ.get("MXGATEWAY_NO_EXTENSIONS", "") == "1"


def _compiled() -> ModuleType | None:
    try:
        from mxgateway import _speedups
    except ImportError:
        return None
    return _speedups


COMPILED = _compiled()
# The twin always runs. The compiled module runs whenever it was built; a missing build
# where one was expected fails test_build.py instead of silently shrinking this list.
CODEC_MODULES: list[ModuleType] = [_pycodec] if COMPILED is None else [_pycodec, COMPILED]
CODECS = [pytest.param(m, id="python" if m is _pycodec else "cython") for m in CODEC_MODULES]


@pytest.fixture(params=CODECS)
def codec(request: pytest.FixtureRequest) -> ModuleType:
    """Each codec implementation in turn: the pure-Python twin and the compiled module."""
    module: ModuleType = request.param
    return module


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark ``once`` the plain tests that take ``codec``: they run both implementations in
    either test run, so the second run (twin codec, asyncio) would only repeat them."""
    del config
    for item in items:
        function = getattr(item, "function", None)
        if "codec" in getattr(item, "fixturenames", ()) and not inspect.iscoroutinefunction(
            function
        ):
            item.add_marker(pytest.mark.once)


def _test_loop_name() -> str:
    # One event loop per run: the README's first test command runs on uvloop (where it
    # exists), the second on plain asyncio, so the suite covers both loops.
    name = os.environ.get("MXGATEWAY_TEST_LOOP", "")
    if name:
        if name not in ("uvloop", "asyncio"):
            raise pytest.UsageError("MXGATEWAY_TEST_LOOP must be 'uvloop' or 'asyncio'")
        return name
    from mxgateway import preferred_event_loop

    return preferred_event_loop()


TEST_LOOP = _test_loop_name()


def pytest_asyncio_loop_factories(
    config: pytest.Config, item: pytest.Item
) -> dict[str, Callable[[], asyncio.AbstractEventLoop]]:
    """Run every async test on the loop this run was asked for."""
    if TEST_LOOP == "uvloop":
        import uvloop

        return {"uvloop": uvloop.new_event_loop}
    return {"asyncio": asyncio.new_event_loop}
