"""Load: 32 sessions x 2,000 advised items streaming at once from a simulator in its own
process; every sequence accounted for; 128 pending commands per session honoured (checked on
every session before its stream starts); no task or memory growth across repeated runs.
bench/hardening/load.py runs the same for longer, with memory figures."""

from __future__ import annotations

import asyncio
import gc
import sys

import pytest

from mxgateway import GatewayClient
from mxgateway.sim._galaxy import Galaxy
from tests.hardening.conftest import assert_no_new_tasks
from tests.hardening.load_run import load_run
from tests.hardening.simproc import SimProcess

SESSIONS = 32
ITEMS = 2000
STREAM_S = 1.0  # at least; then until every session had LIVE_EVENTS beyond its advise values
LIVE_EVENTS = 1000
RUNS = 3
GALAXY = 400  # objects: enough for 2,000 distinct scalar attributes
# Python's allocated memory blocks (sys.getallocatedblocks: cheap, unlike tracemalloc, which
# slows the pure-Python codec run several times over) may move a little between runs (caches,
# gRPC's Python objects); a leak of one object per event would be hundreds of thousands.
MAX_GROWTH_BLOCKS = 5_000


@pytest.mark.once  # memory of sessions and items
async def test_32_sessions_of_2000_items_repeatedly_without_growth() -> None:
    references = Galaxy(GALAXY, 1).sample_references(ITEMS)
    assert len(references) == ITEMS
    before = asyncio.all_tasks()
    async with (
        SimProcess(flood=True, rate=0.0, galaxy_size=GALAXY) as sim,
        await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True) as client,
    ):
        blocks: list[int] = []
        for _ in range(RUNS):
            result = await load_run(
                client,
                sim,
                references,
                sessions=SESSIONS,
                stream_seconds=STREAM_S,
                live_events=LIVE_EVENTS,
            )
            assert result.incomplete_sessions == 0, result
            assert result.min_events_per_session >= ITEMS + LIVE_EVENTS
            await assert_no_new_tasks(before)
            gc.collect()
            blocks.append(sys.getallocatedblocks())
        growth = blocks[-1] - blocks[1]  # the first run warms caches
        assert growth < MAX_GROWTH_BLOCKS, blocks
        assert await sim.call("session_ids") == []
    await assert_no_new_tasks(before)
