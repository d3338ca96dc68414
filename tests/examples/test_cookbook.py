"""Every Python block of docs/cookbook.md runs as written against ``mxgw-py sim`` (only the
endpoint is replaced): scripts as scripts, notebook cells inside a running event loop with
top-level ``await`` allowed, as IPython runs them."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

COOKBOOK = Path(__file__).resolve().parents[2] / "docs" / "cookbook.md"
NOTEBOOK_CELL = "# In a notebook cell"

# What a notebook kernel does with a cell: compile it with top-level await allowed and run it
# on the kernel's running loop.
_KERNEL = """
import ast, asyncio, sys

async def kernel():
    code = compile(sys.argv[1], "<cell>", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    result = eval(code, {"__name__": "__main__"})
    if asyncio.iscoroutine(result):
        await result

asyncio.run(kernel())
"""


def _blocks() -> list[tuple[int, str]]:
    text = COOKBOOK.read_text(encoding="utf-8")
    return [
        (text.count("\n", 0, match.start()) + 1, match.group(1))
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.DOTALL | re.MULTILINE)
    ]


BLOCKS = _blocks()


def test_the_cookbook_shows_every_task_both_ways() -> None:
    scripts = [code for _, code in BLOCKS if not code.startswith(NOTEBOOK_CELL)]
    assert len(scripts) >= 11
    assert sum("mxgateway.sync" in code for code in scripts) >= 6
    assert sum("asyncio.run(main())" in code for code in scripts) >= 5


@pytest.mark.parametrize(("line", "code"), BLOCKS, ids=[f"line{line}" for line, _ in BLOCKS])
def test_cookbook_block_runs(endpoint: str, line: int, code: str) -> None:
    assert "127.0.0.1:5000" in code, "every block talks to the simulator of the cookbook"
    code = code.replace("127.0.0.1:5000", endpoint)
    if code.startswith(NOTEBOOK_CELL):
        command = [sys.executable, "-c", _KERNEL, code]
    else:
        command = [sys.executable, "-c", code]
    env = {**os.environ, "PYTHONWARNINGS": "error::RuntimeWarning"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, env=env, check=False)
    assert done.returncode == 0, f"docs/cookbook.md line {line}:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip(), "the block printed nothing"
