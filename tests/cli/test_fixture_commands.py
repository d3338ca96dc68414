"""The shared command fixtures (tests/fixtures/commands.json) run against the simulator.

Each scenario's steps run in order through the installed ``mxgw-py``; each step's exit code,
output and JSON shape must be what the fixture says (FORMAT.md). The matcher itself is
checked first, so a fixture cannot pass by matching everything.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.cli.conftest import WRONG_ENV, Gateway, pick, run
from tests.fixtures.load import capture, load, mismatches, substitute

COMMANDS = load("commands.json")


@pytest.fixture(scope="module")
def names(attributes: list[dict[str, Any]]) -> dict[str, Any]:
    """The placeholders the fixture file declares, from the simulator's Galaxy."""
    values = {
        "item_int": pick(attributes, 2)["reference"],
        "item_double": pick(attributes, 4)["reference"],
    }
    assert set(values) == set(COMMANDS["placeholders"])
    return values


@pytest.mark.parametrize("scenario", COMMANDS["scenarios"], ids=lambda s: s["name"])
def test_command_fixture(gateway: Gateway, names: dict[str, Any], scenario: dict[str, Any]) -> None:
    known = dict(names)
    for number, step in enumerate(scenario["steps"], 1):
        argv = [str(substitute(arg, known)) for arg in step["argv"]]
        stdin = str(substitute(step["stdin"], known)) if "stdin" in step else None
        if not step.get("connect", True):
            result = run(*argv, stdin=stdin)
        else:
            key = {"default": "default", "wrong": WRONG_ENV, "none": None}[
                step.get("key", "default")
            ]
            if key == "default":
                result = gateway.run(*argv, stdin=stdin)
            else:
                result = gateway.run(*argv, key_env=key, stdin=stdin)
        where = f"step {number} {argv}: {result}"
        assert result.code == step["exit_code"], where
        output = step["output"]
        data: Any = None
        if output == "json":
            data = result.json()
        elif output == "json_lines":
            data = result.lines()
        elif output == "text":
            data = result.stdout
        else:
            raise AssertionError(f"unknown output kind {output!r}")
        problems = mismatches(step["expect"], data, known)
        assert not problems, f"{where}\n" + "\n".join(problems)
        for name, source in step.get("capture", {}).items():
            known[name] = capture(source, data, result.stdout)


def test_the_matcher_can_fail() -> None:
    names = {"session": "s-1", "item": 3}
    shape = {
        "$exact": True,
        "sessionId": "${session}",
        "itemHandle": "${item}",
        "workerSequence": "$uint64",
        "at": "$timestamp",
        "error": {"$contains": "advise"},
        "events": {"$min": 1, "$each": {"family": "$nonempty"}},
    }
    good = {
        "sessionId": "s-1",
        "itemHandle": 3,
        "workerSequence": "18446744073709551615",
        "at": "2026-12-07T15:33:30.191524660Z",
        "error": "must advise first",
        "events": [{"family": "X"}],
    }
    assert mismatches(shape, good, names) == []
    for key, bad in [
        ("sessionId", "s-2"),
        ("itemHandle", "3"),
        ("itemHandle", True),
        ("workerSequence", "18446744073709551616"),
        ("at", "2026-12-07 15:33:30"),
        ("error", "nothing"),
        ("events", []),
        ("events", [{"family": ""}]),
    ]:
        assert mismatches(shape, {**good, key: bad}, names), (key, bad)
    assert mismatches(shape, {**good, "extra": 1}, names)
    assert mismatches(shape, {k: v for k, v in good.items() if k != "at"}, names)
    assert mismatches([1, 2], [1, 2, 3], names)
    assert mismatches(1, 1.0, names) and mismatches(True, 1, names)
    assert mismatches({"$match": "[0-9]+\n"}, "12x\n", names)
