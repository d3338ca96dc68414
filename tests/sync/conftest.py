"""Fixtures for the blocking API: a simulator on a loop thread of its own (a blocking test
blocks its own thread, so the simulator cannot share it), and blocking clients of it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from mxgateway import MxDataType
from mxgateway.sim import SimConfig, SimulatedGateway
from mxgateway.sync import GalaxyRepositoryClient, GatewayClient, _thread
from tests.conftest import TEST_LOOP

T = TypeVar("T")


@pytest.fixture(autouse=True)
def _sync_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocking clients run on the loop this test run was asked for (uvloop, then asyncio)."""
    monkeypatch.setattr(_thread, "loop_override", TEST_LOOP)


class SimHost:
    """A SimulatedGateway served from a LoopThread; its controls run on that loop."""

    def __init__(self, config: SimConfig) -> None:
        self.gateway = SimulatedGateway(config)
        self._thread = _thread.LoopThread("SimulatedGateway", name="mxgateway-test-sim")
        try:
            self._thread.run(self.gateway.start)
        except BaseException:
            self._thread.close()
            raise

    @property
    def endpoint(self) -> str:
        return self.gateway.endpoint

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn()`` on the simulator's loop (its controls are not thread-safe)."""
        return self._thread.run_sync(fn)

    def restart(self) -> None:
        self._thread.run(self.gateway.restart)

    def session_ids(self) -> list[str]:
        return self.call(self.gateway.session_ids)

    def subscribers(self) -> int:
        """How many event streams are attached to the simulator's sessions."""
        return self.call(
            lambda: sum(
                1 for s in self.gateway.registry.sessions.values() if s.subscriber is not None
            )
        )

    def writable(self, data_type: MxDataType) -> str:
        """A freely writable scalar attribute of ``data_type``."""

        def find() -> str:
            for reference in self.gateway.sample_references(200):
                state = self.gateway.attribute(reference)
                if (
                    state is not None
                    and state.info.data_type == data_type
                    and state.info.security_classification in (0, 1)
                ):
                    return reference
            raise LookupError(f"no writable {data_type.name} attribute")

        return self.call(find)

    def close(self) -> None:
        self._thread.close(self.gateway.stop)


@pytest.fixture
def sim() -> Iterator[SimHost]:
    host = SimHost(SimConfig(rate=20.0, galaxy_size=60, detach_grace_s=5.0))
    try:
        yield host
    finally:
        host.close()


@pytest.fixture
def client(sim: SimHost) -> Iterator[GatewayClient]:
    with GatewayClient.connect(sim.endpoint, plaintext=True) as blocking_client:
        yield blocking_client


@pytest.fixture
def galaxy(sim: SimHost) -> Iterator[GalaxyRepositoryClient]:
    with GalaxyRepositoryClient.connect(sim.endpoint, plaintext=True) as blocking_client:
        yield blocking_client
