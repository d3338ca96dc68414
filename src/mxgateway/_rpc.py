"""The one boundary where gRPC errors and gateway replies become mxgateway exceptions.

Only ``grpc.aio.AioRpcError`` (an ``Exception``) is translated; ``asyncio.CancelledError`` is a
``BaseException`` and passes through untouched, so cancelling a task cancels its call.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import grpc

from mxgateway._errors import (
    MxAccessError,
    MxGatewayAuthenticationError,
    MxGatewayError,
    MxGatewayEventQueueOverflowError,
    MxGatewayPermissionError,
    MxGatewayProtocolError,
    MxGatewayRequestTooLargeError,
    MxGatewaySessionNotFoundError,
    MxGatewayTimeoutError,
    MxGatewayTransportError,
)
from mxgateway.types import ProtocolStatusCode

__all__ = [
    "call",
    "check_protocol_status",
    "ensure_mxaccess_success",
    "failing_statuses",
    "translate_rpc_error",
]

T = TypeVar("T")

_TRANSPORT = {
    grpc.StatusCode.UNAVAILABLE,
    grpc.StatusCode.CANCELLED,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DATA_LOSS,
    grpc.StatusCode.ABORTED,
}

# The stream that overflows ends with RESOURCE_EXHAUSTED; a session that overflowed (fail_fast)
# while no stream was attached refuses the next one with FAILED_PRECONDITION naming the fault.
_OVERFLOW_CODES = {grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.FAILED_PRECONDITION}

# What a TLS handshake with a plaintext HTTP/2 server fails with: the first bytes back are an
# HTTP/2 frame, not a TLS record.
_PLAINTEXT_PEER = ("WRONG_VERSION_NUMBER", "wrong version number")

# gRPC's message-size errors say which side failed: the gateway sending a reply over its limit,
# or this client receiving one over its own.
_REPLY_TOO_LARGE = (
    "SERVER: Sent message larger than max",
    "CLIENT: Received message larger than max",
)


def translate_rpc_error(
    error: grpc.RpcError,
    what: str,
    *,
    not_found_is_session: bool = False,
    stream: bool = False,
) -> MxGatewayError:
    """The mxgateway exception for a failed gRPC call (``what`` names the call): a grpc.aio
    error, or the error of a sync call (the thread receiver's)."""
    call: Any = error  # an AioRpcError, a sync call, or the thread receiver's CallError
    if not callable(getattr(call, "code", None)):
        return MxGatewayTransportError(f"{what} failed: {error!r}")
    code: grpc.StatusCode = call.code()
    details: str = call.details() or ""
    message = f"{what} failed: {code.name}: {details}" if details else f"{what} failed: {code.name}"
    name = code.name
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return MxGatewayTimeoutError(message, grpc_code=name)
    if code == grpc.StatusCode.UNAUTHENTICATED:
        return MxGatewayAuthenticationError(message, grpc_code=name)
    if code == grpc.StatusCode.PERMISSION_DENIED:
        return MxGatewayPermissionError(message, grpc_code=name)
    if code == grpc.StatusCode.NOT_FOUND and not_found_is_session:
        return MxGatewaySessionNotFoundError(message, grpc_code=name)
    if "EventQueueOverflow" in details and code in _OVERFLOW_CODES:
        return MxGatewayEventQueueOverflowError(message, grpc_code=name)
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        if stream and "CLIENT: Received message larger than max" in details:
            return MxGatewayProtocolError(
                f"{message} (an event message over this client's receive limit: raise it with "
                "ClientOptions(max_receive_message_bytes=...), or --max-receive-bytes on the "
                "command line)",
                grpc_code=name,
            )
        if any(marker in details for marker in _REPLY_TOO_LARGE):
            # The request went through and the gateway ran the command; only its reply was
            # over the limit. Not RequestTooLarge ("nothing was sent"): that would be a lie.
            return MxGatewayProtocolError(
                f"{message} (the reply was over the message limit: the gateway may have "
                "executed the command; use smaller bulks)",
                grpc_code=name,
            )
        if "larger than max" in details or "message too large" in details.lower():
            return MxGatewayRequestTooLargeError(message, grpc_code=name)
    if code in _TRANSPORT:
        if any(mark in details for mark in _PLAINTEXT_PEER):
            # A TLS client meeting a plaintext server: its reply is not TLS at all.
            message += (
                " (the gateway did not answer in TLS: if it serves plaintext, connect with "
                "plaintext=True, or --plaintext on the command line)"
            )
        return MxGatewayTransportError(message, grpc_code=name)
    return MxGatewayProtocolError(message, grpc_code=name)


async def call(what: str, invoke: Callable[[], Awaitable[T]]) -> T:
    """Await one unary call, translating gRPC errors at this single boundary."""
    try:
        return await invoke()
    except grpc.aio.AioRpcError as error:
        raise translate_rpc_error(error, what) from error


def check_protocol_status(reply: Any, what: str) -> None:
    """Raise for a gateway protocol failure in ``reply.protocol_status``.

    OK (and an unset status) pass; MXACCESS_FAILURE passes too: it is MXAccess's verdict, which
    ``ensure_mxaccess_success`` judges (the ``*_raw`` calls skip that by contract).
    """
    status = reply.protocol_status
    code = status.code
    if code in (ProtocolStatusCode.UNSPECIFIED, ProtocolStatusCode.OK):
        return
    if code == ProtocolStatusCode.MXACCESS_FAILURE:
        return
    try:
        label = ProtocolStatusCode(code).name
    except ValueError:
        label = str(code)
    message = f"{what} failed: {label}"
    if status.message:
        message += f": {status.message}"
    if code == ProtocolStatusCode.SESSION_NOT_FOUND:
        raise MxGatewaySessionNotFoundError(message, raw_reply=reply)
    if code == ProtocolStatusCode.TIMEOUT:
        raise MxGatewayTimeoutError(message, raw_reply=reply)
    raise MxGatewayProtocolError(message, raw_reply=reply, protocol_status=code)


def failing_statuses(statuses: Any) -> list[Any]:
    """The MxStatusProxy entries that report failure (``success == 0``)."""
    return [status for status in statuses if status.success == 0]


def ensure_mxaccess_success(reply: Any, what: str) -> None:
    """Raise MxAccessError when MXAccess reported a failure in ``reply``.

    A failure is protocol status MXACCESS_FAILURE, a failing (negative) HRESULT, or any status
    with ``success == 0``. Every status of the reply goes into the exception.
    """
    from mxgateway._pbconvert import status_from_pb

    failed = failing_statuses(reply.statuses)
    code = reply.protocol_status.code
    hresult = int(reply.hresult)
    if code != ProtocolStatusCode.MXACCESS_FAILURE and hresult >= 0 and not failed:
        return
    parts = [f"{what} failed in MXAccess"]
    if hresult:
        parts.append(f"hresult=0x{hresult & 0xFFFFFFFF:08X}")
    if reply.protocol_status.message:
        parts.append(reply.protocol_status.message)
    diagnostic = getattr(reply, "diagnostic_message", "")
    if diagnostic:
        parts.append(diagnostic)
    for status in failed:
        if status.diagnostic_text:
            parts.append(status.diagnostic_text)
    raise MxAccessError(
        # The gateway often repeats one text in the status message, the diagnostic and the
        # statuses: say it once.
        ": ".join(dict.fromkeys(parts)),
        hresult=hresult,
        statuses=tuple(status_from_pb(s) for s in reply.statuses),
        raw_reply=reply,
    )
