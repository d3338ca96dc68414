"""Opening a grpc.aio channel for ClientOptions: TLS by default, message limits raised."""

from __future__ import annotations

from pathlib import Path

import grpc

from mxgateway._options import ClientOptions

__all__ = ["open_channel"]


def _channel_args(options: ClientOptions) -> list[tuple[str, int | str]]:
    args: list[tuple[str, int | str]] = [
        ("grpc.max_receive_message_length", options.max_message_bytes),
        ("grpc.max_send_message_length", options.max_message_bytes),
    ]
    if options.keepalive_seconds is not None:
        args += [
            ("grpc.keepalive_time_ms", int(options.keepalive_seconds * 1000)),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.keepalive_permit_without_calls", 1),
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
