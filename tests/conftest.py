"""Shared fixtures: both codec implementations, so every codec test runs against each."""

from __future__ import annotations

import os
from types import ModuleType

import pytest

from mxgateway import _pycodec

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
