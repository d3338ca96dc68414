"""SimulatedGateway: the grpc.aio server with both services, health and reflection."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import inspect
import logging
import time
from types import TracebackType
from typing import Any, Self, cast

import grpc
from grpc import aio
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from mxgateway.generated import galaxy_repository_pb2
from mxgateway.sim._alarms import AlarmManager
from mxgateway.sim._auth import Authenticator
from mxgateway.sim._config import SimConfig
from mxgateway.sim._events import flood_available
from mxgateway.sim._feed import StreamStats
from mxgateway.sim._frontdoor import FrontDoor
from mxgateway.sim._galaxy import Galaxy, GalaxyRepositoryServicer
from mxgateway.sim._gateway_service import SERVICE_NAME, AlarmHandlers, GatewayService
from mxgateway.sim._plant import AlarmObserver, GalaxyLike, Plant, TagState
from mxgateway.sim._reflection import enable_reflection
from mxgateway.sim._registry import SessionRegistry

__all__ = ["SimulatedGateway"]

log = logging.getLogger("mxgateway.sim")

GALAXY_SERVICE = galaxy_repository_pb2.DESCRIPTOR.services_by_name["GalaxyRepository"].full_name


def _endpoint(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


class SimulatedGateway:
    """A simulated MXAccess Gateway on a real port, for tests, demos and benchmarks.

    ``async with SimulatedGateway(SimConfig(...)) as gw:`` starts it (port 0 binds a free port
    on the server itself) and ``gw.endpoint`` is ``"127.0.0.1:PORT"``. Keyword arguments
    override fields of ``config`` (``SimulatedGateway(rate=0, flood=True)``). The test-control
    methods (``set_value``, ``redeploy``, ``session_ids``, ``drop_streams``, ``restart`` ...)
    drive it from the test side, on the same event loop.
    """

    def __init__(
        self,
        config: SimConfig | None = None,
        *,
        galaxy: GalaxyLike | None = None,
        alarms: Any | None = None,
        **overrides: Any,
    ) -> None:
        base = config if config is not None else SimConfig()
        self.config = dataclasses.replace(base, **overrides) if overrides else base
        if self.config.flood and not flood_available():
            raise RuntimeError("flood mode needs the codec's encode_flood_batch (not built)")
        self._galaxy_arg = galaxy
        self._alarms_arg = alarms
        self.galaxy: Any = None
        self.alarms: Any = None
        self._plant: Plant | None = None
        self._registry: SessionRegistry | None = None
        self._service: GatewayService | None = None
        self._server: aio.Server | None = None
        self._health: health.aio.HealthServicer | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._port = 0
        self._started = False
        self._stats = StreamStats()
        self._door: FrontDoor | None = None
        self._started_cpu: float | None = None

    # ----- life cycle -----

    def _build_model(self) -> None:
        if self.galaxy is not None:
            return
        config = self.config
        if self._galaxy_arg is not None:
            self.galaxy = self._galaxy_arg
        else:
            self.galaxy = Galaxy(config.galaxy_size, config.seed)
        if self._alarms_arg is not None:
            self.alarms = self._alarms_arg
        elif isinstance(self.galaxy, Galaxy):
            self.alarms = AlarmManager(self.galaxy, queue_capacity=config.queue_capacity)
        self._plant = Plant(
            cast(GalaxyLike, self.galaxy),
            cast(AlarmObserver | None, self.alarms),
            seed=config.seed,
            rate=config.rate,
            generate=not config.flood,
        )
        self._plant.start_alarm_refs()

    def _galaxy_servicer(self, auth: Authenticator) -> GalaxyRepositoryServicer | None:
        if not isinstance(self.galaxy, Galaxy):
            return None  # a stand-in Galaxy given by a test: no GalaxyRepository service
        return GalaxyRepositoryServicer(self.galaxy, auth.check)

    async def start(self) -> None:
        """Bind, start serving, and start the value ticker and the session reaper."""
        if self._started:
            raise RuntimeError("the simulated gateway is already running")
        config = self.config
        restarting = self.galaxy is not None
        self._build_model()
        assert self._plant is not None
        if restarting:
            self._restarted()
        auth = Authenticator(config.api_keys)
        registry = SessionRegistry(config, self._plant)
        service = GatewayService(
            config, registry, auth, cast(AlarmHandlers | None, self.alarms), stats=self._stats
        )
        server = aio.server(options=config.grpc_server_options())
        server.add_generic_rpc_handlers((service.generic_handler(),))
        services = [SERVICE_NAME, health.SERVICE_NAME]
        galaxy_servicer = self._galaxy_servicer(auth)
        if galaxy_servicer is not None:
            galaxy_servicer.add_to_server(server)
            services.append(GALAXY_SERVICE)
        health_servicer = health.aio.HealthServicer()
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
        enable_reflection(services, server)
        public = _endpoint(config.host, self._port or config.port)
        if config.flood:
            # The public port is the h2 front door; this server is reached through it.
            port = self._listen(server, "127.0.0.1:0", tls=False)
        else:
            port = self._listen(server, public, tls=config.tls)
        await server.start()
        serving = health_pb2.HealthCheckResponse.SERVING
        for name in ("", SERVICE_NAME, GALAXY_SERVICE):
            await health_servicer.set(name, serving)
        if config.flood:
            door = FrontDoor(config, service, _endpoint("127.0.0.1", port))
            try:
                port = await door.start(config.host, self._port or config.port)
            except OSError as exc:
                await server.stop(None)
                raise OSError(f"could not listen on {public}: {exc}") from None
            self._door = door
        self._port = port
        self._server, self._health = server, health_servicer
        self._registry, self._service = registry, service
        self._plant.on_tick = [registry.flush_buffered]
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._plant.run(), name="mxgateway-sim-ticker"),
            loop.create_task(registry.run_reaper(), name="mxgateway-sim-reaper"),
        ]
        self._started = True
        if self._started_cpu is None:
            self._started_cpu = time.process_time()
        log.info(
            "simulated gateway listening on %s (%s, auth %s%s)",
            self.endpoint,
            "tls" if config.tls else "plaintext",
            "on" if config.auth_enabled else "off",
            ", flood front door" if config.flood else "",
        )

    def _listen(self, server: aio.Server, address: str, *, tls: bool) -> int:
        config = self.config
        try:
            if tls:
                assert config.tls_key_pem is not None and config.tls_cert_pem is not None
                credentials = grpc.ssl_server_credentials(
                    [(config.tls_key_pem, config.tls_cert_pem)]
                )
                port = server.add_secure_port(address, credentials)
            else:
                port = server.add_insecure_port(address)
        except RuntimeError as exc:
            raise OSError(f"could not listen on {address}: {exc}") from None
        if port == 0:
            raise OSError(f"could not listen on {address}")
        return port

    def _restarted(self) -> None:
        # The plant and the Galaxy outlive a gateway restart; what belongs to the gateway
        # process starts afresh: the alarm feed serves again, deploy sequences count from 1.
        reopen = getattr(self.alarms, "reopen", None)
        if callable(reopen):
            reopen()
        restart_sequence = getattr(self.galaxy, "restart_deploy_sequence", None)
        if callable(restart_sequence):
            restart_sequence()

    async def stop(self, grace: float | None = None) -> None:
        """Stop serving (streams end), close every session, stop the background tasks."""
        if not self._started:
            return
        self._started = False
        assert self._server is not None and self._registry is not None
        if self._health is not None:
            await self._health.enter_graceful_shutdown()
        self._registry.close_all("gateway stopped")
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks = []
        if self._door is not None:
            await self._door.stop(grace)
            self._door = None
        await self._server.stop(grace)
        if self._service is not None:
            await self._service.drain_tasks()
        closer = getattr(self.alarms, "close", None)
        if callable(closer):
            result = closer()
            if inspect.isawaitable(result):
                await result
        self._server = None
        log.info("simulated gateway stopped")

    async def restart(self) -> None:
        """Stop, then serve again on the same port (sessions are gone, as after a restart)."""
        await self.stop()
        await self.start()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # ----- where it listens -----

    @property
    def port(self) -> int:
        """The bound port (0 before start)."""
        return self._port

    @property
    def endpoint(self) -> str:
        """``HOST:PORT`` to connect to."""
        if not self._port:
            raise RuntimeError("the simulated gateway is not started")
        return _endpoint(self.config.host, self._port)

    # ----- statistics -----

    def stats(self) -> dict[str, Any]:
        """What the event streams sent since the gateway was made, and the process's CPU time.

        ``{"rpcs": {path: {"messages": m, "events": e}}, "cpu_seconds": s,
        "started_cpu_seconds": s0}``: messages and events handed to the transport per event
        rpc path (StreamEvents, StreamEventBatches; kept across ``restart``), and
        ``time.process_time()`` of this process now and when the gateway first started
        serving, so that a benchmark can report the server's CPU per message.
        """
        return {
            "cpu_seconds": time.process_time(),
            "rpcs": self._stats.snapshot(),
            "started_cpu_seconds": self._started_cpu,
        }

    @property
    def grpc_endpoint(self) -> str:
        """``HOST:PORT`` of the grpc.aio server: ``endpoint`` itself, but in flood mode the
        internal server behind the front door (for benchmarks comparing the two)."""
        if self._server is None or not self._port:
            raise RuntimeError("the simulated gateway is not started")
        if self._door is None:
            return self.endpoint
        return self._door.internal

    # ----- test controls -----

    @property
    def plant(self) -> Plant:
        """The simulated values (advanced use)."""
        if self._plant is None:
            raise RuntimeError("the simulated gateway is not started")
        return self._plant

    @property
    def registry(self) -> SessionRegistry:
        """The session table (advanced use)."""
        if self._registry is None:
            raise RuntimeError("the simulated gateway is not started")
        return self._registry

    def set_value(self, reference: str, value: object) -> None:
        """Set an attribute (``Tag.Attr`` or ``Tag.Arr[n]``) as a write would; advised items
        in every session get ON_DATA_CHANGE. The value must suit the attribute's type."""
        self.plant.set_value(reference, value)

    def set_quality(self, reference: str, quality: int) -> None:
        """Change an attribute's quality (192 good, 0 bad)."""
        self.plant.set_quality(reference, quality)

    def attribute(self, reference: str) -> TagState | None:
        """The simulated state of an attribute (value, quality, timestamp), or None."""
        return self.plant.lookup(reference)

    def step_values(self, steps: int = 1) -> None:
        """Advance every advised attribute's generator ``steps`` times, now."""
        for _ in range(steps):
            self.plant.step_all()

    def redeploy(self) -> None:
        """Redeploy the Galaxy (DeployEvents follow)."""
        self.plant.redeploy()

    def sample_references(self, n: int) -> list[str]:
        """``n`` attribute references of the Galaxy, deterministic for the seed."""
        self._build_model()
        return list(self.galaxy.sample_references(n))

    def session_ids(self) -> list[str]:
        """Ids of the open (READY or FAULTED) sessions."""
        return list(self.registry.sessions)

    def session_state(self, session_id: str) -> int:
        """The SessionState of a session (CLOSED when it is gone)."""
        session = self.registry.get(session_id)
        return session.state if session is not None else 4

    def drop_streams(self) -> int:
        """Cut every event stream (UNAVAILABLE), as a network cut would; return how many."""
        count = 0
        for session in self.registry.sessions.values():
            sub = session.subscriber
            if sub is not None:
                session.detach(sub)
                sub.fail(grpc.StatusCode.UNAVAILABLE, "connection cut (simulated)")
                count += 1
        return count

    def emit_burst(self, session_id: str, count: int) -> None:
        """Emit ``count`` events into a session at once (fills the queue: overflow tests)."""
        session = self.registry.get(session_id)
        if session is None:
            raise KeyError(f"no open session {session_id!r}")
        session.emit_burst(count)

    def close_session(self, session_id: str) -> None:
        """Close a session from the gateway side (its stream ends)."""
        session = self.registry.get(session_id)
        if session is not None:
            self.registry.close(session, "closed by the gateway")
