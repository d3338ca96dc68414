"""What every mxgateway client shares: options, one channel, auth metadata, explicit state."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Self

import grpc

from mxgateway._channel import open_channel
from mxgateway._errors import MxGatewayClientClosedError, MxGatewayTransportError
from mxgateway._options import ClientOptions, EventReceiver

__all__ = ["ClientBase", "build_options"]


def build_options(
    endpoint: str | None,
    *,
    options: ClientOptions | None,
    api_key: str | None,
    plaintext: bool,
    ca_file: str | None,
    server_name_override: str | None,
    timeout: float | None,
    event_receiver: EventReceiver | None = None,
) -> ClientOptions:
    """ClientOptions from either a ready ``options`` or the keyword arguments (not both)."""
    if options is not None:
        if (
            endpoint is not None
            or api_key is not None
            or plaintext
            or ca_file
            or event_receiver is not None
        ):
            raise ValueError("pass either options= or the individual connection arguments")
        return options
    if endpoint is None:
        raise ValueError("endpoint is required ('host:port')")
    return ClientOptions(
        endpoint=endpoint,
        api_key=api_key,
        plaintext=plaintext,
        ca_file=ca_file,
        server_name_override=server_name_override,
        timeout=timeout,
        event_receiver=event_receiver or "thread",
    )


class ClientBase:
    """One channel to one gateway. Closed explicitly (or by ``async with``); never reopened."""

    def __init__(self, options: ClientOptions) -> None:
        self._options = options
        self._metadata = options.metadata
        self._channel: grpc.aio.Channel | None = open_channel(options)

    @property
    def options(self) -> ClientOptions:
        """The options this client was opened with (repr masks the API key)."""
        return self._options

    @property
    def closed(self) -> bool:
        """True once ``close()`` was called."""
        return self._channel is None

    def _live_channel(self) -> grpc.aio.Channel:
        if self._channel is None:
            raise MxGatewayClientClosedError(f"{type(self).__name__} is closed")
        return self._channel

    def _timeout(self, timeout: float | None) -> float | None:
        # A per-call timeout overrides the client's default deadline.
        return self._options.timeout if timeout is None else timeout

    async def wait_ready(self, timeout: float = 10.0) -> None:
        """Wait until the channel is connected, or raise MxGatewayTransportError."""
        channel = self._live_channel()
        try:
            await asyncio.wait_for(channel.channel_ready(), timeout)
        except TimeoutError:
            raise MxGatewayTransportError(
                f"could not connect to {self._options.endpoint} within {timeout} s"
            ) from None

    async def close(self) -> None:
        """Close the channel, cancelling its calls. Idempotent."""
        channel, self._channel = self._channel, None
        if channel is not None:
            await channel.close()

    @classmethod
    async def connect(
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
        """Open a client for ``endpoint`` (``host:port``); the channel connects lazily.

        Use as ``async with await Client.connect(endpoint=..., api_key=...) as client:``.
        TLS is the default; pass ``plaintext=True`` for an unencrypted channel, ``ca_file``
        for a private CA, or a ready ``options=ClientOptions(...)`` instead of the keywords.
        ``event_receiver`` (``"thread"``, the default, or ``"aio"``) is how StreamEvents is read.
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

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else "open"
        return f"<{type(self).__name__} {self._options.endpoint} {state} {self._options!r}>"
