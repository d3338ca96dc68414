"""``mxgw-py sim`` as a subprocess: the listening line, signals, TLS default, keys never shown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import cast

import grpc
import pytest
from grpc_health.v1 import health_pb2

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.generated import mxaccess_gateway_pb2_grpc as pb_grpc
from tests.sim.helpers import health_stub
from tests.sim.tls_certs import make_pki

KEY = "mxgw_cli_VerySecretValue42"
SCOPED = "mxgw_ro_AnotherSecret7"


async def start(
    *args: str, env: dict[str, str] | None = None
) -> tuple[asyncio.subprocess.Process, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "mxgateway_cli",
        "sim",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    assert process.stdout is not None
    line = await asyncio.wait_for(process.stdout.readline(), 30)
    assert line, "the simulator exited before it was ready"
    listening = json.loads(line)["listening"]
    return process, listening


async def stop(process: asyncio.subprocess.Process, signum: int) -> tuple[int, bytes, bytes]:
    process.send_signal(signum)
    stdout, stderr = await asyncio.wait_for(process.communicate(), 30)
    assert process.returncode is not None
    return process.returncode, stdout, stderr


async def test_plaintext_port_zero_sigterm_and_key_never_printed(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text(f"# keys\n{SCOPED} events:read\n")
    process, listening = await start(
        "--listen",
        "127.0.0.1:0",
        "--plaintext",
        "--api-key-env",
        "SIM_TEST_KEY",
        "--api-key-file",
        str(keys),
        "--seed",
        "3",
        "--rate",
        "5",
        env={"SIM_TEST_KEY": KEY},
    )
    try:
        host, port = listening.rsplit(":", 1)
        assert host == "127.0.0.1" and int(port) > 0
        async with grpc.aio.insecure_channel(listening) as channel:
            health = await health_stub(channel).Check(health_pb2.HealthCheckRequest())
            assert health.status == health_pb2.HealthCheckResponse.SERVING
            stub = pb_grpc.MxAccessGatewayStub(channel)
            reply = await stub.OpenSession(
                pb.OpenSessionRequest(), metadata=(("authorization", f"Bearer {KEY}"),)
            )
            assert reply.session_id
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.OpenSession(
                    pb.OpenSessionRequest(), metadata=(("authorization", f"Bearer {SCOPED}"),)
                )
            assert info.value.code() == grpc.StatusCode.PERMISSION_DENIED
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await stub.OpenSession(pb.OpenSessionRequest())
            assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        code, stdout, stderr = await stop(process, signal.SIGTERM)
    assert code == 0, stderr.decode()
    # After the listening line, exactly one: the stop statistics.
    (stopped,) = stdout.decode().splitlines()
    stats = json.loads(stopped)["stopped"]
    assert stats["cpu_seconds"] > 0
    assert stats["rpcs"] == {}  # no event stream was opened
    for secret in (KEY, SCOPED, "VerySecret", "AnotherSecret"):
        assert secret.encode() not in stdout + stderr
    assert b"listening" in stderr  # logs go to stderr


async def test_sigint_exits_cleanly() -> None:
    process, _ = await start("--listen", "127.0.0.1:0", "--plaintext", "--rate", "0")
    code, _, stderr = await stop(process, signal.SIGINT)
    assert code == 0, stderr.decode()


async def test_tls(tmp_path: Path) -> None:
    pki = make_pki()
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(pki.cert_pem)
    key.write_bytes(pki.key_pem)
    process, listening = await start(
        "--listen", "127.0.0.1:0", "--tls-cert", str(cert), "--tls-key", str(key)
    )
    try:
        credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca_pem)
        async with grpc.aio.secure_channel(listening, credentials) as channel:
            reply = await pb_grpc.MxAccessGatewayStub(channel).OpenSession(pb.OpenSessionRequest())
            assert reply.session_id
    finally:
        code, _, stderr = await stop(process, signal.SIGTERM)
    assert code == 0, stderr.decode()


@pytest.mark.parametrize(
    "args",
    [
        ["--listen", "127.0.0.1:0"],  # TLS is the default: no cert/key is a usage error
        ["--listen", "127.0.0.1:0", "--plaintext", "--tls-cert", "x", "--tls-key", "y"],
        ["--listen", "nonsense", "--plaintext"],
        ["--listen", "127.0.0.1:0", "--plaintext", "--api-key-env", "SIM_TEST_UNSET_VAR"],
        ["--listen", "127.0.0.1:0", "--plaintext", "--queue-policy", "drop"],
        ["--listen", "127.0.0.1:0", "--plaintext", "--rate", "-3"],
    ],
)
def test_usage_errors_exit_2(args: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if k != "SIM_TEST_UNSET_VAR"}
    result = subprocess.run(
        [sys.executable, "-m", "mxgateway_cli", "sim", *args],
        capture_output=True,
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr.decode()
    assert result.stdout == b""
    assert b"error" in result.stderr


def test_malformed_key_is_a_usage_error_without_echo() -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mxgateway_cli",
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--plaintext",
            "--api-key-env",
            "SIM_TEST_BAD",
        ],
        capture_output=True,
        env={**os.environ, "SIM_TEST_BAD": "not-a-key-TopSecret"},
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert b"TopSecret" not in result.stdout + result.stderr


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--flood", "--flood-rate", "-5"], b"--flood-rate"),
        (["--flood", "--flood-rate", "nan"], b"--flood-rate"),
        (["--flood-rate", "100"], b"--flood"),
        (["--min-ping-interval", "-1"], b"--min-ping-interval"),
        (["--max-ping-strikes", "-2"], b"--max-ping-strikes"),
    ],
)
def test_new_flags_are_bounded_and_named(args: list[str], named: bytes) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mxgateway_cli",
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--plaintext",
            *args,
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr.decode()
    assert named in result.stderr
    assert result.stdout == b""


async def test_genuine_paced_flood_and_the_stopped_line() -> None:
    process, listening = await start(
        "--listen",
        "127.0.0.1:0",
        "--plaintext",
        "--flood",
        "--flood-rate",
        "5000",
        "--no-event-batches",
        "--min-ping-interval",
        "1",
        "--max-ping-strikes",
        "0",
        "--log-level",
        "WARNING",
    )
    try:
        async with grpc.aio.insecure_channel(listening) as channel:
            stub = pb_grpc.MxAccessGatewayStub(channel)
            reply = await stub.OpenSession(pb.OpenSessionRequest())
            assert "stream-event-batches" not in reply.capabilities
            assert "flood" in reply.capabilities
            session_id = reply.session_id
            server = (
                await stub.Invoke(
                    pb.MxCommandRequest(
                        session_id=session_id,
                        command=pb.MxCommand(
                            kind=pb.MX_COMMAND_KIND_REGISTER, register=pb.RegisterCommand()
                        ),
                    )
                )
            ).register.server_handle
            await stub.Invoke(
                pb.MxCommandRequest(
                    session_id=session_id,
                    command=pb.MxCommand(
                        kind=pb.MX_COMMAND_KIND_SUBSCRIBE_BULK,
                        subscribe_bulk=pb.SubscribeBulkCommand(
                            server_handle=server, tag_addresses=["Pump_001.Speed"]
                        ),
                    ),
                )
            )
            call = stub.StreamEvents(pb.StreamEventsRequest(session_id=session_id))
            received = [cast(pb.MxEvent, await call.read()) for _ in range(1000)]
            assert received[-1].worker_sequence == 1000
            call.cancel()
            batches = stub.StreamEventBatches(pb.StreamEventsRequest(session_id=session_id))
            with pytest.raises(grpc.aio.AioRpcError) as info:
                await batches.read()
            assert info.value.code() == grpc.StatusCode.UNIMPLEMENTED
    finally:
        code, stdout, stderr = await stop(process, signal.SIGTERM)
    assert code == 0, stderr.decode()
    (stopped,) = stdout.decode().splitlines()
    stats = json.loads(stopped)["stopped"]
    events = stats["rpcs"]["/mxaccess_gateway.v1.MxAccessGateway/StreamEvents"]
    assert events["messages"] >= 1000
    assert events["events"] == events["messages"]
    assert stats["cpu_seconds"] >= stats["started_cpu_seconds"] > 0
