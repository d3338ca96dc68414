"""A stream larger than nats-server lets a reader fall behind (64 MB per connection), read
back whole.

Under flood load bench.bridge's stream check found events missing after its first 1,000
messages: the stream was whole (every stream sequence read by direct get was there, no hole
in the worker_sequences), but a fetch of 1,000 batch messages of ~116 KB pushed more than
nats-server's max_pending of 64 MB at the reader, the server cut it as a slow consumer, and
the deliveries in flight were gone. ``consume`` had the same hazard, and worse: its
ephemeral consumer acknowledges the last message of a fetch (AckPolicy.ALL), which would have
acknowledged the lost ones too. Here a flood simulator (a process) fills a real server's
stream with well over 64 MB of batch messages, and every reader must give all of it back.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from mxgateway import ClientOptions
from mxgateway.bridge import Bridge, BridgeConfig, NatsOptions, consume_batches
from tests.bridge._check import check_stream
from tests.bridge._servers import NatsServer
from tests.bridge.conftest import nats_client
from tests.hardening.simproc import SimProcess

_BYTES = 100 * 1024 * 1024


@pytest.mark.once  # the server's fetch limits; with the twin it only decodes 100 MB slower
async def test_a_flood_backlog_reads_back_whole(nats_server: NatsServer) -> None:
    async with SimProcess(flood=True) as sim:
        refs = await sim.call("sample_references", 16)
        nats = NatsOptions(servers=(nats_server.url,))
        config = BridgeConfig(stream="FLOOD", items=tuple(refs), close_session=True)
        bridge = Bridge(ClientOptions(endpoint=sim.endpoint, plaintext=True), nats, config)
        stop = asyncio.Event()
        task = asyncio.create_task(bridge.run(stop=stop))
        async with nats_client([nats_server.url]) as nc:
            js = nc.jetstream()
            deadline = time.monotonic() + 40
            while time.monotonic() < deadline and not task.done():
                await asyncio.sleep(0.2)
                try:
                    if (await js.stream_info("FLOOD")).state.bytes > _BYTES:
                        break
                except Exception:  # not created yet
                    continue
            stop.set()
            stats = await asyncio.wait_for(task, 60)
    assert stats.drained and stats.resyncs == 0
    async with nats_client([nats_server.url]) as nc:
        state = (await nc.jetstream().stream_info("FLOOD")).state
        assert state.bytes > _BYTES, "the flood did not fill the stream past 64 MB"
        check = await check_stream(nc, "FLOOD", config.prefix)
        assert check.events == stats.events and len(check.sessions) == 1
        assert check.sequences[check.sessions[0]][-1] == stats.events
        # The library's reader, asking for far more than 64 MB at a time.
        got = 0
        expected = 1
        async with asyncio.timeout(90):
            async for batch in consume_batches(
                nc, "FLOOD", from_start=True, batch=5000, kv_bucket=None
            ):
                assert batch[0].worker_sequence == expected, (batch[0].worker_sequence, expected)
                expected = batch[-1].worker_sequence + 1
                got += len(batch)
                if got >= stats.events:
                    break
        assert got == stats.events


@pytest.mark.once  # the bridge process's counts
async def test_a_stop_under_flood_counts_what_the_drain_stored(nats_server: NatsServer) -> None:
    """Items layout, stopped while the window (--max-pending) is full: the stopped report's
    events and last sequence are what the stream holds (they once left out the last window,
    512 events short, counted when sent and the sending cancelled by the stop)."""
    async with SimProcess(flood=True) as sim:
        refs = await sim.call("sample_references", 16)
        nats = NatsOptions(servers=(nats_server.url,))
        config = BridgeConfig(stream="STOP", items=tuple(refs), layout="items", close_session=True)
        bridge = Bridge(ClientOptions(endpoint=sim.endpoint, plaintext=True), nats, config)
        stats = await asyncio.wait_for(bridge.run(duration=2.0), 60)
    assert stats.drained and stats.events > config.max_pending
    async with nats_client([nats_server.url]) as nc:
        check = await check_stream(nc, "STOP", config.prefix)
    (session,) = check.sessions
    assert stats.events == check.events == stats.messages
    assert stats.last_stored == (session, check.last(session))
    assert stats.as_dict()["lastSequence"] == str(check.last(session))
