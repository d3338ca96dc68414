"""The simulator the examples and the cookbook run against: ``mxgw-py sim`` in a subprocess,
started on port 0 (the one line it prints says where it listens) and stopped after the tests."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="package")
def endpoint() -> Iterator[str]:
    """``HOST:PORT`` of ``mxgw-py sim --plaintext --listen 127.0.0.1:0``."""
    command = [sys.executable, "-m", "mxgateway_cli", "sim", "--plaintext"]
    command += ["--listen", "127.0.0.1:0", "--rate", "5", "--log-level", "WARNING"]
    with tempfile.TemporaryFile("w+") as log:  # a file, not a pipe nobody reads while it runs
        sim = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, text=True)
        watchdog = threading.Timer(30, sim.kill)  # a simulator that never says where it listens
        watchdog.start()
        try:
            assert sim.stdout is not None
            line = sim.stdout.readline()
            watchdog.cancel()
            if not line:
                log.seek(0)
                pytest.fail(f"mxgw-py sim did not start:\n{log.read()}")
            yield json.loads(line)["listening"]
        finally:
            watchdog.cancel()
            sim.send_signal(signal.SIGTERM)  # a clean stop, as Ctrl-C would
            try:
                sim.wait(10)
            except subprocess.TimeoutExpired:
                sim.kill()
                sim.wait()
            if sim.stdout is not None:
                sim.stdout.close()
