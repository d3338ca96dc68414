"""The build and the selector: compiled codec by default, the twin on request."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import mxgateway
from tests.conftest import COMPILED, NO_EXTENSIONS


def test_compiled_extension_was_built() -> None:
    # Unless the twin was asked for, an install must have built the extension: a silent
    # fallback here would hide a broken build behind slower code.
    if not NO_EXTENSIONS:
        assert COMPILED is not None, "mxgateway._speedups is missing: the build failed"


def test_selector_follows_environment() -> None:
    expected = "python" if NO_EXTENSIONS or COMPILED is None else "cython"
    assert mxgateway.codec_implementation() == expected


def _implementation_in_child(no_extensions: str | None) -> str:
    env = dict(os.environ)
    env.pop("MXGATEWAY_NO_EXTENSIONS", None)
    if no_extensions is not None:
        env["MXGATEWAY_NO_EXTENSIONS"] = no_extensions
    out = subprocess.run(
        [sys.executable, "-c", "import mxgateway; print(mxgateway.codec_implementation())"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    return out.stdout.strip()


def test_no_extensions_forces_twin_at_run_time() -> None:
    assert _implementation_in_child("1") == "python"


def test_default_selects_compiled_when_built() -> None:
    if COMPILED is not None:
        assert _implementation_in_child(None) == "cython"
        # Only the exact value "1" disables it.
        assert _implementation_in_child("0") == "cython"


def test_stub_sits_beside_compiled_module() -> None:
    package_dir = os.path.dirname(mxgateway.__file__)
    assert os.path.exists(os.path.join(package_dir, "_speedups.pyi"))
    assert os.path.exists(os.path.join(package_dir, "py.typed"))


def test_version_matches_distribution_metadata() -> None:
    from importlib import metadata

    assert metadata.version("mxgateway") == mxgateway.__version__


def test_compiled_and_twin_expose_same_functions() -> None:
    from mxgateway import _pycodec

    if COMPILED is not None:
        public_twin = {name for name in _pycodec.__all__}
        public_compiled = {name for name in dir(COMPILED) if not name.startswith("_")}
        assert public_twin <= public_compiled, public_twin - public_compiled


def test_version_json_from_child_process_names_the_implementation() -> None:
    env = dict(os.environ, MXGATEWAY_NO_EXTENSIONS="1")
    out = subprocess.run(
        [sys.executable, "-m", "mxgateway_cli", "version", "--json"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(out.stdout)["codec"] == "python"
