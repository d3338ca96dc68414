"""Exceptions raised by mxgateway.

Every exception the library raises on purpose derives from one root::

    MxGatewayError
    └── MxGatewayDecodeError   malformed or truncated event bytes (the codec)

The client library issue extends this tree (transport, timeout, authentication, permission,
session not found, protocol, event-queue overflow, MxAccessError); the root stays the same.
"""

from __future__ import annotations

__all__ = ["MxGatewayDecodeError", "MxGatewayError"]


class MxGatewayError(Exception):
    """Root of every error mxgateway raises on purpose."""


class MxGatewayDecodeError(MxGatewayError, ValueError):
    """Bytes that are not a valid encoding of the expected message (malformed or truncated).

    Also a ``ValueError``, because it is bad input rather than a failure of the gateway.
    """
