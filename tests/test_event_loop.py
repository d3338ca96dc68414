"""The suite runs on the loop it was asked for (uvloop or asyncio), and the run helper works."""

from __future__ import annotations

import asyncio
import sys

import pytest

import mxgateway
from tests.conftest import TEST_LOOP


async def test_running_on_requested_loop() -> None:
    loop = asyncio.get_running_loop()
    if TEST_LOOP == "uvloop":
        import uvloop

        assert isinstance(loop, uvloop.Loop)
    else:
        assert type(loop).__module__.startswith("asyncio")


async def _which_loop() -> str:
    return type(asyncio.get_running_loop()).__module__


def test_run_helper_uses_requested_loop() -> None:
    assert mxgateway.run(_which_loop(), loop="asyncio").startswith("asyncio")
    if sys.platform != "win32":
        assert mxgateway.run(_which_loop(), loop="uvloop").startswith("uvloop")
        assert mxgateway.run(_which_loop()).startswith("uvloop")


def test_run_helper_rejects_unknown_loop() -> None:
    coro = _which_loop()
    with pytest.raises(ValueError, match="unknown event loop"):
        mxgateway.run(coro, loop="trio")  # type: ignore[arg-type]
