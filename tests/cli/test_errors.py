"""Exit codes, error output, usage errors, TLS flags and API-key secrecy of ``mxgw-py``.

Every run goes through ``conftest.run``, which fails the test if any test key appears in
stdout or stderr, errors included.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.conftest import (
    ENV,
    FULL_KEY,
    READ_ONLY_KEY,
    RO_ENV,
    WRONG_ENV,
    WRONG_KEY,
    Gateway,
    assert_error,
    run,
    start_sim,
    stop_sim,
)
from tests.sim.tls_certs import make_pki

# once: argument checks, exit codes and masking in the CLI layer, the same with either codec.
pytestmark = pytest.mark.once

COMMANDS = [
    "version",
    "open-session",
    "close-session",
    "register",
    "unregister",
    "add-item",
    "add-item2",
    "remove-item",
    "advise",
    "advise-supervisory",
    "unadvise",
    "write",
    "write2",
    "write-secured",
    "write-secured2",
    "read-bulk",
    "subscribe-bulk",
    "write-bulk",
    "stream-events",
    "smoke",
    "galaxy-test-connection",
    "galaxy-last-deploy",
    "galaxy-discover",
    "galaxy-browse",
    "galaxy-watch",
    "stream-alarms",
    "acknowledge-alarm",
    "query-alarms",
    "bench-stream-events",
    "sim",
]


def test_help_lists_every_command_and_the_exit_codes() -> None:
    result = run("--help")
    assert result.code == 0, result
    for command in COMMANDS:
        assert f"    {command} " in result.stdout or f"    {command}\n" in result.stdout, command
    for line in (
        "0  ok",
        "1  the gateway or MXAccess reported a failure",
        "2  usage error (bad flags or values)",
        "3  transport failure or timeout",
        "4  authentication or authorization failure",
    ):
        assert line in result.stdout


WRITE = ["write", "--session-id", "s", "--server-handle", "1", "--item-handle", "2"]
BULK = ["write-bulk", "--session-id", "s", "--server-handle", "1", "--type", "int32"]
LOCAL = ["--endpoint", "127.0.0.1:9", "--plaintext"]  # never reached: the flags are wrong first


@pytest.mark.parametrize(
    "args",
    [
        [*WRITE, "--type", "double", "--value", "nan"],
        [*WRITE, "--type", "double", "--value", "inf"],
        [*WRITE, "--type", "float", "--value", "-Infinity"],
        [*WRITE, "--type", "double", "--value", "1e999"],
        [*WRITE, "--type", "float", "--value", "1e39"],  # beyond float32
        [*WRITE, "--type", "elapsed", "--value", "NaN"],
        [*WRITE, "--type", "int32", "--value", "1.5"],
        [*WRITE, "--type", "int32", "--value", "2147483648"],
        [*WRITE, "--type", "int64", "--value", "9223372036854775808"],
        [*WRITE, "--type", "int32", "--value", "1_000"],
        [*WRITE, "--type", "bool", "--value", "yes"],
        [*WRITE, "--type", "time", "--value", "2024-05-01T12:00:00"],  # no offset
        [*WRITE, "--type", "time", "--value", "yesterday"],
        [*WRITE, "--type", "double", "--array", "--value", "[1, NaN]"],
        [*WRITE, "--type", "double", "--array", "--value", "[[1, 2], [3]]"],  # ragged
        [*WRITE, "--type", "int32", "--array", "--value", "[1, true]"],
        [*WRITE, "--type", "double", "--array", "--value", "3"],
        [*WRITE, "--type", "int128", "--value", "1"],
        [*WRITE, "--type", "int32"],  # no --value
        ["write2", *WRITE[1:], "--type", "int32", "--value", "1", "--timestamp", "noon"],
        [*WRITE, "--type", "int32", "--value", "1", "--tls"],  # with --plaintext (LOCAL)
        [*WRITE, "--type", "int32", "--value", "1", "--api-key", "k", "--api-key-env", "K"],
        [*WRITE, "--type", "int32", "--value", "1", "--timeout", "-1"],
        [*WRITE, "--type", "int32", "--value", "1", "--timeout", "nan"],
        [*WRITE, "--type", "int32", "--value", "1", "--ca-file", "ca.pem"],  # needs TLS
        ["write", "--server-handle", "1", "--item-handle", "2", "--type", "int32", "--value", "1"],
        ["register", "--session-id", "s", "--api-key-env", "MXGW_CLI_TEST_UNSET"],
        ["register", "--session-id", "s", "--api-key-file", "/no/such/key/file"],
        ["unregister", "--session-id", "s", "--server-handle", "99999999999"],
        [*BULK, "--entry", "7"],  # not ITEM_HANDLE=VALUE
        [*BULK, "--entry", "x=7"],
        [*BULK, "--entry", "2=7", "--entry", "3=1e10"],
        ["stream-events", "--session-id", "s", "--max-events", "0"],
        ["galaxy-browse", "--root", "A", "--root-id", "1"],
        ["galaxy-browse", "--max-depth", "2", "--tag-glob", "A*"],
        ["no-such-command"],
    ],
    ids=lambda args: " ".join(args[-4:]),
)
def test_usage_errors_exit_2_before_connecting(args: list[str]) -> None:
    result = run(*args, *LOCAL, "--json")
    assert_error(result, 2)  # one JSON error line on stdout
    assert result.stderr == ""


@pytest.mark.parametrize(
    "args",
    [
        [*WRITE, "--type", "double", "--value", "nan"],  # our own check
        [*WRITE, "--type", "double", "--array", "--value", "[[1, 2], [3]]"],  # the library's
        [*WRITE, "--type", "int32", "--value", "1", "--tls"],  # argparse's
        ["register", "--session-id", "s", "--api-key-env", "MXGW_CLI_TEST_UNSET"],
    ],
    ids=lambda args: " ".join(args[-2:]),
)
def test_usage_errors_without_json_go_to_stderr(args: list[str]) -> None:
    assert_error(run(*args, *LOCAL), 2, json_mode=False)


def test_plaintext_with_tls_is_a_usage_error() -> None:
    result = run("open-session", "--plaintext", "--tls", "--json")
    assert "--tls" in assert_error(result, 2) and "--plaintext" in result.stdout


def test_exit_1_for_gateway_failures(gateway: Gateway) -> None:
    unknown = gateway.run("register", "--session-id", "sim-no-such-session", "--json")
    assert "SESSION_NOT_FOUND" in assert_error(unknown, 1)
    text = gateway.run("close-session", "--session-id", "sim-no-such-session")
    assert "SESSION_NOT_FOUND" in assert_error(text, 1, json_mode=False)


@pytest.fixture
def refused_endpoint() -> Iterator[str]:
    """An address where nothing listens (bound, never listening: connections are refused)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"127.0.0.1:{sock.getsockname()[1]}"


@pytest.mark.parametrize(
    "args",
    [
        ["open-session"],
        ["stream-events", "--session-id", "s", "--max-events", "1"],
        ["galaxy-watch", "--max-events", "1"],
        ["galaxy-discover"],
        ["stream-alarms"],
    ],
    ids=lambda args: args[0],
)
def test_exit_3_for_an_unreachable_gateway(args: list[str], refused_endpoint: str) -> None:
    result = run(
        *args, "--endpoint", refused_endpoint, "--plaintext", "--api-key", FULL_KEY,
        "--timeout", "1", "--json",
    )  # fmt: skip
    assert_error(result, 3)


def test_exit_3_for_tls_against_a_plaintext_gateway(gateway: Gateway) -> None:
    result = run("open-session", "--endpoint", gateway.endpoint, "--timeout", "2")  # TLS default
    assert_error(result, 3, json_mode=False)


def test_exit_4_for_a_wrong_missing_or_unscoped_key(gateway: Gateway) -> None:
    wrong = gateway.run("open-session", "--json", key_env=WRONG_ENV)
    assert "UNAUTHENTICATED" in assert_error(wrong, 4)
    missing = gateway.run("galaxy-discover", "--json", key_env=None)
    assert "UNAUTHENTICATED" in assert_error(missing, 4)
    flag = run(
        "open-session", "--endpoint", gateway.endpoint, "--plaintext", "--api-key", WRONG_KEY
    )
    assert_error(flag, 4, json_mode=False)

    # A read-only key may open, register, add and advise, not write.
    opened = gateway.run("open-session", key_env=RO_ENV)
    sid = opened.stdout.strip()
    handle = gateway.run("register", "--session-id", sid, key_env=RO_ENV).stdout.strip()
    base = ["--session-id", sid, "--server-handle", handle]
    item = gateway.run("add-item", *base, "--item", "Pump_001.Mode", key_env=RO_ENV)
    advise = gateway.run("advise", *base, "--item-handle", item.stdout.strip(), key_env=RO_ENV)
    assert advise.code == 0, advise
    denied = gateway.run(
        "write", *base, "--item-handle", item.stdout.strip(), "--type", "int32", "--value", "1",
        "--json", key_env=RO_ENV,
    )  # fmt: skip
    assert "PERMISSION_DENIED" in assert_error(denied, 4)
    gateway.run("close-session", "--session-id", sid, key_env=RO_ENV)


def test_the_key_is_masked_wherever_it_could_show(gateway: Gateway, tmp_path: Path) -> None:
    # run() already fails on any key in any output; these put the key where it could leak.
    stray = run("open-session", "--json", "--plaintext", FULL_KEY)  # pasted as an argument
    assert "mxgw_clifull_***" in assert_error(stray, 2)
    as_endpoint = run("open-session", "--endpoint", READ_ONLY_KEY, "--plaintext", "--timeout", "1")
    assert_error(as_endpoint, 3, json_mode=False)
    key_file = tmp_path / "key"
    key_file.write_text(f"{FULL_KEY} trailing words\n", encoding="utf-8")  # not a valid key
    bad_file = run(*["open-session", "--api-key-file", str(key_file)], *gateway.flags(None))
    assert_error(bad_file, 2, json_mode=False)
    key_file.write_text(FULL_KEY + "\n", encoding="utf-8")
    good = gateway.run("open-session", "--api-key-file", str(key_file), "--json", key_env=None)
    assert good.code == 0, good
    gateway.run("close-session", "--session-id", good.json()["sessionId"])


def test_tls_flags_of_the_reference_smoke_example(tmp_path: Path) -> None:
    pki = make_pki()
    (tmp_path / "ca.pem").write_bytes(pki.ca_pem)
    (tmp_path / "cert.pem").write_bytes(pki.cert_pem)
    (tmp_path / "key.pem").write_bytes(pki.key_pem)
    process, endpoint = start_sim(
        tmp_path, "--tls-cert", str(tmp_path / "cert.pem"), "--tls-key", str(tmp_path / "key.pem")
    )
    try:
        port = endpoint.rsplit(":", 1)[1]
        env = {**ENV, "MXGATEWAY_API_KEY": FULL_KEY}
        smoke = run(
            "smoke", "--endpoint", f"127.0.0.1:{port}", "--tls", "--ca-file",
            str(tmp_path / "ca.pem"), "--server-name-override", "localhost", "--api-key-env",
            "MXGATEWAY_API_KEY", "--item", "Object.Attribute", "--json", env=env,
        )  # fmt: skip
        assert smoke.code == 0, smoke
        assert smoke.json()["closed"] is True
        untrusted = run(
            "open-session", "--endpoint", endpoint, "--api-key-env", "MXGATEWAY_API_KEY",
            "--timeout", "2", "--json", env=env,
        )  # fmt: skip
        assert_error(untrusted, 3)  # the system roots do not trust the test CA
        plaintext = run(
            "open-session", "--endpoint", endpoint, "--plaintext", "--api-key-env",
            "MXGATEWAY_API_KEY", "--timeout", "2", "--json", env=env,
        )  # fmt: skip
        assert_error(plaintext, 3)
    finally:
        stop_sim(process)
