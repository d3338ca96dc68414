"""Fixtures for the CLI tests: ``mxgw-py sim`` in a child process, and the installed
``mxgw-py`` console script run as a subprocess, every call checked for leaked secrets."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

MXGW = shutil.which("mxgw-py")

FULL_KEY = "mxgw_clifull_FullSecretValue42"
"""Every scope."""
READ_ONLY_KEY = "mxgw_cliro_ReadOnlySecret17"
"""No invoke:write, invoke:secure (nor admin)."""
WRONG_KEY = "mxgw_clifull_NotTheRightSecret9"
"""Well formed, unknown to the simulator."""
SECRETS = (FULL_KEY, READ_ONLY_KEY, WRONG_KEY, "FullSecretValue42", "ReadOnlySecret17")

KEY_ENV = "MXGW_CLI_TEST_KEY"
RO_ENV = "MXGW_CLI_TEST_RO_KEY"
WRONG_ENV = "MXGW_CLI_TEST_WRONG_KEY"
ENV = {
    **os.environ,
    KEY_ENV: FULL_KEY,
    RO_ENV: READ_ONLY_KEY,
    WRONG_ENV: WRONG_KEY,
}

_CAMEL = re.compile(r"[a-z][A-Za-z0-9]*")


@dataclass(frozen=True)
class Result:
    """What one ``mxgw-py`` run produced."""

    code: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        """The one JSON line of stdout."""
        assert self.stdout.endswith("\n") and self.stdout.count("\n") == 1, self
        return json.loads(self.stdout)

    def lines(self) -> list[Any]:
        """Every stdout line as JSON."""
        return [json.loads(line) for line in self.stdout.splitlines()]


def assert_protobuf_json(data: Any) -> None:
    """Sorted camelCase keys all the way down (protobuf JSON names)."""
    if isinstance(data, dict):
        keys = list(data)
        assert keys == sorted(keys), keys
        for key, value in data.items():
            assert _CAMEL.fullmatch(key), key
            assert_protobuf_json(value)
    elif isinstance(data, list):
        for item in data:
            assert_protobuf_json(item)


def run(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60, stdin: str | None = None
) -> Result:
    """Run the installed ``mxgw-py`` with ``args`` (and ``stdin``); no secret may appear in
    its output."""
    assert MXGW is not None, "the mxgw-py console script is not installed"
    completed = subprocess.run(
        [MXGW, *args],
        capture_output=True,
        text=True,
        env=env or ENV,
        timeout=timeout,
        check=False,
        input=stdin,
    )
    for secret in SECRETS:
        assert secret not in completed.stdout, f"secret in stdout of {args}"
        assert secret not in completed.stderr, f"secret in stderr of {args}"
    return Result(completed.returncode, completed.stdout, completed.stderr)


def assert_error(result: Result, code: int, *, json_mode: bool = True) -> str:
    """``result`` failed with ``code`` and reported it the CLI's way; returns the message."""
    assert result.code == code, result
    if json_mode:
        data = result.json()
        assert set(data) == {"error", "type"} and data["type"] == "error", data
        assert data["error"]
        return str(data["error"])
    assert result.stdout == "", result
    assert "error" in result.stderr, result
    return result.stderr


@dataclass(frozen=True)
class Gateway:
    """A running ``mxgw-py sim`` and how to call ``mxgw-py`` against it."""

    endpoint: str

    def flags(self, key_env: str | None = KEY_ENV) -> list[str]:
        """The connection flags (plaintext, the key from an env var)."""
        flags = ["--endpoint", self.endpoint, "--plaintext"]
        if key_env is not None:
            flags += ["--api-key-env", key_env]
        return flags

    def run(self, *args: str, key_env: str | None = KEY_ENV, **kwargs: Any) -> Result:
        """``mxgw-py args... <connection flags>``."""
        return run(*args, *self.flags(key_env), **kwargs)

    def ok(self, *args: str, **kwargs: Any) -> Any:
        """Run with ``--json``, expect exit 0 and one JSON line; return it."""
        result = self.run(*args, "--json", **kwargs)
        assert result.code == 0, result
        data = result.json()
        assert_protobuf_json(data)
        return data


def start_sim(tmp: Path, *extra: str) -> tuple[subprocess.Popen[str], str]:
    """Start ``mxgw-py sim`` on a free port with the test keys; return it and its endpoint."""
    assert MXGW is not None
    keys = tmp / "keys.txt"
    keys.write_text(
        f"{FULL_KEY}\n"
        f"{READ_ONLY_KEY} session:open,session:close,invoke:read,events:read,metadata:read\n",
        encoding="utf-8",
    )
    log = (tmp / "sim.log").open("w", encoding="utf-8")
    process = subprocess.Popen(
        [MXGW, "sim", "--listen", "127.0.0.1:0", "--api-key-file", str(keys), *extra],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env=ENV,
    )
    log.close()
    assert process.stdout is not None
    line = process.stdout.readline()
    if not line:
        process.wait(10)
        pytest.fail("mxgw-py sim exited: " + (tmp / "sim.log").read_text(encoding="utf-8"))
    return process, json.loads(line)["listening"]


def stop_sim(process: subprocess.Popen[str]) -> None:
    """SIGTERM and wait."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:  # pragma: no cover - only when the simulator hangs
        process.kill()
        process.wait(10)
    assert process.stdout is not None
    process.stdout.close()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gateway]:
    """One plaintext simulator (60 objects, 20 value changes/s) for the whole CLI run."""
    tmp = tmp_path_factory.mktemp("cli-sim")
    process, endpoint = start_sim(
        tmp, "--plaintext", "--galaxy-size", "60", "--rate", "20", "--log-level", "WARNING"
    )
    try:
        yield Gateway(endpoint)
    finally:
        stop_sim(process)
    log = (tmp / "sim.log").read_text(encoding="utf-8")
    for secret in SECRETS:
        assert secret not in log


@pytest.fixture(scope="session")
def attributes(gateway: Gateway) -> list[dict[str, Any]]:
    """Every attribute of the simulated Galaxy, from ``galaxy-discover --json``."""
    result = gateway.run("galaxy-discover", "--json")
    assert result.code == 0, result
    return [attr for obj in result.lines() for attr in obj["attributes"]]


def pick(
    attributes: list[dict[str, Any]],
    native_type: int,
    *,
    array: bool = False,
    security: tuple[int, ...] = (0, 1),
    alarm: bool = False,
) -> dict[str, Any]:
    """The first writeable attribute of a native MXAccess type (0 NoData, 1 Boolean,
    2 Integer, 3 Float, 4 Double, 5 String, 6 Time, 7 ElapsedTime); ``reference`` is the item
    to add (``Tag.Arr[]`` for a whole array). Alarm attributes change all the time (their
    generator runs whether advised or not); the others only while advised, some never."""
    for attr in attributes:
        if (
            attr["mxDataType"] == native_type
            and attr["isArray"] == array
            and attr["securityClassification"] in security
            and attr["mxAttributeCategory"] == 10
            and attr["isAlarm"] == alarm
        ):
            reference = str(attr["fullTagReference"])
            return {**attr, "reference": reference + "[]" if array else reference}
    raise AssertionError(f"no writeable attribute of type {native_type} (array={array})")


@dataclass
class OpenSession:
    """A session opened with ``open-session`` and a server handle from ``register``."""

    gateway: Gateway
    session_id: str
    server_handle: int

    def args(self) -> list[str]:
        """``--session-id ID --server-handle N``."""
        return ["--session-id", self.session_id, "--server-handle", str(self.server_handle)]


@pytest.fixture
def session(gateway: Gateway) -> Iterator[OpenSession]:
    """A fresh session (text-mode open-session and register: they print the bare values)."""
    opened = gateway.run("open-session")
    assert opened.code == 0, opened
    session_id = opened.stdout.strip()
    registered = gateway.run("register", "--session-id", session_id)
    assert registered.code == 0, registered
    yield OpenSession(gateway, session_id, int(registered.stdout))
    gateway.run("close-session", "--session-id", session_id)
