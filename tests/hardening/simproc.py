"""A SimulatedGateway in its own process, so that what the test process measures (memory,
tasks) is the client's alone, and the simulator gets a core of its own.

``python -m tests.hardening.simproc '{"rate": 100.0, ...}'`` (SimConfig fields as JSON; api_keys
map a key to a list of scopes or null) prints one line ``{"listening": "HOST:PORT"}``, then
serves. Each further stdin line is a JSON call of a SimulatedGateway test control
(``{"call": "emit_burst", "args": [...]}``, or ``"session_ids"``, ``"session_state"``,
``"drop_streams"``, ``"stop"``, ``"restart"``), answered by one JSON line ``{"result": ...}`` or
``{"error": "..."}``. ``hold_commands`` makes the workers of the given sessions (default: every
open session) busy, taking each session's command lock, until ``release_commands``;
``pending_commands`` maps each session to its count of commands in flight; ``subscribed``
says whether a session has an event stream attached (an overflow detaches it); ``redeploy``
deploys the Galaxy (DeployEvents follow). End of stdin (or
SIGTERM) stops it.

In the test process, ``async with SimProcess(rate=100.0) as sim:`` starts one; ``sim.endpoint``
and ``await sim.call("emit_burst", session_id, 500)`` drive it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import sys
from types import TracebackType
from typing import Any, Self

__all__ = ["SimProcess"]

_CALLS = frozenset(
    {
        "emit_burst",
        "session_ids",
        "session_state",
        "drop_streams",
        "stop",
        "restart",
        "sample_references",
        "hold_commands",
        "release_commands",
        "pending_commands",
        "subscribed",
        "redeploy",
    }
)


class SimProcess:
    """A simulator subprocess (see the module docstring)."""

    def __init__(self, *, compiled_codec: bool = True, **config: Any) -> None:
        self._config = config
        # The simulator is the fixture, not the code under test: it keeps the compiled codec
        # (fast flood encoding) even in the MXGATEWAY_NO_EXTENSIONS run of the client.
        self._compiled_codec = compiled_codec
        self._process: asyncio.subprocess.Process | None = None
        self._lock = asyncio.Lock()
        self.endpoint = ""

    @property
    def pid(self) -> int:
        """The simulator's process id."""
        assert self._process is not None
        return self._process.pid

    async def __aenter__(self) -> Self:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.hardening.simproc",
            json.dumps(self._config),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            env=self._env(),
        )
        self._process = process
        assert process.stdout is not None
        line = await asyncio.wait_for(process.stdout.readline(), 60)
        if not line:
            await process.wait()
            raise RuntimeError(f"the simulator process exited ({process.returncode})")
        self.endpoint = str(json.loads(line)["listening"])
        return self

    def _env(self) -> dict[str, str]:
        env = {**os.environ, "PYTHONPATH": _root()}
        if self._compiled_codec:
            env.pop("MXGATEWAY_NO_EXTENSIONS", None)
        return env

    async def call(self, name: str, *args: Any) -> Any:
        """Run a test control in the simulator process; its JSON result."""
        process = self._process
        assert process is not None and process.stdin is not None and process.stdout is not None
        async with self._lock:
            process.stdin.write(json.dumps({"call": name, "args": list(args)}).encode() + b"\n")
            await process.stdin.drain()
            line = await asyncio.wait_for(process.stdout.readline(), 60)
        answer = json.loads(line)
        if "error" in answer:
            raise RuntimeError(answer["error"])
        return answer["result"]

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        process = self._process
        if process is None:
            return
        if process.stdin is not None:
            process.stdin.close()  # end of stdin: the simulator stops
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:  # pragma: no cover - a hung simulator
            process.kill()
            await process.wait()


def _root() -> str:
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    existing = os.environ.get("PYTHONPATH", "")
    return root + (os.pathsep + existing if existing else "")


async def _serve(config_json: str) -> None:
    from mxgateway.sim import SimConfig, SimulatedGateway

    logging.basicConfig(level=logging.ERROR)  # the simulator's warnings are expected here
    # grpc.aio's server logs a failed write when a client cancels its stream mid-write (a
    # race inside grpc: the write fails before the cancellation is seen); expected here.
    logging.getLogger("grpc._cython.cygrpc").addFilter(
        lambda record: "ExecuteBatchError" not in record.getMessage()
    )
    fields = json.loads(config_json)
    if "api_keys" in fields:
        fields["api_keys"] = {
            key: None if scopes is None else frozenset(scopes)
            for key, scopes in fields["api_keys"].items()
        }
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    async with SimulatedGateway(SimConfig(**fields)) as gateway:
        print(json.dumps({"listening": gateway.endpoint}), flush=True)
        release = asyncio.Event()
        holders: list[asyncio.Task[None]] = []

        async def hold(lock: asyncio.Lock, held: asyncio.Event) -> None:
            async with lock:
                held.set()
                await release.wait()

        async def hold_commands(session_ids: list[str] | None = None) -> int:
            release.clear()
            sessions = [
                s
                for sid, s in gateway.registry.sessions.items()
                if session_ids is None or sid in session_ids
            ]
            held = [asyncio.Event() for _ in sessions]
            holders.extend(
                loop.create_task(hold(s.command_lock, event))
                for s, event in zip(sessions, held, strict=True)
            )
            await asyncio.gather(*(event.wait() for event in held))
            return len(sessions)

        async def release_commands() -> None:
            release.set()
            await asyncio.gather(*holders)
            holders.clear()

        def subscribed(session_id: str) -> bool:
            session = gateway.registry.get(session_id)
            return session is not None and session.subscriber is not None

        def pending_commands() -> dict[str, int]:
            return {sid: s.pending_commands for sid, s in gateway.registry.sessions.items()}

        async def control() -> None:
            while True:
                line = await reader.readline()
                if not line:
                    stop.set()
                    return
                request = json.loads(line)
                name = request["call"]
                try:
                    if name not in _CALLS:
                        raise ValueError(f"unknown call {name!r}")
                    result: Any = None
                    if name == "stop":
                        await gateway.stop()
                    elif name == "restart":
                        await gateway.restart()
                    elif name == "hold_commands":
                        result = await hold_commands(*request.get("args", ()))
                    elif name == "release_commands":
                        await release_commands()
                    elif name == "pending_commands":
                        result = pending_commands()
                    elif name == "subscribed":
                        result = subscribed(*request.get("args", ()))
                    else:
                        result = getattr(gateway, name)(*request.get("args", ()))
                    answer: dict[str, Any] = {"result": result}
                except Exception as exc:
                    answer = {"error": f"{type(exc).__name__}: {exc}"}
                print(json.dumps(answer), flush=True)

        task = loop.create_task(control())
        await stop.wait()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


if __name__ == "__main__":
    from mxgateway import run

    run(_serve(sys.argv[1]))
