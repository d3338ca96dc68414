"""ClientOptions: validation, TLS by default, and the API key masked everywhere."""

from __future__ import annotations

import dataclasses

import pytest

from mxgateway import ClientOptions, GatewayClient

KEY = "mxgw_ops42_VerySecretPart"


def test_repr_masks_key_pinned() -> None:
    options = ClientOptions(endpoint="gw:5001", api_key=KEY)
    text = repr(options)
    assert "VerySecretPart" not in text
    assert "api_key='mxgw_ops42_***'" in text
    assert str(options) == text


def test_repr_masks_key_of_unusual_shape() -> None:
    options = ClientOptions(endpoint="gw:5001", api_key="plainsecret")
    assert "plainsecret" not in repr(options)
    assert "api_key='***'" in repr(options)


def test_tls_is_default() -> None:
    assert ClientOptions(endpoint="gw:5001").plaintext is False


def test_metadata_carries_bearer() -> None:
    options = ClientOptions(endpoint="gw:5001", api_key=KEY)
    assert options.metadata == (("authorization", f"Bearer {KEY}"),)
    assert ClientOptions(endpoint="gw:5001").metadata == ()


def test_frozen() -> None:
    options = ClientOptions(endpoint="gw:5001")
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.plaintext = True  # type: ignore[misc]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"endpoint": ""}, "endpoint"),
        ({"endpoint": "a b:1"}, "white space"),
        ({"endpoint": "gw:1", "timeout": 0}, "timeout"),
        ({"endpoint": "gw:1", "timeout": -1.0}, "timeout"),
        ({"endpoint": "gw:1", "plaintext": True, "server_name_override": "x"}, "TLS"),
        ({"endpoint": "gw:1", "ca_file": "/no/such/ca.pem"}, "does not exist"),
        ({"endpoint": "gw:1", "max_message_bytes": 0}, "max_message_bytes"),
        ({"endpoint": "gw:1", "api_key": ""}, "api_key"),
    ],
)
def test_validation(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClientOptions(**kwargs)  # type: ignore[arg-type]


def test_bad_key_error_does_not_echo_key() -> None:
    with pytest.raises(ValueError) as info:
        ClientOptions(endpoint="gw:1", api_key="mxgw_a_secret with space")
    assert "secret" not in str(info.value).replace("api_key", "")


async def test_client_repr_masks_key() -> None:
    async with await GatewayClient.connect(
        endpoint="127.0.0.1:9", api_key=KEY, plaintext=True
    ) as c:
        assert "VerySecretPart" not in repr(c)
        assert "mxgw_ops42_***" in repr(c)


@pytest.mark.parametrize(
    ("given", "dialled"),
    [
        ("127.0.0.1", "127.0.0.1:5000"),
        ("gateway01", "gateway01:5000"),
        ("[::1]", "[::1]:5000"),
        ("gateway01:5001", "gateway01:5001"),
        ("dns:///gateway01:5001", "dns:///gateway01:5001"),
    ],
)
def test_an_endpoint_without_a_port_uses_the_gateways_5000(given: str, dialled: str) -> None:
    assert ClientOptions(endpoint=given).endpoint == dialled


async def test_tls_against_a_plaintext_gateway_says_to_use_plaintext() -> None:
    from mxgateway import MxGatewayTransportError
    from mxgateway.sim import SimulatedGateway

    async with SimulatedGateway() as sim:
        async with await GatewayClient.connect(endpoint=sim.endpoint, timeout=5) as client:
            with pytest.raises(MxGatewayTransportError, match=r"plaintext=True.*--plaintext"):
                await client.open_session()
        # And no such hint where TLS is not the problem.
        async with await GatewayClient.connect(
            endpoint="127.0.0.1:9", plaintext=True, timeout=2
        ) as client:
            with pytest.raises(MxGatewayTransportError) as info:
                await client.open_session()
            assert "plaintext=True" not in str(info.value)


async def test_interceptors_see_every_call_of_the_channel() -> None:
    import grpc

    from mxgateway.sim import SimulatedGateway

    seen: list[str] = []

    class Tag(grpc.aio.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(self, continuation, details, request):
            method = details.method
            seen.append(method.decode() if isinstance(method, bytes) else method)
            metadata = [*(details.metadata or ()), ("x-trace", "abc")]
            details = details._replace(metadata=metadata)
            return await continuation(details, request)

    async with SimulatedGateway() as sim:
        options = ClientOptions(endpoint=sim.endpoint, plaintext=True, interceptors=[Tag()])
        assert isinstance(options.interceptors, tuple)
        async with GatewayClient(options) as client:
            session = await client.open_session()
            await session.register("traced")
            await session.close()
    assert seen == [
        "/mxaccess_gateway.v1.MxAccessGateway/OpenSession",
        "/mxaccess_gateway.v1.MxAccessGateway/Invoke",
        "/mxaccess_gateway.v1.MxAccessGateway/CloseSession",
    ]
    with pytest.raises(TypeError, match="interceptors"):
        ClientOptions(endpoint="gw:1", interceptors=[object()])  # type: ignore[list-item]
