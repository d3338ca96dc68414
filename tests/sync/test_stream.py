"""Stream: items then the end or the error in order, a bounded read-ahead, close from any
thread."""

from __future__ import annotations

import threading
import time

import pytest

from mxgateway import MxGatewaySessionNotFoundError
from mxgateway.sync import GatewayClient
from mxgateway.sync._clients import _READ_AHEAD
from tests.sync.conftest import SimHost


def test_items_then_the_error_then_nothing(client: GatewayClient, sim: SimHost) -> None:
    session = client.open_session()
    server = session.register("ending")
    session.subscribe_bulk(server, ["Pump_001.Speed", "Tank_001.Level"])
    events = session.stream_events()  # resumes, and then learns the session is gone
    first = next(events)
    assert first.tag in ("Pump_001.Speed", "Tank_001.Level")
    sim.call(lambda: sim.gateway.close_session(session.session_id))
    with pytest.raises(MxGatewaySessionNotFoundError):  # after what had arrived before it
        for _ in events:
            pass
    assert events.closed
    assert list(events) == []


def test_close_from_another_thread_ends_the_loop(client: GatewayClient) -> None:
    session = client.open_session()
    session.register("quiet")  # nothing to yield: the loop below waits
    events = session.stream_events()
    timer = threading.Timer(0.3, events.close)
    timer.start()
    started = time.monotonic()
    assert list(events) == []
    assert time.monotonic() - started < 5
    session.close()


def test_read_ahead_is_bounded(client: GatewayClient, sim: SimHost) -> None:
    refs = sim.call(lambda: sim.gateway.sample_references(60))
    session = client.open_session()
    server = session.register("flood")
    session.subscribe_bulk(server, refs)  # about 1,200 events/s
    with session.stream_events() as events:
        next(events)  # starts the pump
        time.sleep(1.0)  # not reading: the pump stops at the bound, the gateway holds the rest
        held = client._portal.run_sync(lambda: len(events._feed._items))
        assert held <= _READ_AHEAD
        sequences = [next(events).worker_sequence for _ in range(_READ_AHEAD + 50)]
        assert sequences == sorted(sequences) and len(set(sequences)) == len(sequences)
    session.close()
