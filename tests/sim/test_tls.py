"""TLS with a test CA made in the test: trusted clients connect, plaintext ones cannot."""

from __future__ import annotations

import grpc
import pytest

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from mxgateway.sim import SimConfig, SimulatedGateway
from tests.sim.helpers import FAST, OK
from tests.sim.tls_certs import make_pki


async def test_tls_round_trip_and_plaintext_refused() -> None:
    pki = make_pki()
    config = SimConfig(**FAST, tls_cert_pem=pki.cert_pem, tls_key_pem=pki.key_pem)
    assert "PRIVATE" not in repr(config)
    async with SimulatedGateway(config) as gw:
        assert gw.endpoint.startswith("127.0.0.1:")
        credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca_pem)
        async with grpc.aio.secure_channel(gw.endpoint, credentials) as channel:
            stub = pb_grpc.MxAccessGatewayStub(channel)
            reply = await stub.OpenSession(pb.OpenSessionRequest(client_session_name="tls"))
            assert reply.protocol_status.code == OK
        async with grpc.aio.insecure_channel(gw.endpoint) as plain:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await pb_grpc.MxAccessGatewayStub(plain).OpenSession(
                    pb.OpenSessionRequest(), timeout=5
                )
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_tls_untrusted_ca_is_refused() -> None:
    pki, other = make_pki(), make_pki()
    config = SimConfig(**FAST, tls_cert_pem=pki.cert_pem, tls_key_pem=pki.key_pem)
    async with SimulatedGateway(config) as gw:
        credentials = grpc.ssl_channel_credentials(root_certificates=other.ca_pem)
        async with grpc.aio.secure_channel(gw.endpoint, credentials) as channel:
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await pb_grpc.MxAccessGatewayStub(channel).OpenSession(
                    pb.OpenSessionRequest(), timeout=5
                )
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE
