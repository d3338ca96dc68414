"""Bad input: each gets a clear typed error, nothing is sent when the client can tell, and
nothing is lost (the session and its event stream carry on)."""

from __future__ import annotations

import asyncio
import math
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import grpc
import pytest

from mxgateway import (
    ClientOptions,
    GalaxyRepositoryClient,
    GatewayClient,
    MxAccessError,
    MxDataType,
    MxEvent,
    MxEventFamily,
    MxGatewayDecodeError,
    MxGatewayProtocolError,
    MxGatewayRequestTooLargeError,
    MxGatewaySessionNotFoundError,
    Session,
)
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.hardening.conftest import assert_contiguous, find_reference, sequences
from tests.hardening.proxy import TcpProxy

MiB = 1024 * 1024
LIMIT = 16 * MiB
E_HANDLE = 0x80070006
DISP_E_OVERFLOW = 0x8002000A
NOW = datetime(2026, 1, 1, tzinfo=UTC)
# What may cross the wire while nothing is sent: a keepalive or flow-control ping, a window update.
QUIET_BYTES = 512

WriteCall = Callable[[Session, int, int, Any, MxDataType | None], Awaitable[Any]]

WRITES: dict[str, WriteCall] = {
    "write": lambda s, srv, item, v, t: s.write(srv, item, v, data_type=t),
    "write2": lambda s, srv, item, v, t: s.write2(srv, item, v, NOW, data_type=t),
    "write_secured": lambda s, srv, item, v, t: s.write_secured(
        srv, item, v, current_user_id=1, data_type=t
    ),
    "write_secured2": lambda s, srv, item, v, t: s.write_secured2(
        srv, item, v, NOW, current_user_id=1, data_type=t
    ),
    "write_bulk": lambda s, srv, item, v, t: s.write_bulk(
        srv, [(item, 1.0), (item, v)], data_type=t
    ),
    "write2_bulk": lambda s, srv, item, v, t: s.write2_bulk(
        srv, [(item, 1.0, NOW), (item, v, NOW)], data_type=t
    ),
    "write_secured_bulk": lambda s, srv, item, v, t: s.write_secured_bulk(
        srv, [(item, 1.0), (item, v)], current_user_id=1, data_type=t
    ),
    "write_secured2_bulk": lambda s, srv, item, v, t: s.write_secured2_bulk(
        srv, [(item, 1.0, NOW), (item, v, NOW)], current_user_id=1, data_type=t
    ),
}

# Values no MXAccess attribute can take: refused by the client before anything is sent.
BAD_VALUES: list[tuple[Any, MxDataType | None, str]] = [
    (math.nan, None, "nan"),
    (math.inf, None, "infinit"),
    (-math.inf, None, "infinit"),
    (2**63, None, "int64"),
    (1e39, MxDataType.FLOAT, "overflows a 32-bit float"),
    ([1.0, math.nan], None, "nan"),
    ("text", MxDataType.DOUBLE, "does not fit"),
    (object(), None, "unsupported value type"),
]


async def _consume(session: Session, seen: list[MxEvent]) -> None:
    async for batch in session.stream_event_batches():
        seen.extend(batch)


async def _wait_for(predicate: Callable[[], bool], within: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not predicate():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.01)


@pytest.fixture
async def quiet_sim() -> AsyncIterator[SimulatedGateway]:
    """Values change 20 times a second (a live stream), nothing else happens on its own."""
    async with SimulatedGateway(SimConfig(rate=20.0, galaxy_size=60)) as gateway:
        yield gateway


async def test_unwritable_values_are_refused_before_sending_and_nothing_is_lost(
    quiet_sim: SimulatedGateway,
) -> None:
    sim = quiet_sim
    reference = find_reference(sim, MxDataType.DOUBLE)
    async with (
        TcpProxy(sim.endpoint) as proxy,
        await GatewayClient.connect(endpoint=proxy.endpoint, plaintext=True) as client,
    ):
        session = await client.open_session()
        server = await session.register("bad-values")
        item = await session.add_item(server, reference)
        await session.advise(server, item)
        seen: list[MxEvent] = []
        consumer = asyncio.create_task(_consume(session, seen))
        await _wait_for(lambda: len(seen) >= 5)
        state = sim.attribute(reference)
        assert state is not None
        for name, write in WRITES.items():
            for value, data_type, words in BAD_VALUES:
                sent = proxy.bytes_up
                with pytest.raises((ValueError, TypeError), match=words):
                    await write(session, server, item, value, data_type)
                assert proxy.bytes_up - sent < QUIET_BYTES, (name, value)
        mark = len(seen)
        await _wait_for(lambda: len(seen) >= mark + 10)  # the stream went on throughout
        consumer.cancel()
        with pytest.raises(asyncio.CancelledError):
            await consumer
        assert_contiguous(sequences(seen))
        assert not any(e.family == MxEventFamily.ON_WRITE_COMPLETE for e in seen)
        await session.close()


@pytest.mark.parametrize(
    ("data_type", "value"),
    [(MxDataType.INTEGER, 2**31), (MxDataType.INTEGER, -(2**40)), (MxDataType.FLOAT, 1e300)],
)
async def test_values_out_of_the_attributes_range_fail_in_mxaccess_and_change_nothing(
    quiet_sim: SimulatedGateway, data_type: MxDataType, value: float
) -> None:
    # Valid MxValues (int64, double) that the attribute cannot hold: MXAccess refuses them
    # (DISP_E_OVERFLOW) as a reply; a bulk fails that entry in place.
    sim = quiet_sim
    reference = find_reference(sim, data_type)
    async with await GatewayClient.connect(endpoint=sim.endpoint, plaintext=True) as client:
        session = await client.open_session()
        server = await session.register("range")
        item = await session.add_item(server, reference)
        await session.advise(server, item)
        state = sim.attribute(reference)
        assert state is not None
        with pytest.raises(MxAccessError) as info:
            await session.write(server, item, value)
        assert info.value.hresult & 0xFFFFFFFF == DISP_E_OVERFLOW
        assert "overflow" in str(info.value)
        assert not state.held and state.value != value  # not written (its generator runs on)
        results = await session.write_bulk(server, [(item, value), (item, 7)])
        assert not results[0].was_successful
        assert results[0].hresult & 0xFFFFFFFF == DISP_E_OVERFLOW
        assert results[1].was_successful
        written = sim.attribute(reference)
        assert written is not None and written.held and written.value == 7
        await session.close()


BULKS: dict[str, Callable[[Session, int, str], Awaitable[Any]]] = {
    "subscribe_bulk": lambda s, srv, big: s.subscribe_bulk(srv, [big]),
    "read_bulk": lambda s, srv, big: s.read_bulk(srv, [big]),
    "write_bulk": lambda s, srv, big: s.write_bulk(srv, [(1, big)]),
    "write2_bulk": lambda s, srv, big: s.write2_bulk(srv, [(1, big, NOW)]),
    "write_secured_bulk": lambda s, srv, big: s.write_secured_bulk(
        srv, [(1, big)], current_user_id=1
    ),
    "write_secured2_bulk": lambda s, srv, big: s.write_secured2_bulk(
        srv, [(1, big, NOW)], current_user_id=1
    ),
    "write (single, caught by gRPC)": lambda s, srv, big: s.write(srv, 1, big),
}


async def test_oversized_requests_are_typed_and_never_sent(quiet_sim: SimulatedGateway) -> None:
    # (tests/client/test_session.py covers add_item_bulk with many long tags.)
    big = "x" * (LIMIT + 1)
    async with (
        TcpProxy(quiet_sim.endpoint) as proxy,
        await GatewayClient.connect(endpoint=proxy.endpoint, plaintext=True) as client,
    ):
        session = await client.open_session()
        server = await session.register("big")
        for name, bulk in BULKS.items():
            sent = proxy.bytes_up
            with pytest.raises(MxGatewayRequestTooLargeError) as info:
                await bulk(session, server, big)
            assert isinstance(info.value, ValueError)
            assert proxy.bytes_up - sent < QUIET_BYTES, name
            assert "16777216" in str(info.value) or str(LIMIT) in str(info.value), name
        assert await session.register("still-fine") == server + 1
        await session.close()


async def test_the_largest_request_the_client_allows_reaches_the_gateway(
    quiet_sim: SimulatedGateway,
) -> None:
    # The client's check leaves room for the envelope: what it lets through, the gateway takes.
    async with await GatewayClient.connect(endpoint=quiet_sim.endpoint, plaintext=True) as client:
        session = await client.open_session()
        server = await session.register("edge")

        def command_size(length: int) -> int:
            entry = pb.WriteBulkEntry(
                item_handle=999,
                value=pb.MxValue(data_type=pb.MX_DATA_TYPE_STRING, string_value="x" * length),
            )
            return pb.MxCommand(
                kind=pb.MX_COMMAND_KIND_WRITE_BULK,
                write_bulk=pb.WriteBulkCommand(server_handle=server, entries=[entry]),
            ).ByteSize()

        length = LIMIT - 1024 - 64
        length += (LIMIT - 1024) - command_size(length)  # exactly at the client's limit
        assert command_size(length) == LIMIT - 1024
        results = await session.write_bulk(server, [(999, "x" * length)])
        assert not results[0].was_successful  # the entry failed in place: unknown handle
        with pytest.raises(MxGatewayRequestTooLargeError):
            await session.write_bulk(server, [(999, "x" * (length + 1))])
        await session.close()


async def test_a_bulk_whose_reply_would_be_over_the_limit_is_split(
    quiet_sim: SimulatedGateway,
) -> None:
    # AddItemBulk replies echo every tag with a handle and a status: a request just under the
    # limit would come back over it (the gateway would run it and the reply be lost). The
    # session splits bulks into calls of an eighth of the limit, so every reply fits.
    options = ClientOptions(endpoint=quiet_sim.endpoint, plaintext=True, max_message_bytes=MiB)
    async with GatewayClient(options) as client:
        session = await client.open_session()
        server = await session.register("reply")
        tags = [f"Tag_{i:06d}.{'A' * 90}" for i in range(9_000)]  # about 0.97 MiB
        results = await session.add_item_bulk(server, tags)
        assert [r.tag_address for r in results] == tags  # merged, in order
        handles = [r.item_handle for r in results]
        assert handles == sorted(set(handles))  # each added once
        worker = quiet_sim.registry.sessions[session.session_id]
        assert len(worker.items) == len(tags)
        await session.close()


async def test_unknown_sessions_are_typed_everywhere(quiet_sim: SimulatedGateway) -> None:
    # (tests/client covers a *closed* session's command and stream.)
    async with await GatewayClient.connect(endpoint=quiet_sim.endpoint, plaintext=True) as client:
        ghost = Session(client, pb.OpenSessionReply(session_id="sim-000000000000000000000000"))
        with pytest.raises(MxGatewaySessionNotFoundError):
            await ghost.register("ghost")
        with pytest.raises(MxGatewaySessionNotFoundError):
            await ghost.drain_events()
        with pytest.raises(MxGatewaySessionNotFoundError):
            await anext(ghost.stream_events())
        with pytest.raises(MxGatewaySessionNotFoundError):
            await anext(ghost.stream_event_batches())
        with pytest.raises(MxGatewaySessionNotFoundError):
            await client.close_session("not-even-the-shape")
        assert await client.open_session()  # the client carries on


HANDLE_COMMANDS: dict[str, Callable[[Session, int, int], Awaitable[Any]]] = {
    "unregister": lambda s, srv, item: s.unregister(srv),
    "add_item": lambda s, srv, item: s.add_item(srv, "Pump_001.Speed"),
    "remove_item": lambda s, srv, item: s.remove_item(srv, item),
    "advise": lambda s, srv, item: s.advise(srv, item),
    "advise_supervisory": lambda s, srv, item: s.advise_supervisory(srv, item),
    "un_advise": lambda s, srv, item: s.un_advise(srv, item),
    "suspend": lambda s, srv, item: s.suspend(srv, item),
    "activate": lambda s, srv, item: s.activate(srv, item),
    "write": lambda s, srv, item: s.write(srv, item, 1.0),
    "write_secured": lambda s, srv, item: s.write_secured(srv, item, 1.0, current_user_id=1),
    "set_buffered_update_interval": lambda s, srv, item: s.set_buffered_update_interval(srv, 100),
}


@pytest.mark.parametrize("unknown", ["server", "item"])
async def test_unknown_handles_are_mxaccess_errors_and_the_session_carries_on(
    quiet_sim: SimulatedGateway, unknown: str
) -> None:
    async with await GatewayClient.connect(endpoint=quiet_sim.endpoint, plaintext=True) as client:
        session = await client.open_session()
        server = await session.register("handles")
        item = await session.add_item(server, find_reference(quiet_sim, MxDataType.DOUBLE))
        bad_server, bad_item = (999, item) if unknown == "server" else (server, 999)
        for name, command in HANDLE_COMMANDS.items():
            if unknown == "item" and name in (
                "unregister",
                "add_item",
                "set_buffered_update_interval",
            ):
                continue  # these take no item handle
            with pytest.raises(MxAccessError) as info:
                await command(session, bad_server, bad_item)
            assert info.value.hresult & 0xFFFFFFFF == E_HANDLE, name
            assert "999" in str(info.value), name
        results = await session.advise_item_bulk(bad_server, [bad_item])
        assert not results[0].was_successful and "999" in results[0].error_message
        await session.advise(server, item)  # the session and its handles are intact
        events = session.stream_events()
        event = await asyncio.wait_for(anext(events), 10)
        assert event.item_handle == item
        await events.aclose()
        await session.close()


class _GarbageGateway:
    """A gateway whose event streams send ``good`` valid events, then bytes that are not an
    MxEvent / MxEventBatch, then hang (the client must end the call)."""

    def __init__(self, good: int) -> None:
        self.good = good
        self.calls = 0
        self.cancelled = 0

    def handler(self) -> grpc.GenericRpcHandler:
        def identity(data: bytes) -> bytes:
            return data

        stream = grpc.unary_stream_rpc_method_handler
        handlers: dict[str, grpc.RpcMethodHandler[Any, Any]] = {
            "StreamEvents": stream(
                self._single,
                request_deserializer=pb.StreamEventsRequest.FromString,
                response_serializer=identity,
            ),
            "StreamEventBatches": stream(
                self._batches,
                request_deserializer=pb.StreamEventsRequest.FromString,
                response_serializer=identity,
            ),
        }
        return grpc.method_handlers_generic_handler("mxaccess_gateway.v1.MxAccessGateway", handlers)

    def _events(self, request: pb.StreamEventsRequest) -> list[pb.MxEvent]:
        return [
            pb.MxEvent(
                session_id=request.session_id,
                family=pb.MX_EVENT_FAMILY_ON_DATA_CHANGE,
                worker_sequence=sequence,
                on_data_change=pb.OnDataChangeEvent(),
            )
            for sequence in range(1, self.good + 1)
        ]

    async def _hang(self) -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def _single(self, request: pb.StreamEventsRequest, context: Any) -> AsyncIterator[bytes]:
        self.calls += 1
        for event in self._events(request):
            yield event.SerializeToString()
        yield b"\x0b\xff\xff"  # a start-group of field 1, then garbage
        await self._hang()

    async def _batches(self, request: pb.StreamEventsRequest, context: Any) -> AsyncIterator[bytes]:
        self.calls += 1
        if self.good:
            yield pb.MxEventBatch(events=self._events(request)).SerializeToString()
        yield b"\x0a\x05\x08\x01"  # an events entry of 5 bytes, cut after 2
        await self._hang()


@pytest.mark.parametrize("path", ["batches", "single-thread", "single-aio"])
@pytest.mark.parametrize("good", [0, 3])
async def test_malformed_event_bytes_end_the_stream_with_a_decode_error(
    path: str, good: int
) -> None:
    # Decided: a decode error ends the stream (no skipping: that would lose events silently;
    # no resume: the gateway would send the same bytes again). Whatever decoded before it was
    # delivered, so the caller can resume after the last sequence it saw.
    gateway = _GarbageGateway(good)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((gateway.handler(),))
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        receiver = "aio" if path == "single-aio" else "thread"
        async with await GatewayClient.connect(
            endpoint=f"127.0.0.1:{port}",
            plaintext=True,
            event_receiver=receiver,  # type: ignore[arg-type]
        ) as client:
            session = Session(client, pb.OpenSessionReply(session_id="garbage"))
            seen: list[MxEvent] = []
            with pytest.raises(MxGatewayDecodeError) as info:
                if path == "batches":
                    async for batch in session.stream_event_batches():
                        seen.extend(batch)
                else:
                    async for event in session.stream_events(path="single"):
                        seen.append(event)
            assert isinstance(info.value, ValueError)
            assert "offset" in str(info.value)
            assert sequences(seen) == list(range(1, good + 1))
            await _wait_for(lambda: gateway.cancelled == 1, within=10)  # the call was ended
            assert gateway.calls == 1  # and not retried
    finally:
        await server.stop(None)


@pytest.mark.parametrize("rpc", ["iter_hierarchy", "iter_children"])
async def test_a_redeploy_mid_listing_makes_the_page_token_stale(
    quiet_sim: SimulatedGateway, rpc: str
) -> None:
    async with await GalaxyRepositoryClient.connect(
        endpoint=quiet_sim.endpoint, plaintext=True
    ) as galaxy:
        if rpc == "iter_hierarchy":
            listing: AsyncIterator[Any] = galaxy.iter_hierarchy(page_size=5)
        else:
            objects = await galaxy.discover_hierarchy(include_attributes=False)
            parents = Counter(obj.parent_gobject_id for obj in objects if obj.parent_gobject_id)
            parent, children = parents.most_common(1)[0]
            assert children > 5
            listing = galaxy.iter_children(parent, page_size=5)
        for _ in range(5):  # the first page
            await anext(listing)
        quiet_sim.redeploy()
        with pytest.raises(MxGatewayProtocolError) as info:
            await anext(listing)
        assert info.value.grpc_code == "INVALID_ARGUMENT"
        assert "stale" in str(info.value)
        # Starting again works.
        fresh = galaxy.iter_hierarchy(page_size=5)
        assert await anext(fresh)
        await fresh.aclose()  # type: ignore[attr-defined]
