"""The alarm rpcs and the GalaxyRepository through the simulator's server (the services
themselves are tested with their own modules; this checks the wiring, values and redeploys)."""

from __future__ import annotations

import grpc

from mxgateway.generated import galaxy_repository_pb2 as gpb
from mxgateway.generated import galaxy_repository_pb2_grpc as gpb_grpc
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimulatedGateway
from tests.sim.helpers import take

ALARM = "Pump_001.Speed"


async def test_simulated_values_drive_the_alarm_feed(
    gw: SimulatedGateway, stub: pb_grpc.MxAccessGatewayAsyncStub
) -> None:
    gw.set_value(ALARM, 0.0)
    gw.set_value(ALARM, 0.0)  # normal, whatever the initial value was
    feed = stub.StreamAlarms(pb.StreamAlarmsRequest(alarm_filter_prefix="Pump_001."))
    messages = []
    while True:
        (message,) = await take(feed, 1)
        messages.append(message)
        if message.WhichOneof("payload") == "provider_status":
            break
    kinds = [m.WhichOneof("payload") for m in messages]
    assert kinds[-2:] == ["snapshot_complete", "provider_status"]
    gw.set_value(ALARM, 99.0)
    (raised,) = await take(feed, 1)
    while raised.transition.alarm_full_reference != ALARM:
        (raised,) = await take(feed, 1)
    assert raised.transition.transition_kind in (
        pb.ALARM_TRANSITION_KIND_RAISE,
        pb.ALARM_TRANSITION_KIND_RETRIGGER,  # if it was still waiting for an acknowledgement
    )
    active = [a async for a in stub.QueryActiveAlarms(pb.QueryActiveAlarmsRequest())]
    assert ALARM in {a.alarm_full_reference for a in active}
    reply = await stub.AcknowledgeAlarm(
        pb.AcknowledgeAlarmRequest(alarm_full_reference=ALARM, operator_comment="ok")
    )
    assert reply.protocol_status.code == pb.PROTOCOL_STATUS_CODE_OK
    assert reply.resulting_state == pb.ALARM_CONDITION_STATE_ACTIVE_ACKED
    (acked,) = await take(feed, 1)
    while acked.transition.alarm_full_reference != ALARM:
        (acked,) = await take(feed, 1)
    assert acked.transition.transition_kind == pb.ALARM_TRANSITION_KIND_ACKNOWLEDGE
    feed.cancel()


async def test_galaxy_repository_and_redeploy(
    gw: SimulatedGateway, channel: grpc.aio.Channel
) -> None:
    stub = gpb_grpc.GalaxyRepositoryStub(channel)
    assert (await stub.TestConnection(gpb.TestConnectionRequest())).ok
    before = await stub.GetLastDeployTime(gpb.GetLastDeployTimeRequest())
    assert before.present
    tree = await stub.DiscoverHierarchy(gpb.DiscoverHierarchyRequest(page_size=10))
    assert tree.objects and tree.total_object_count >= len(tree.objects)
    roots = await stub.BrowseChildren(gpb.BrowseChildrenRequest(page_size=5))
    assert roots.children
    watch = stub.WatchDeployEvents(gpb.WatchDeployEventsRequest())
    (bootstrap,) = await take(watch, 1)
    gw.redeploy()
    (deployed,) = await take(watch, 1)
    assert deployed.sequence == bootstrap.sequence + 1
    watch.cancel()
