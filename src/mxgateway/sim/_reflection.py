"""Server reflection, v1alpha and v1, so grpcurl (which asks v1 first) sees the simulator.

grpcio-reflection 1.85 serves only ``grpc.reflection.v1alpha``. The v1 protocol has the same
messages with the same field numbers in package ``grpc.reflection.v1``, so the v1 service is the
v1alpha implementation registered under the v1 name; a v1 copy of the descriptor is added to the
default pool so that reflection can describe itself under both names.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc import aio
from grpc_reflection.v1alpha import reflection, reflection_pb2

__all__ = ["V1ALPHA_SERVICE", "V1_SERVICE", "enable_reflection"]

V1ALPHA_SERVICE = reflection.SERVICE_NAME
V1_SERVICE = "grpc.reflection.v1.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"


def _register_v1_descriptor() -> None:
    pool = descriptor_pool.Default()
    try:
        pool.FindFileByName(_V1_FILE)
        return
    except KeyError:
        pass
    proto = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(proto)
    proto.name = _V1_FILE
    proto.package = "grpc.reflection.v1"
    proto.options.Clear()
    for message in proto.message_type:
        for field in message.field:
            if field.HasField("type_name"):
                field.type_name = field.type_name.replace(
                    ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
                )
    for service in proto.service:
        for method in service.method:
            method.input_type = method.input_type.replace(
                ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
            )
            method.output_type = method.output_type.replace(
                ".grpc.reflection.v1alpha.", ".grpc.reflection.v1."
            )
    pool.AddSerializedFile(proto.SerializeToString())


def enable_reflection(service_names: Iterable[str], server: aio.Server) -> None:
    """Serve reflection v1alpha and v1 on ``server`` for ``service_names`` (plus both itself)."""
    _register_v1_descriptor()
    names = sorted({*service_names, V1ALPHA_SERVICE, V1_SERVICE})
    servicer: Any = reflection.aio.ReflectionServicer(names)
    reflection.enable_server_reflection(names, server)
    handler = grpc.stream_stream_rpc_method_handler(
        servicer.ServerReflectionInfo,
        request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
        response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString,
    )
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler(V1_SERVICE, {"ServerReflectionInfo": handler}),)
    )
