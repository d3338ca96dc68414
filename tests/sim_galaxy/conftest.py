"""Fixtures: a small Galaxy served over loopback gRPC (see _harness.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from mxgateway.sim._galaxy import Galaxy
from tests.sim_galaxy._harness import Sim, serve

SIZE = 400
SEED = 11


@pytest.fixture
def galaxy() -> Galaxy:
    """A fresh Galaxy of 400 objects (seed 11)."""
    return Galaxy(SIZE, SEED)


@pytest.fixture
async def sim(galaxy: Galaxy) -> AsyncIterator[Sim]:
    """The Galaxy service and the alarm rpcs for ``galaxy`` on a loopback server."""
    async with serve(galaxy) as running:
        yield running
