"""Helpers for the simulator tests: a session over the raw generated stubs, stream reading.

The tests talk to the simulator only through the generated stubs over loopback gRPC (no client
library), so the simulator is checked on its own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import grpc

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc

K = pb.MxCommandKind
OK = pb.PROTOCOL_STATUS_CODE_OK
MXACCESS_FAILURE = pb.PROTOCOL_STATUS_CODE_MXACCESS_FAILURE
MiB = 1024 * 1024

# Short knobs for a fast suite; each test overrides what it exercises.
FAST: dict[str, Any] = {"rate": 0.0, "detach_grace_s": 30.0, "command_timeout_s": 10.0}


def health_stub(channel: grpc.aio.Channel) -> Any:
    """A grpc.health.v1 stub (its type stubs lack the rpc attributes)."""
    from grpc_health.v1 import health_pb2_grpc

    return health_pb2_grpc.HealthStub(channel)


def channel_options(max_bytes: int = 16 * MiB) -> list[tuple[str, int]]:
    """Client options raising the message limits to the gateway's."""
    return [
        ("grpc.max_send_message_length", max_bytes),
        ("grpc.max_receive_message_length", max_bytes),
    ]


class Client:
    """One session over the raw stubs, with helpers to build commands."""

    def __init__(
        self, stub: pb_grpc.MxAccessGatewayAsyncStub, metadata: tuple[Any, ...] = ()
    ) -> None:
        self.stub = stub
        self.metadata = metadata
        self.session_id = ""

    async def open(self, name: str = "test", lease_seconds: int = 0) -> pb.OpenSessionReply:
        reply = await self.stub.OpenSession(
            pb.OpenSessionRequest(client_session_name=name, lease_seconds=lease_seconds),
            metadata=self.metadata,
        )
        self.session_id = reply.session_id
        return reply

    async def close(self) -> pb.CloseSessionReply:
        return await self.stub.CloseSession(
            pb.CloseSessionRequest(session_id=self.session_id), metadata=self.metadata
        )

    async def invoke(
        self, kind: int, *, deadline: float | None = None, **payload: Any
    ) -> pb.MxCommandReply:
        return await self.stub.Invoke(
            pb.MxCommandRequest(
                session_id=self.session_id,
                client_correlation_id=f"c-{kind}",
                command=pb.MxCommand(kind=kind, **payload),  # type: ignore[arg-type]
            ),
            metadata=self.metadata,
            timeout=deadline,
        )

    async def register(self, name: str = "t") -> int:
        reply = await self.invoke(
            K.MX_COMMAND_KIND_REGISTER, register=pb.RegisterCommand(client_name=name)
        )
        assert reply.protocol_status.code == OK, reply
        return reply.register.server_handle

    async def add_item(self, server: int, ref: str) -> int:
        reply = await self.invoke(
            K.MX_COMMAND_KIND_ADD_ITEM,
            add_item=pb.AddItemCommand(server_handle=server, item_definition=ref),
        )
        assert reply.protocol_status.code == OK, reply
        return reply.item_handle.item_handle

    async def advise(self, server: int, item: int) -> pb.MxCommandReply:
        return await self.invoke(
            K.MX_COMMAND_KIND_ADVISE,
            advise=pb.AdviseCommand(server_handle=server, item_handle=item),
        )

    async def subscribe(self, server: int, refs: list[str]) -> list[int]:
        reply = await self.invoke(
            K.MX_COMMAND_KIND_SUBSCRIBE_BULK,
            subscribe_bulk=pb.SubscribeBulkCommand(server_handle=server, tag_addresses=refs),
        )
        assert reply.protocol_status.code == OK, reply
        return [r.item_handle for r in reply.bulk_subscribe.results]

    async def write(self, server: int, item: int, value: pb.MxValue) -> pb.MxCommandReply:
        return await self.invoke(
            K.MX_COMMAND_KIND_WRITE,
            write=pb.WriteCommand(server_handle=server, item_handle=item, value=value),
        )

    async def drain(self, max_events: int = 0) -> list[pb.MxEvent]:
        reply = await self.invoke(
            K.MX_COMMAND_KIND_DRAIN_EVENTS,
            drain_events=pb.DrainEventsCommand(max_events=max_events),
        )
        assert reply.protocol_status.code == OK, reply
        return list(reply.drain_events.events)

    def stream(self, after: int = 0) -> Any:
        return self.stub.StreamEvents(
            pb.StreamEventsRequest(session_id=self.session_id, after_worker_sequence=after),
            metadata=self.metadata,
        )

    def stream_batches(self, after: int = 0, max_batch: int = 0) -> Any:
        return self.stub.StreamEventBatches(
            pb.StreamEventsRequest(
                session_id=self.session_id,
                after_worker_sequence=after,
                max_batch_events=max_batch,
            ),
            metadata=self.metadata,
        )


async def take(call: Any, n: int, within: float = 10.0) -> list[Any]:
    """The next ``n`` messages of a stream call."""

    async def read() -> list[Any]:
        out: list[Any] = []
        while len(out) < n:
            message = await call.read()
            assert message is not grpc.aio.EOF, f"stream ended after {len(out)} messages"
            out.append(message)
        return out

    return await asyncio.wait_for(read(), within)


async def wait_until(predicate: Callable[[], bool], within: float = 10.0) -> None:
    """Poll ``predicate`` until it holds (fails the test after ``within`` s)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


def mx_double(x: float) -> pb.MxValue:
    return pb.MxValue(data_type=pb.MX_DATA_TYPE_DOUBLE, double_value=x)


def mx_int(x: int) -> pb.MxValue:
    return pb.MxValue(data_type=pb.MX_DATA_TYPE_INTEGER, int32_value=x)


def mx_bool(x: bool) -> pb.MxValue:
    return pb.MxValue(data_type=pb.MX_DATA_TYPE_BOOLEAN, bool_value=x)


def mx_str(x: str) -> pb.MxValue:
    return pb.MxValue(data_type=pb.MX_DATA_TYPE_STRING, string_value=x)
