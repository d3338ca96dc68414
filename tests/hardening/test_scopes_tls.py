"""Scopes and TLS through the client library (tests/sim/test_auth.py and test_tls.py check the
simulator with raw stubs): every public call needs exactly the scope the contract maps it to
(one key per scope: the right one passes, every other one is MxGatewayPermissionError); TLS
with a CA made here: verification with ca_file, the host name checked, server_name_override
honoured, clients without the CA (or without TLS) refused with a typed transport error."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from mxgateway import (
    ClientOptions,
    GalaxyRepositoryClient,
    GatewayClient,
    MxCommandKind,
    MxGatewayAuthenticationError,
    MxGatewayError,
    MxGatewayPermissionError,
    MxGatewayTransportError,
    Session,
)
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.sim.tls_certs import make_pki

SCOPES = (
    "session:open",
    "session:close",
    "invoke:read",
    "invoke:write",
    "invoke:secure",
    "events:read",
    "metadata:read",
    "admin",
)
KEY_FOR = {scope: f"mxgw_scope{n}_S3cret{n}ForThisScope" for n, scope in enumerate(SCOPES)}
ALL_KEY = "mxgw_all_S3cretOfTheAllScopesKey"
NOW = datetime(2026, 1, 1, tzinfo=UTC)

# The contract's table ("Auth and errors"), written out per command kind.
WRITE_KINDS = {"WRITE", "WRITE2", "WRITE_BULK", "WRITE2_BULK"}
SECURE_KINDS = {
    "WRITE_SECURED",
    "WRITE_SECURED2",
    "WRITE_SECURED_BULK",
    "WRITE_SECURED2_BULK",
    "AUTHENTICATE_USER",
}


def scope_of_kind(kind: str) -> str:
    if kind in WRITE_KINDS:
        return "invoke:write"
    if kind in SECURE_KINDS:
        return "invoke:secure"
    if kind == "DRAIN_EVENTS":
        return "events:read"
    return "invoke:read"


Call = Callable[[Session], Awaitable[Any]]

# One typed Session method per command kind (handles are nonsense: an MXAccess failure is fine,
# only the scope check matters).
COMMANDS: dict[str, Call] = {
    "REGISTER": lambda s: s.register("scopes"),
    "UNREGISTER": lambda s: s.unregister(99),
    "ADD_ITEM": lambda s: s.add_item(99, "Pump_001.Speed"),
    "ADD_ITEM2": lambda s: s.add_item2(99, "Pump_001.Speed", "ctx"),
    "REMOVE_ITEM": lambda s: s.remove_item(99, 9),
    "ADVISE": lambda s: s.advise(99, 9),
    "ADVISE_SUPERVISORY": lambda s: s.advise_supervisory(99, 9),
    "UN_ADVISE": lambda s: s.un_advise(99, 9),
    "WRITE": lambda s: s.write(99, 9, 1.0),
    "WRITE2": lambda s: s.write2(99, 9, 1.0, NOW),
    "WRITE_SECURED": lambda s: s.write_secured(99, 9, 1.0, current_user_id=1),
    "WRITE_SECURED2": lambda s: s.write_secured2(99, 9, 1.0, NOW, current_user_id=1),
    "AUTHENTICATE_USER": lambda s: s.authenticate_user(99, "operator", "not-it"),
    "ARCHESTRA_USER_TO_ID": lambda s: s.archestra_user_to_id(99, "no-such-guid"),
    "ADD_BUFFERED_ITEM": lambda s: s.add_buffered_item(99, "Pump_001.Speed"),
    "SET_BUFFERED_UPDATE_INTERVAL": lambda s: s.set_buffered_update_interval(99, 100),
    "SUSPEND": lambda s: s.suspend(99, 9),
    "ACTIVATE": lambda s: s.activate(99, 9),
    "DRAIN_EVENTS": lambda s: s.drain_events(1),
    "ADD_ITEM_BULK": lambda s: s.add_item_bulk(99, ["Pump_001.Speed"]),
    "ADVISE_ITEM_BULK": lambda s: s.advise_item_bulk(99, [9]),
    "REMOVE_ITEM_BULK": lambda s: s.remove_item_bulk(99, [9]),
    "UN_ADVISE_ITEM_BULK": lambda s: s.unadvise_item_bulk(99, [9]),
    "SUBSCRIBE_BULK": lambda s: s.subscribe_bulk(99, ["Pump_001.Speed"]),
    "UNSUBSCRIBE_BULK": lambda s: s.unsubscribe_bulk(99, [9]),
    "WRITE_BULK": lambda s: s.write_bulk(99, [(9, 1.0)]),
    "WRITE2_BULK": lambda s: s.write2_bulk(99, [(9, 1.0, NOW)]),
    "WRITE_SECURED_BULK": lambda s: s.write_secured_bulk(99, [(9, 1.0)], current_user_id=1),
    "WRITE_SECURED2_BULK": lambda s: s.write_secured2_bulk(99, [(9, 1.0, NOW)], current_user_id=1),
    "READ_BULK": lambda s: s.read_bulk(99, ["Pump_001.Speed"]),
}


async def _first(stream: AsyncIterator[Any]) -> None:
    # Allowed: the first item arrives (events flow on the session used here).
    try:
        await asyncio.wait_for(anext(stream), 10)
    finally:
        await stream.aclose()  # type: ignore[attr-defined]


RpcCall = Callable[[GatewayClient, GalaxyRepositoryClient, Session], Awaitable[Any]]

RPCS: dict[str, tuple[str, RpcCall]] = {
    "OpenSession": ("session:open", lambda c, g, s: c.open_session()),
    "CloseSession": ("session:close", lambda c, g, s: c.close_session("sim-no-such-session")),
    "StreamEvents": ("events:read", lambda c, g, s: _first(s.stream_events())),
    "StreamEventBatches": ("events:read", lambda c, g, s: _first(s.stream_event_batches())),
    "StreamEvents (raw)": (
        "events:read",
        lambda c, g, s: _first(c.stream_events_raw(s.session_id)),
    ),
    "StreamAlarms": ("events:read", lambda c, g, s: _first(c.stream_alarms())),
    "QueryActiveAlarms": ("events:read", lambda c, g, s: c.query_active_alarms()),
    "AcknowledgeAlarm": ("invoke:write", lambda c, g, s: c.acknowledge_alarm("No.Such.Alarm")),
    "TestConnection": ("metadata:read", lambda c, g, s: g.test_connection()),
    "GetLastDeployTime": ("metadata:read", lambda c, g, s: g.get_last_deploy_time()),
    "DiscoverHierarchy": ("metadata:read", lambda c, g, s: g.discover_hierarchy(page_size=5)),
    "BrowseChildren": ("metadata:read", lambda c, g, s: g.browse_children()),
    "WatchDeployEvents": ("metadata:read", lambda c, g, s: _first(g.watch_deploy_events())),
}


@pytest.fixture
async def scoped_sim() -> AsyncIterator[SimulatedGateway]:
    keys: dict[str, frozenset[str] | None] = {ALL_KEY: None}
    keys.update({key: frozenset({scope}) for scope, key in KEY_FOR.items()})
    async with SimulatedGateway(SimConfig(api_keys=keys, rate=50.0, galaxy_size=60)) as sim:
        yield sim


async def _outcome(call: Awaitable[Any]) -> str:
    try:
        await call
    except MxGatewayPermissionError:
        return "denied"
    except MxGatewayAuthenticationError:
        return "unauthenticated"
    except MxGatewayError:
        return "allowed"  # got past the scope check (an MXAccess or protocol failure)
    return "allowed"


async def _live_session(sim: SimulatedGateway) -> tuple[GatewayClient, Session]:
    owner = await GatewayClient.connect(endpoint=sim.endpoint, api_key=ALL_KEY, plaintext=True)
    session = await owner.open_session()
    server = await session.register("events")
    await session.subscribe_bulk(server, sim.sample_references(5))
    return owner, session


def test_every_command_kind_is_covered() -> None:
    kinds = {kind.name for kind in MxCommandKind if kind.name != "UNSPECIFIED"}
    assert set(COMMANDS) == kinds


async def test_each_command_kind_needs_its_scope(scoped_sim: SimulatedGateway) -> None:
    owner, session = await _live_session(scoped_sim)
    try:
        for scope, key in KEY_FOR.items():
            async with await GatewayClient.connect(
                endpoint=scoped_sim.endpoint, api_key=key, plaintext=True
            ) as client:
                as_key = Session(client, session.open_reply)
                for kind, command in COMMANDS.items():
                    expected = "allowed" if scope == scope_of_kind(kind) else "denied"
                    assert await _outcome(command(as_key)) == expected, (kind, scope)
    finally:
        await session.close()
        await owner.close()


async def test_each_rpc_needs_its_scope(scoped_sim: SimulatedGateway) -> None:
    owner, session = await _live_session(scoped_sim)
    try:
        for scope, key in KEY_FOR.items():
            async with (
                await GatewayClient.connect(
                    endpoint=scoped_sim.endpoint, api_key=key, plaintext=True
                ) as client,
                await GalaxyRepositoryClient.connect(
                    endpoint=scoped_sim.endpoint, api_key=key, plaintext=True
                ) as galaxy,
            ):
                as_key = Session(client, session.open_reply)
                for rpc, (needed, call) in RPCS.items():
                    expected = "allowed" if scope == needed else "denied"
                    assert await _outcome(call(client, galaxy, as_key)) == expected, (rpc, scope)
    finally:
        await session.close()
        await owner.close()


async def test_the_all_scopes_key_and_a_missing_key(scoped_sim: SimulatedGateway) -> None:
    owner, session = await _live_session(scoped_sim)
    try:
        async with (
            await GatewayClient.connect(endpoint=scoped_sim.endpoint, plaintext=True) as anonymous,
            await GalaxyRepositoryClient.connect(
                endpoint=scoped_sim.endpoint, plaintext=True
            ) as anonymous_galaxy,
        ):
            as_nobody = Session(anonymous, session.open_reply)
            for rpc, (_, call) in RPCS.items():
                assert await _outcome(call(anonymous, anonymous_galaxy, as_nobody)) == (
                    "unauthenticated"
                ), rpc
            for kind, command in COMMANDS.items():
                assert await _outcome(command(as_nobody)) == "unauthenticated", kind
        async with await GalaxyRepositoryClient.connect(
            endpoint=scoped_sim.endpoint, api_key=ALL_KEY, plaintext=True
        ) as galaxy:
            for rpc, (_, call) in RPCS.items():
                assert await _outcome(call(owner, galaxy, session)) == "allowed", rpc
    finally:
        await session.close()
        await owner.close()


# ----- TLS ---------------------------------------------------------------------------------

GATEWAY_NAME = "mxgateway.plant.example"


@pytest.fixture
async def tls_sim(tmp_path: Path) -> AsyncIterator[tuple[SimulatedGateway, Path]]:
    """A TLS simulator whose certificate names only GATEWAY_NAME (not 127.0.0.1); its CA."""
    pki = make_pki(dns_names=(GATEWAY_NAME,), ip_addresses=())
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(pki.ca_pem)
    config = SimConfig(tls_cert_pem=pki.cert_pem, tls_key_pem=pki.key_pem, galaxy_size=60)
    async with SimulatedGateway(config) as sim:
        yield sim, ca_file


async def _refused(options: ClientOptions) -> MxGatewayTransportError:
    async with GatewayClient(options) as client:
        with pytest.raises(MxGatewayTransportError) as info:
            await client.open_session()
    return info.value


async def test_tls_verification_host_name_and_override(
    tls_sim: tuple[SimulatedGateway, Path],
) -> None:
    sim, ca_file = tls_sim
    endpoint = sim.endpoint  # 127.0.0.1:PORT: not a name in the certificate
    # The CA is trusted, the name matches through the override: accepted.
    good = ClientOptions(
        endpoint=endpoint, ca_file=str(ca_file), server_name_override=GATEWAY_NAME, timeout=5
    )
    async with GatewayClient(good) as client, GalaxyRepositoryClient(good) as galaxy:
        session = await client.open_session()
        assert await galaxy.test_connection()
        await session.close()
    # The CA is trusted but the dialled name is not in the certificate: refused.
    wrong_name = await _refused(ClientOptions(endpoint=endpoint, ca_file=str(ca_file), timeout=5))
    assert wrong_name.grpc_code == "UNAVAILABLE"
    # An override naming another host: refused.
    await _refused(
        ClientOptions(
            endpoint=endpoint,
            ca_file=str(ca_file),
            server_name_override="other.plant.example",
            timeout=5,
        )
    )
    # No CA (the system roots): refused.
    await _refused(ClientOptions(endpoint=endpoint, server_name_override=GATEWAY_NAME, timeout=5))
    # A plaintext client on the TLS port: refused.
    await _refused(ClientOptions(endpoint=endpoint, plaintext=True, timeout=5))


async def test_a_ca_that_did_not_sign_the_certificate_is_refused(
    tls_sim: tuple[SimulatedGateway, Path], tmp_path: Path
) -> None:
    sim, _ = tls_sim
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(make_pki(dns_names=(GATEWAY_NAME,)).ca_pem)
    await _refused(
        ClientOptions(
            endpoint=sim.endpoint,
            ca_file=str(other_ca),
            server_name_override=GATEWAY_NAME,
            timeout=5,
        )
    )


async def test_a_tls_client_of_a_plaintext_gateway_is_refused(tmp_path: Path) -> None:
    ca_file = tmp_path / "ca.pem"
    ca_file.write_bytes(make_pki().ca_pem)
    async with SimulatedGateway(SimConfig(galaxy_size=60)) as sim:
        await _refused(ClientOptions(endpoint=sim.endpoint, ca_file=str(ca_file), timeout=5))
