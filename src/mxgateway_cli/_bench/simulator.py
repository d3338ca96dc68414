"""The built-in simulator of ``bench-stream-events``: a child process, its CPU time, its stats.

``mxgw-py sim --flood --plaintext --listen 127.0.0.1:0`` runs in a child process (this
interpreter, ``python -m mxgateway_cli sim``); its endpoint is read from its first stdout line
``{"listening": ...}``. It is always stopped (SIGTERM, then SIGKILL after a grace period), Ctrl-C
included, and its last stdout line ``{"stopped": {...}}`` (``SimulatedGateway.stats()``) is read
when it printed one. Two variants of the child: genuine mode (``--no-event-batches``:
StreamEventBatches answers UNIMPLEMENTED, as on the genuine gateway) and a paced flood
(``--flood-rate EVENTS_PER_S``, per session).

While it runs, its CPU time is read from ``/proc/PID/stat`` (Linux; None elsewhere), so that a
benchmark can show what the simulator spent while a consumer was measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

__all__ = [
    "SimulatorError",
    "SimulatorProcess",
    "builtin_simulator",
    "flood_simulator",
    "parse_stopped",
    "process_cpu_seconds",
    "simulator_command",
    "simulator_env",
    "simulator_summary",
    "simulator_tags",
]

_START_TIMEOUT_S = 60.0
_STOP_TIMEOUT_S = 10.0
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


class SimulatorError(Exception):
    """The built-in simulator could not be started (exit code 3)."""


def simulator_command(
    listen: str = "127.0.0.1:0", *, genuine: bool = False, flood_rate: float | None = None
) -> list[str]:
    """The command line of the flood simulator (this interpreter, plaintext, no keys).

    ``genuine`` adds ``--no-event-batches`` (only StreamEvents, as the genuine gateway);
    ``flood_rate`` adds ``--flood-rate`` (events per second per session, produced when due).
    """
    command = [
        sys.executable,
        "-m",
        "mxgateway_cli",
        "sim",
        "--flood",
        "--plaintext",
        "--listen",
        listen,
        "--rate",
        "0",
        "--log-level",
        "WARNING",
    ]
    if genuine:
        command.append("--no-event-batches")
    if flood_rate is not None:
        command += ["--flood-rate", repr(float(flood_rate))]
    return command


def simulator_env() -> dict[str, str]:
    """The simulator's environment: ours without MXGATEWAY_NO_EXTENSIONS (flood needs the
    compiled encoder, whatever codec the client uses)."""
    env = dict(os.environ)
    env.pop("MXGATEWAY_NO_EXTENSIONS", None)
    return env


def simulator_tags(items: int) -> list[str]:
    """``items`` tag references of the simulated Galaxy (unknown ones would flood as well)."""
    return [f"Pump_{i:03d}.Speed" for i in range(1, items + 1)]


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU seconds of process ``pid`` from ``/proc`` (None where unreadable).

    The resolution is a clock tick (10 ms on most systems).
    """
    try:
        text = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
        # Field 2 (the command) is in parentheses and may hold spaces: split after it. Then
        # utime and stime (fields 14 and 15 of proc(5)) are the 12th and 13th.
        fields = text[text.rindex(")") + 2 :].split()
        return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS
    except (OSError, ValueError, IndexError):
        return None


def parse_stopped(output: bytes) -> dict[str, Any] | None:
    """The stats of the last ``{"stopped": {...}}`` line of the simulator's stdout, if any."""
    found: dict[str, Any] | None = None
    for line in output.splitlines():
        try:
            data = json.loads(line)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("stopped"), dict):
            found = data["stopped"]
    return found


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def simulator_summary(stats: dict[str, Any]) -> dict[str, Any]:
    """The report's view of the simulator's stats (camelCase; a field it lacks is left out).

    From ``{"cpu_seconds": s, "started_cpu_seconds": s0, "rpcs": {rpc: {"messages": m,
    "events": e}}}``: the CPU seconds it spent serving (s - s0), the messages and events it sent
    over the whole run (every consumer, warm-ups included) and the CPU per message and event.
    """
    out: dict[str, Any] = {}
    cpu = _number(stats.get("cpu_seconds"))
    started = _number(stats.get("started_cpu_seconds"))
    if cpu is not None:
        if started is not None:
            cpu -= started
        out["cpuSeconds"] = round(cpu, 3)
    rpcs = stats.get("rpcs")
    if isinstance(rpcs, dict):
        per_rpc: dict[str, dict[str, int]] = {}
        for name, counts in rpcs.items():
            if not isinstance(counts, dict):
                continue
            kept = {
                key: int(value)
                for key in ("messages", "events")
                if (value := _number(counts.get(key))) is not None
            }
            if kept:
                per_rpc[str(name)] = kept
        out["rpcs"] = per_rpc
        for key in ("messages", "events"):
            total = sum(counts.get(key, 0) for counts in per_rpc.values())
            out[key] = total
            if cpu is not None and total:
                per = "cpuPerMessageUs" if key == "messages" else "cpuPerEventUs"
                out[per] = round(cpu / total * 1e6, 3)
    return out


@dataclass(slots=True)
class SimulatorProcess:
    """A running child simulator: where it listens, its pid; its stats once it stopped."""

    endpoint: str
    pid: int
    command: list[str]
    stopped_stats: dict[str, Any] | None = field(default=None)

    def cpu_seconds(self) -> float | None:
        """The child's CPU seconds so far (None where ``/proc`` cannot tell)."""
        return process_cpu_seconds(self.pid)


def _stderr_tail(log: IO[bytes]) -> str:
    log.seek(0)
    text = log.read().decode("utf-8", "replace").strip()
    return text[-2000:]


def _stop(process: subprocess.Popen[bytes]) -> bytes:
    """SIGTERM, then SIGKILL after a grace period; reap the child; return the rest of its
    stdout (its ``{"stopped": ...}`` line when it stopped cleanly)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    assert process.stdout is not None
    try:
        return process.stdout.read()  # the child is gone: EOF follows what it wrote
    except (OSError, ValueError):
        return b""


def _spawn(command: list[str], log: IO[bytes]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        command,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=log,
        env=simulator_env(),
    )


def _read_listening(line: bytes, log: IO[bytes]) -> str:
    if not line:
        tail = _stderr_tail(log)
        raise SimulatorError(
            "the flood simulator exited before it was ready" + (f": {tail}" if tail else "")
        )
    try:
        return str(json.loads(line)["listening"])
    except (ValueError, KeyError, TypeError):
        raise SimulatorError(f"unexpected first line from the simulator: {line[:200]!r}") from None


@contextlib.contextmanager
def flood_simulator(
    *, genuine: bool = False, flood_rate: float | None = None
) -> Iterator[SimulatorProcess]:
    """Run the flood simulator in a child process; yield it; always stop it.

    Blocking (for pytest fixtures and scripts); ``builtin_simulator`` is the async twin.
    ``stopped_stats`` is set once the block is left.
    """
    command = simulator_command(genuine=genuine, flood_rate=flood_rate)
    with tempfile.TemporaryFile() as log:
        process = _spawn(command, log)
        assert process.stdout is not None
        sim: SimulatorProcess | None = None
        try:
            endpoint = _read_listening(process.stdout.readline(), log)
            sim = SimulatorProcess(endpoint, process.pid, command)
            yield sim
        finally:
            rest = _stop(process)
            process.stdout.close()
            if sim is not None:
                sim.stopped_stats = parse_stopped(rest)


@contextlib.asynccontextmanager
async def builtin_simulator(
    *, genuine: bool = False, flood_rate: float | None = None
) -> AsyncIterator[SimulatorProcess]:
    """As ``flood_simulator`` without blocking the loop.

    The child is stopped in ``finally`` also when the task is cancelled (Ctrl-C); the thread
    reading its first line then ends, because the pipe closes with the child.
    """
    command = simulator_command(genuine=genuine, flood_rate=flood_rate)
    with tempfile.TemporaryFile() as log:
        process = _spawn(command, log)
        assert process.stdout is not None
        stdout = process.stdout
        reader = asyncio.ensure_future(asyncio.to_thread(stdout.readline))
        sim: SimulatorProcess | None = None
        try:
            try:
                line = await asyncio.wait_for(asyncio.shield(reader), _START_TIMEOUT_S)
            except TimeoutError:
                raise SimulatorError(
                    f"the flood simulator was not ready within {_START_TIMEOUT_S:.0f} s"
                ) from None
            sim = SimulatorProcess(_read_listening(line, log), process.pid, command)
            yield sim
        finally:
            rest = await asyncio.shield(asyncio.to_thread(_stop, process))
            with contextlib.suppress(Exception):
                await reader
            stdout.close()
            if sim is not None:
                sim.stopped_stats = parse_stopped(rest)
