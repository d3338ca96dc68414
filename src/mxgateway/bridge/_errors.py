"""Exceptions of the bridge (they join mxgateway's tree, so the CLI's exit codes apply)::

    MxGatewayError
    ├── BridgeError                  the bridge cannot go on (a misconfigured stream, a stream
    │   │                            fed by another bridge, refused NATS credentials)
    │   └── BridgeFencedError        another bridge of the same name took over (lease or stream)
    └── MxGatewayTransportError
        └── NatsUnavailableError     no NATS server could be reached

None of their messages ever holds a NATS password, token or credential.
"""

from __future__ import annotations

from mxgateway._errors import MxGatewayError, MxGatewayTransportError

__all__ = ["BridgeError", "BridgeFencedError", "NatsUnavailableError"]


class BridgeError(MxGatewayError):
    """The bridge cannot go on as configured (exit 1 in the CLI)."""


class BridgeFencedError(BridgeError):
    """Another bridge of the same name holds the lease, or wrote to the stream after this one:
    this one must stop forwarding (a standby goes back to waiting)."""


class NatsUnavailableError(MxGatewayTransportError):
    """No NATS server could be reached (exit 3 in the CLI)."""
