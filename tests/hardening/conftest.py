"""Fixtures for the hardening tests: a simulator, a cutting TCP proxy in front of it, task
accounting, and helpers to check event sequences."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Iterator

import pytest

from mxgateway import GatewayClient, MxDataType, MxEvent, Session
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.hardening.cli_run import LostGateway, lost_gateway_run
from tests.hardening.proxy import TcpProxy

# The CLI's gateway-loss run waits out the library's 30 s retry budget. Its first test starts
# it and its last test checks it; they run first and last, so everything else runs meanwhile.
_LOSS_START = "test_stream_events_is_running_when_the_gateway_dies"
_LOSS_CHECK = "test_stream_events_exits_3_when_the_gateway_is_gone"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Run the start of the CLI gateway-loss run first and its check last."""
    first = [item for item in items if item.name == _LOSS_START]
    last = [item for item in items if item.name == _LOSS_CHECK]
    if first or last:
        items[:] = first + [i for i in items if i not in first and i not in last] + last


@pytest.fixture(scope="session")
def lost_gateway() -> Iterator[LostGateway]:
    """``mxgw-py stream-events`` running against a simulator that was killed under it."""
    with lost_gateway_run() as run:
        yield run


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedGateway]:
    """A plaintext simulator without auth: 50 events/s per advised item, a replay ring large
    enough for whatever a cut leaves in flight (the gateway's 1,024 covers about one second at
    1,000 events/s; see docs/reliability.md), and a 30 s detach grace."""
    config = SimConfig(rate=50.0, galaxy_size=60, replay_capacity=100_000, detach_grace_s=30.0)
    async with SimulatedGateway(config) as gateway:
        yield gateway


@pytest.fixture
async def proxy(sim: SimulatedGateway) -> AsyncIterator[TcpProxy]:
    """A TCP proxy in front of ``sim`` that cuts connections on demand."""
    async with TcpProxy(sim.endpoint) as tcp_proxy:
        yield tcp_proxy


async def advised_session(client: GatewayClient, sim: SimulatedGateway, items: int = 20) -> Session:
    """A session with ``items`` advised attributes (SubscribeBulk)."""
    session = await client.open_session(client_session_name="hardening")
    server = await session.register("hardening")
    results = await session.subscribe_bulk(server, sim.sample_references(items))
    assert all(r.was_successful for r in results)
    return session


def find_reference(sim: SimulatedGateway, data_type: MxDataType) -> str:
    """A freely writable scalar attribute of ``data_type`` in the simulated Galaxy."""
    for reference in sim.sample_references(200):
        state = sim.attribute(reference)
        if (
            state is not None
            and state.info.data_type == data_type
            and state.info.security_classification in (0, 1)
        ):
            return reference
    raise LookupError(f"no writable {data_type.name} attribute")


def sequences(events: Iterable[MxEvent]) -> list[int]:
    """The worker sequences of ``events`` (ReplayGap sentinels included, as 0)."""
    return [e.worker_sequence for e in events]


def assert_contiguous(seqs: list[int], *, start: int | None = None) -> None:
    """Every sequence exactly once and in order: ``seqs`` is first..last with no hole."""
    assert seqs, "no events"
    first = seqs[0] if start is None else start
    expected = list(range(first, first + len(seqs)))
    if seqs != expected:
        for index, (got, want) in enumerate(zip(seqs, expected, strict=False)):
            if got != want:
                raise AssertionError(
                    f"sequence broken at index {index}: got {got}, expected {want} "
                    f"(around: {seqs[max(0, index - 3) : index + 3]})"
                )
        raise AssertionError(f"{len(seqs)} sequences, expected {len(expected)}")


def _server_internal(task: asyncio.Task[object]) -> bool:
    # grpc.aio's server replaces its request-waiting task on every call: that rotation belongs
    # to the simulator's server, not to anything the client left behind.
    return getattr(task.get_coro(), "__qualname__", "").startswith("AioServer.")


def other_tasks(before: set[asyncio.Task[object]]) -> set[asyncio.Task[object]]:
    """Tasks alive now that were not in ``before`` (the calling task and the in-process
    grpc server's own request loop excluded)."""
    current = asyncio.current_task()
    return {
        t
        for t in asyncio.all_tasks()
        if t not in before and t is not current and not _server_internal(t)
    }


async def assert_no_new_tasks(before: set[asyncio.Task[object]], within: float = 10.0) -> None:
    """Every task created since ``before`` finishes within ``within`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while other_tasks(before):
        if loop.time() > deadline:
            left = sorted(repr(t) for t in other_tasks(before))
            raise AssertionError(f"tasks still running: {left}")
        await asyncio.sleep(0.02)
