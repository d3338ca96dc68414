"""API keys and scopes, per rpc and per command kind, as contract.md "Auth and errors" maps them."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2

from mxgateway.generated import galaxy_repository_pb2 as gpb
from mxgateway.generated import galaxy_repository_pb2_grpc as gpb_grpc
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimConfig, SimulatedGateway, parse_api_key_lines
from tests.sim.helpers import FAST, Client, health_stub

SCOPES = [
    "session:open",
    "session:close",
    "invoke:read",
    "invoke:write",
    "invoke:secure",
    "events:read",
    "metadata:read",
    "admin",
]
ALL_KEY = "mxgw_all_s3cr3tAll"
KEYS: dict[str, frozenset[str] | None] = {ALL_KEY: None}
KEY_FOR = {scope: f"mxgw_k{i}_secret{i}x" for i, scope in enumerate(SCOPES)}
KEYS.update({key: frozenset({scope}) for scope, key in KEY_FOR.items()})

_K = pb.MxCommandKind
# The contract's table, written out independently of the simulator's.
WRITE = {"WRITE", "WRITE2", "WRITE_BULK", "WRITE2_BULK"}
SECURE = {
    "WRITE_SECURED",
    "WRITE_SECURED2",
    "WRITE_SECURED_BULK",
    "WRITE_SECURED2_BULK",
    "AUTHENTICATE_USER",
}


def expected_scope(kind_name: str) -> str:
    name = kind_name.removeprefix("MX_COMMAND_KIND_")
    if name == "UNSPECIFIED":
        return "admin"
    if name in WRITE:
        return "invoke:write"
    if name in SECURE:
        return "invoke:secure"
    if name == "DRAIN_EVENTS":
        return "events:read"
    return "invoke:read"


def bearer(key: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {key}"),)


@pytest.fixture
async def secured_gw() -> AsyncIterator[SimulatedGateway]:
    async with SimulatedGateway(SimConfig(**FAST, api_keys=KEYS)) as gw:
        yield gw


@pytest.fixture
async def secured_channel(secured_gw: SimulatedGateway) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(secured_gw.endpoint) as channel:
        yield channel


async def code_of(awaitable: Any) -> grpc.StatusCode:
    try:
        await awaitable
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    return grpc.StatusCode.OK


async def stream_code(call: Any) -> grpc.StatusCode:
    try:
        await call.read()
    except grpc.aio.AioRpcError as exc:
        return exc.code()
    call.cancel()
    return grpc.StatusCode.OK


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Basic bXhndw==", "Bearer not-a-key", "Bearer mxgw_unknown_secret"],
)
async def test_missing_malformed_or_unknown_key(
    secured_channel: grpc.aio.Channel, header: str | None, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mxgateway.sim")
    stub = pb_grpc.MxAccessGatewayStub(secured_channel)
    metadata = () if header is None else (("authorization", header),)
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await stub.OpenSession(pb.OpenSessionRequest(), metadata=metadata)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    if header:
        token = header.partition(" ")[2]
        assert not token or token not in (info.value.details() or "")
        assert all(token not in r.getMessage() for r in caplog.records if token)


async def test_all_scopes_key_and_key_never_logged(
    secured_channel: grpc.aio.Channel, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="mxgateway.sim")
    client = Client(pb_grpc.MxAccessGatewayStub(secured_channel), bearer(ALL_KEY))
    await client.open()
    await client.register()
    await client.close()
    assert caplog.records  # sessions are logged ...
    assert all(ALL_KEY not in r.getMessage() for r in caplog.records)  # ... never the key
    assert "s3cr3t" not in repr(SimConfig(api_keys=KEYS))


@pytest.mark.parametrize(
    ("rpc", "scope"),
    [
        ("OpenSession", "session:open"),
        ("CloseSession", "session:close"),
        ("StreamEvents", "events:read"),
        ("StreamEventBatches", "events:read"),
        ("StreamAlarms", "events:read"),
        ("QueryActiveAlarms", "events:read"),
        ("AcknowledgeAlarm", "invoke:write"),
    ],
)
async def test_scope_per_rpc(secured_channel: grpc.aio.Channel, rpc: str, scope: str) -> None:
    stub = pb_grpc.MxAccessGatewayStub(secured_channel)
    calls = {
        "OpenSession": lambda md: code_of(stub.OpenSession(pb.OpenSessionRequest(), metadata=md)),
        "CloseSession": lambda md: code_of(
            stub.CloseSession(pb.CloseSessionRequest(session_id="sim-x"), metadata=md)
        ),
        "StreamEvents": lambda md: stream_code(
            stub.StreamEvents(pb.StreamEventsRequest(session_id="sim-x"), metadata=md)
        ),
        "StreamEventBatches": lambda md: stream_code(
            stub.StreamEventBatches(pb.StreamEventsRequest(session_id="sim-x"), metadata=md)
        ),
        "StreamAlarms": lambda md: stream_code(
            stub.StreamAlarms(pb.StreamAlarmsRequest(), metadata=md)
        ),
        "QueryActiveAlarms": lambda md: code_of(
            _consume(stub.QueryActiveAlarms(pb.QueryActiveAlarmsRequest(), metadata=md))
        ),
        "AcknowledgeAlarm": lambda md: code_of(
            stub.AcknowledgeAlarm(
                pb.AcknowledgeAlarmRequest(alarm_full_reference="Pump_001.Speed"), metadata=md
            )
        ),
    }
    allowed = await calls[rpc](bearer(KEY_FOR[scope]))
    assert allowed not in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED)
    for other in SCOPES:
        if other != scope:
            assert await calls[rpc](bearer(KEY_FOR[other])) == grpc.StatusCode.PERMISSION_DENIED


async def _consume(call: Any) -> None:
    async for _ in call:
        pass


@pytest.mark.parametrize("kind_name", sorted(_K.keys()))
async def test_scope_per_command_kind(secured_channel: grpc.aio.Channel, kind_name: str) -> None:
    stub = pb_grpc.MxAccessGatewayStub(secured_channel)
    scope = expected_scope(kind_name)

    async def invoke(key: str) -> grpc.StatusCode:
        request = pb.MxCommandRequest(session_id="sim-x", command=pb.MxCommand(kind=kind_name))
        return await code_of(stub.Invoke(request, metadata=bearer(key)))

    assert await invoke(KEY_FOR[scope]) == grpc.StatusCode.OK
    assert await invoke(ALL_KEY) == grpc.StatusCode.OK
    denied = [s for s in SCOPES if s != scope]
    for other in denied:
        assert await invoke(KEY_FOR[other]) == grpc.StatusCode.PERMISSION_DENIED, other


async def test_galaxy_repository_needs_metadata_read(secured_channel: grpc.aio.Channel) -> None:
    stub = gpb_grpc.GalaxyRepositoryStub(secured_channel)
    ok = await stub.TestConnection(
        gpb.TestConnectionRequest(), metadata=bearer(KEY_FOR["metadata:read"])
    )
    assert ok.ok
    code = await code_of(
        stub.TestConnection(gpb.TestConnectionRequest(), metadata=bearer(KEY_FOR["events:read"]))
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    assert await code_of(stub.TestConnection(gpb.TestConnectionRequest())) == (
        grpc.StatusCode.UNAUTHENTICATED
    )


async def test_health_needs_no_key(secured_channel: grpc.aio.Channel) -> None:
    stub = health_stub(secured_channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=""))
    assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_key_file_parsing() -> None:
    keys = parse_api_key_lines(
        [
            "# comment",
            "",
            "mxgw_a_one",
            "mxgw_b_two events:read,invoke:read",
            "mxgw_c_three session:open session:close",
        ]
    )
    assert keys == {
        "mxgw_a_one": None,
        "mxgw_b_two": frozenset({"events:read", "invoke:read"}),
        "mxgw_c_three": frozenset({"session:open", "session:close"}),
    }
    with pytest.raises(ValueError, match="line 1") as info:
        parse_api_key_lines(["not_a_key_s3cret"])
    assert "s3cret" not in str(info.value)
    with pytest.raises(ValueError, match="unknown scope"):
        parse_api_key_lines(["mxgw_a_b bogus:scope"])


def test_config_validation_never_shows_the_key() -> None:
    with pytest.raises(ValueError) as info:
        SimConfig(api_keys={"bad-s3cret": None})
    assert "s3cret" not in str(info.value)
    with pytest.raises(ValueError):
        SimConfig(queue_policy="drop")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        SimConfig(tls_cert_pem=b"x")
    with pytest.raises(ValueError):
        SimConfig(rate=-1)
