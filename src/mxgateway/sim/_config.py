"""SimConfig: the simulator's frozen, validated configuration, and API-key file parsing."""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal

__all__ = [
    "ALL_SCOPES",
    "QueuePolicy",
    "SimConfig",
    "is_valid_api_key",
    "parse_api_key_lines",
]

ALL_SCOPES: frozenset[str] = frozenset(
    {
        "session:open",
        "session:close",
        "invoke:read",
        "invoke:write",
        "invoke:secure",
        "events:read",
        "metadata:read",
        "admin",
    }
)

QueuePolicy = Literal["fail_fast", "disconnect_subscriber"]

MAX_FLOOD_RATE = 10_000_000.0  # events per second per session
MAX_PING_INTERVAL_S = 86_400.0
MAX_PING_STRIKES = 1000

# mxgw_<keyId>_<secret>: the key id has no underscore; the secret may.
_API_KEY = re.compile(r"mxgw_[A-Za-z0-9-]+_[A-Za-z0-9_\-]+")


def is_valid_api_key(key: str) -> bool:
    """True when ``key`` has the gateway's shape ``mxgw_<keyId>_<secret>``."""
    return _API_KEY.fullmatch(key) is not None


def parse_api_key_lines(lines: Iterable[str]) -> dict[str, frozenset[str] | None]:
    """Parse API-key file lines ``key[ scope,scope...]`` (``#`` comments, blank lines skipped).

    A key without scopes has every scope (None). Raises ValueError naming the line number,
    never the key.
    """
    keys: dict[str, frozenset[str] | None] = {}
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        key, _, rest = line.partition(" ")
        if not is_valid_api_key(key):
            raise ValueError(f"line {number}: not an API key of the form mxgw_<keyId>_<secret>")
        rest = rest.strip()
        if not rest:
            keys[key] = None
            continue
        scopes = frozenset(s.strip() for s in rest.replace(" ", ",").split(",") if s.strip())
        unknown = sorted(scopes - ALL_SCOPES)
        if unknown:
            raise ValueError(f"line {number}: unknown scope(s) {', '.join(unknown)}")
        keys[key] = scopes
    return keys


@dataclass(frozen=True)
class SimConfig:
    """Configuration of a SimulatedGateway; every field is validated at construction.

    Defaults are the real gateway's (contract.md, "Gateway behaviour a client must survive").
    ``api_keys`` maps each accepted key to its scopes (None = every scope); with no keys, auth
    is off. Secrets (keys, the TLS private key) never appear in the repr.

    ``event_batches=False`` is the genuine gateway: StreamEventBatches is not offered
    (UNIMPLEMENTED) and OpenSession does not announce "stream-event-batches". ``flood_rate``
    (events per second per session, flood mode only; 0 = as fast as the reader reads) paces the
    flood.
    ``min_ping_interval_s`` / ``max_ping_strikes`` set grpc-core's ping policy of the gRPC server
    (None = grpc-core's defaults: 5 min without data, 2 strikes); the flood front door does not
    enforce it.
    """

    host: str = "127.0.0.1"
    port: int = 0
    tls_cert_pem: bytes | None = None
    tls_key_pem: bytes | None = field(default=None, repr=False)
    api_keys: Mapping[str, frozenset[str] | None] = field(default_factory=dict, repr=False)
    galaxy_size: int = 200
    seed: int = 1
    rate: float = 1.0
    flood: bool = False
    max_batch_events: int = 1000
    queue_capacity: int = 10_000
    queue_policy: QueuePolicy = "fail_fast"
    replay_capacity: int = 1024
    replay_seconds: float = 300.0
    max_sessions: int = 64
    max_pending_commands: int = 128
    command_timeout_s: float = 30.0
    command_latency_s: float = 0.0
    lease_seconds: int = 1800
    detach_grace_s: float = 30.0
    max_message_bytes: int = 16 * 1024 * 1024
    event_batches: bool = True
    flood_rate: float = 0.0
    min_ping_interval_s: float | None = None
    max_ping_strikes: int | None = None

    def __post_init__(self) -> None:
        if not self.host:
            raise ValueError("host must not be empty")
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port {self.port} is outside 0..65535")
        if (self.tls_cert_pem is None) != (self.tls_key_pem is None):
            raise ValueError("TLS needs both tls_cert_pem and tls_key_pem (or neither)")
        keys: dict[str, frozenset[str] | None] = {}
        for index, (key, scopes) in enumerate(dict(self.api_keys).items(), start=1):
            if not isinstance(key, str) or not is_valid_api_key(key):
                raise ValueError(f"api key #{index} is not of the form mxgw_<keyId>_<secret>")
            if scopes is not None:
                scopes = frozenset(scopes)
                unknown = sorted(scopes - ALL_SCOPES)
                if unknown:
                    raise ValueError(f"api key #{index}: unknown scope(s) {', '.join(unknown)}")
            keys[key] = scopes
        object.__setattr__(self, "api_keys", MappingProxyType(keys))
        for name in ("galaxy_size", "max_batch_events", "queue_capacity", "replay_capacity"):
            self._positive_int(name)
        for name in ("max_sessions", "max_pending_commands", "lease_seconds"):
            self._positive_int(name)
        if self.max_message_bytes < 64 * 1024:
            raise ValueError("max_message_bytes must be at least 64 KiB")
        for name in ("rate", "command_latency_s", "detach_grace_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0, not {value!r}")
        for name in ("replay_seconds", "command_timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, not {value!r}")
        self._check_flood_and_pings()
        if self.queue_policy not in ("fail_fast", "disconnect_subscriber"):
            raise ValueError(
                f"queue_policy must be 'fail_fast' or 'disconnect_subscriber', "
                f"not {self.queue_policy!r}"
            )

    def _check_flood_and_pings(self) -> None:
        rate = self.flood_rate
        if not (
            isinstance(rate, int | float)
            and not isinstance(rate, bool)
            and math.isfinite(rate)
            and 0 <= rate <= MAX_FLOOD_RATE
        ):
            raise ValueError(
                f"flood_rate must be a number of events/s in 0..{MAX_FLOOD_RATE:.0f}, not {rate!r}"
            )
        if rate > 0 and not self.flood:
            raise ValueError("flood_rate paces flood mode: it needs flood=True")
        interval = self.min_ping_interval_s
        if interval is not None and not (
            isinstance(interval, int | float)
            and not isinstance(interval, bool)
            and math.isfinite(interval)
            and 0 <= interval <= MAX_PING_INTERVAL_S
        ):
            raise ValueError(
                f"min_ping_interval_s must be None or seconds in 0..{MAX_PING_INTERVAL_S:.0f}, "
                f"not {interval!r}"
            )
        strikes = self.max_ping_strikes
        if strikes is not None and (
            isinstance(strikes, bool)
            or not isinstance(strikes, int)
            or not 0 <= strikes <= MAX_PING_STRIKES
        ):
            raise ValueError(
                f"max_ping_strikes must be None or an int in 0..{MAX_PING_STRIKES}, not {strikes!r}"
            )

    def grpc_server_options(self) -> list[tuple[str, int]]:
        """The grpc server options this configuration asks for (message limits, ping policy)."""
        options = [
            ("grpc.max_send_message_length", self.max_message_bytes),
            ("grpc.max_receive_message_length", self.max_message_bytes),
            ("grpc.so_reuseport", 0),
        ]
        if self.min_ping_interval_s is not None:
            options.append(
                (
                    "grpc.http2.min_ping_interval_without_data_ms",
                    round(self.min_ping_interval_s * 1000),
                )
            )
        if self.max_ping_strikes is not None:
            options.append(("grpc.http2.max_ping_strikes", self.max_ping_strikes))
        return options

    def _positive_int(self, name: str) -> None:
        value = getattr(self, name)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, not {value!r}")

    @property
    def auth_enabled(self) -> bool:
        """True when API keys are configured (then every call but health/reflection needs one)."""
        return bool(self.api_keys)

    @property
    def tls(self) -> bool:
        """True when the server listens with TLS."""
        return self.tls_cert_pem is not None

    def __repr__(self) -> str:
        shown = ", ".join(
            f"{name}={getattr(self, name)!r}"
            for name in (
                "host",
                "port",
                "galaxy_size",
                "seed",
                "rate",
                "flood",
                "flood_rate",
                "event_batches",
                "queue_policy",
            )
        )
        return f"SimConfig({shown}, tls={self.tls}, api_keys=<{len(self.api_keys)} masked>)"
