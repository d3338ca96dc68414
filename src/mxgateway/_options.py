"""Client configuration: a frozen, validated dataclass whose repr never shows the API key."""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import grpc

__all__ = [
    "DEFAULT_KEEPALIVE_S",
    "DEFAULT_MAX_MESSAGE_BYTES",
    "DEFAULT_PORT",
    "ClientOptions",
    "EventReceiver",
    "mask_api_key",
]

# The gateway's own limit both ways; clients raise theirs to match (contract.md).
DEFAULT_MAX_MESSAGE_BYTES = 16 * 1024 * 1024

# grpc-core servers allow a ping without data only every 5 minutes by default and send GOAWAY
# (too_many_pings) after 2 strikes; a quiet stream (no alarm, no deploy for hours) sends no
# data. 6 minutes keeps clear of that with room for timer jitter. A dead peer under a flowing
# stream is noticed sooner: flow-control pings are answered within the ping timeout or the
# connection is dropped (see _channel.py).
DEFAULT_KEEPALIVE_S = 360.0
# Above this, gRPC's timers overflow or a dead peer would go unnoticed for practical purposes.
_MAX_KEEPALIVE_S = 24 * 3600.0

EventReceiver = Literal["thread", "aio"]
"""How StreamEvents (one event per message) is received: ``"thread"``, a sync gRPC channel read
in a dedicated thread that hands the loop lists of messages (several times cheaper per message);
``"aio"``, grpc.aio on the event loop."""

_KEY_SHAPE = re.compile(r"^mxgw_([A-Za-z0-9-]+)_.+$")
# A deadline longer than this makes gRPC fail every call at once (1e10 s does; 1e9 s does not).
MAX_TIMEOUT_S = 1e8
# The gateway's documented port, used when an endpoint names only a host.
DEFAULT_PORT = 5000
# A bare host: a name, an IPv4 address, or a bracketed IPv6 address, without a port or scheme.
_BARE_HOST = re.compile(r"^(?:\[[^\]]*\]|[^:/\[\]]+)$")
# A plain "host:port" or "[v6]:port" target (other gRPC target forms are left to gRPC).
_HOST_PORT = re.compile(r"^(?:\[[^\]]*\]|[^:/\[\]]+):(\d+)$")


def mask_api_key(api_key: str | None) -> str | None:
    """A printable stand-in for an API key: its key id when it has the usual shape, never the
    secret (``mxgw_<keyId>_***``), else ``***``."""
    if api_key is None:
        return None
    match = _KEY_SHAPE.match(api_key)
    if match:
        return f"mxgw_{match.group(1)}_***"
    return "***"


@dataclasses.dataclass(frozen=True, slots=True)
class ClientOptions:
    """How to reach a gateway.

    TLS is the default (system roots, or ``ca_file``); ``plaintext=True`` is needed for an
    unencrypted channel, and there is no implicit localhost downgrade. An ``endpoint`` that
    names only a host (``"gateway01"``, ``"10.0.0.5"``, ``"[::1]"``) gets the gateway's port
    5000. ``timeout`` is the default deadline in seconds of unary calls (None: no deadline).
    ``api_key`` is sent as ``authorization: Bearer <key>`` on every call and stream and is
    masked in every repr.
    ``max_message_bytes`` bounds messages both ways (the gateway's 16 MiB);
    ``max_receive_message_bytes``, when set, bounds received messages instead (events,
    replies). ``interceptors`` are grpc.aio client interceptors (tracing, custom metadata) for every
    call of the client's channel; the thread receiver's own channel for StreamEvents does not
    run them (choose ``event_receiver="aio"`` for them to see that stream too).
    ``keepalive_seconds`` is the HTTP/2 keepalive ping interval while a call is open (None: no
    keepalive pings); the default respects grpc-core's default server policy (no ping without
    data more often than every 5 minutes). ``event_receiver`` picks how StreamEvents is read
    (see ``EventReceiver``); ``"thread"`` falls back to ``"aio"`` where gRPC lacks what it needs.
    """

    endpoint: str
    api_key: str | None = dataclasses.field(default=None, repr=False)
    plaintext: bool = False
    ca_file: str | None = None
    server_name_override: str | None = None
    timeout: float | None = 30.0
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    max_receive_message_bytes: int | None = None
    keepalive_seconds: float | None = DEFAULT_KEEPALIVE_S
    event_receiver: EventReceiver = "thread"
    interceptors: Sequence[grpc.aio.ClientInterceptor] = ()

    def __post_init__(self) -> None:
        endpoint = self.endpoint
        if not isinstance(endpoint, str) or not endpoint.strip():
            raise ValueError("endpoint must be a non-empty 'host:port' string")
        if any(ch.isspace() for ch in endpoint):
            raise ValueError(f"endpoint {endpoint!r} contains white space")
        if _BARE_HOST.match(endpoint):
            # gRPC would dial 443 for a bare host; the gateway listens on 5000.
            endpoint = f"{endpoint}:{DEFAULT_PORT}"
            object.__setattr__(self, "endpoint", endpoint)
        port = _HOST_PORT.match(endpoint)
        if port is not None and not 1 <= int(port.group(1)) <= 65535:
            # gRPC would quietly take the port modulo 65536 and dial another one.
            raise ValueError(f"endpoint {endpoint!r}: port {port.group(1)} is outside 1..65535")
        if self.api_key is not None:
            if not isinstance(self.api_key, str) or not self.api_key:
                raise ValueError("api_key must be a non-empty string (or None)")
            if any(ch.isspace() or ord(ch) < 0x20 for ch in self.api_key):
                # Never echo the key itself in the message.
                raise ValueError("api_key contains white space or control characters")
        if self.plaintext and (self.ca_file or self.server_name_override):
            raise ValueError("ca_file and server_name_override need TLS; drop plaintext=True")
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise ValueError(f"ca_file {self.ca_file!r} does not exist")
        if self.timeout is not None and not (
            isinstance(self.timeout, int | float)
            and not isinstance(self.timeout, bool)
            and 0 < self.timeout <= MAX_TIMEOUT_S
        ):
            raise ValueError(
                f"timeout must be positive seconds up to {MAX_TIMEOUT_S:g}, or None, "
                f"not {self.timeout!r}"
            )
        if not isinstance(self.max_message_bytes, int) or self.max_message_bytes <= 0:
            raise ValueError("max_message_bytes must be a positive int")
        receive = self.max_receive_message_bytes
        if receive is not None and (
            isinstance(receive, bool) or not isinstance(receive, int) or not 0 < receive < 2**31
        ):
            raise ValueError("max_receive_message_bytes must be an int in 1 .. 2**31-1, or None")
        keepalive = self.keepalive_seconds
        if keepalive is not None and not (
            isinstance(keepalive, int | float)
            and not isinstance(keepalive, bool)
            and math.isfinite(keepalive)
            and 0 < keepalive <= _MAX_KEEPALIVE_S
        ):
            raise ValueError(
                f"keepalive_seconds must be positive seconds up to {_MAX_KEEPALIVE_S:g}, or None"
            )
        given: Any = self.interceptors  # a list is taken too (stored as a tuple)
        object.__setattr__(self, "interceptors", tuple(given))
        for interceptor in self.interceptors:
            if not isinstance(interceptor, grpc.aio.ClientInterceptor):
                raise TypeError(
                    "interceptors must be grpc.aio client interceptors "
                    f"(UnaryUnaryClientInterceptor, ...), not {type(interceptor).__name__}"
                )
        if self.event_receiver not in ("thread", "aio"):
            raise ValueError(
                f"event_receiver must be 'thread' or 'aio', not {self.event_receiver!r}"
            )

    @property
    def receive_limit(self) -> int:
        """The largest message this client takes."""
        return self.max_receive_message_bytes or self.max_message_bytes

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
            if f.name != "api_key"
        )
        return f"ClientOptions({fields}, api_key={mask_api_key(self.api_key)!r})"

    __str__ = __repr__

    @property
    def metadata(self) -> tuple[tuple[str, str], ...]:
        """The call metadata: the authorization header when an API key is set."""
        if self.api_key is None:
            return ()
        return (("authorization", f"Bearer {self.api_key}"),)
