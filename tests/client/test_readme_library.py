"""The README's library example, run as written (only the endpoint is this test's simulator)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from mxgateway.sim import SimConfig, SimulatedGateway

README = Path(__file__).resolve().parents[2] / "README.md"


def _library_examples() -> list[str]:
    text = README.read_text(encoding="utf-8")
    section = re.search(r"## Library\n(.*?)\n## ", text, re.DOTALL)
    assert section, "README.md has no '## Library' section"
    blocks = re.findall(r"```python\n(.*?)```", section.group(1), re.DOTALL)
    assert blocks, "README.md has no python example under '## Library'"
    return list(blocks)


async def _run(code: str, endpoint: str) -> list[str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        code.replace("127.0.0.1:5000", endpoint),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    return stdout.decode().splitlines()


async def test_readme_library_examples_run() -> None:
    handles, tags = _library_examples()
    assert "127.0.0.1:5000" in handles and "127.0.0.1:5000" in tags
    async with SimulatedGateway(SimConfig(rate=20.0)) as sim:
        lines = await _run(handles, sim.endpoint)
        assert lines, "the example printed no events"
        assert any("42.5" in line for line in lines), lines
        lines = await _run(tags, sim.endpoint)
    assert lines[0].startswith("Pump_001.Speed ") and "None" not in lines[0].split()[1]
    assert lines[1].startswith("No.Such.Tag None 0 None unknown item reference")
    assert "write ok: True" in lines
    changes = lines[lines.index("write ok: True") + 1 :]
    assert {line.split()[0] for line in changes} == {"Pump_001.Speed", "Pump_001.Running"}
