"""API-key authentication and the scope map of contract.md ("Auth and errors").

The key travels as ``authorization: Bearer mxgw_<keyId>_<secret>``. Missing, malformed or unknown
keys end the call with UNAUTHENTICATED; a key without the needed scope with PERMISSION_DENIED.
No key, secret or part of one is ever logged or put in a status message.
"""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any, NoReturn, Protocol, TypeAlias

import grpc

if TYPE_CHECKING:
    from grpc import aio

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim._config import is_valid_api_key

__all__ = ["Authenticator", "CallContext", "scope_for_command", "scope_for_rpc"]


class CallContext(Protocol):
    """What the auth check and the stream attach need of a call: a grpc.aio ServicerContext,
    or the flood front door's own for the streams it serves natively."""

    def invocation_metadata(self) -> Iterable[tuple[str, str | bytes]] | None: ...
    async def abort(self, code: grpc.StatusCode, details: str = ...) -> NoReturn: ...


if TYPE_CHECKING:
    Context: TypeAlias = aio.ServicerContext[Any, Any]
    AuthCheck: TypeAlias = Callable[[Context, str], Awaitable[None]]

_K = pb.MxCommandKind
_WRITE_KINDS = frozenset({_K.MX_COMMAND_KIND_WRITE, _K.MX_COMMAND_KIND_WRITE2})
_WRITE_KINDS |= {_K.MX_COMMAND_KIND_WRITE_BULK, _K.MX_COMMAND_KIND_WRITE2_BULK}
_SECURE_KINDS = frozenset(
    {
        _K.MX_COMMAND_KIND_WRITE_SECURED,
        _K.MX_COMMAND_KIND_WRITE_SECURED2,
        _K.MX_COMMAND_KIND_WRITE_SECURED_BULK,
        _K.MX_COMMAND_KIND_WRITE_SECURED2_BULK,
        _K.MX_COMMAND_KIND_AUTHENTICATE_USER,
    }
)
_KNOWN_KINDS = frozenset(v for v in _K.values() if v != _K.MX_COMMAND_KIND_UNSPECIFIED)

_RPC_SCOPES = {
    "OpenSession": "session:open",
    "CloseSession": "session:close",
    "StreamEvents": "events:read",
    "StreamEventBatches": "events:read",
    "StreamAlarms": "events:read",
    "QueryActiveAlarms": "events:read",
    "AcknowledgeAlarm": "invoke:write",
}


def scope_for_command(kind: int) -> str:
    """The scope Invoke needs for a command kind (unknown kinds need ``admin``)."""
    if kind in _WRITE_KINDS:
        return "invoke:write"
    if kind in _SECURE_KINDS:
        return "invoke:secure"
    if kind == _K.MX_COMMAND_KIND_DRAIN_EVENTS:
        return "events:read"
    if kind in _KNOWN_KINDS:
        return "invoke:read"
    return "admin"


def scope_for_rpc(method: str) -> str:
    """The scope an MxAccessGateway rpc needs (Invoke: see scope_for_command); else ``admin``."""
    return _RPC_SCOPES.get(method, "admin")


class Authenticator:
    """Checks the bearer key of a call against the configured keys and scopes."""

    def __init__(self, api_keys: Mapping[str, frozenset[str] | None]) -> None:
        self._keys = [(key.encode(), scopes) for key, scopes in api_keys.items()]

    @property
    def enabled(self) -> bool:
        """False when no key is configured: every call is then accepted."""
        return bool(self._keys)

    def _scopes_of(self, presented: str) -> tuple[bool, frozenset[str] | None]:
        candidate = presented.encode()
        found = False
        scopes: frozenset[str] | None = None
        # Compare with every key (constant time each) so timing does not tell which matched.
        for key, key_scopes in self._keys:
            if hmac.compare_digest(candidate, key):
                found, scopes = True, key_scopes
        return found, scopes

    async def check(self, context: CallContext, scope: str) -> None:
        """Abort the call (UNAUTHENTICATED / PERMISSION_DENIED) unless its key has ``scope``."""
        if not self._keys:
            return
        header = None
        for key, value in context.invocation_metadata() or ():
            if key == "authorization":
                header = value if isinstance(value, str) else value.decode("latin-1")
                break
        if header is None:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing authorization metadata")
        scheme, _, token = header.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not is_valid_api_key(token):
            await context.abort(
                grpc.StatusCode.UNAUTHENTICATED,
                "malformed authorization: expected 'Bearer mxgw_<keyId>_<secret>'",
            )
        found, scopes = self._scopes_of(token)
        if not found:
            await context.abort(grpc.StatusCode.UNAUTHENTICATED, "unknown API key")
        if scopes is not None and scope not in scopes:
            await context.abort(
                grpc.StatusCode.PERMISSION_DENIED, f"the API key lacks scope {scope}"
            )
