"""The codec selector: the compiled module unless disabled or missing, else the twin.

``MXGATEWAY_NO_EXTENSIONS=1`` at run time forces the pure-Python twin (as aiokafka, yarl and
multidict do); an ImportError of the compiled module (no compiler at install time) falls back
to it silently. ``codec_implementation()`` tells which one is active.
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Literal

__all__ = ["codec_implementation", "impl"]


def _select() -> tuple[ModuleType, Literal["cython", "python"]]:
    if os.environ.get("MXGATEWAY_NO_EXTENSIONS", "") != "1":
        try:
            from mxgateway import _speedups
        except ImportError:
            pass
        else:
            return _speedups, "cython"
    from mxgateway import _pycodec

    return _pycodec, "python"


impl, _IMPLEMENTATION = _select()


def codec_implementation() -> Literal["cython", "python"]:
    """Return ``"cython"`` when the compiled codec is in use, else ``"python"``."""
    return _IMPLEMENTATION
