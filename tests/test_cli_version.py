"""``mxgw-py version`` through the installed console script (a real subprocess)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

import mxgateway

MXGW = shutil.which("mxgw-py")


def _run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    assert MXGW is not None, "the mxgw-py console script is not installed"
    return subprocess.run([MXGW, *args], capture_output=True, text=True, env=env, check=False)


def test_version_json_is_sorted_and_complete() -> None:
    result = _run("version", "--json")
    assert result.returncode == 0, result.stderr
    line = result.stdout
    assert line.endswith("\n") and line.count("\n") == 1
    data = json.loads(line)
    assert list(data) == sorted(data)
    assert data["version"] == mxgateway.__version__
    assert data["codec"] in {"cython", "python"}
    assert data["eventLoop"] == ("asyncio" if sys.platform == "win32" else "uvloop")
    for dist in ("grpcio", "protobuf", "msgspec"):
        assert data[dist][0].isdigit(), data


def test_version_json_is_byte_identical_across_runs() -> None:
    assert _run("version", "--json").stdout == _run("version", "--json").stdout


def test_version_json_reports_twin_when_disabled() -> None:
    env = dict(os.environ, MXGATEWAY_NO_EXTENSIONS="1")
    assert json.loads(_run("version", "--json", env=env).stdout)["codec"] == "python"


def test_version_human_line() -> None:
    result = _run("version")
    assert result.returncode == 0
    assert result.stdout.startswith(f"mxgw-py {mxgateway.__version__} (codec ")


def test_python_dash_m_matches_console_script() -> None:
    module = subprocess.run(
        [sys.executable, "-m", "mxgateway_cli", "version", "--json"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert module.stdout == _run("version", "--json").stdout


@pytest.mark.parametrize("args", [["version", "--bogus"], ["no-such-command"], []])
def test_bad_usage_exits_2(args: list[str]) -> None:
    result = _run(*args)
    assert result.returncode == 2
    assert result.stdout == ""
