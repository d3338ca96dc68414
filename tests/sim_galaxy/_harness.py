"""A small grpc.aio server on loopback with the Galaxy service and the three alarm rpcs.

The alarm handlers sit behind a generic handler (the rest of MxAccessGateway is not needed
here); clients use the generated stubs over a real channel.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc import aio

from mxgateway.generated import galaxy_repository_pb2_grpc as gpb_grpc
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim._alarms import AlarmManager
from mxgateway.sim._galaxy import Galaxy, GalaxyRepositoryServicer

READ_TIMEOUT = 5.0


@dataclass
class AuthRecorder:
    """An auth_check that records the scopes asked for and can deny every call."""

    scopes: list[str] = field(default_factory=list)
    deny: grpc.StatusCode | None = None

    async def __call__(self, context: aio.ServicerContext[Any, Any], scope: str) -> None:
        self.scopes.append(scope)
        if self.deny is not None:
            await context.abort(self.deny, f"denied ({scope})")


@dataclass
class Sim:
    """A running test server and stubs bound to it."""

    galaxy: Galaxy
    alarms: AlarmManager
    auth: AuthRecorder
    repo: gpb_grpc.GalaxyRepositoryAsyncStub
    gateway: pb_grpc.MxAccessGatewayAsyncStub


def _alarm_handler(alarms: AlarmManager) -> grpc.GenericRpcHandler:
    return grpc.method_handlers_generic_handler(
        "mxaccess_gateway.v1.MxAccessGateway",
        {
            "StreamAlarms": grpc.unary_stream_rpc_method_handler(
                alarms.stream_alarms,
                request_deserializer=pb.StreamAlarmsRequest.FromString,
                response_serializer=pb.AlarmFeedMessage.SerializeToString,
            ),
            "QueryActiveAlarms": grpc.unary_stream_rpc_method_handler(
                alarms.query_active_alarms,
                request_deserializer=pb.QueryActiveAlarmsRequest.FromString,
                response_serializer=pb.ActiveAlarmSnapshot.SerializeToString,
            ),
            "AcknowledgeAlarm": grpc.unary_unary_rpc_method_handler(
                alarms.acknowledge_alarm,
                request_deserializer=pb.AcknowledgeAlarmRequest.FromString,
                response_serializer=pb.AcknowledgeAlarmReply.SerializeToString,
            ),
        },
    )


@asynccontextmanager
async def serve(galaxy: Galaxy, *, queue_capacity: int = 10_000) -> AsyncIterator[Sim]:
    """Start a server for ``galaxy`` on 127.0.0.1 (port 0) and yield stubs to it."""
    alarms = AlarmManager(galaxy, queue_capacity=queue_capacity)
    auth = AuthRecorder()
    server = aio.server()
    GalaxyRepositoryServicer(galaxy, auth).add_to_server(server)
    server.add_generic_rpc_handlers((_alarm_handler(alarms),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    channel = aio.insecure_channel(f"127.0.0.1:{port}")
    try:
        yield Sim(
            galaxy=galaxy,
            alarms=alarms,
            auth=auth,
            repo=gpb_grpc.GalaxyRepositoryStub(channel),
            gateway=pb_grpc.MxAccessGatewayStub(channel),
        )
    finally:
        await channel.close()
        await server.stop(None)


async def read(call: Any) -> Any:
    """The next message of a server stream (fails the test after READ_TIMEOUT seconds)."""
    async with asyncio.timeout(READ_TIMEOUT):
        message = await call.read()
    assert message is not aio.EOF, "stream ended"
    return message


async def eventually(predicate: Callable[[], bool]) -> None:
    """Wait until ``predicate()`` is true (fails the test after READ_TIMEOUT seconds)."""
    async with asyncio.timeout(READ_TIMEOUT):
        while True:  # polls server-side state that has no event to wait on
            if predicate():
                return
            await asyncio.sleep(0.01)
