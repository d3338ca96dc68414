"""Shared by the bench tests: whether the simulator has the flags a test needs, and a fake
gateway that records in which order streams are attached and items advised.

``SIMULATOR_LANDED`` says whether the simulator's genuine mode (``--no-event-batches``), paced
flood (``--flood-rate``) and final ``{"stopped": ...}`` line are on this branch. While False, a
test needing them is skipped with a reason that ``-ra`` prints; once True, a simulator that
lacks them fails the test with a message saying so.
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc

SIMULATOR_LANDED = True


@functools.cache
def _sim_help() -> str:
    result = subprocess.run(
        [sys.executable, "-m", "mxgateway_cli", "sim", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )
    return result.stdout


def need_simulator_flags(*flags: str) -> None:
    """Skip (before the simulator change landed) or fail (after) unless ``mxgw-py sim --help``
    lists every one of ``flags``."""
    missing = [flag for flag in flags if flag not in _sim_help()]
    if not missing:
        return
    text = f"mxgw-py sim --help does not list {', '.join(missing)}"
    if SIMULATOR_LANDED:
        pytest.fail(f"{text}, though the simulator change is marked as landed (_support.py)")
    pytest.skip(f"{text}: the simulator change is not on this branch yet")


class FakeGateway(pb_grpc.MxAccessGatewayServicer):
    """Sessions, Register, SubscribeBulk and both event rpcs, like a gateway in one respect
    that matters here: a session's stream carries events only once its items are advised.

    ``log`` records ``(session_id, what)`` in order: ``"stream"`` when an event rpc starts,
    ``"advise"`` for a SubscribeBulk. ``batch_sizes`` cycle over the StreamEventBatches
    messages; ``overflow_after`` ends every stream with RESOURCE_EXHAUSTED EventQueueOverflow
    after that many events; ``batches=False`` answers StreamEventBatches UNIMPLEMENTED.
    """

    def __init__(
        self,
        *,
        batch_sizes: tuple[int, ...] = (10,),
        overflow_after: int | None = None,
        batches: bool = True,
    ) -> None:
        self.log: list[tuple[str, str]] = []
        self.batch_sizes = batch_sizes
        self.overflow_after = overflow_after
        self.batches = batches
        self._advised: dict[str, asyncio.Event] = {}
        self._sessions = 0

    def _event(self, session_id: str, sequence: int) -> pb.MxEvent:
        event = pb.MxEvent(
            session_id=session_id,
            family=pb.MX_EVENT_FAMILY_ON_DATA_CHANGE,
            worker_sequence=sequence,
            on_data_change=pb.OnDataChangeEvent(),
        )
        event.gateway_receive_timestamp.FromNanoseconds(time.time_ns())
        return event

    async def OpenSession(self, request: Any, context: Any) -> pb.OpenSessionReply:
        self._sessions += 1
        session_id = f"fake-session-{self._sessions:04d}"
        self._advised[session_id] = asyncio.Event()
        return pb.OpenSessionReply(session_id=session_id)

    async def CloseSession(self, request: Any, context: Any) -> pb.CloseSessionReply:
        return pb.CloseSessionReply()

    async def Invoke(self, request: Any, context: Any) -> pb.MxCommandReply:
        ok = pb.ProtocolStatus(code=pb.PROTOCOL_STATUS_CODE_OK)
        if request.command.HasField("register"):
            return pb.MxCommandReply(protocol_status=ok, register=pb.RegisterReply(server_handle=1))
        self.log.append((request.session_id, "advise"))
        self._advised[request.session_id].set()
        results = [
            pb.SubscribeResult(tag_address=tag, item_handle=i, was_successful=True)
            for i, tag in enumerate(request.command.subscribe_bulk.tag_addresses, start=1)
        ]
        return pb.MxCommandReply(
            protocol_status=ok, bulk_subscribe=pb.BulkSubscribeReply(results=results)
        )

    async def _overflow(self, context: Any) -> None:
        await context.abort(
            grpc.StatusCode.RESOURCE_EXHAUSTED, "EventQueueOverflow: the consumer fell behind"
        )

    async def StreamEvents(self, request: Any, context: Any) -> AsyncIterator[pb.MxEvent]:
        self.log.append((request.session_id, "stream"))
        await self._advised[request.session_id].wait()
        sequence = request.after_worker_sequence
        while True:
            if self.overflow_after is not None and sequence >= self.overflow_after:
                await self._overflow(context)
            sequence += 1
            yield self._event(request.session_id, sequence)
            if sequence % 50 == 0:
                await asyncio.sleep(0.001)  # leave the shared loop to the client now and then

    async def StreamEventBatches(
        self, request: Any, context: Any
    ) -> AsyncIterator[pb.MxEventBatch]:
        if not self.batches:
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, "no StreamEventBatches here")
        self.log.append((request.session_id, "stream"))
        await self._advised[request.session_id].wait()
        sequence = request.after_worker_sequence
        turn = 0
        while True:
            if self.overflow_after is not None and sequence >= self.overflow_after:
                await self._overflow(context)
            size = self.batch_sizes[turn % len(self.batch_sizes)]
            turn += 1
            events = [self._event(request.session_id, sequence + i + 1) for i in range(size)]
            sequence += size
            yield pb.MxEventBatch(events=events)
            await asyncio.sleep(0.001)

    # Not used by the benchmark: the rpcs of the alarm feed answer UNIMPLEMENTED.
    async def AcknowledgeAlarm(self, request: Any, context: Any) -> pb.AcknowledgeAlarmReply:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this fake")
        raise AssertionError("abort raises")

    async def StreamAlarms(self, request: Any, context: Any) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this fake")
        yield  # pragma: no cover - makes this an async generator

    async def QueryActiveAlarms(self, request: Any, context: Any) -> AsyncIterator[Any]:
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, "not in this fake")
        yield  # pragma: no cover - makes this an async generator

    def order_ok(self) -> bool:
        """Every session's stream started before its items were advised."""
        first: dict[str, str] = {}
        for session_id, what in self.log:
            first.setdefault(session_id, what)
        return bool(first) and all(what == "stream" for what in first.values())


async def serve(servicer: FakeGateway) -> tuple[grpc.aio.Server, str]:
    """Start ``servicer`` on a grpc.aio server on 127.0.0.1, port 0; the caller stops it."""
    server = grpc.aio.server()
    pb_grpc.add_MxAccessGatewayServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"
