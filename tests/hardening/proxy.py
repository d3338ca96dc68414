"""A TCP proxy for adversity tests (asyncpg's idea): cut every connection on demand.

``async with TcpProxy(upstream_endpoint) as proxy:`` listens on 127.0.0.1 port 0 (bound by
the listening socket itself) and relays bytes both ways to the upstream ``host:port``.
``proxy.cut()`` aborts every current connection on both sides (an RST, as a restarted
firewall or a broken link gives); ``proxy.refuse()`` also aborts each new connection until
``proxy.accept()``; ``proxy.stall()`` stops relaying on the current connections without closing
them (a silent partition: a dead NAT entry, a pulled cable). It counts the bytes relayed
client → upstream (``bytes_up``), so a test can tell that nothing was sent, and it reads the
HTTP/2 frames the client sends far enough to note the time of every PING (``client_pings``,
per connection), so a test can see how often a client pings.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from types import TracebackType
from typing import Self

__all__ = ["TcpProxy"]

_CHUNK = 256 * 1024


_PREFACE = 24  # b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_PING, _ACK = 0x6, 0x1


class _FrameReader:
    """The frames a client sends on one connection, read only for their type and flags."""

    def __init__(self, pings: list[float]) -> None:
        self._buffer = bytearray()
        self._skip = _PREFACE
        self._pings = pings

    def feed(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if self._skip:
            taken = min(self._skip, len(buffer))
            del buffer[:taken]
            self._skip -= taken
        while len(buffer) >= 9:
            length = int.from_bytes(buffer[:3], "big")
            if len(buffer) < 9 + length:
                return
            if buffer[3] == _PING and not buffer[4] & _ACK:
                self._pings.append(time.monotonic())
            del buffer[: 9 + length]


class _Link:
    """One client connection and its upstream connection."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.upstream: asyncio.StreamWriter | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.pings: list[float] = []
        self.frames = _FrameReader(self.pings)

    def abort(self) -> None:
        for writer in (self.client, self.upstream):
            if writer is not None:
                writer.transport.abort()
        self.flowing.set()  # a stalled pipe wakes up and finds its connection gone


class TcpProxy:
    """Relays 127.0.0.1:<port> to ``upstream``; cuts connections when told to."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self._upstream = (host.strip("[]"), int(port))
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._handlers: set[asyncio.Task[None]] = set()
        self._refusing = False
        self.port = 0
        self.connections = 0
        self.cuts = 0
        self.bytes_up = 0
        self.bytes_down = 0
        self.client_pings: list[list[float]] = []
        """When each connection's client sent a PING (not an ACK), one list a connection."""

    @property
    def endpoint(self) -> str:
        """``127.0.0.1:PORT`` for the client."""
        return f"127.0.0.1:{self.port}"

    def is_refusing(self) -> bool:
        """True between ``refuse()`` and ``accept()``."""
        return self._refusing

    @property
    def open_links(self) -> int:
        """Connections relayed now."""
        return len(self._links)

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        # Aborted transports end every pipe, so the handlers finish on their own (cancelling a
        # start_server handler makes asyncio log an error).
        if self._handlers:
            await asyncio.wait(list(self._handlers), timeout=10)

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

    def cut(self, *, stalled_only: bool = False) -> int:
        """Abort every relayed connection (or only the stalled ones) on both sides; return how
        many."""
        links = [link for link in self._links if not (stalled_only and link.flowing.is_set())]
        for link in links:
            link.abort()
            self._links.discard(link)
        if links:
            self.cuts += 1
        return len(links)

    def stall(self) -> int:
        """Stop relaying on every current connection, without closing it (a silent network
        partition: neither side hears anything); new connections relay normally."""
        for link in self._links:
            link.flowing.clear()
        return len(self._links)

    def refuse(self) -> None:
        """Cut every connection, and abort new ones until ``accept()`` (the gateway is gone)."""
        self._refusing = True
        self.cut()

    def accept(self) -> None:
        """Relay new connections again."""
        self._refusing = False

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        link = _Link(writer)
        try:
            if self.is_refusing():
                writer.transport.abort()
                return
            self.connections += 1
            try:
                up_reader, up_writer = await asyncio.open_connection(*self._upstream)
            except OSError:
                writer.transport.abort()
                return
            link.upstream = up_writer
            if self.is_refusing():  # refused while connecting upstream
                link.abort()
                return
            self._links.add(link)
            self.client_pings.append(link.pings)
            up = asyncio.create_task(self._pipe(link, reader, up_writer, up=True))
            down = asyncio.create_task(self._pipe(link, up_reader, writer, up=False))
            link.tasks = [up, down]
            try:
                await asyncio.wait(link.tasks, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for pipe in link.tasks:
                    pipe.cancel()
                for pipe in link.tasks:
                    with contextlib.suppress(asyncio.CancelledError):
                        await pipe
                self._links.discard(link)
                link.abort()
        finally:
            self._handlers.discard(task)

    async def _pipe(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        up: bool,
    ) -> None:
        try:
            while True:
                await link.flowing.wait()
                data = await reader.read(_CHUNK)
                if not link.flowing.is_set():
                    await link.flowing.wait()
                if not data or writer.transport.is_closing():
                    return  # the peer closed, or the link was cut meanwhile
                if up:
                    self.bytes_up += len(data)
                    link.frames.feed(data)
                else:
                    self.bytes_down += len(data)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, RuntimeError):
            return  # (uvloop raises RuntimeError for a transport closed under a write)
