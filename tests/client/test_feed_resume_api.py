"""The resuming alarm feed and deploy watch as an API: budgets checked at the call, permission
errors never retried, what a reconnecting deploy watch asks the gateway for, and the rules of
the consumer's view that the alarm feed reconciles against. (Cuts, outages and restarts:
tests/hardening/test_feed_resume.py.)"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from mxgateway import (
    ActiveAlarm,
    AlarmConditionState,
    AlarmFeedItem,
    AlarmResyncClear,
    AlarmTransition,
    AlarmTransitionKind,
    DeployEvent,
    GalaxyRepositoryClient,
    GatewayClient,
    MxGatewayPermissionError,
    MxGatewayTransportError,
)
from mxgateway._alarm_feed import AlarmView
from mxgateway.generated import galaxy_repository_pb2 as gpb
from mxgateway.generated import galaxy_repository_pb2_grpc as gpb_grpc
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.hardening.feeds import wait_for

NO_EVENTS_KEY = "mxgw_noevents_Y3tAnotherSecret"

BAD_BUDGETS: list[Any] = [0, -1.0, math.nan, math.inf, 8 * 24 * 3600.0]


@pytest.mark.parametrize("budget", BAD_BUDGETS, ids=repr)
async def test_bad_budgets_are_refused_at_the_call(
    client: GatewayClient, galaxy: GalaxyRepositoryClient, budget: Any
) -> None:
    with pytest.raises(ValueError, match="retry_budget_s"):
        client.stream_alarms(retry_budget_s=budget)
    with pytest.raises(ValueError, match="retry_budget_s"):
        galaxy.watch_deploy_events(retry_budget_s=budget)


@pytest.mark.parametrize("budget", [True, "30", None], ids=repr)
async def test_budgets_that_are_not_numbers_are_type_errors(
    client: GatewayClient, galaxy: GalaxyRepositoryClient, budget: Any
) -> None:
    with pytest.raises(TypeError, match="retry_budget_s"):
        client.stream_alarms(retry_budget_s=budget)
    with pytest.raises(TypeError, match="retry_budget_s"):
        galaxy.watch_deploy_events(retry_budget_s=budget)


async def test_a_missing_scope_raises_at_once_without_retrying() -> None:
    config = SimConfig(
        api_keys={NO_EVENTS_KEY: frozenset({"session:open", "invoke:read"})}, galaxy_size=60
    )
    async with (
        SimulatedGateway(config) as sim,
        await GatewayClient.connect(
            endpoint=sim.endpoint, api_key=NO_EVENTS_KEY, plaintext=True
        ) as client,
        await GalaxyRepositoryClient.connect(
            endpoint=sim.endpoint, api_key=NO_EVENTS_KEY, plaintext=True
        ) as galaxy,
    ):
        troubles: list[str | None] = []
        feed = client.stream_alarms(retry_budget_s=600, on_trouble=troubles.append)
        with pytest.raises(MxGatewayPermissionError):
            await asyncio.wait_for(anext(feed), 30)  # a retry would outlast this guard
        watch = galaxy.watch_deploy_events(retry_budget_s=600, on_trouble=troubles.append)
        with pytest.raises(MxGatewayPermissionError):
            await asyncio.wait_for(anext(watch), 30)
        assert troubles == []  # never reconnecting


# -- what a reconnecting deploy watch asks for -------------------------------------------------


def _ts(seconds: int) -> Any:
    from google.protobuf.timestamp_pb2 import Timestamp

    return Timestamp(seconds=seconds)


class _CuttingGalaxy(gpb_grpc.GalaxyRepositoryServicer):
    """A gateway whose watch is cut after each deploy (UNAVAILABLE), whose deploy sequence
    restarts on every connection (as after a restart), and which may ignore the caller's
    last_seen_deploy_time (``suppress=False``). Records every request."""

    def __init__(self, *, suppress: bool) -> None:
        self.suppress = suppress
        self.requests: list[gpb.WatchDeployEventsRequest] = []
        self.deploy_seconds = 1_700_000_000
        self.generation = 0
        self.changed = asyncio.Condition()

    async def deploy(self) -> None:
        async with self.changed:
            self.generation += 1
            self.deploy_seconds += 60
            self.changed.notify_all()

    def _event(self, sequence: int) -> gpb.DeployEvent:
        return gpb.DeployEvent(
            sequence=sequence,
            time_of_last_deploy=_ts(self.deploy_seconds),
            time_of_last_deploy_present=True,
            object_count=10,
        )

    async def GetLastDeployTime(
        self, request: gpb.GetLastDeployTimeRequest, context: Any
    ) -> gpb.GetLastDeployTimeReply:
        return gpb.GetLastDeployTimeReply(
            present=True, time_of_last_deploy=_ts(self.deploy_seconds)
        )

    async def WatchDeployEvents(
        self, request: gpb.WatchDeployEventsRequest, context: Any
    ) -> AsyncIterator[gpb.DeployEvent]:
        self.requests.append(request)
        start = self.generation
        seen = (
            request.last_seen_deploy_time.seconds
            if request.HasField("last_seen_deploy_time")
            else None
        )
        if not (self.suppress and seen == self.deploy_seconds):
            yield self._event(1)
        async with self.changed:
            await self.changed.wait_for(lambda: self.generation > start)
        yield self._event(2)
        await context.abort(grpc.StatusCode.UNAVAILABLE, "cut after the deploy")


@pytest.mark.parametrize("suppress", [True, False], ids=["gateway-suppresses", "gateway-repeats"])
async def test_a_reconnect_asks_from_the_last_deploy_yielded_and_yields_none_twice(
    suppress: bool,
) -> None:
    servicer = _CuttingGalaxy(suppress=suppress)  # type: ignore[abstract]
    server = grpc.aio.server()
    gpb_grpc.add_GalaxyRepositoryServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with await GalaxyRepositoryClient.connect(
            endpoint=f"127.0.0.1:{port}", plaintext=True
        ) as galaxy:
            events: list[DeployEvent] = []
            watch = galaxy.watch_deploy_events(retry_budget_s=20)
            events.append(await asyncio.wait_for(anext(watch), 10))  # the bootstrap
            for connection in range(1, 4):
                reading = asyncio.ensure_future(anext(watch))
                # (re)connected: deploy now
                await wait_for(lambda n=connection: len(servicer.requests) >= n)
                await servicer.deploy()  # yielded, then the stream is cut
                events.append(await asyncio.wait_for(reading, 10))
            await watch.aclose()  # type: ignore[attr-defined]
    finally:
        await server.stop(None)
    seconds = [e.time_of_last_deploy.seconds for e in events]
    assert seconds == sorted(set(seconds)) and len(seconds) == 4  # each deploy once, in order
    # Sequences restart with each connection (1, 2, 2, 2): no error, nothing dropped.
    assert [e.sequence for e in events] == [1, 2, 2, 2]
    assert not servicer.requests[0].HasField("last_seen_deploy_time")
    for request, event in zip(servicer.requests[1:], events[1:], strict=False):
        assert request.last_seen_deploy_time.seconds == event.time_of_last_deploy.seconds


# -- the consumer's view (pure rules) ----------------------------------------------------------

_S = AlarmConditionState


def _alarm(reference: str, state: _S, raised: int = 1) -> ActiveAlarm:
    return ActiveAlarm(
        alarm_full_reference=reference,
        source_object_reference=reference.split(".")[0],
        alarm_type_name="HI",
        severity=100,
        current_state=state,
        category="Process",
        description="",
        original_raise_timestamp_ns=raised,
        last_transition_timestamp_ns=raised,
        operator_user="",
        operator_comment="",
        current_value=None,
        limit_value=None,
        degraded=False,
        area="Area_001",
    )


def _transition(
    reference: str, kind: AlarmTransitionKind, state: _S, raised: int = 1
) -> AlarmTransition:
    return AlarmTransition(
        alarm_full_reference=reference,
        source_object_reference=reference.split(".")[0],
        alarm_type_name="HI",
        transition_kind=kind,
        severity=100,
        original_raise_timestamp_ns=raised,
        transition_timestamp_ns=raised,
        operator_user="",
        operator_comment="",
        category="Process",
        description="",
        current_value=None,
        limit_value=None,
        degraded=False,
        current_state=state,
    )


def test_the_view_follows_live_transitions() -> None:
    view = AlarmView()
    view.note(_transition("A.X", AlarmTransitionKind.RAISE, _S.ACTIVE))
    view.note(_transition("B.X", AlarmTransitionKind.RAISE, _S.UNSPECIFIED))  # state left unset
    assert view.states() == {"A.X": _S.ACTIVE, "B.X": _S.ACTIVE}
    view.note(_transition("A.X", AlarmTransitionKind.ACKNOWLEDGE, _S.ACTIVE_ACKED))
    view.note(_transition("B.X", AlarmTransitionKind.CLEAR, _S.INACTIVE_UNACKED))
    assert view.states() == {"A.X": _S.ACTIVE_ACKED, "B.X": _S.INACTIVE_UNACKED}
    view.note(_transition("B.X", AlarmTransitionKind.RETRIGGER, _S.ACTIVE))
    view.note(_transition("A.X", AlarmTransitionKind.CLEAR, _S.UNSPECIFIED))  # normal
    assert view.states() == {"B.X": _S.ACTIVE}
    view.note(_transition("B.X", AlarmTransitionKind.CLEAR, _S.INACTIVE_UNACKED))
    view.note(_transition("B.X", AlarmTransitionKind.ACKNOWLEDGE, _S.UNSPECIFIED))
    assert len(view) == 0


def test_reconcile_reports_only_differences() -> None:
    view = AlarmView()
    for alarm in (
        _alarm("Same.X", _S.ACTIVE),
        _alarm("Acked.X", _S.ACTIVE),
        _alarm("Gone.X", _S.ACTIVE_ACKED),
        _alarm("Again.X", _S.ACTIVE, raised=1),
    ):
        view.note(alarm)
    snapshot = [
        _alarm("New.X", _S.ACTIVE),
        _alarm("Same.X", _S.ACTIVE),
        _alarm("Acked.X", _S.ACTIVE_ACKED),
        _alarm("Again.X", _S.ACTIVE, raised=2),  # ended and raised anew meanwhile
        _alarm("Normal.X", _S.UNSPECIFIED),  # not active: ignored
    ]
    clears, updates, changed = view.reconcile(snapshot, now_ns=99)
    assert [(c.alarm_full_reference, c.previous_state) for c in clears] == [
        ("Gone.X", _S.ACTIVE_ACKED),
        ("Again.X", _S.ACTIVE),
    ]
    assert all(isinstance(c, AlarmResyncClear) and c.resync_timestamp_ns == 99 for c in clears)
    assert [u.alarm_full_reference for u in updates] == ["New.X", "Acked.X", "Again.X"]
    assert changed == 1
    told: list[AlarmFeedItem] = [*clears, *updates]
    for item in told:
        view.note(item)
    assert view.states() == {
        "Same.X": _S.ACTIVE,
        "Acked.X": _S.ACTIVE_ACKED,
        "Again.X": _S.ACTIVE,
        "New.X": _S.ACTIVE,
    }
    assert view.reconcile(snapshot, now_ns=100) == ([], [], 0)  # nothing left to tell


async def test_resume_false_keeps_the_old_behaviour(
    client: GatewayClient, sim: SimulatedGateway
) -> None:
    feed = client.stream_alarms(resume=False)
    await asyncio.wait_for(anext(feed), 10)
    await sim.restart()
    with pytest.raises(MxGatewayTransportError):
        while True:
            await asyncio.wait_for(anext(feed), 10)
