"""The blocking clients against the simulator: the same results and the same exceptions as the
async API, streams as iterators, closed objects refusing reuse."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import assert_type

import pytest

from mxgateway import (
    ActiveAlarm,
    AlarmSnapshotComplete,
    BrowseNode,
    ClientOptions,
    MxAccessError,
    MxDataType,
    MxEvent,
    MxGatewayClientClosedError,
    MxGatewayProtocolError,
    MxGatewaySessionNotFoundError,
    MxGatewayTimeoutError,
    SessionItem,
    TagChange,
    TagValue,
    WriteOutcome,
)
from mxgateway.columns import EventColumns
from mxgateway.generated import galaxy_repository_pb2 as gpb
from mxgateway.sync import GalaxyRepositoryClient, GatewayClient, Session, Stream
from tests.sync.conftest import SimHost


def _within(predicate: object, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.02)


# -- tags by name --------------------------------------------------------------------------------


def test_read_write_subscribe_by_name(client: GatewayClient, sim: SimHost) -> None:
    double = sim.writable(MxDataType.DOUBLE)
    values = client.read([double, "No.Such.Tag"])
    assert_type(values, dict[str, TagValue])
    assert values[double].ok and not values["No.Such.Tag"].ok
    outcome = client.write(double, 12.5)
    assert_type(outcome, WriteOutcome | None)
    assert isinstance(outcome, WriteOutcome) and outcome.ok
    assert client.read(double)[double].value == 12.5
    assert client.write(double, 13.5, confirm=False) is None
    changes = client.subscribe([double, "No.Such.Tag"], duration=10)
    assert_type(changes, Stream[TagChange])
    seen: dict[str, TagChange] = {}
    for change in changes:
        seen[change.tag] = change
        if len(seen) == 2:
            break
    assert seen[double].ok and seen["No.Such.Tag"].error
    _within(lambda: client.read(double)[double].value == 13.5)


def test_subscribe_ends_after_its_duration(client: GatewayClient, sim: SimHost) -> None:
    refs = sim.call(lambda: sim.gateway.sample_references(3))
    started = time.monotonic()
    changes = list(client.subscribe(refs, duration=1.0))
    assert 0.9 < time.monotonic() - started < 5
    assert {c.tag for c in changes} == set(refs)


def test_errors_are_the_librarys_own(client: GatewayClient, sim: SimHost) -> None:
    double = sim.writable(MxDataType.DOUBLE)
    with pytest.raises(ValueError):
        client.write(double, float("nan"))  # refused before anything is sent
    with pytest.raises(MxAccessError) as refused:
        client.write(double, "not a number")
    assert refused.value.statuses  # the error object itself, with what MXAccess said
    with pytest.raises(ValueError):
        client.acknowledge_alarm("")
    with pytest.raises(ValueError, match="duration"):
        next(client.subscribe(["A.B"], duration=-1))


# -- sessions: every command, bulk, streams ------------------------------------------------------


def test_session_commands_and_streams(client: GatewayClient, sim: SimHost) -> None:
    double = sim.writable(MxDataType.DOUBLE)
    refs = sim.call(lambda: sim.gateway.sample_references(4))
    with client.open_session("sync-test") as session:
        assert_type(session, Session)
        server = session.register("sync-test")
        assert_type(server, int)
        item = session.add_item(server, double)
        session.advise(server, item)
        assert session.items[item] == SessionItem(server, item, double, advise="advise")
        results = session.subscribe_bulk(server, refs)
        assert all(r.was_successful for r in results)
        with session.stream_events() as events:
            assert_type(events, Stream[MxEvent])
            first = next(events)
            assert first.tag is not None
            # The stream is read while the body runs, so a confirmed write finds its outcome.
            outcome = session.write(server, item, 4.5, confirm=True, timeout=10)
            assert outcome is not None and outcome.ok and outcome.event.tag == double
        assert events.closed
        outcome = session.write2(
            server, item, 5.5, datetime(2026, 1, 1, tzinfo=UTC), confirm=True, timeout=10
        )
        assert outcome is not None and outcome.ok
        written = session.write_bulk(server, [(item, 6.5)])
        assert [w.was_successful for w in written] == [True]
        read = session.read_bulk(server, [double])
        assert read[0].was_successful
        batches = session.stream_event_batches()
        assert_type(batches, Stream[list[MxEvent]])
        batch = next(batches)
        assert batch and all(isinstance(e, MxEvent) for e in batch)
        batches.close()
        with session.stream_event_columns() as columns:
            assert_type(columns, Stream[EventColumns])
            unit = next(columns)
            assert len(unit) and unit.row(0).worker_sequence == int(unit.worker_sequence[0])
        assert columns.closed
        session.unadvise(server, item)
        session.remove_item(server, item)
        assert item not in session.items
        with pytest.raises(MxAccessError):
            session.advise(server, 999_999)  # MXAccess refuses an unknown handle
        with pytest.raises(TypeError):
            session.advise(server, "1")  # type: ignore[arg-type]
        session_id = session.session_id
    assert session.closed
    assert session_id not in sim.session_ids()


def test_a_confirmed_write_times_out_as_in_the_async_api(
    client: GatewayClient, sim: SimHost
) -> None:
    double = sim.writable(MxDataType.DOUBLE)
    session = client.open_session()
    server = session.register("confirm")
    item = session.add_item(server, double)
    session.advise(server, item)
    gateway_session = sim.call(lambda: sim.gateway.registry.sessions[session.session_id])
    original = gateway_session.emit

    def drop_write_completes(event: object) -> None:
        if getattr(event, "family", None) != 2:  # ON_WRITE_COMPLETE never arrives
            original(event)  # type: ignore[arg-type]

    gateway_session.emit = drop_write_completes  # type: ignore[method-assign]
    with pytest.raises(MxGatewayTimeoutError, match="ON_WRITE_COMPLETE"):
        session.write(server, item, 3.0, confirm=True, timeout=0.5)
    session.close()


def test_a_second_event_stream_is_refused_as_in_the_async_api(client: GatewayClient) -> None:
    with client.open_session() as session:
        server = session.register("two")
        session.subscribe_bulk(server, ["Pump_001.Speed"])
        with session.stream_events() as first:
            next(first)
            with pytest.raises(MxGatewayProtocolError):
                next(session.stream_events(resume=False))


def test_recover_session_and_tag_api_across_a_restart(client: GatewayClient, sim: SimHost) -> None:
    refs = sim.call(lambda: sim.gateway.sample_references(3))
    session = client.open_session("recovering", recover=True)
    assert session.recovers
    server = session.register("recovering")
    session.subscribe_bulk(server, refs)
    client.read(refs)  # opens the client's tag session
    with session.stream_events() as events, client.subscribe(refs, duration=20) as changes:
        next(events)
        next(changes)
        old_id = session.session_id
        sim.restart()
        marker = next(e for e in events if e.session_recovered is not None)
        assert marker.session_recovered is not None
        assert marker.session_recovered.old_session_id == old_id
        assert session.session_id == marker.session_recovered.new_session_id != old_id
        assert session.recoveries == 1 and session.last_recovery is not None
        after = next(e for e in events if e.session_recovered is None)
        assert after.tag in refs
        notice = next(c for c in changes if c.tag == "*")
        assert "recovered" in (notice.error or "")
        assert next(c for c in changes if c.tag != "*").tag in refs
    with pytest.raises(MxGatewaySessionNotFoundError):
        client.close_session("no-such-session")
    session.close()


# -- alarms and the Galaxy -----------------------------------------------------------------------


def test_alarms(client: GatewayClient, sim: SimHost) -> None:
    def raise_one() -> str:
        reference: str = sim.gateway.galaxy.alarm_references()[0]
        info = sim.gateway.galaxy.resolve(reference)
        value: object = True if info.data_type == 2 else float(info.alarm_limit) + 10.0
        if info.data_type == 3:
            value = int(info.alarm_limit) + 10
        sim.gateway.set_value(reference, value)
        return reference

    reference = sim.call(raise_one)
    active = client.query_active_alarms()
    assert_type(active, list[ActiveAlarm])
    assert reference in {a.alarm_full_reference for a in active}
    with client.stream_alarms() as feed:
        items = []
        for item in feed:
            items.append(item)
            if isinstance(item, AlarmSnapshotComplete):
                break
        assert reference in {i.alarm_full_reference for i in items if isinstance(i, ActiveAlarm)}
        result = client.acknowledge_alarm(reference, comment="seen", operator="op1")
        assert result.alarm_full_reference == reference


def test_galaxy(galaxy: GalaxyRepositoryClient) -> None:
    assert galaxy.test_connection()
    deployed = galaxy.get_last_deploy_time()
    assert deployed is None or deployed.tzinfo is not None
    roots = galaxy.browse_children()
    assert_type(roots, list[gpb.GalaxyObject])
    assert roots
    nodes = list(galaxy.walk(max_depth=1))
    assert_type(nodes, list[BrowseNode])
    assert {n.depth for n in nodes} == {0, 1}
    everything = galaxy.discover_hierarchy(page_size=7)
    assert len(list(galaxy.iter_hierarchy(page_size=7))) == len(everything) > 7
    children = list(galaxy.iter_children(roots[0].tag_name))
    assert all(isinstance(has, bool) for _, has in children)
    with galaxy.watch_deploy_events() as deploys:
        assert next(deploys).sequence >= 0


# -- life cycle ----------------------------------------------------------------------------------


def test_closed_objects_refuse_reuse(sim: SimHost) -> None:
    client = GatewayClient.connect(sim.endpoint, plaintext=True)
    session = client.open_session()
    session.close()
    assert session.close() is None  # idempotent
    with pytest.raises(MxGatewayClientClosedError, match="Session is closed"):
        session.register("late")
    with pytest.raises(MxGatewayClientClosedError):
        session.stream_events()
    second = client.open_session()
    client.close()
    client.close()  # idempotent
    assert client.closed and second.closed
    for call in (
        lambda: client.read("A.B"),
        lambda: client.open_session(),
        lambda: client.subscribe("A.B"),
        lambda: second.register("late"),
    ):
        # (the client closed the session it opened: the session says so itself)
        with pytest.raises(MxGatewayClientClosedError, match=r"(GatewayClient|Session) is closed"):
            call()
    galaxy = GalaxyRepositoryClient.connect(sim.endpoint, plaintext=True)
    galaxy.close()
    with pytest.raises(MxGatewayClientClosedError, match="GalaxyRepositoryClient is closed"):
        galaxy.browse_children()


def test_connect_validates_like_the_async_api() -> None:
    threads = threading.active_count()
    with pytest.raises(ValueError, match="endpoint"):
        GatewayClient.connect()
    with pytest.raises(ValueError, match="either options"):
        GatewayClient.connect("h:1", options=ClientOptions(endpoint="127.0.0.1:1", plaintext=True))
    assert threading.active_count() == threads
