"""The flood front door: an asyncio HTTP/2 server (h2) on the public port in flood mode.

Python's grpc servers spend 30-55 us of CPU per streamed message, too much to feed a fast
client one event per message. Here StreamEvents and StreamEventBatches are served natively:
the feed's messages (pre-encoded; a flood MxEventBatch is re-framed as gRPC messages in one
pass) go out as gRPC length-prefixed messages, as many per DATA frame as fit, only while both
HTTP/2 flow-control windows and the transport have room, so a slow reader gets flow control and
the server holds at most one chunk per stream. Attach, replay, overflow, auth and the session
semantics are the GatewayService's own (``open_feed``): nothing about sessions lives here.

OpenSession, CloseSession and Invoke are served here too, by the GatewayService's own handler
methods: a client keeps up to 128 pending commands per session in flight, and relayed through
grpc.aio in this process each would be two calls, where grpc.aio cancels calls past about
2,000 in flight per process. Every other rpc (health, the bidi reflection service,
GalaxyRepository, the alarm rpcs) is relayed to the process's own grpc.aio server on
127.0.0.1:0 as a call of the method's own kind carrying raw bytes: metadata (authorization)
passes through, ``grpc-timeout`` becomes the deadline, and the status and trailing metadata
come back.

Not done here: compression (grpc-encoding other than identity is refused with UNIMPLEMENTED)
and grpc-core's ping policy (PINGs are always acknowledged).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import functools
import logging
import os
import ssl
import tempfile
from collections.abc import Iterable
from typing import Any, NoReturn, cast

import grpc
import h2.config
import h2.connection
import h2.events
import h2.exceptions
import h2.settings
from google.protobuf import descriptor_pool
from grpc import aio

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim._config import SimConfig
from mxgateway.sim._events import frame_event
from mxgateway.sim._feed import BATCHES_PATH, EVENTS_PATH, EventFeed
from mxgateway.sim._gateway_service import SERVICE_NAME, GatewayService, UnaryRpc

__all__ = ["FrontDoor", "flood_to_grpc", "grpc_message_header", "parse_grpc_timeout"]

log = logging.getLogger("mxgateway.sim")

_CHUNK = 64 * 1024  # bytes produced per turn of a native stream (one transport write)
# Concurrent calls per connection: bounded, but above what a grpc-core server lets through
# (it resets streams beyond about 2,600), since clients keep a gateway's 128 pending commands
# per session in flight on one connection for many sessions at once.
_MAX_STREAMS = 16_384
_EVENT_TAG = frame_event(b"")[0]  # the MxEventBatch ``events`` tag (one byte)
_HEADERS = [b"\x00" + n.to_bytes(4, "big") for n in range(1 << 14)]
_TIMEOUT_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}
# Request headers that are HTTP/2 or gRPC transport, not call metadata.
_TRANSPORT_HEADERS = frozenset(
    {"content-type", "te", "user-agent", "host", "connection", "content-length"}
)


def grpc_message_header(length: int) -> bytes:
    """The 5-byte gRPC message prefix (not compressed, big-endian length)."""
    if length < len(_HEADERS):
        return _HEADERS[length]
    return b"\x00" + length.to_bytes(4, "big")


def flood_to_grpc(batch: bytes) -> bytes:
    """A flood MxEventBatch (``events`` entries only) re-framed as gRPC messages, one per event.

    Each entry is the tag byte, a varint length and the MxEvent; the event bytes are copied
    once, behind a 5-byte gRPC prefix. Flood events are shorter than 16 KiB (2-byte varint).
    """
    parts: list[bytes | memoryview] = []
    append = parts.append
    view = memoryview(batch)
    headers = _HEADERS
    tag = _EVENT_TAG
    pos = 0
    end = len(batch)
    while pos < end:
        if batch[pos] != tag:
            raise ValueError(f"unexpected field at offset {pos} of a flood batch")
        n = batch[pos + 1]
        if n & 0x80:
            n = (n & 0x7F) | (batch[pos + 2] << 7)
            if n >= 1 << 14:  # a third varint byte: not a flood event
                raise ValueError(f"flood event too long at offset {pos}")
            pos += 3
        else:
            pos += 2
        append(headers[n])
        append(view[pos : pos + n])
        pos += n
    return b"".join(parts)


def parse_grpc_timeout(text: str) -> float | None:
    """``grpc-timeout`` (up to 8 digits and a unit) in seconds; None when malformed."""
    text = text.strip()
    unit = _TIMEOUT_UNITS.get(text[-1:])
    digits = text[:-1]
    if unit is None or not digits.isdigit() or len(digits) > 8:
        return None
    return int(digits) * unit


def _percent_encode(text: str) -> str:
    # grpc-message: printable ASCII but '%' as is, every other byte of the UTF-8 as %XX.
    return "".join(
        chr(b) if 0x20 <= b <= 0x7E and b != 0x25 else f"%{b:02X}" for b in text.encode()
    )


def _metadata_from_headers(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str | bytes]]:
    metadata: list[tuple[str, str | bytes]] = []
    for key, value in headers:
        if key.startswith((":", "grpc-")) or key in _TRANSPORT_HEADERS:
            continue
        if key.endswith("-bin"):
            try:
                metadata.append((key, base64.b64decode(value + "=" * (-len(value) % 4))))
            except ValueError:
                continue  # not base64: dropped, as grpc-core drops it
        else:
            metadata.append((key, value))
    return metadata


def _headers_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> list[Any]:
    headers: list[tuple[str, str]] = []
    for key, value in metadata or ():
        if isinstance(value, bytes):
            headers.append((key, base64.b64encode(value).decode("ascii").rstrip("=")))
        else:
            headers.append((key, value))
    return headers


@functools.lru_cache(maxsize=256)
def _method_kind(path: str) -> tuple[bool, bool]:
    """(client streaming, server streaming) of ``/package.Service/Method`` from the default
    descriptor pool (every service the simulator serves is in it); unknown: bidi."""
    service, _, method = path.removeprefix("/").partition("/")
    try:
        found = descriptor_pool.Default().FindMethodByName(f"{service}.{method}")
    except KeyError:
        return True, True
    return bool(found.client_streaming), bool(found.server_streaming)


def _ssl_context(cert_pem: bytes, key_pem: bytes) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.set_alpn_protocols(["h2"])
    # ssl loads certificates only from files: a private directory, removed at once.
    with tempfile.TemporaryDirectory(prefix="mxgw-sim-tls-") as directory:
        cert_path = os.path.join(directory, "cert.pem")
        key_path = os.path.join(directory, "key.pem")
        for path, data in ((cert_path, cert_pem), (key_path, key_pem)):
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with os.fdopen(fd, "wb") as file:
                file.write(data)
        context.load_cert_chain(cert_path, key_path)
    return context


def _one_message(stream: _Stream) -> bytes | None:
    # The request body of a unary-request call: exactly one uncompressed gRPC message.
    body = bytes(stream.request)
    if len(body) < 5 or body[0] != 0 or int.from_bytes(body[1:5], "big") != len(body) - 5:
        return None
    return body[5:]


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, details: str) -> None:
        super().__init__(details)
        self.code = code
        self.details = details


class _StreamGone(Exception):
    """The client reset the stream, or the connection is gone."""


class _NativeContext:
    """The CallContext of a natively served stream (auth and attach read and abort it)."""

    __slots__ = ("_metadata",)

    def __init__(self, metadata: list[tuple[str, str | bytes]]) -> None:
        self._metadata = metadata

    def invocation_metadata(self) -> list[tuple[str, str | bytes]]:
        return self._metadata

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        raise _Abort(code, details)


class _Stream:
    """One HTTP/2 stream: a gRPC call."""

    __slots__ = (
        "call",
        "feed",
        "gone",
        "headers_sent",
        "id",
        "inbox",
        "inbox_bytes",
        "metadata",
        "native",
        "path",
        "request",
        "task",
        "timeout",
        "unary",
        "wake",
    )

    def __init__(
        self,
        stream_id: int,
        path: str,
        metadata: list[tuple[str, str | bytes]],
        native: bool,
        unary: UnaryRpc | None,
    ) -> None:
        self.id = stream_id
        self.path = path
        self.metadata = metadata
        self.native = native
        self.unary = unary
        self.timeout: float | None = None
        self.request = bytearray()
        self.inbox: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.inbox_bytes = 0
        self.wake = asyncio.Event()  # window, transport, or (native) the subscriber's wake
        self.headers_sent = False
        self.gone = False
        self.feed: EventFeed | None = None
        self.call: Any = None
        self.task: asyncio.Task[None] | None = None

    def end(self) -> None:
        """Reset by the client or connection lost: release everything at once."""
        if self.gone:
            return
        self.gone = True
        if self.feed is not None:
            self.feed.close()  # the subscriber is released now, not when the task unwinds
        if self.call is not None:
            self.call.cancel()
        self.wake.set()
        if self.task is not None:
            self.task.cancel()


class _Connection(asyncio.Protocol):
    """One client connection: the h2 state machine and its streams."""

    def __init__(self, door: FrontDoor) -> None:
        self._door = door
        self._config = door.config
        self.h2 = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8")
        )
        self.transport: asyncio.Transport | None = None
        self.streams: dict[int, _Stream] = {}
        self.writable = asyncio.Event()
        self.writable.set()
        self.closed = False

    # ----- asyncio.Protocol -----

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._door.connections.add(self)
        window = self._config.max_message_bytes
        self.h2.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: _MAX_STREAMS,
                h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window,
                h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: 64 * 1024,
            },
        )
        self.h2.initiate_connection()
        self.h2.increment_flow_control_window(window)
        self.flush()

    def data_received(self, data: bytes) -> None:
        try:
            events = self.h2.receive_data(data)
        except h2.exceptions.ProtocolError as exc:
            log.info("front door: HTTP/2 protocol error from a client: %s", exc)
            self.flush()
            self.close()
            return
        for event in events:
            self._dispatch(event)
        self.flush()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()
        self._wake_all()

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.writable.set()
        self._door.connections.discard(self)
        for stream in list(self.streams.values()):
            stream.end()
        self.streams.clear()

    # ----- h2 events -----

    def _dispatch(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.DataReceived):
            self._data(event)
        elif isinstance(event, h2.events.RequestReceived):
            self._request(event)
        elif isinstance(event, h2.events.StreamEnded):
            self._request_ended(event.stream_id)
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id:
                stream = self.streams.get(event.stream_id)
                if stream is not None:
                    stream.wake.set()
            else:
                self._wake_all()
        elif isinstance(event, h2.events.StreamReset):
            stream = self.streams.pop(event.stream_id, None)
            if stream is not None:
                stream.end()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self._wake_all()
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.close()
        # PINGs and SETTINGS are acknowledged by h2 itself.

    def _wake_all(self) -> None:
        for stream in self.streams.values():
            stream.wake.set()

    def _request(self, event: h2.events.RequestReceived) -> None:
        stream_id = event.stream_id
        assert stream_id is not None and event.headers is not None
        headers = [(str(k), str(v)) for k, v in event.headers]
        fields = dict(headers)
        path = fields.get(":path", "")
        if fields.get(":method") != "POST" or not fields.get("content-type", "").startswith(
            "application/grpc"
        ):
            self._respond(stream_id, [(":status", "415")])
            return
        unary = self._door.session_rpcs.get(path)
        native = (
            unary is not None
            or path == EVENTS_PATH
            or (path == BATCHES_PATH and self._config.event_batches)
        )
        stream = _Stream(stream_id, path, _metadata_from_headers(headers), native, unary)
        self.streams[stream_id] = stream
        encoding = fields.get("grpc-encoding", "identity")
        if encoding != "identity":
            self.trailers(
                stream, grpc.StatusCode.UNIMPLEMENTED, f"grpc-encoding {encoding} not supported"
            )
            return
        timeout = fields.get("grpc-timeout")
        if timeout is not None:
            stream.timeout = parse_grpc_timeout(timeout)
        if not native:
            stream.task = self._door.spawn(self._door.proxy(self, stream), native=False)

    def _data(self, event: h2.events.DataReceived) -> None:
        stream_id = event.stream_id
        assert stream_id is not None
        with contextlib.suppress(h2.exceptions.StreamClosedError):
            self.h2.acknowledge_received_data(event.flow_controlled_length or 0, stream_id)
        stream = self.streams.get(stream_id)
        if stream is None or stream.gone or event.data is None:
            return
        limit = self._config.max_message_bytes + 5
        stream.request += event.data
        if stream.native:
            if len(stream.request) > limit:
                self.trailers(stream, grpc.StatusCode.RESOURCE_EXHAUSTED, "request too large")
            return
        # Proxied: complete messages go to the internal call; at most two in waiting.
        buffer = stream.request
        while len(buffer) >= 5:
            length = int.from_bytes(buffer[1:5], "big")
            if buffer[0] != 0 or length > self._config.max_message_bytes:
                self.trailers(stream, grpc.StatusCode.RESOURCE_EXHAUSTED, "bad request message")
                return
            if len(buffer) < 5 + length:
                break
            message = bytes(buffer[5 : 5 + length])
            del buffer[: 5 + length]
            stream.inbox_bytes += length
            if stream.inbox_bytes > 2 * limit:
                self.trailers(stream, grpc.StatusCode.RESOURCE_EXHAUSTED, "requests not taken")
                return
            stream.inbox.put_nowait(message)

    def _request_ended(self, stream_id: int | None) -> None:
        stream = self.streams.get(stream_id or 0)
        if stream is None or stream.gone:
            return
        if stream.native:
            if stream.task is None:
                serve = self._door.serve_unary if stream.unary else self._door.serve_native
                stream.task = self._door.spawn(serve(self, stream), native=True)
        else:
            stream.inbox.put_nowait(None)

    # ----- sending -----

    def flush(self) -> None:
        """Hand what h2 has queued to the transport."""
        data = self.h2.data_to_send()
        if data and self.transport is not None and not self.closed:
            self.transport.write(data)

    def _respond(self, stream_id: int, headers: list[tuple[str, str]]) -> None:
        with contextlib.suppress(h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            self.h2.send_headers(stream_id, headers, end_stream=True)

    def send_headers(
        self, stream: _Stream, metadata: Iterable[tuple[str, str | bytes]] | None = None
    ) -> None:
        """The response headers (once)."""
        if stream.headers_sent or stream.gone:
            return
        stream.headers_sent = True
        headers: list[tuple[str, str]] = [
            (":status", "200"),
            ("content-type", "application/grpc"),
            ("grpc-accept-encoding", "identity"),
        ]
        headers += _headers_from_metadata(metadata)
        try:
            self.h2.send_headers(stream.id, headers)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            stream.gone = True
        self.flush()

    def trailers(
        self,
        stream: _Stream,
        code: grpc.StatusCode,
        details: str | None,
        metadata: Iterable[tuple[str, str | bytes]] | None = None,
    ) -> None:
        """End the call with ``code`` (trailers-only when no headers went out yet)."""
        if stream.gone:
            return
        headers: list[tuple[str, str]] = []
        if not stream.headers_sent:
            headers += [(":status", "200"), ("content-type", "application/grpc")]
            stream.headers_sent = True
        headers.append(("grpc-status", str(code.value[0])))
        if details:
            headers.append(("grpc-message", _percent_encode(details)))
        headers += _headers_from_metadata(metadata)
        self._respond(stream.id, headers)
        self.flush()
        stream.gone = True
        self.streams.pop(stream.id, None)
        if stream.feed is not None:
            stream.feed.close()
        if stream.call is not None:
            stream.call.cancel()

    def window(self, stream: _Stream) -> int:
        """Bytes the stream may send now (both windows); 0 while the transport is full."""
        if stream.gone or self.closed:
            raise _StreamGone
        if not self.writable.is_set():
            return 0
        try:
            return self.h2.local_flow_control_window(stream.id)
        except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
            raise _StreamGone from None

    async def send(self, stream: _Stream, data: bytes) -> None:
        """Send ``data`` on the stream in DATA frames, waiting for flow control as needed."""
        view = memoryview(data)
        pos, total = 0, len(data)
        h2conn = self.h2
        while pos < total:
            stream.wake.clear()
            window = self.window(stream)
            if window <= 0:
                await stream.wake.wait()
                continue
            end = min(total, pos + window)
            frame = h2conn.max_outbound_frame_size
            try:
                while pos < end:
                    step = min(frame, end - pos)
                    h2conn.send_data(stream.id, view[pos : pos + step])
                    pos += step
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError):
                raise _StreamGone from None
            self.flush()

    def close(self) -> None:
        """GOAWAY and close (also on the client's GOAWAY); streams end."""
        if self.closed:
            return
        with contextlib.suppress(h2.exceptions.ProtocolError):
            self.h2.close_connection()
        self.flush()
        self.closed = True
        for stream in list(self.streams.values()):
            stream.end()
        self.streams.clear()
        if self.transport is not None:
            self.transport.close()


class FrontDoor:
    """The public HTTP/2 server of flood mode (see the module docstring)."""

    def __init__(self, config: SimConfig, service: GatewayService, internal: str) -> None:
        self.config = config
        self._service = service
        self.internal = internal
        self.session_rpcs = {
            f"/{SERVICE_NAME}/{name}": rpc for name, rpc in service.session_rpcs().items()
        }
        self._channel: aio.Channel | None = None
        self._server: asyncio.Server | None = None
        self.connections: set[_Connection] = set()
        self._tasks: set[asyncio.Task[None]] = set()
        self._native: set[asyncio.Task[None]] = set()
        self.port = 0

    async def start(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (0 = a free port); return the bound port."""
        config = self.config
        limit = config.max_message_bytes
        self._channel = aio.insecure_channel(
            self.internal,
            options=[
                ("grpc.max_send_message_length", limit),
                ("grpc.max_receive_message_length", limit),
            ],
        )
        context = None
        if config.tls_cert_pem is not None and config.tls_key_pem is not None:
            context = _ssl_context(config.tls_cert_pem, config.tls_key_pem)
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _Connection(self), host, port, ssl=context, reuse_address=True
            )
        except BaseException:
            await self._channel.close()
            self._channel = None
            raise
        self.port = int(self._server.sockets[0].getsockname()[1])
        return self.port

    async def stop(self, grace: float | None = None) -> None:
        """Stop listening; let native streams of closed sessions send their status (up to
        ``grace`` s, default 0.25), then GOAWAY and close every connection."""
        if self._server is not None:
            self._server.close()
        native = [t for t in self._native if not t.done()]
        if native:
            await asyncio.wait(native, timeout=0.25 if grace is None else grace)
        for connection in list(self.connections):
            connection.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        if self._channel is not None:
            await self._channel.close()
            self._channel = None

    def spawn(self, coroutine: Any, *, native: bool) -> asyncio.Task[None]:
        """Run a stream's coroutine as a task the door keeps until it ends."""
        task: asyncio.Task[None] = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        if native:
            self._native.add(task)
            task.add_done_callback(self._native.discard)
        return task

    # ----- native calls -----

    async def serve_unary(self, conn: _Connection, stream: _Stream) -> None:
        """OpenSession, CloseSession, Invoke: the GatewayService's own handlers."""
        rpc = stream.unary
        assert rpc is not None
        body = _one_message(stream)
        if body is None:
            conn.trailers(stream, grpc.StatusCode.INTERNAL, "expected one request message")
            return
        context = _NativeContext(stream.metadata)
        try:
            request = rpc.parse(body)
            async with asyncio.timeout(stream.timeout):
                reply = rpc.serialize(await rpc.handler(request, context))
        except _Abort as abort:
            conn.trailers(stream, abort.code, abort.details)
            return
        except TimeoutError:  # the client's deadline (the command itself goes on)
            conn.trailers(stream, grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
            return
        except Exception as exc:
            log.exception("front door: %s failed", stream.path)
            conn.trailers(stream, grpc.StatusCode.UNKNOWN, f"{type(exc).__name__}")
            return
        try:
            conn.send_headers(stream)
            await conn.send(stream, grpc_message_header(len(reply)) + reply)
            conn.trailers(stream, grpc.StatusCode.OK, None)
        except _StreamGone:
            pass

    async def serve_native(self, conn: _Connection, stream: _Stream) -> None:
        """StreamEvents / StreamEventBatches from the session's feed."""
        batches = stream.path == BATCHES_PATH
        body = _one_message(stream)
        if body is None:
            conn.trailers(stream, grpc.StatusCode.INTERNAL, "expected one request message")
            return
        try:
            request = pb.StreamEventsRequest.FromString(body)
            feed = await self._service.open_feed(
                request, _NativeContext(stream.metadata), batches=batches
            )
        except _Abort as abort:
            conn.trailers(stream, abort.code, abort.details)
            return
        except Exception as exc:  # a request that does not parse
            conn.trailers(stream, grpc.StatusCode.INTERNAL, f"bad request: {type(exc).__name__}")
            return
        if stream.gone:  # reset while attaching
            feed.close()
            return
        stream.feed = feed
        stream.wake = feed.sub.wake  # one event for the window, the transport and new events
        timer = None
        if stream.timeout is not None:
            timer = asyncio.get_running_loop().call_later(
                stream.timeout,
                feed.sub.fail,
                grpc.StatusCode.DEADLINE_EXCEEDED,
                "Deadline Exceeded",
            )
        try:
            conn.send_headers(stream)
            await self._pump(conn, stream, feed)
        except _StreamGone:
            pass
        finally:
            if timer is not None:
                timer.cancel()
            feed.close()

    async def _pump(self, conn: _Connection, stream: _Stream, feed: EventFeed) -> None:
        header = grpc_message_header
        prefix = feed.take_prefix()
        if prefix is not None:
            await conn.send(stream, header(len(prefix)) + prefix)
        single = feed.batch is None
        per_event = 128.0  # framed bytes per flood event, learnt as it goes
        while True:
            ended = feed.ended()
            if ended is not None:
                conn.trailers(stream, *ended)
                return
            stream.wake.clear()
            window = conn.window(stream)
            if window <= 0:  # produce nothing while the reader or the transport is full
                await stream.wake.wait()
                continue
            target = min(_CHUNK, window)
            parts: list[bytes] = []
            size = 0
            while size < target:
                if feed.has_pending():
                    want = max(1, (target - size) // 128) if single else 1
                    for message in feed.take_pending(want):
                        parts.append(header(len(message)))
                        parts.append(message)
                        size += 5 + len(message)
                    continue
                want = max(1, int((target - size) / per_event)) if single else _CHUNK
                flood = feed.take_flood(want)
                if flood is None:
                    break
                data, count = flood
                if single:
                    framed = flood_to_grpc(data)
                    per_event = len(framed) / count
                    parts.append(framed)
                    size += len(framed)
                else:
                    parts.append(header(len(data)))
                    parts.append(data)
                    size += 5 + len(data)
            if not parts:
                await feed.wait()
                continue
            await conn.send(stream, b"".join(parts))
            await asyncio.sleep(0)  # let the other streams and connections have a turn

    # ----- everything else: the internal grpc.aio server -----

    async def proxy(self, conn: _Connection, stream: _Stream) -> None:
        """Relay a call to the internal server: requests in, messages, status and trailing
        metadata out. The call has the method's kind (raw bytes, no serializers), so that a
        unary call is a unary call there too; an unknown method is tried as a bidi one (the
        server answers UNIMPLEMENTED)."""
        assert self._channel is not None
        client_streaming, server_streaming = _method_kind(stream.path)
        metadata, timeout = tuple(stream.metadata), stream.timeout
        writer: asyncio.Task[None] | None = None
        method: Any
        call: Any
        if client_streaming:
            method = self._channel.stream_stream(stream.path)
            call = method(metadata=metadata, timeout=timeout)
            writer = asyncio.get_running_loop().create_task(self._requests(stream, call))
        else:
            request = await stream.inbox.get()
            if request is None:
                conn.trailers(stream, grpc.StatusCode.INTERNAL, "expected one request message")
                return
            stream.inbox_bytes -= len(request)
            if server_streaming:
                method = self._channel.unary_stream(stream.path)
            else:
                method = self._channel.unary_unary(stream.path)
            call = method(request, metadata=metadata, timeout=timeout)
        stream.call = call
        code, details, trailing = grpc.StatusCode.UNKNOWN, "", None
        try:
            try:
                conn.send_headers(stream, await call.initial_metadata())
                if server_streaming or client_streaming:
                    while (message := await call.read()) is not aio.EOF:
                        await conn.send(stream, grpc_message_header(len(message)) + message)
                else:
                    message = await call
                    await conn.send(stream, grpc_message_header(len(message)) + message)
                code = await call.code()
                details = await call.details()
                trailing = await call.trailing_metadata()
            except aio.AioRpcError as error:
                code, details = error.code(), error.details() or ""
                trailing = error.trailing_metadata()
            conn.trailers(stream, code, details, trailing)
        except _StreamGone:
            pass
        finally:
            if writer is not None:
                writer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await writer
            call.cancel()

    async def _requests(self, stream: _Stream, call: Any) -> None:
        with contextlib.suppress(Exception):  # the call ended first: its status tells why
            while True:
                message = await stream.inbox.get()
                if message is None:
                    await call.done_writing()
                    return
                stream.inbox_bytes -= len(message)
                await call.write(message)
