"""Opening gRPC channels for ClientOptions: TLS by default, message limits raised, keepalive
that no server punishes. The aio channel carries every call; a thread receiver opens a sync
channel with the same target, credentials and arguments for its one stream."""

from __future__ import annotations

from pathlib import Path

import grpc

from mxgateway._options import ClientOptions

__all__ = ["channel_args", "open_channel", "open_sync_channel", "sync_receiver_available"]

# gRPC backs off reconnecting up to 120 s by default; a gateway that comes back after an
# outage would then stay unused for up to that long (a resuming stream could even give up on
# its retry budget with the gateway already back). A plant client reconnects every 2 s at most.
_MAX_RECONNECT_BACKOFF_MS = 2000
# gRPC waits 1 s before its first reconnect: a gateway back after a restart would be used only
# that much later. A first retry after 100 ms (then growing to the cap) costs nothing.
_INITIAL_RECONNECT_BACKOFF_MS = 100
_PING_TIMEOUT_MS = 10_000
# gRPC's experimental option for a sync unary-stream call read by the calling thread itself
# (no extra poller thread per call): the thread receiver's speed comes from it.
_SINGLE_THREADED_UNARY_STREAM = "SingleThreadedUnaryStream"


def channel_args(options: ClientOptions) -> list[tuple[str, int | str]]:
    """The channel arguments every channel of a client uses."""
    args: list[tuple[str, int | str]] = [
        ("grpc.max_receive_message_length", options.receive_limit),
        ("grpc.max_send_message_length", options.max_message_bytes),
        ("grpc.max_reconnect_backoff_ms", _MAX_RECONNECT_BACKOFF_MS),
        ("grpc.initial_reconnect_backoff_ms", _INITIAL_RECONNECT_BACKOFF_MS),
        # Any unanswered ping ends the connection after 10 s: this is what notices a silent
        # partition under a flowing stream, where flow-control (BDP) pings go out all the time
        # (gRPC's own ping timeout is 60 s). It costs no extra pings.
        ("grpc.http2.ping_timeout_ms", _PING_TIMEOUT_MS),
    ]
    if options.keepalive_seconds is not None:
        args += [
            ("grpc.keepalive_time_ms", int(options.keepalive_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", _PING_TIMEOUT_MS),
            # No pings on a connection without calls: grpc-core servers allow those only
            # every 2 hours by default and answer more with GOAWAY (too_many_pings).
            ("grpc.keepalive_permit_without_calls", 0),
        ]
    if options.server_name_override:
        args.append(("grpc.ssl_target_name_override", options.server_name_override))
    return args


def _credentials(options: ClientOptions) -> grpc.ChannelCredentials:
    root = Path(options.ca_file).read_bytes() if options.ca_file else None
    return grpc.ssl_channel_credentials(root_certificates=root)


def open_channel(options: ClientOptions) -> grpc.aio.Channel:
    """A grpc.aio channel to ``options.endpoint``: plaintext only when asked for."""
    args = channel_args(options)
    interceptors = list(options.interceptors) or None
    if options.plaintext:
        return grpc.aio.insecure_channel(options.endpoint, options=args, interceptors=interceptors)
    return grpc.aio.secure_channel(
        options.endpoint, _credentials(options), options=args, interceptors=interceptors
    )


def sync_receiver_available() -> bool:
    """True when this gRPC has the single-threaded unary-stream option the thread receiver
    needs (it is experimental: a gRPC without it gets the aio receiver)."""
    try:
        from grpc import experimental
    except ImportError:
        return False
    names = getattr(experimental, "ChannelOptions", None)
    return getattr(names, "SingleThreadedUnaryStream", None) == _SINGLE_THREADED_UNARY_STREAM


def open_sync_channel(options: ClientOptions) -> grpc.Channel:
    """A sync channel for one thread receiver: the aio channel's target, credentials and
    arguments, its own connection, and unary-stream calls read by the calling thread."""
    args = [
        *channel_args(options),
        (_SINGLE_THREADED_UNARY_STREAM, 1),
        # Its own connection (not one shared from the process-wide subchannel pool): the
        # stream's flow control and liveness are then its own, and closing it closes it.
        ("grpc.use_local_subchannel_pool", 1),
    ]
    if options.plaintext:
        return grpc.insecure_channel(options.endpoint, options=args)
    return grpc.secure_channel(options.endpoint, _credentials(options), options=args)
