"""The blocking clients: each method is the async client's own, run on the client's loop thread.

``_blocking(AsyncClass.method)`` makes the blocking twin of a coroutine method and
``_streaming(AsyncClass.method)`` the twin of a method that returns an async iterator (a
``Stream``); both keep the async method's parameters, docstring and static type (ParamSpec), so
the two APIs cannot drift. What is written out by hand is what differs: connecting (a loop
thread is started first), closing (it is stopped last), sessions (wrapped), properties.
"""

from __future__ import annotations

import functools
import inspect
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from types import MappingProxyType, TracebackType
from typing import Any, Concatenate, Generic, ParamSpec, Self, TypeVar

from mxgateway._base import ClientBase, build_options
from mxgateway._client import GatewayClient as AsyncGatewayClient
from mxgateway._errors import MxGatewayClientClosedError
from mxgateway._galaxy import GalaxyRepositoryClient as AsyncGalaxyRepositoryClient
from mxgateway._galaxy import Parent
from mxgateway._options import ClientOptions, EventReceiver
from mxgateway._session import Session as AsyncSession
from mxgateway._stats import StreamStats
from mxgateway.generated import galaxy_repository_pb2 as gpb
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sync._stream import Stream
from mxgateway.sync._thread import LoopThread
from mxgateway.types import MxEvent, SessionItem, SessionRecovered

__all__ = ["GalaxyRepositoryClient", "GatewayClient", "Session"]

P = ParamSpec("P")
T = TypeVar("T")
A = TypeVar("A", bound=ClientBase)

# Items a stream reads ahead of its caller (lists of events count as one item each, so their
# streams read fewer ahead).
_READ_AHEAD = 256
_READ_AHEAD_LISTS = 8


class _Bridge:
    """What a blocking object holds: the async object and the loop thread it lives on."""

    _async: Any
    _portal: LoopThread

    def _check(self) -> None:
        """Raise when the object may no longer be used (the loop thread checks the rest)."""

    def _client(self) -> object:
        """The blocking client whose loop this object uses (kept alive by its streams)."""
        raise NotImplementedError

    def _stream(self, make: Callable[[], AsyncIterator[T]], read_ahead: int) -> Stream[T]:
        self._check()
        return Stream(self._portal, make, owner=self._client(), read_ahead=read_ahead)


def _blocking(
    method: Callable[Concatenate[Any, P], Awaitable[T]],
) -> Callable[Concatenate[Any, P], T]:
    """The blocking twin of the coroutine method ``method``."""

    @functools.wraps(method)
    def call(self: _Bridge, /, *args: P.args, **kwargs: P.kwargs) -> T:
        self._check()
        target = self._async
        return self._portal.run(lambda: method(target, *args, **kwargs))

    return call


def _streaming(
    method: Callable[Concatenate[Any, P], AsyncIterator[T]], *, read_ahead: int = _READ_AHEAD
) -> Callable[Concatenate[Any, P], Stream[T]]:
    """The twin of ``method`` (which returns an async iterator) that returns a ``Stream``."""

    @functools.wraps(method)
    def call(self: _Bridge, /, *args: P.args, **kwargs: P.kwargs) -> Stream[T]:
        target = self._async
        return self._stream(lambda: method(target, *args, **kwargs), read_ahead)

    call.__signature__ = inspect.signature(method).replace(  # type: ignore[attr-defined]
        return_annotation=Stream
    )
    return call


class _Client(_Bridge, Generic[A]):
    """What both blocking clients share: the loop thread, connect, close, ``with``."""

    _async_type: type[A]

    def __init__(self, options: ClientOptions) -> None:
        name = type(self).__name__
        portal = LoopThread(name, name=f"mxgateway-sync {name} {options.endpoint}")
        try:
            client: A = portal.run(lambda: self._async_type.connect(options=options))
        except BaseException:
            portal.close()
            raise
        self._portal = portal
        self._async = client
        # Closes the client when it is collected or at exit, if the caller did not.
        self._finalizer = weakref.finalize(self, _shutdown, portal, client)

    @classmethod
    def connect(
        cls,
        endpoint: str | None = None,
        *,
        api_key: str | None = None,
        plaintext: bool = False,
        ca_file: str | None = None,
        server_name_override: str | None = None,
        timeout: float | None = 30.0,
        event_receiver: EventReceiver | None = None,
        options: ClientOptions | None = None,
    ) -> Self:
        """Open a blocking client for ``endpoint`` (``host:port``): starts its event-loop
        thread; the channel connects lazily. Arguments as the async ``connect``.

        Use as ``with GatewayClient.connect(endpoint=..., api_key=...) as client:``.
        """
        return cls(
            build_options(
                endpoint,
                options=options,
                api_key=api_key,
                plaintext=plaintext,
                ca_file=ca_file,
                server_name_override=server_name_override,
                timeout=timeout,
                event_receiver=event_receiver,
            )
        )

    def _client(self) -> object:
        return self

    @property
    def options(self) -> ClientOptions:
        """The options this client was opened with (repr masks the API key)."""
        options: ClientOptions = self._async.options
        return options

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._portal.closed

    @property
    def loop_name(self) -> str:
        """The event loop the client runs on: ``"uvloop"`` or ``"asyncio"``."""
        return self._portal.loop_name

    wait_ready = _blocking(ClientBase.wait_ready)

    def close(self) -> None:
        """Close the async client (its streams and tag session end), then stop the event-loop
        thread. Idempotent; afterwards every call raises MxGatewayClientClosedError."""
        if self._portal.in_loop_thread():
            self._portal.check_caller()  # raises: it would wait for itself
        self._finalizer()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<sync {self._async!r}>"


def _shutdown(portal: LoopThread, client: ClientBase) -> None:
    portal.close(client.close)


class GatewayClient(_Client[AsyncGatewayClient]):
    """A blocking client of the MXAccess Gateway: ``mxgateway.GatewayClient``'s methods, with
    the same arguments, results and errors, for scripts, threads and notebooks.

    ``with GatewayClient.connect(endpoint=..., api_key=...) as client:``. The async client
    runs on an event loop of its own, on a thread started by ``connect`` and stopped by
    ``close``; methods may be called from any thread (not from that loop's own thread), also
    while another event loop runs in the calling thread (Jupyter). Streams are ``Stream``
    iterators.
    """

    _async_type = AsyncGatewayClient

    @property
    def event_receiver(self) -> str:
        """The receiver StreamEvents is read with: ``"thread"`` or ``"aio"``."""
        receiver: str = self._async.event_receiver
        return receiver

    # -- tags by name --------------------------------------------------------------------------

    read = _blocking(AsyncGatewayClient.read)
    write = _blocking(AsyncGatewayClient.write)
    subscribe = _streaming(AsyncGatewayClient.subscribe)

    # -- sessions ------------------------------------------------------------------------------

    open_session_raw = _blocking(AsyncGatewayClient.open_session_raw)

    def open_session(
        self,
        client_session_name: str = "",
        *,
        lease_seconds: int = 0,
        recover: bool = False,
        timeout: float | None = None,
    ) -> Session:
        """Open a gateway session and return its blocking ``Session`` (see the async
        ``GatewayClient.open_session``, also for ``recover=True``)."""
        client = self._async
        session: AsyncSession = self._portal.run(
            lambda: client.open_session(
                client_session_name, lease_seconds=lease_seconds, recover=recover, timeout=timeout
            )
        )
        return Session(self, session)

    close_session = _blocking(AsyncGatewayClient.close_session)
    invoke_raw = _blocking(AsyncGatewayClient.invoke_raw)
    stream_events_raw = _streaming(AsyncGatewayClient.stream_events_raw)

    # -- central alarm feed --------------------------------------------------------------------

    stream_alarms = _streaming(AsyncGatewayClient.stream_alarms)
    query_active_alarms = _blocking(AsyncGatewayClient.query_active_alarms)
    acknowledge_alarm = _blocking(AsyncGatewayClient.acknowledge_alarm)


class GalaxyRepositoryClient(_Client[AsyncGalaxyRepositoryClient]):
    """A blocking client of the read-only GalaxyRepository service:
    ``mxgateway.GalaxyRepositoryClient``'s methods on a loop thread of its own (as
    ``GatewayClient``). ``iter_hierarchy``, ``iter_children``, ``walk`` and
    ``watch_deploy_events`` are ``Stream`` iterators."""

    _async_type = AsyncGalaxyRepositoryClient

    test_connection = _blocking(AsyncGalaxyRepositoryClient.test_connection)
    get_last_deploy_time = _blocking(AsyncGalaxyRepositoryClient.get_last_deploy_time)
    iter_hierarchy = _streaming(AsyncGalaxyRepositoryClient.iter_hierarchy)
    iter_children = _streaming(AsyncGalaxyRepositoryClient.iter_children)
    walk = _streaming(AsyncGalaxyRepositoryClient.walk)
    watch_deploy_events = _streaming(AsyncGalaxyRepositoryClient.watch_deploy_events)

    # Written out: ``**kwargs`` next to a named ``self`` does not fit the ParamSpec of
    # ``_blocking`` (a caller could pass ``self=`` by keyword).

    def discover_hierarchy(self, **kwargs: Any) -> list[gpb.GalaxyObject]:
        """Every deployed object (with attributes) in one list; see ``iter_hierarchy`` for the
        filters, and prefer it for a large Galaxy."""
        client = self._async
        return self._portal.run(lambda: client.discover_hierarchy(**kwargs))

    def browse_children(self, parent: Parent = None, **kwargs: Any) -> list[gpb.GalaxyObject]:
        """The children of ``parent`` (None: the roots) in one list (every page)."""
        client = self._async
        return self._portal.run(lambda: client.browse_children(parent, **kwargs))


class Session(_Bridge):
    """A blocking gateway session: ``mxgateway.Session``'s commands, bulk family and event
    streams, with the same arguments, results and errors. Returned by
    ``GatewayClient.open_session``; use as ``with client.open_session() as session:``.

    A closed session (or one whose client is closed) raises MxGatewayClientClosedError.
    """

    def __init__(self, client: GatewayClient, session: AsyncSession) -> None:
        self._async = session
        self._portal = client._portal
        self._owner = client  # the session needs its client's loop

    def _client(self) -> object:
        return self._owner

    def _check(self) -> None:
        if self._async.closed:
            raise MxGatewayClientClosedError("Session is closed")

    # -- identity and state (read directly: plain values the loop replaces, never mutates) ----

    @property
    def session_id(self) -> str:
        """The gateway's id of this session (the new one after a recovery)."""
        session_id: str = self._async.session_id
        return session_id

    @property
    def backend_name(self) -> str:
        """The backend (worker) the gateway bound this session to."""
        name: str = self._async.backend_name
        return name

    @property
    def capabilities(self) -> tuple[str, ...]:
        """Capabilities the gateway announced for this session."""
        capabilities: tuple[str, ...] = self._async.capabilities
        return capabilities

    @property
    def open_reply(self) -> pb.OpenSessionReply:
        """The generated OpenSessionReply."""
        reply: pb.OpenSessionReply = self._async.open_reply
        return reply

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called (or the client was closed)."""
        return bool(self._async.closed) or self._portal.closed

    @property
    def recovers(self) -> bool:
        """True when the session rebuilds itself after the gateway lost it."""
        return bool(self._async.recovers)

    @property
    def last_recovery(self) -> SessionRecovered | None:
        """What the last recovery did (None before any)."""
        recovered: SessionRecovered | None = self._async.last_recovery
        return recovered

    @property
    def recoveries(self) -> int:
        """How many times the session was recovered."""
        return int(self._async.recoveries)

    @property
    def event_path(self) -> str | None:
        """Which rpc the last event stream used: "batches" or "single"."""
        path: str | None = self._async.event_path
        return path

    @property
    def stream_trouble(self) -> str | None:
        """While a resuming event stream is reconnecting: why (None while it is healthy)."""
        trouble: str | None = self._async.stream_trouble
        return trouble

    @property
    def stats(self) -> StreamStats | None:
        """The statistics of the session's event streams (read live: the counters are plain
        ints the loop thread updates)."""
        stats: StreamStats | None = self._async.stats
        return stats

    @property
    def items(self) -> Mapping[int, SessionItem]:
        """The session's items by item handle: a read-only snapshot taken on the loop (the
        async ``items`` is a live view, which another thread could not iterate safely)."""
        session = self._async
        return self._portal.run_sync(lambda: MappingProxyType(dict(session.items)))

    def leave_open(self) -> None:
        """Keep the session on the gateway when this client closes (see the async
        ``Session.leave_open``)."""
        self._async.leave_open()

    def reference(self, event: MxEvent) -> str | None:
        """The item definition (``Tag.Attribute``) of ``event``'s item, or None when the
        session does not know the item."""
        reference: str | None = self._async.reference(event)
        return reference

    def __repr__(self) -> str:
        return f"<sync {self._async!r}>"

    # -- life cycle ----------------------------------------------------------------------------

    def close(self) -> pb.CloseSessionReply | None:
        """Close the session on the gateway (idempotent; the second call does nothing)."""
        if self._async.closed:
            return None
        session = self._async
        reply: pb.CloseSessionReply | None = self._portal.run(session.close)
        return reply

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and self._portal.closed:
            return  # the caller's exception matters; the client's close ended the session
        session = self._async
        self._portal.run(lambda: session.__aexit__(exc_type, exc, tb))

    # -- every MXAccess command, the bulk family, the event streams ---------------------------

    invoke_raw = _blocking(AsyncSession.invoke_raw)
    invoke = _blocking(AsyncSession.invoke)
    register = _blocking(AsyncSession.register)
    unregister = _blocking(AsyncSession.unregister)
    add_item = _blocking(AsyncSession.add_item)
    add_item2 = _blocking(AsyncSession.add_item2)
    add_buffered_item = _blocking(AsyncSession.add_buffered_item)
    remove_item = _blocking(AsyncSession.remove_item)
    advise = _blocking(AsyncSession.advise)
    advise_supervisory = _blocking(AsyncSession.advise_supervisory)
    un_advise = _blocking(AsyncSession.un_advise)
    unadvise = un_advise
    suspend = _blocking(AsyncSession.suspend)
    activate = _blocking(AsyncSession.activate)
    set_buffered_update_interval = _blocking(AsyncSession.set_buffered_update_interval)
    write = _blocking(AsyncSession.write)
    write2 = _blocking(AsyncSession.write2)
    write_secured = _blocking(AsyncSession.write_secured)
    write_secured2 = _blocking(AsyncSession.write_secured2)
    authenticate_user = _blocking(AsyncSession.authenticate_user)
    archestra_user_to_id = _blocking(AsyncSession.archestra_user_to_id)
    drain_events = _blocking(AsyncSession.drain_events)

    add_item_bulk = _blocking(AsyncSession.add_item_bulk)
    advise_item_bulk = _blocking(AsyncSession.advise_item_bulk)
    remove_item_bulk = _blocking(AsyncSession.remove_item_bulk)
    unadvise_item_bulk = _blocking(AsyncSession.unadvise_item_bulk)
    subscribe_bulk = _blocking(AsyncSession.subscribe_bulk)
    unsubscribe_bulk = _blocking(AsyncSession.unsubscribe_bulk)
    write_bulk = _blocking(AsyncSession.write_bulk)
    write2_bulk = _blocking(AsyncSession.write2_bulk)
    write_secured_bulk = _blocking(AsyncSession.write_secured_bulk)
    write_secured2_bulk = _blocking(AsyncSession.write_secured2_bulk)
    read_bulk = _blocking(AsyncSession.read_bulk)

    stream_events = _streaming(AsyncSession.stream_events)
    stream_event_batches = _streaming(
        AsyncSession.stream_event_batches, read_ahead=_READ_AHEAD_LISTS
    )
    stream_event_columns = _streaming(
        AsyncSession.stream_event_columns, read_ahead=_READ_AHEAD_LISTS
    )
