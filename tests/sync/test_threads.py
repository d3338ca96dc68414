"""Where the blocking API runs: its own loop thread, several calling threads, a running event
loop in the caller (Jupyter); what stops a call: Ctrl-C, break, close, garbage collection."""

from __future__ import annotations

import _thread
import asyncio
import concurrent.futures
import gc
import threading
import time
from collections.abc import Callable

import pytest

import mxgateway
from mxgateway import MxDataType, MxGatewayClientClosedError, MxGatewayTimeoutError
from mxgateway.sync import GatewayClient
from mxgateway.sync import _thread as sync_thread
from tests.conftest import TEST_LOOP
from tests.sync.conftest import SimHost


def _within(predicate: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("mxgateway-sync ")]


def test_each_client_runs_on_a_loop_thread_of_its_own(sim: SimHost) -> None:
    before = len(_loop_threads())
    with (
        GatewayClient.connect(sim.endpoint, plaintext=True) as first,
        GatewayClient.connect(sim.endpoint, plaintext=True) as second,
    ):
        assert first.loop_name == second.loop_name == TEST_LOOP
        loop = first._portal.loop
        assert type(loop).__module__.startswith(TEST_LOOP)
        assert loop is not second._portal.loop
        assert len(_loop_threads()) == before + 2
    _within(lambda: len(_loop_threads()) == before)


def test_the_loop_is_the_one_mxgateway_prefers(
    sim: SimHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sync_thread, "loop_override", None)  # what users get
    with GatewayClient.connect(sim.endpoint, plaintext=True) as client:
        assert client.loop_name == mxgateway.preferred_event_loop()
        assert type(client._portal.loop).__module__.startswith(client.loop_name)


def test_several_threads_share_one_client(client: GatewayClient, sim: SimHost) -> None:
    double = sim.writable(MxDataType.DOUBLE)
    # Not the written tag: see test_subscribing_to_a_tag_written_before_gives_its_value.
    refs = [r for r in sim.call(lambda: sim.gateway.sample_references(9)) if r != double][:8]

    def work(index: int) -> tuple[int, int]:
        values = client.read(refs)
        assert all(v.ok for v in values.values())
        outcome = client.write(double, float(index))
        assert outcome is not None and outcome.ok
        changes = 0
        for change in client.subscribe(refs[index], duration=10):
            assert change.tag == refs[index]
            changes += 1
            if changes == 2:
                break
        return index, changes

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = sorted(pool.map(work, range(8)))
    assert results == [(i, 2) for i in range(8)]


def test_first_tag_calls_from_several_threads_share_one_session(
    client: GatewayClient, sim: SimHost
) -> None:
    barrier = threading.Barrier(8)

    def first_read(_: int) -> bool:
        barrier.wait()
        return client.read("Pump_001.Speed")["Pump_001.Speed"].ok

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert all(pool.map(first_read, range(8)))
    assert len(sim.session_ids()) == 1


def test_subscribing_to_a_tag_written_before_gives_its_value(
    client: GatewayClient, sim: SimHost
) -> None:
    double = sim.writable(MxDataType.DOUBLE)
    client.write(double, 5.0)  # written attributes of the simulator then hold their value
    changes = list(client.subscribe(double, duration=2))
    assert [c.value for c in changes][:1] == [5.0]


def test_inside_a_running_event_loop(sim: SimHost) -> None:
    """A notebook cell runs inside the kernel's running loop: blocking calls still work there
    (asyncio.run or mxgateway.run would refuse to start a second loop)."""

    async def cell() -> float:
        asyncio.get_running_loop()  # a loop runs in this thread, as in Jupyter
        with GatewayClient.connect(sim.endpoint, plaintext=True) as client:
            value = client.read("Pump_001.Speed")["Pump_001.Speed"].value
            for change in client.subscribe("Pump_001.Speed", duration=10):
                assert change.ok
                break
            assert isinstance(value, float)
            return value

    assert isinstance(asyncio.run(cell()), float)


async def test_inside_the_test_loop(client: GatewayClient) -> None:
    # The same from an async test: the test's own loop is running in this thread.
    assert client.read("Pump_001.Speed")["Pump_001.Speed"].ok


def test_a_call_on_the_clients_own_loop_thread_raises(client: GatewayClient) -> None:
    portal = client._portal
    stream = client.subscribe("Pump_001.Speed", duration=10)
    for blocking_call in (
        lambda: client.read("Pump_001.Speed"),
        client.close,
        lambda: next(stream),
        lambda: client.subscribe("Pump_001.Speed"),
    ):
        with pytest.raises(RuntimeError, match="would wait for itself forever"):
            portal.run_sync(blocking_call)
    assert not client.closed
    assert client.read("Pump_001.Speed")["Pump_001.Speed"].ok  # still usable
    stream.close()


def _interrupt_main_after(seconds: float) -> threading.Timer:
    timer = threading.Timer(seconds, _thread.interrupt_main)
    timer.start()
    return timer


def test_ctrl_c_cancels_a_waiting_stream(client: GatewayClient, sim: SimHost) -> None:
    assert threading.current_thread() is threading.main_thread()
    session = client.open_session()
    session.register("quiet")  # no items: the stream attaches and waits, with nothing to yield
    events = session.stream_events()
    timer = _interrupt_main_after(0.5)
    try:
        with pytest.raises(KeyboardInterrupt):
            next(events)
    finally:
        timer.cancel()
    # The interrupted call was cancelled before the interrupt propagated: the stream is gone
    # from the gateway and closed here.
    assert events.closed
    _within(lambda: sim.subscribers() == 0, 5)
    assert list(events) == []
    session.close()


def test_ctrl_c_cancels_a_waiting_command(client: GatewayClient, sim: SimHost) -> None:
    double = sim.writable(MxDataType.DOUBLE)
    session = client.open_session()
    server = session.register("confirm")
    item = session.add_item(server, double)
    session.advise(server, item)
    gateway_session = sim.call(lambda: sim.gateway.registry.sessions[session.session_id])
    original = gateway_session.emit

    def drop_write_completes(event: object) -> None:
        if getattr(event, "family", None) != 2:  # the outcome never comes: the write waits
            original(event)  # type: ignore[arg-type]

    gateway_session.emit = drop_write_completes  # type: ignore[method-assign]
    timer = _interrupt_main_after(0.5)
    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            session.write(server, item, 1.0, confirm=True, timeout=30)
    finally:
        timer.cancel()
    assert time.monotonic() - started < 10
    # The confirmed write no longer waits on the loop: nothing is left behind.
    assert session._async._outcomes == {}
    _within(lambda: session._async._outcome_reader is None, 5)
    with pytest.raises(MxGatewayTimeoutError):  # the session is still usable
        session.write(server, item, 2.0, confirm=True, timeout=0.3)
    session.close()


def test_break_and_close_cancel_the_stream(client: GatewayClient, sim: SimHost) -> None:
    session = client.open_session()
    server = session.register("breaking")
    session.subscribe_bulk(server, ["Pump_001.Speed"])
    for _ in session.stream_events():
        assert sim.subscribers() == 1
        break
    _within(lambda: sim.subscribers() == 0, 5)  # the dropped iterator ended its call
    with session.stream_events() as events:
        next(events)
        assert sim.subscribers() == 1
        assert len(client._async._streams) == 1
    # Leaving the block ended the call before it returned; the gateway learns it right after.
    assert client._async._streams == set()
    _within(lambda: sim.subscribers() == 0, 5)
    session.close()


def test_closing_the_client_ends_calls_waiting_in_other_threads(sim: SimHost) -> None:
    client = GatewayClient.connect(sim.endpoint, plaintext=True)
    session = client.open_session()
    session.register("quiet")
    events = session.stream_events()
    errors: list[BaseException] = []

    def consume() -> None:
        try:
            next(events)
        except BaseException as error:
            errors.append(error)

    consumer = threading.Thread(target=consume)
    consumer.start()
    _within(lambda: sim.subscribers() == 1, 5)
    client.close()
    consumer.join(10)
    assert not consumer.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], MxGatewayClientClosedError)


def test_an_unclosed_client_is_closed_when_collected(sim: SimHost) -> None:
    before = len(_loop_threads())
    client = GatewayClient.connect(sim.endpoint, plaintext=True)
    client.read("Pump_001.Speed")
    assert len(sim.session_ids()) == 1  # the client's tag session
    del client
    gc.collect()
    _within(lambda: len(_loop_threads()) == before)
    _within(lambda: sim.session_ids() == [])  # closed, with its tag session


def test_a_session_keeps_its_client_alive(sim: SimHost) -> None:
    session = GatewayClient.connect(sim.endpoint, plaintext=True).open_session()
    gc.collect()
    assert session.register("still here") > 0
    session.close()
    del session
    gc.collect()
