"""The README's library example, run as written (only the endpoint is this test's simulator)."""

from __future__ import annotations

import asyncio
import re
import sys
from pathlib import Path

from mxgateway.sim import SimConfig, SimulatedGateway

README = Path(__file__).resolve().parents[2] / "README.md"


def _library_example() -> str:
    text = README.read_text(encoding="utf-8")
    match = re.search(r"## Library.*?```python\n(.*?)```", text, re.DOTALL)
    assert match, "README.md has no python example under '## Library'"
    return match.group(1)


async def test_readme_library_example_runs() -> None:
    code = _library_example()
    assert "127.0.0.1:5000" in code
    async with SimulatedGateway(SimConfig(rate=20.0)) as sim:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            code.replace("127.0.0.1:5000", sim.endpoint),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, stderr.decode()
    lines = stdout.decode().splitlines()
    assert lines, "the example printed no events"
    assert any("42.5" in line for line in lines), lines
