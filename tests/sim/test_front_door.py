"""The flood front door (h2): native event streams, the proxy for everything else, HTTP/2 itself.

Flood mode serves the public port with an asyncio HTTP/2 server; these tests reach it with
real grpc clients (aio and sync) and, for the HTTP/2 details, with a raw h2 client.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any, cast

import grpc
import h2.config
import h2.connection
import h2.events
import pytest
from grpc_health.v1 import health_pb2

from mxgateway.generated import galaxy_repository_pb2 as gpb
from mxgateway.generated import galaxy_repository_pb2_grpc as gpb_grpc
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimConfig, SimulatedGateway
from mxgateway.sim._events import flood_available
from mxgateway.sim._feed import BATCHES_PATH, EVENTS_PATH
from mxgateway.sim._frontdoor import flood_to_grpc, parse_grpc_timeout
from tests.sim.helpers import FAST, OK, Client, channel_options, health_stub, take, wait_until
from tests.sim.tls_certs import make_pki

pytestmark = pytest.mark.skipif(not flood_available(), reason="codec has no encode_flood_batch")

REFS = ["Pump_001.Speed", "Pump_001.SpeedSP", "Motor_001.Current"]
KEY = "mxgw_door_s3cret"
READ_ONLY = "mxgw_ro_s3cret"


@pytest.fixture
async def door(gateway_factory) -> AsyncIterator[tuple[SimulatedGateway, Client]]:
    async with (
        gateway_factory(flood=True, max_batch_events=50) as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        yield gw, client


def subscriber(gw: SimulatedGateway, client: Client) -> Any:
    return gw.registry.sessions[client.session_id].subscriber


async def flooding(client: Client) -> None:
    server = await client.register()
    await client.subscribe(server, REFS)


async def status_of(call: Any) -> tuple[grpc.StatusCode, str]:
    """Read the stream to its end; its status and details."""
    try:
        while await call.read() is not grpc.aio.EOF:
            pass
    except grpc.aio.AioRpcError as error:
        return error.code(), error.details() or ""
    return await call.code(), await call.details()


# ----- native streams -----


async def test_stream_events_contiguous_and_stats(door: tuple[SimulatedGateway, Client]) -> None:
    gw, client = door
    await flooding(client)
    before = gw.stats()["rpcs"].get(EVENTS_PATH, {"messages": 0})["messages"]
    call = client.stream()
    events = await take(call, 3000)
    assert [e.worker_sequence for e in events] == list(range(1, 3001))
    assert all(e.session_id == client.session_id for e in events)
    call.cancel()
    sent = gw.stats()["rpcs"][EVENTS_PATH]
    assert sent["messages"] - before >= 3000
    assert sent["events"] == sent["messages"]  # one event per message


async def test_stream_event_batches_contiguous(door: tuple[SimulatedGateway, Client]) -> None:
    gw, client = door
    await flooding(client)
    call = client.stream_batches(max_batch=20)
    batches = await take(call, 40)
    events = [e for b in batches for e in b.events]
    assert [e.worker_sequence for e in events] == list(range(1, len(events) + 1))
    assert all(len(b.events) <= 20 for b in batches)
    call.cancel()
    counts = gw.stats()["rpcs"][BATCHES_PATH]
    assert counts["messages"] >= 40 and counts["events"] >= len(events)


async def test_sync_raw_consumer_single_threaded(door: tuple[SimulatedGateway, Client]) -> None:
    # The benchmark's consumer: a sync channel, SingleThreadedUnaryStream, raw bytes.
    gw, client = door
    await flooding(client)

    def consume() -> list[int]:
        options = [("SingleThreadedUnaryStream", 1)]
        with grpc.insecure_channel(gw.endpoint, options=options) as channel:
            method: Any = channel.unary_stream(
                EVENTS_PATH,
                request_serializer=pb.StreamEventsRequest.SerializeToString,
                response_deserializer=None,
            )
            call = method(pb.StreamEventsRequest(session_id=client.session_id))
            raw: list[bytes] = []
            for message in call:
                raw.append(message)
                if len(raw) == 20_000:
                    break
            call.cancel()
        return [pb.MxEvent.FromString(m).worker_sequence for m in raw]

    sequences = await asyncio.to_thread(consume)
    assert sequences == list(range(1, 20_001))


@pytest.mark.parametrize("batches", [False, True])
async def test_resume_after_a_cut(gateway_factory, batches: bool) -> None:
    # Flood events in flight (HTTP/2 windows) outrun the default ring: keep a large one.
    async with (
        gateway_factory(flood=True, replay_capacity=5_000_000) as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        await _resume_after_a_cut(gw, client, batches)


async def _resume_after_a_cut(gw: SimulatedGateway, client: Client, batches: bool) -> None:
    await flooding(client)
    call = client.stream_batches() if batches else client.stream()
    first = await take(call, 5)
    last = (first[-1].events[-1] if batches else first[-1]).worker_sequence
    assert gw.drop_streams() == 1
    assert (await status_of(call))[0] == grpc.StatusCode.UNAVAILABLE
    resumed = client.stream_batches(after=last) if batches else client.stream(after=last)
    again = await take(resumed, 3)
    events = [e for b in again for e in b.events] if batches else again
    assert [e.worker_sequence for e in events] == list(range(last + 1, last + 1 + len(events)))
    resumed.cancel()


@pytest.mark.parametrize("batches", [False, True])
async def test_replay_gap(gateway_factory, batches: bool) -> None:
    # Nothing advised, so no flood: the burst is the whole stream.
    async with (
        gateway_factory(flood=True, replay_capacity=5) as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        gw.emit_burst(client.session_id, 12)  # events 1..12; the ring keeps 8..12
        await client.drain()
        call = client.stream_batches(after=2) if batches else client.stream(after=2)
        if batches:
            (batch,) = await take(call, 1)
            gap, *replayed = batch.events
            (rest,) = await take(call, 1)
            replayed += rest.events
        else:
            gap, *replayed = await take(call, 6)
        assert gap.family == pb.MX_EVENT_FAMILY_UNSPECIFIED
        assert gap.replay_gap.requested_after_sequence == 2
        assert gap.replay_gap.oldest_available_sequence == 8
        assert [e.worker_sequence for e in replayed] == [8, 9, 10, 11, 12]
        call.cancel()


async def test_cancel_releases_the_subscriber(door: tuple[SimulatedGateway, Client]) -> None:
    gw, client = door
    await flooding(client)
    call = client.stream()
    await take(call, 100)
    assert subscriber(gw, client) is not None
    call.cancel()
    await wait_until(lambda: subscriber(gw, client) is None, within=5)
    again = client.stream()  # one subscriber: the next may attach now
    assert len(await take(again, 10)) == 10
    again.cancel()


async def test_second_subscriber_refused(door: tuple[SimulatedGateway, Client]) -> None:
    _, client = door
    await flooding(client)
    call = client.stream()
    await take(call, 10)
    second = client.stream_batches()
    assert (await status_of(second))[0] == grpc.StatusCode.FAILED_PRECONDITION
    call.cancel()


async def test_closed_by_the_gateway_ends_with_ok(door: tuple[SimulatedGateway, Client]) -> None:
    gw, client = door
    await flooding(client)
    call = client.stream()
    await take(call, 100)
    gw.close_session(client.session_id)
    assert (await status_of(call))[0] == grpc.StatusCode.OK


async def test_unknown_session_not_found(door: tuple[SimulatedGateway, Client]) -> None:
    _, client = door
    client.session_id = "sim-nope"
    assert (await status_of(client.stream()))[0] == grpc.StatusCode.NOT_FOUND


async def test_overflow_ends_with_resource_exhausted(gateway_factory) -> None:
    async with (
        gateway_factory(flood=True, queue_capacity=20) as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        call = client.stream()
        await wait_until(lambda: subscriber(gw, client) is not None)
        gw.emit_burst(client.session_id, 50)
        assert await status_of(call) == (grpc.StatusCode.RESOURCE_EXHAUSTED, "EventQueueOverflow")
        assert gw.session_state(client.session_id) == pb.SESSION_STATE_FAULTED


async def test_deadline_ends_the_stream_and_releases(door: tuple[SimulatedGateway, Client]) -> None:
    gw, client = door
    call = client.stub.StreamEvents(
        pb.StreamEventsRequest(session_id=client.session_id), timeout=0.3
    )
    assert (await status_of(call))[0] == grpc.StatusCode.DEADLINE_EXCEEDED
    await wait_until(lambda: subscriber(gw, client) is None)


async def test_slow_reader_gets_flow_control(door: tuple[SimulatedGateway, Client]) -> None:
    # A reader that stops reading stops production: what was sent stays within the HTTP/2
    # windows instead of growing without bound.
    gw, client = door
    await flooding(client)
    call = client.stream()
    await take(call, 10)

    def sent() -> int:
        return int(gw.stats()["rpcs"][EVENTS_PATH]["messages"])

    await asyncio.sleep(0.3)
    stalled = sent()
    await asyncio.sleep(0.3)
    assert sent() == stalled
    assert gw.registry.sessions[client.session_id].next_sequence - 1 == stalled
    more = await take(call, 5000)  # and it goes on when the reader does
    assert more[-1].worker_sequence == more[0].worker_sequence + 4999
    call.cancel()


async def test_two_streams_on_one_connection(door: tuple[SimulatedGateway, Client]) -> None:
    _, client = door
    other = Client(client.stub)
    await other.open()
    await flooding(client)
    await flooding(other)
    calls = [client.stream(), other.stream()]
    for _ in range(5):
        for call in calls:
            assert len(await take(call, 1000)) == 1000
    for call in calls:
        call.cancel()


async def test_connection_loss_releases_the_subscriber(gateway_factory) -> None:
    async with gateway_factory(flood=True) as gw:
        channel = grpc.aio.insecure_channel(gw.endpoint, options=channel_options())
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        await flooding(client)
        call = client.stream()
        await take(call, 100)
        await channel.close()  # GOAWAY and close, mid-stream
        await wait_until(lambda: subscriber(gw, client) is None)
        assert gw.session_state(client.session_id) == pb.SESSION_STATE_READY  # detach grace


async def test_restart_serves_the_same_port(door: tuple[SimulatedGateway, Client]) -> None:
    gw, _ = door
    port = gw.port
    await gw.restart()
    assert gw.port == port
    async with grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel:
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        await flooding(client)
        call = client.stream()
        assert [e.worker_sequence for e in await take(call, 50)] == list(range(1, 51))
        call.cancel()


async def test_a_thousand_pending_commands_on_one_connection(
    door: tuple[SimulatedGateway, Client],
) -> None:
    # 9 sessions x 128 pending commands on one client connection, as the hardening load test
    # keeps them: every one arrives, waits, and completes once (grpc.aio in one process loses
    # calls past about a thousand in flight, so these are not relayed through it).
    gw, client = door
    clients = [client] + [Client(client.stub) for _ in range(8)]
    for other in clients[1:]:
        await other.open()
    sessions = [gw.registry.sessions[c.session_id] for c in clients]
    for session in sessions:
        await session.command_lock.acquire()  # the workers are busy
    calls = [
        asyncio.ensure_future(c.invoke(pb.MX_COMMAND_KIND_REGISTER, register=pb.RegisterCommand()))
        for c in clients
        for _ in range(128)
    ]
    try:
        await wait_until(lambda: sum(s.pending_commands for s in sessions) == len(calls), 30)
    finally:
        for session in sessions:
            session.command_lock.release()
    replies = await asyncio.gather(*calls)
    assert all(r.protocol_status.code == OK for r in replies)
    for c in clients:
        handles = sorted(r.register.server_handle for r in replies if r.session_id == c.session_id)
        assert handles == list(range(1, 129))


# ----- auth -----


@pytest.fixture
async def secured() -> AsyncIterator[SimulatedGateway]:
    keys: dict[str, frozenset[str] | None] = {
        KEY: None,
        READ_ONLY: frozenset({"session:open", "invoke:read"}),
    }
    async with SimulatedGateway(SimConfig(**FAST, flood=True, api_keys=keys)) as gw:
        yield gw


async def test_auth_native_and_proxied(secured: SimulatedGateway) -> None:
    async with grpc.aio.insecure_channel(secured.endpoint) as channel:
        stub = pb_grpc.MxAccessGatewayStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await stub.OpenSession(pb.OpenSessionRequest())  # proxied: no key
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
        client = Client(stub, (("authorization", f"Bearer {KEY}"),))
        await client.open()  # proxied, with the key passed through
        await flooding(client)
        for metadata, code in [
            ((), grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", "Bearer mxgw_who_nope"),), grpc.StatusCode.UNAUTHENTICATED),
            ((("authorization", f"Bearer {READ_ONLY}"),), grpc.StatusCode.PERMISSION_DENIED),
        ]:
            call = stub.StreamEvents(
                pb.StreamEventsRequest(session_id=client.session_id), metadata=metadata
            )
            assert (await status_of(call))[0] == code
        assert secured.registry.sessions[client.session_id].subscriber is None
        call = client.stream()
        assert len(await take(call, 100)) == 100
        call.cancel()


# ----- proxied rpcs -----


async def test_proxied_health_check_and_watch(door: tuple[SimulatedGateway, Client]) -> None:
    gw, _ = door
    async with grpc.aio.insecure_channel(gw.endpoint) as channel:
        health = health_stub(channel)
        reply = await health.Check(health_pb2.HealthCheckRequest())
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await health.Check(health_pb2.HealthCheckRequest(service="no.Such"))
        assert info.value.code() == grpc.StatusCode.NOT_FOUND
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""))
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING
        watch.cancel()


async def test_proxied_server_streams_and_galaxy(door: tuple[SimulatedGateway, Client]) -> None:
    gw, client = door
    alarms = client.stub.StreamAlarms(pb.StreamAlarmsRequest())
    seen: list[str] = []
    while "snapshot_complete" not in seen:
        message = cast(pb.AlarmFeedMessage, await alarms.read())
        seen.append(str(message.WhichOneof("payload")))
    alarms.cancel()
    async with grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel:
        galaxy = gpb_grpc.GalaxyRepositoryStub(channel)
        reply = await galaxy.BrowseChildren(gpb.BrowseChildrenRequest(page_size=5))
        assert reply.children and all(c.is_area for c in reply.children)  # the roots


async def test_proxied_reflection_bidi(door: tuple[SimulatedGateway, Client]) -> None:
    from grpc_reflection.v1alpha import reflection_pb2

    gw, _ = door
    async with grpc.aio.insecure_channel(gw.endpoint) as channel:
        method = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
        )
        call: Any = method()
        for _ in range(3):  # several requests on one bidi stream, answered in turn
            await call.write(reflection_pb2.ServerReflectionRequest(list_services=""))
            response = await call.read()
            names = {s.name for s in response.list_services_response.service}
            assert "mxaccess_gateway.v1.MxAccessGateway" in names
        await call.done_writing()
        assert await call.read() is grpc.aio.EOF
        assert await call.code() == grpc.StatusCode.OK


async def test_invoke_deadline_and_unknown_method(gateway_factory) -> None:
    async with (
        gateway_factory(flood=True, command_latency_s=1.0) as gw,
        grpc.aio.insecure_channel(gw.endpoint, options=channel_options()) as channel,
    ):
        client = Client(pb_grpc.MxAccessGatewayStub(channel))
        await client.open()
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await client.invoke(
                pb.MX_COMMAND_KIND_REGISTER, register=pb.RegisterCommand(), deadline=0.2
            )
        assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
        nope: Any = channel.unary_unary("/mxaccess_gateway.v1.MxAccessGateway/Nope")
        with pytest.raises(grpc.aio.AioRpcError) as info:
            await nope(b"")
        assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_proxied_metadata_both_ways(door: tuple[SimulatedGateway, Client]) -> None:
    # Health Check with an unknown service: trailing metadata and details come back, and
    # binary metadata survives the trip (the reply is the same as without it).
    gw, _ = door
    async with grpc.aio.insecure_channel(gw.endpoint) as channel:
        health = health_stub(channel)
        reply = await health.Check(
            health_pb2.HealthCheckRequest(),
            metadata=(("x-trace-bin", b"\x00\xff\x10"), ("x-note", "hi")),
        )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING


# ----- TLS -----


async def test_tls_front_door() -> None:
    pki = make_pki()
    config = SimConfig(**FAST, flood=True, tls_cert_pem=pki.cert_pem, tls_key_pem=pki.key_pem)
    async with SimulatedGateway(config) as gw:
        credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca_pem)
        async with grpc.aio.secure_channel(gw.endpoint, credentials) as channel:
            client = Client(pb_grpc.MxAccessGatewayStub(channel))
            reply = await client.open()
            assert reply.protocol_status.code == OK
            await flooding(client)
            call = client.stream()
            assert [e.worker_sequence for e in await take(call, 500)] == list(range(1, 501))
            call.cancel()
        async with grpc.aio.insecure_channel(gw.endpoint) as plain:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await pb_grpc.MxAccessGatewayStub(plain).OpenSession(
                    pb.OpenSessionRequest(), timeout=5
                )
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE


# ----- HTTP/2 itself -----


async def test_pings_and_settings_acknowledged(door: tuple[SimulatedGateway, Client]) -> None:
    gw, _ = door
    host, port = gw.endpoint.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.ping(b"12345678")
    writer.write(conn.data_to_send())
    seen: set[type] = set()
    try:
        while not {h2.events.PingAckReceived, h2.events.SettingsAcknowledged} <= seen:
            data = await asyncio.wait_for(reader.read(65536), 10)
            assert data, "the front door closed the connection"
            for event in conn.receive_data(data):
                seen.add(type(event))
                if isinstance(event, h2.events.PingAckReceived):
                    assert event.ping_data == b"12345678"
            writer.write(conn.data_to_send())
        assert h2.events.RemoteSettingsChanged in seen
        conn.close_connection()  # our GOAWAY: the door closes its side
        writer.write(conn.data_to_send())
        assert await asyncio.wait_for(reader.read(65536), 10) is not None
    finally:
        writer.close()
        await writer.wait_closed()


async def test_garbage_closes_the_connection_only(door: tuple[SimulatedGateway, Client]) -> None:
    gw, client = door
    host, port = gw.endpoint.rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        while await asyncio.wait_for(reader.read(65536), 10):
            pass  # until the door closes it
    finally:
        writer.close()
        await writer.wait_closed()
    reply = await client.register()  # others are unaffected
    assert reply > 0


# ----- helpers -----


def test_flood_to_grpc_frames_every_event() -> None:
    from mxgateway.sim._events import FloodSpec, encode_flood, split_batch

    batch = encode_flood("sim-" + "a" * 24, FloodSpec(1, (1, 2, 3, 4)), 1, 300, 10**18)
    framed = flood_to_grpc(batch)
    messages: list[bytes] = []
    pos = 0
    while pos < len(framed):
        assert framed[pos] == 0
        length = int.from_bytes(framed[pos + 1 : pos + 5], "big")
        messages.append(framed[pos + 5 : pos + 5 + length])
        pos += 5 + length
    assert messages == split_batch(batch)
    with pytest.raises(ValueError):
        flood_to_grpc(b"\x12\x01x")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("1S", 1.0), ("250m", 0.25), ("3M", 180.0), ("2H", 7200.0), ("5u", 5e-6), ("7n", 7e-9)],
)
def test_grpc_timeout(text: str, seconds: float) -> None:
    assert parse_grpc_timeout(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "S", "1", "1x", "123456789S", "-1S"])
def test_grpc_timeout_malformed(text: str) -> None:
    assert parse_grpc_timeout(text) is None
