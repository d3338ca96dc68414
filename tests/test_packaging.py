"""What an install gives users: a loud codec fallback, lean dependencies, the metadata they
look for, and generated code whose versions are the dependency floors.

The fallback is provoked in a child process by making ``mxgateway._speedups`` unimportable
(``sys.modules[name] = None``), as a failed build or a module built for another Python does.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

import pytest

import mxgateway
from tests.conftest import COMPILED

ROOT = Path(__file__).resolve().parent.parent
GENERATED = ROOT / "src" / "mxgateway" / "generated"
BLOCK_CODEC = "import sys; sys.modules['mxgateway._speedups'] = None; "
SIM_PACKAGES = ("grpc_health", "grpc_reflection", "h2")
BLOCK_SIM = "import sys; " + "; ".join(f"sys.modules[{m!r}] = None" for m in SIM_PACKAGES) + "; "


def _python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    child_env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("MXGATEWAY_NO_EXTENSIONS", "MXGATEWAY_REQUIRE_EXTENSIONS")
    }
    child_env.update(env)
    return subprocess.run(
        [sys.executable, "-c", code],
        env=child_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


# -- the codec fallback ----------------------------------------------------------------------


def test_fallback_logs_one_warning_with_reason_and_cost() -> None:
    # No logging configured: logging's last resort shows it on stderr all the same.
    result = _python(BLOCK_CODEC + "import mxgateway; print(mxgateway.codec_implementation())")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "python\n"
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert "mxgateway._speedups" in lines[0]
    assert "100x slower" in lines[0]
    assert "MXGATEWAY_NO_EXTENSIONS=1" in lines[0]  # how to choose the twin and silence it


def test_a_module_that_fails_to_load_is_named_with_its_error() -> None:
    # A module built for another Python or platform: found, but its import fails.
    code = (
        "import sys\n"
        "class Broken:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'mxgateway._speedups':\n"
        "            raise ImportError('undefined symbol: _PyFake_Thing')\n"
        "sys.meta_path.insert(0, Broken())\n"
        "import mxgateway._codec as c; print(c.codec_fallback_reason())\n"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "mxgateway._speedups failed to load (undefined symbol: _PyFake_Thing)"
    )
    assert len(result.stderr.splitlines()) == 1, result.stderr


def test_fallback_warning_is_a_warning_record_of_the_mxgateway_logger() -> None:
    code = (
        "import logging; logging.basicConfig(format='%(levelname)s|%(name)s|%(message)s'); "
        + BLOCK_CODEC
        + "import mxgateway"
    )
    result = _python(code)
    assert result.returncode == 0, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("WARNING|mxgateway|mxgateway._speedups ")


def test_deliberate_twin_is_silent() -> None:
    result = _python(
        "import mxgateway; print(mxgateway.codec_implementation())", MXGATEWAY_NO_EXTENSIONS="1"
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "python\n", "")


def test_require_extensions_makes_the_fallback_an_import_error() -> None:
    result = _python(BLOCK_CODEC + "import mxgateway", MXGATEWAY_REQUIRE_EXTENSIONS="1")
    assert result.returncode == 1
    assert "ImportError" in result.stderr
    assert "MXGATEWAY_REQUIRE_EXTENSIONS=1" in result.stderr


@pytest.mark.skipif(COMPILED is None, reason="the compiled codec was not built")
def test_require_extensions_passes_with_the_compiled_codec() -> None:
    result = _python(
        "import mxgateway; print(mxgateway.codec_implementation())",
        MXGATEWAY_REQUIRE_EXTENSIONS="1",
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "cython\n", "")


def test_version_says_why_the_twin_runs() -> None:
    run_cli = "from mxgateway_cli.main import main; sys.exit(main(['version', '--json']))"
    blocked = _python(BLOCK_CODEC + run_cli)
    assert blocked.returncode == 0, blocked.stderr
    data = json.loads(blocked.stdout)
    assert data["codec"] == "python"
    assert "mxgateway._speedups" in data["codecFallbackReason"]
    deliberate = _python("import sys; " + run_cli, MXGATEWAY_NO_EXTENSIONS="1")
    assert json.loads(deliberate.stdout)["codecFallbackReason"] == "MXGATEWAY_NO_EXTENSIONS=1"
    if COMPILED is not None:
        assert json.loads(_python("import sys; " + run_cli).stdout)["codecFallbackReason"] is None


def test_dash_dash_version_prints_the_version_line() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mxgateway_cli", "--version"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"mxgw-py {mxgateway.__version__} (codec ")
    assert result.stdout.count("\n") == 1


# -- the sim extra ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv",
    [["sim", "--plaintext"], ["bench-stream-events", "--duration", "1", "--json"]],
    ids=["sim", "bench"],
)
def test_simulator_commands_without_the_extra_name_the_pip_command(argv: list[str]) -> None:
    code = BLOCK_SIM + f"from mxgateway_cli.main import main; sys.exit(main({argv!r}))"
    result = _python(code)
    assert result.returncode == 2, result.stderr
    output = json.loads(result.stdout)["error"] if "--json" in argv else result.stderr
    assert 'pip install "mxgateway[sim]"' in output
    assert "grpcio-health-checking, grpcio-reflection, h2" in output


def test_importing_the_simulator_without_the_extra_names_the_pip_command() -> None:
    result = _python(BLOCK_SIM + "import mxgateway.sim")
    assert result.returncode == 1
    assert 'pip install "mxgateway[sim]"' in result.stderr.splitlines()[-1]


def test_the_client_imports_without_the_simulator_packages() -> None:
    code = BLOCK_SIM + "import mxgateway, mxgateway.sync, mxgateway_cli.main; print('ok')"
    result = _python(code)
    assert (result.returncode, result.stdout.strip()) == (0, "ok"), result.stderr


# -- metadata and dependencies ---------------------------------------------------------------


def _requirements() -> list[str]:
    return metadata.requires("mxgateway") or []


def test_simulator_packages_are_only_in_the_sim_extra() -> None:
    unconditional = [r for r in _requirements() if "extra ==" not in r]
    names = {re.split(r"[<>=!~; \[]", r, maxsplit=1)[0].lower() for r in unconditional}
    assert names == {"grpcio", "protobuf", "msgspec", "uvloop"}, unconditional
    sim = {r.split(";")[0].split(">")[0] for r in _requirements() if 'extra == "sim"' in r}
    assert sim == {"grpcio-health-checking", "grpcio-reflection", "h2"}


def test_metadata_users_look_for() -> None:
    meta = metadata.metadata("mxgateway")
    assert meta["License-Expression"] == "Apache-2.0"
    classifiers = set(meta.get_all("Classifier") or [])
    for minor in range(11, 15):
        assert f"Programming Language :: Python :: 3.{minor}" in classifiers
    assert "Typing :: Typed" in classifiers
    assert {"Operating System :: Microsoft :: Windows", "Operating System :: POSIX :: Linux"} <= (
        classifiers
    )
    urls = {u.split(",")[0] for u in meta.get_all("Project-URL") or []}
    assert {"Repository", "Issues", "Changelog"} <= {u.strip() for u in urls}
    assert (ROOT / "LICENSE").read_text(encoding="utf-8").lstrip().startswith("Apache License")
    assert f"## [{mxgateway.__version__}]" in (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")


# -- generated code and the dependency floors ------------------------------------------------


def _floor(requirements: list[str], name: str) -> str:
    for requirement in requirements:
        match = re.fullmatch(rf"{re.escape(name)}\s*>=\s*([0-9.]+)(,.*)?", requirement.strip())
        if match:
            return match.group(1)
    raise AssertionError(f"no {name}>= floor in {requirements}")


def test_dependency_floors_are_the_generator_versions() -> None:
    # The generated code refuses a runtime older than its generator (GRPC_GENERATED_VERSION,
    # protobuf's gencode check), so the floors must be exactly those versions, and the pin of
    # grpcio-tools in scripts/generate_proto.py must be what generated the committed code.
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    dependencies: list[str] = project["dependencies"]
    grpc_code = (GENERATED / "mxaccess_gateway_pb2_grpc.py").read_text(encoding="utf-8")
    grpc_generated = re.search(r"GRPC_GENERATED_VERSION = '([0-9.]+)'", grpc_code)
    pb_code = (GENERATED / "mxaccess_gateway_pb2.py").read_text(encoding="utf-8")
    pb_generated = re.search(r"# Protobuf Python Version: ([0-9.]+)", pb_code)
    assert grpc_generated and pb_generated
    assert _floor(dependencies, "grpcio") == grpc_generated.group(1)
    assert _floor(dependencies, "protobuf") == pb_generated.group(1)
    generator = (ROOT / "scripts" / "generate_proto.py").read_text(encoding="utf-8")
    assert f'"grpcio-tools=={grpc_generated.group(1)}"' in generator
    for sim_dependency in ("grpcio-health-checking", "grpcio-reflection"):
        assert _floor(project["optional-dependencies"]["sim"], sim_dependency) == (
            grpc_generated.group(1)
        )
