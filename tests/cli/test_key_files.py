"""API keys as Windows saves them: with a byte order mark, as UTF-16, with stray white space.

A BOM left in the key made gRPC refuse the header ("Illegal header value") and the CLI report a
gateway failure although nothing was sent; now the BOM goes, the key is stripped, and a key
gRPC could not send is a usage error naming where it came from, never the key itself.
"""

from __future__ import annotations

import argparse
import codecs
from pathlib import Path

import pytest

from mxgateway_cli._connection import resolve_api_key
from mxgateway_cli._exit_codes import UsageError
from tests.cli.conftest import FULL_KEY, Gateway, assert_error, run

KEY = "mxgw_demo_Secret0123456789"


def _args(
    *, key: str | None = None, env: str | None = None, path: Path | None = None
) -> argparse.Namespace:
    return argparse.Namespace(
        api_key=key, api_key_env=env, api_key_file=None if path is None else str(path)
    )


@pytest.mark.parametrize(
    "data",
    [
        codecs.BOM_UTF8 + KEY.encode() + b"\r\n",  # Notepad: "UTF-8 with BOM"
        KEY.encode() + b"\n",
        codecs.BOM_UTF16_LE + f"{KEY}\r\n".encode("utf-16-le"),  # PowerShell 5: echo KEY > f
        codecs.BOM_UTF16_BE + f"{KEY}\n".encode("utf-16-be"),
        b"  \t" + KEY.encode() + b" \n\n",
    ],
    ids=["utf8-bom-crlf", "utf8", "utf16le-bom", "utf16be-bom", "padded"],
)
def test_key_file_gives_the_bare_key(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "key.txt"
    path.write_bytes(data)
    assert resolve_api_key(_args(path=path)) == KEY


def test_env_value_is_stripped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MXGW_TEST_KEY_FILES", f" {KEY}\r\n")
    assert resolve_api_key(_args(env="MXGW_TEST_KEY_FILES")) == KEY


@pytest.mark.parametrize(
    ("text", "what"),
    [
        (f"{KEY[:4]}\u00a0{KEY[4:]}", "white space"),  # a no-break space from a web page
        (f"{KEY[:4]}\u2013{KEY[5:]}", "U+2013"),  # an en dash an editor put in
        (f"{KEY}\nsecond line", "white space"),
    ],
)
def test_a_key_grpc_cannot_send_is_a_usage_error(tmp_path: Path, text: str, what: str) -> None:
    path = tmp_path / "key.txt"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(UsageError) as caught:
        resolve_api_key(_args(path=path))
    message = str(caught.value)
    assert f"--api-key-file {path}" in message and what in message
    assert KEY[5:] not in message


def test_unreadable_key_files_are_usage_errors(tmp_path: Path) -> None:
    binary = tmp_path / "key.bin"
    binary.write_bytes(b"\xff\x00\xfe\x80" * 4)
    with pytest.raises(UsageError, match="not UTF-8 or UTF-16 text"):
        resolve_api_key(_args(path=binary))
    with pytest.raises(UsageError, match="cannot read --api-key-file"):
        resolve_api_key(_args(path=tmp_path / "missing"))


def test_a_bom_key_file_opens_a_session(gateway: Gateway, tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_bytes(codecs.BOM_UTF8 + FULL_KEY.encode() + b"\r\n")
    opened = gateway.run("open-session", "--api-key-file", str(key_file), "--json", key_env=None)
    assert opened.code == 0, opened
    gateway.run("close-session", "--session-id", opened.json()["sessionId"])


def test_a_non_ascii_key_is_refused_before_connecting(tmp_path: Path) -> None:
    key_file = tmp_path / "key.txt"
    key_file.write_text(FULL_KEY.replace("_", "\u2013", 1), encoding="utf-8")  # en dash
    # Port 9 (discard) on loopback: nothing is sent, so nothing needs to listen there.
    args = ["open-session", "--endpoint", "127.0.0.1:9", "--plaintext", "--timeout", "1"]
    result = run(*args, "--api-key-file", str(key_file), "--json")
    assert "U+2013" in assert_error(result, 2)
