"""Tags by name (``GatewayClient.read/write/subscribe``) and confirmed writes on a Session."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from mxgateway import (
    GatewayClient,
    MxAccessError,
    MxDataType,
    MxGatewayTimeoutError,
    TagChange,
    WriteOutcome,
)
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.hardening.conftest import find_reference


@pytest.fixture
async def sim() -> AsyncIterator[SimulatedGateway]:
    async with SimulatedGateway(SimConfig(rate=10.0, galaxy_size=300)) as gateway:
        yield gateway


@pytest.fixture
async def client(sim: SimulatedGateway) -> AsyncIterator[GatewayClient]:
    async with await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True) as c:
        yield c


async def test_read_gives_python_values_and_per_tag_errors(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    refs = sim.sample_references(5)
    values = await client.read([*refs, "No.Such.Tag"])
    assert list(values) == [*refs, "No.Such.Tag"]
    for ref in refs:
        value = values[ref]
        state = sim.attribute(ref)
        assert state is not None
        assert value.ok and value.error is None
        assert value.value == state.value
        assert value.quality == state.quality
        assert isinstance(value.timestamp, datetime) and value.timestamp.tzinfo is UTC
    unknown = values["No.Such.Tag"]
    assert not unknown.ok and unknown.value is None and "unknown" in (unknown.error or "")
    one = await client.read(refs[0])  # a single tag is a list of one
    assert list(one) == [refs[0]]


async def test_write_infers_the_type_and_confirms(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    double = find_reference(sim, MxDataType.DOUBLE)
    integer = find_reference(sim, MxDataType.INTEGER)
    outcome = await client.write(double, 12.5)
    assert isinstance(outcome, WriteOutcome) and outcome.ok and outcome.error is None
    assert sim.attribute(double).value == 12.5  # type: ignore[union-attr]
    assert await client.write(integer, 7, confirm=False) is None
    await asyncio.sleep(0.2)
    assert sim.attribute(integer).value == 7  # type: ignore[union-attr]
    assert (await client.read(double))[double].value == 12.5


async def test_rejected_writes_raise(client: GatewayClient, sim: SimulatedGateway) -> None:
    double = find_reference(sim, MxDataType.DOUBLE)
    with pytest.raises(ValueError):
        await client.write(double, float("nan"))  # nothing sent
    with pytest.raises(MxAccessError):
        await client.write(double, "not a number")  # MXAccess refuses the type
    with pytest.raises(MxAccessError):
        await client.write("No.Such.Tag", 1.0)
    with pytest.raises(ValueError):
        await client.write("", 1.0)


async def test_a_confirmed_write_times_out_when_no_outcome_comes(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    double = find_reference(sim, MxDataType.DOUBLE)
    session = await client.open_session()
    server = await session.register("confirm")
    item = await session.add_item(server, double)
    await session.advise(server, item)
    original = sim.registry.sessions[session.session_id].emit

    def drop_write_completes(event: object) -> None:
        if getattr(event, "family", None) != 2:  # ON_WRITE_COMPLETE never reaches the stream
            original(event)  # type: ignore[arg-type]

    sim.registry.sessions[session.session_id].emit = drop_write_completes  # type: ignore[method-assign]
    with pytest.raises(MxGatewayTimeoutError, match="ON_WRITE_COMPLETE"):
        await session.write(server, item, 3.0, confirm=True, timeout=0.5)
    assert not session._outcomes  # nothing left waiting
    await session.close()


async def test_session_write_confirm_with_and_without_a_stream(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    double = find_reference(sim, MxDataType.DOUBLE)
    session = await client.open_session()
    server = await session.register("confirm")
    item = await session.add_item(server, double)
    await session.advise(server, item)
    # No stream: the session reads its events until the outcome arrives, then stops.
    outcome = await session.write(server, item, 1.5, confirm=True)
    assert outcome is not None and outcome.item_handle == item and outcome.ok
    await asyncio.sleep(0.1)
    assert session._outcome_reader is None
    # With the caller's stream running, that stream delivers the outcome (and still yields it).
    seen = []

    async def consume() -> None:
        async for event in session.stream_events():
            seen.append(event)

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.2)
    outcome = await session.write2(
        server, item, 2.5, datetime(2026, 1, 1, tzinfo=UTC), confirm=True
    )
    assert outcome is not None and outcome.ok
    assert session._outcome_reader is None  # the caller's stream did it
    await asyncio.sleep(0.1)
    assert outcome.event in seen
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await session.close()


async def test_subscribe_names_every_change(client: GatewayClient, sim: SimulatedGateway) -> None:
    refs = sim.sample_references(1000)
    assert len(set(refs)) == 1000
    seen: dict[str, int] = {}
    async for change in client.subscribe(refs, duration=30):
        assert change.ok, change
        assert change.event is not None
        assert change.tag == refs[change.event.item_handle - 1]  # handles were given in order
        seen[change.tag] = seen.get(change.tag, 0) + 1
        if len(seen) == len(refs) and min(seen.values()) >= 2:
            break
    assert set(seen) == set(refs)


async def test_subscribe_reports_unknown_tags_and_ends_after_duration(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    refs = sim.sample_references(3)
    changes: list[TagChange] = []
    loop = asyncio.get_running_loop()
    started = loop.time()
    async for change in client.subscribe([*refs, "No.Such.Tag"], duration=1.0):
        changes.append(change)
    assert 0.9 < loop.time() - started < 5
    unknown = [c for c in changes if c.tag == "No.Such.Tag"]
    assert unknown and unknown[0].error and "unknown" in unknown[0].error
    assert {c.tag for c in changes if c.ok} == set(refs)


async def test_two_subscriptions_share_a_tag(client: GatewayClient, sim: SimulatedGateway) -> None:
    refs = sim.sample_references(2)

    async def first_value(tags: list[str]) -> TagChange:
        async for change in client.subscribe(tags, duration=10):
            return change
        raise AssertionError("no change")

    holder = client.subscribe([refs[0]], duration=10)
    assert (await anext(holder)).tag == refs[0]
    # The second subscriber of an advised tag gets its current value at once.
    change = await asyncio.wait_for(first_value([refs[0]]), 5)
    assert change.tag == refs[0] and change.ok
    await holder.aclose()  # type: ignore[attr-defined]


async def test_the_tag_session_is_recovered_and_closed_with_the_client(
    sim: SimulatedGateway,
) -> None:
    refs = sim.sample_references(3)
    async with await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True) as client:
        await client.read(refs)
        assert len(sim.session_ids()) == 1
        notices: list[TagChange] = []
        after: list[TagChange] = []
        stream = client.subscribe(refs, duration=20)
        await anext(stream)
        await sim.restart()
        async for change in stream:
            (notices if change.tag == "*" else after).append(change)
            if notices and len(after) > 3:
                break
        await stream.aclose()  # type: ignore[attr-defined]
        assert "recovered" in (notices[0].error or "")
        assert all(c.tag in refs for c in after)
        double = find_reference(sim, MxDataType.DOUBLE)
        assert (await client.write(double, 4.25)) is not None
    assert sim.session_ids() == []
