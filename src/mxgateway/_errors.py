"""Exceptions raised by mxgateway.

Every exception the library raises on purpose derives from one root::

    MxGatewayError
    ├── MxGatewayTransportError            the gateway could not be reached or the call broke
    │   └── MxGatewayStreamLostError       a resuming event stream gave up reconnecting
    ├── MxGatewayTimeoutError              a deadline passed (the worker may still complete it)
    ├── MxGatewayAuthenticationError       missing, malformed or unknown API key
    ├── MxGatewayPermissionError           the API key lacks the scope for this call
    ├── MxGatewaySessionNotFoundError      the gateway does not know (or no longer has) the session
    ├── MxGatewayProtocolError             the gateway rejected the request (protocol status or
    │                                      gRPC status other than the ones above)
    ├── MxGatewayEventQueueOverflowError   the session's event queue overflowed (slow consumer)
    ├── MxGatewayDecodeError               malformed or truncated event bytes (also ValueError)
    ├── MxGatewayRequestTooLargeError      a request over the message limit (also ValueError)
    ├── MxGatewayClientClosedError         the client (or session) was closed; not reusable
    └── MxAccessError                      MXAccess itself reported a failure (hresult, statuses)

gRPC errors are translated in one place (``mxgateway._rpc``); ``asyncio.CancelledError`` is never
caught or translated, so cancelling a task always cancels the call.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MxAccessError",
    "MxGatewayAuthenticationError",
    "MxGatewayClientClosedError",
    "MxGatewayDecodeError",
    "MxGatewayError",
    "MxGatewayEventQueueOverflowError",
    "MxGatewayPermissionError",
    "MxGatewayProtocolError",
    "MxGatewayRequestTooLargeError",
    "MxGatewaySessionNotFoundError",
    "MxGatewayStreamLostError",
    "MxGatewayTimeoutError",
    "MxGatewayTransportError",
]


class MxGatewayError(Exception):
    """Root of every error mxgateway raises on purpose.

    ``grpc_code`` is the name of the gRPC status code when the error came from one (else None);
    ``raw_reply`` is the generated protobuf reply when the error came from a reply (else None).
    """

    def __init__(
        self,
        message: str,
        *,
        grpc_code: str | None = None,
        raw_reply: Any = None,
    ) -> None:
        super().__init__(message)
        self.grpc_code = grpc_code
        self.raw_reply = raw_reply


class MxGatewayTransportError(MxGatewayError):
    """The gateway could not be reached, or the connection broke during the call."""


class MxGatewayStreamLostError(MxGatewayTransportError):
    """A resuming event stream could not reconnect within its retry budget."""


class MxGatewayTimeoutError(MxGatewayError):
    """A deadline passed. For Invoke, the worker still completes the command."""


class MxGatewayAuthenticationError(MxGatewayError):
    """The gateway rejected the API key (missing, malformed or unknown)."""


class MxGatewayPermissionError(MxGatewayError):
    """The API key is valid but lacks the scope this call needs."""


class MxGatewaySessionNotFoundError(MxGatewayError):
    """The gateway does not know the session (closed, expired, or never opened)."""


class MxGatewayProtocolError(MxGatewayError):
    """The gateway rejected the request at the protocol level.

    ``protocol_status`` holds the ProtocolStatusCode number when the rejection came as a reply.
    """

    def __init__(
        self,
        message: str,
        *,
        grpc_code: str | None = None,
        raw_reply: Any = None,
        protocol_status: int | None = None,
    ) -> None:
        super().__init__(message, grpc_code=grpc_code, raw_reply=raw_reply)
        self.protocol_status = protocol_status


class MxGatewayEventQueueOverflowError(MxGatewayError):
    """The session's event queue overflowed because events were not read fast enough."""


class MxGatewayDecodeError(MxGatewayError, ValueError):
    """Bytes that are not a valid encoding of the expected message (malformed or truncated).

    Also a ``ValueError``, because it is bad input rather than a failure of the gateway.
    """


class MxGatewayRequestTooLargeError(MxGatewayError, ValueError):
    """A request larger than the gateway's message limit; nothing was sent."""


class MxGatewayClientClosedError(MxGatewayError, RuntimeError):
    """The client (or session) was closed; open a new one."""


class MxAccessError(MxGatewayError):
    """MXAccess reported a failure: a reply with MXACCESS_FAILURE, a failing hresult or status.

    ``hresult`` is the COM HRESULT (int32), ``statuses`` the MxStatus structs of the reply (all of
    them, never collapsed), ``raw_reply`` the generated protobuf reply.
    """

    def __init__(
        self,
        message: str,
        *,
        hresult: int = 0,
        statuses: tuple[Any, ...] = (),
        raw_reply: Any = None,
    ) -> None:
        super().__init__(message, raw_reply=raw_reply)
        self.hresult = hresult
        self.statuses = statuses
