"""Doors, round two, on the client side: no session left behind by a closing client or an
exiting process, retry budgets kept within a backoff step, numbers bounded where they enter,
and the right hint for an event message over the receive limit."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import time

import pytest

from mxgateway import (
    ClientOptions,
    GatewayClient,
    MxGatewayProtocolError,
    MxGatewayStreamLostError,
)
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.streams import MODES, StreamMode, connect, event_lists


async def test_closing_the_client_closes_the_sessions_it_opened() -> None:
    async with SimulatedGateway(SimConfig(rate=0.0)) as sim:
        client = await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True)
        first = await client.open_session("a")
        await client.open_session("b")
        kept = await client.open_session("c")
        kept.leave_open()  # handed to another process: it stays
        await first.close()
        assert len(sim.session_ids()) == 2
        await client.close()
        assert sim.session_ids() == [kept.session_id]
        assert await first.close() is None  # closing again is harmless


def test_a_process_that_exits_with_open_sessions_closes_them() -> None:
    async def serve() -> None:
        async with SimulatedGateway(SimConfig(rate=0.0)) as sim:
            script = textwrap.dedent(
                f"""
                import asyncio
                from mxgateway import GatewayClient

                async def main():
                    client = await GatewayClient.connect(endpoint={sim.endpoint!r}, plaintext=True)
                    for name in ("x", "y"):
                        await client.open_session(name)  # never closed, client never closed

                asyncio.run(main())
                """
            )
            process = await asyncio.create_subprocess_exec(sys.executable, "-c", script)
            assert await asyncio.wait_for(process.wait(), 30) == 0
            assert sim.session_ids() == []  # closed at the child's exit

    asyncio.run(serve())


@pytest.mark.parametrize("mode", MODES)
async def test_the_retry_budget_is_kept_within_a_backoff_step(mode: StreamMode) -> None:
    sim = SimulatedGateway(SimConfig(rate=50.0, galaxy_size=60))
    await sim.start()
    try:
        async with await connect(mode, sim.endpoint) as client:
            session = await client.open_session()
            server = await session.register("budget")
            await session.subscribe_bulk(server, sim.sample_references(3))
            stream = event_lists(session, mode, retry_budget_s=2.0)
            await anext(stream)
            await sim.stop()  # gone for good
            started = time.monotonic()
            with pytest.raises(MxGatewayStreamLostError):
                async for _ in stream:
                    pass
            took = time.monotonic() - started
            # Not before the budget; and not a whole budget over it (a loop that ignored the
            # budget would retry for 30 s): the bound is loose, as this machine is shared.
            assert 2.0 <= took < 4.0, took
    finally:
        await sim.stop()


def test_numbers_are_bounded_where_they_enter() -> None:
    with pytest.raises(ValueError, match="timeout"):
        ClientOptions(endpoint="gw:1", timeout=1e10)
    with pytest.raises(ValueError, match="max_receive_message_bytes"):
        ClientOptions(endpoint="gw:1", max_receive_message_bytes=0)
    assert ClientOptions(endpoint="gw:1", timeout=1e8).timeout == 1e8


async def test_an_event_message_over_the_receive_limit_names_the_option() -> None:
    async with SimulatedGateway(SimConfig(rate=0.0)) as sim:
        options = ClientOptions(
            endpoint=sim.endpoint, plaintext=True, max_receive_message_bytes=4096
        )
        async with GatewayClient(options) as client:
            session = await client.open_session()
            server = await session.register("big")
            reference = next(
                r
                for r in sim.sample_references(200)
                if (state := sim.attribute(r)) is not None and state.info.data_type == 6
            )  # a STRING attribute
            handle = await session.add_item(server, reference)
            await session.advise(server, handle)
            sim.set_value(reference, "x" * 10_000)  # an event of ~10 kB
            with pytest.raises(MxGatewayProtocolError, match="max_receive_message_bytes"):
                async for _ in session.stream_events(resume=False):
                    pass
