"""Opening a grpc.aio channel for ClientOptions: TLS by default, message limits raised."""

from __future__ import annotations

from pathlib import Path

import grpc

from mxgateway._options import ClientOptions

__all__ = ["open_channel"]

# gRPC backs off reconnecting up to 120 s by default; a gateway that comes back after an
# outage would then stay unused for up to that long (a resuming stream could even give up on
# its retry budget with the gateway already back). A plant client reconnects every 2 s at most.
_MAX_RECONNECT_BACKOFF_MS = 2000
_PING_TIMEOUT_MS = 10_000


def _channel_args(options: ClientOptions) -> list[tuple[str, int | str]]:
    args: list[tuple[str, int | str]] = [
        ("grpc.max_receive_message_length", options.max_message_bytes),
        ("grpc.max_send_message_length", options.max_message_bytes),
        ("grpc.max_reconnect_backoff_ms", _MAX_RECONNECT_BACKOFF_MS),
    ]
    if options.keepalive_seconds is not None:
        args += [
            ("grpc.keepalive_time_ms", int(options.keepalive_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", _PING_TIMEOUT_MS),
            ("grpc.keepalive_permit_without_calls", 1),
            # Any unanswered ping ends the connection after the keepalive timeout: while a
            # flow-control (BDP) ping is outstanding no keepalive ping is sent, and gRPC's own
            # ping timeout is 60 s, so a silent partition would otherwise go unnoticed that long.
            ("grpc.http2.ping_timeout_ms", _PING_TIMEOUT_MS),
        ]
    if options.server_name_override:
        args.append(("grpc.ssl_target_name_override", options.server_name_override))
    return args


def open_channel(options: ClientOptions) -> grpc.aio.Channel:
    """A grpc.aio channel to ``options.endpoint``: plaintext only when asked for."""
    args = _channel_args(options)
    if options.plaintext:
        return grpc.aio.insecure_channel(options.endpoint, options=args)
    root = Path(options.ca_file).read_bytes() if options.ca_file else None
    credentials = grpc.ssl_channel_credentials(root_certificates=root)
    return grpc.aio.secure_channel(options.endpoint, credentials, options=args)
