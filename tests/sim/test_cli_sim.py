"""``mxgw-py sim`` as a subprocess: the listening line, signals, TLS default, keys never shown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
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


async def start(*args: str, env: dict[str, str] | None = None) -> tuple[Child, str]:
    process, ready = await start_ready(*args, env=env)
    return process, ready["listening"]


class Child:
    """A child process started with subprocess.Popen from a worker thread.

    Not the event loop's subprocess support: uvloop forks and runs Python's after-fork hooks
    in the child, which can spin for good while gRPC's threads are busy (seen here: the child
    stuck in threading._after_fork, the test waiting for it). Popen uses vfork and execs at
    once. stderr goes to a file, so that logs never fill a pipe nobody reads.
    """

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in wait()
        self.popen = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=self._stderr, env=env)

    def send_signal(self, signum: int) -> None:
        self.popen.send_signal(signum)

    async def ready_line(self) -> dict[str, str]:
        assert self.popen.stdout is not None
        line = await asyncio.wait_for(asyncio.to_thread(self.popen.stdout.readline), 30)
        if not line:
            self.popen.kill()
            await asyncio.to_thread(self.popen.wait)
            raise AssertionError(f"the simulator exited before it was ready: {self.stderr()!r}")
        ready: dict[str, str] = json.loads(line)
        return ready

    def stderr(self) -> bytes:
        self._stderr.seek(0)
        return self._stderr.read()

    async def wait(self, timeout: float = 30) -> tuple[int, bytes, bytes]:
        try:
            stdout, _ = await asyncio.to_thread(self.popen.communicate, timeout=timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            await asyncio.to_thread(self.popen.communicate)
            raise
        stderr = self.stderr()
        self._stderr.close()
        return self.popen.returncode, stdout, stderr


async def start_ready(
    *args: str, env: dict[str, str] | None = None
) -> tuple[Child, dict[str, str]]:
    """Start ``mxgw-py sim``; the process and its ready line (``listening``, ``metrics``)."""
    command = [sys.executable, "-m", "mxgateway_cli", "sim", *args]
    child = await asyncio.to_thread(Child, command, {**os.environ, **(env or {})})
    return child, await child.ready_line()


async def stop(process: Child, signum: int) -> tuple[int, bytes, bytes]:
    process.send_signal(signum)
    return await process.wait()


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
    # The error names where the key came from and the form it must have, not a "line".
    assert b"environment variable SIM_TEST_BAD" in result.stderr
    assert b"mxgw_<keyId>_<secret>" in result.stderr
    assert b"line 1" not in result.stderr


def test_malformed_key_file_is_named(tmp_path: Path) -> None:
    keys = tmp_path / "sim-keys.txt"
    keys.write_text("# the simulator's keys\nnot-a-key-TopSecret\n", encoding="utf-8")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "mxgateway_cli", "sim", "--listen", "127.0.0.1:0"),
            *("--plaintext", "--api-key-file", str(keys)),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert b"TopSecret" not in result.stdout + result.stderr
    assert f"--api-key-file {keys}: line 2".encode() in result.stderr
    assert b"mxgw_<keyId>_<secret>" in result.stderr


def test_sim_help_gives_the_key_form_and_the_open_doors() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mxgateway_cli", "sim", "--help"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    text = " ".join(result.stdout.split())  # argparse wraps lines
    assert "mxgw_<keyId>_<secret>" in text
    assert "Health and reflection answer without a key" in text


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--flood", "--flood-rate", "-5"], b"--flood-rate"),
        (["--flood", "--flood-rate", "nan"], b"--flood-rate"),
        (["--flood-rate", "100"], b"--flood"),
        (["--min-ping-interval", "-1"], b"--min-ping-interval"),
        (["--max-ping-strikes", "-2"], b"--max-ping-strikes"),
        (["--max-sessions-per-key", "0"], b"--max-sessions-per-key"),
        (["--max-lease-seconds", "0"], b"--max-lease-seconds"),
        (["--max-lease-seconds", str(2**32)], b"--max-lease-seconds"),
        (["--metrics-port", "70000"], b"--metrics-port"),
        (["--metrics-port", "-1"], b"--metrics-port"),
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


# ----- Windows guards, key files with a byte order mark, metrics -----

# Runs ``mxgw-py sim`` with event loops that cannot take signal handlers, as on Windows
# (asyncio's Proactor loop raises NotImplementedError from add_signal_handler).
_NO_LOOP_SIGNALS = """
import asyncio.unix_events, sys

def refuse(self, *args, **kwargs):
    print("emulated: add_signal_handler raised NotImplementedError", file=sys.stderr, flush=True)
    raise NotImplementedError

asyncio.unix_events._UnixSelectorEventLoop.add_signal_handler = refuse
try:
    import uvloop
except ImportError:
    pass
else:
    uvloop.Loop.add_signal_handler = refuse

from mxgateway_cli.main import main
raise SystemExit(main(["sim", *sys.argv[1:]]))
"""


async def start_code(code: str, *args: str) -> tuple[Child, dict[str, str]]:
    command = [sys.executable, "-c", code, *args]
    child = await asyncio.to_thread(Child, command, dict(os.environ))
    return child, await child.ready_line()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_stops_on_signals_where_the_loop_cannot_take_handlers(signum: int) -> None:
    process, ready = await start_code(
        _NO_LOOP_SIGNALS, "--listen", "127.0.0.1:0", "--plaintext", "--rate", "0"
    )
    async with grpc.aio.insecure_channel(ready["listening"]) as channel:
        reply = await pb_grpc.MxAccessGatewayStub(channel).OpenSession(pb.OpenSessionRequest())
        assert reply.session_id
    code, stdout, stderr = await stop(process, signum)
    assert code == 0, stderr.decode()
    assert b"emulated: add_signal_handler raised NotImplementedError" in stderr
    assert b"UsageError" not in stderr and b"Traceback" not in stderr
    (stopped,) = stdout.decode().splitlines()
    assert "stopped" in json.loads(stopped)


@pytest.mark.parametrize("newline", ["\n", "\r\n"])
async def test_key_file_and_env_with_a_byte_order_mark(tmp_path: Path, newline: str) -> None:
    keys = tmp_path / "keys.txt"
    # What PowerShell 5.1's Set-Content -Encoding UTF8 writes: a BOM, CRLF line ends.
    keys.write_bytes(f"{KEY}{newline}{SCOPED} events:read{newline}".encode("utf-8-sig"))
    other = "mxgw_env_AnotherOneFromEnv9"
    process, listening = await start(
        "--listen",
        "127.0.0.1:0",
        "--plaintext",
        "--api-key-file",
        str(keys),
        "--api-key-env",
        "SIM_TEST_BOM_KEY",
        env={"SIM_TEST_BOM_KEY": "\ufeff" + other + "\r\n"},
    )
    try:
        async with grpc.aio.insecure_channel(listening) as channel:
            stub = pb_grpc.MxAccessGatewayStub(channel)
            for key in (KEY, other):
                reply = await stub.OpenSession(
                    pb.OpenSessionRequest(), metadata=(("authorization", f"Bearer {key}"),)
                )
                assert reply.session_id
    finally:
        code, stdout, stderr = await stop(process, signal.SIGTERM)
    assert code == 0, stderr.decode()
    for secret in (KEY, other, SCOPED):
        assert secret.encode() not in stdout + stderr


def test_a_key_file_that_is_not_utf8_is_a_usage_error(tmp_path: Path) -> None:
    keys = tmp_path / "keys.txt"
    keys.write_bytes(KEY.encode("utf-16"))
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mxgateway_cli",
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--plaintext",
            "--api-key-file",
            str(keys),
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert b"not UTF-8" in result.stderr
    assert b"VerySecret" not in result.stdout + result.stderr


async def test_metrics_port_is_announced_and_scraped() -> None:
    import urllib.request

    process, ready = await start_ready(
        "--listen", "127.0.0.1:0", "--plaintext", "--rate", "0", "--metrics-port", "0"
    )
    try:
        async with grpc.aio.insecure_channel(ready["listening"]) as channel:
            await pb_grpc.MxAccessGatewayStub(channel).OpenSession(pb.OpenSessionRequest())
        url = ready["metrics"]
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")

        def get() -> bytes:
            with urllib.request.urlopen(url, timeout=10) as response:
                body: bytes = response.read()
                return body

        body = await asyncio.to_thread(get)
        assert b'mxgateway_sim_sessions{state="ready"} 1.0' in body
        assert b'mxgateway_sim_refused_total{reason="sessions_per_key"} 0.0' in body
    finally:
        code, _, stderr = await stop(process, signal.SIGTERM)
    assert code == 0, stderr.decode()


def test_metrics_port_without_prometheus_client_is_a_usage_error() -> None:
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "from mxgateway_cli.main import main\n"
        "raise SystemExit(main(sys.argv[1:]))"
    )
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "sim",
            "--listen",
            "127.0.0.1:0",
            "--plaintext",
            "--metrics-port",
            "0",
        ],
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stderr.decode()
    assert b"--metrics-port" in result.stderr
    assert b"mxgateway[prometheus]" in result.stderr
    assert result.stdout == b""
