"""The standard health service and server reflection (v1 and v1alpha), as grpcurl uses them."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import descriptor_pb2
from grpc_health.v1 import health_pb2
from grpc_reflection.v1alpha import reflection_pb2

from mxgateway.sim import SimulatedGateway
from tests.sim.helpers import health_stub

GATEWAY = "mxaccess_gateway.v1.MxAccessGateway"
GALAXY = "galaxy_repository.v1.GalaxyRepository"


@pytest.mark.parametrize("service", ["", GATEWAY, GALAXY])
async def test_health_serving(channel: grpc.aio.Channel, service: str) -> None:
    stub = health_stub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


async def test_health_unknown_service(channel: grpc.aio.Channel) -> None:
    stub = health_stub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.Check(health_pb2.HealthCheckRequest(service="nope.Nope"))
    assert info.value.code() == grpc.StatusCode.NOT_FOUND


async def test_health_watch_sees_shutdown(gateway_factory) -> None:
    async with gateway_factory() as gw, grpc.aio.insecure_channel(gw.endpoint) as channel:
        call = health_stub(channel).Watch(health_pb2.HealthCheckRequest(service=GATEWAY))
        first = await call.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        await gw.stop(grace=1.0)
        statuses = []
        try:
            while (message := await call.read()) is not grpc.aio.EOF:
                statuses.append(message.status)
        except grpc.aio.AioRpcError:
            pass
        assert health_pb2.HealthCheckResponse.SERVING not in statuses


async def reflect(
    channel: grpc.aio.Channel, version: str, request: reflection_pb2.ServerReflectionRequest
) -> reflection_pb2.ServerReflectionResponse:
    # v1 and v1alpha messages are the same on the wire: the v1alpha classes serve both.
    method = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    call = method()
    await call.write(request)
    await call.done_writing()
    response = await call.read()
    assert isinstance(response, reflection_pb2.ServerReflectionResponse)
    return response


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
async def test_reflection_lists_services(
    gw: SimulatedGateway, channel: grpc.aio.Channel, version: str
) -> None:
    response = await reflect(
        channel, version, reflection_pb2.ServerReflectionRequest(list_services="")
    )
    names = {s.name for s in response.list_services_response.service}
    assert {GATEWAY, GALAXY, "grpc.health.v1.Health"} <= names
    assert {"grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"} <= (
        names
    )


@pytest.mark.parametrize("version", ["v1", "v1alpha"])
@pytest.mark.parametrize(
    ("symbol", "file_name"),
    [
        (GATEWAY, "mxaccess_gateway.proto"),
        ("mxaccess_gateway.v1.MxEventBatch", "mxaccess_gateway.proto"),
        (GALAXY, "galaxy_repository.proto"),
        ("grpc.reflection.v1.ServerReflection", "grpc/reflection/v1/reflection.proto"),
    ],
)
async def test_reflection_describes_symbols(
    channel: grpc.aio.Channel, version: str, symbol: str, file_name: str
) -> None:
    response = await reflect(
        channel, version, reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)
    )
    files = [
        descriptor_pb2.FileDescriptorProto.FromString(raw)
        for raw in response.file_descriptor_response.file_descriptor_proto
    ]
    assert files and files[0].name.endswith(file_name)
    if symbol == GATEWAY:
        (service,) = files[0].service
        assert "StreamEventBatches" in {m.name for m in service.method}


async def test_reflection_unknown_symbol(channel: grpc.aio.Channel) -> None:
    response = await reflect(
        channel, "v1", reflection_pb2.ServerReflectionRequest(file_containing_symbol="no.Such")
    )
    assert response.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
