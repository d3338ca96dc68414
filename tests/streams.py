"""The ways an event stream can run, for tests that must hold on every one of them.

- ``batches``: StreamEventBatches (read on the client's grpc.aio channel);
- ``single-thread``: StreamEvents read by the thread receiver (the genuine gateway's rpc and
  the client's default receiver for it);
- ``single-aio``: StreamEvents read on grpc.aio.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any, NamedTuple

import pytest

from mxgateway import EventReceiver, GatewayClient, MxEvent, Session, StreamPath

__all__ = [
    "BATCHES",
    "MODES",
    "SINGLE_AIO",
    "SINGLE_THREAD",
    "StreamMode",
    "connect",
    "event_lists",
]


class StreamMode(NamedTuple):
    """One way to run a stream."""

    name: str
    path: StreamPath
    receiver: EventReceiver


BATCHES = StreamMode("batches", "auto", "thread")
SINGLE_THREAD = StreamMode("single-thread", "single", "thread")
SINGLE_AIO = StreamMode("single-aio", "single", "aio")
MODES = [pytest.param(mode, id=mode.name) for mode in (BATCHES, SINGLE_THREAD, SINGLE_AIO)]


async def connect(mode: StreamMode, endpoint: str, **options: Any) -> GatewayClient:
    """A plaintext client of ``endpoint`` with the mode's receiver."""
    return await GatewayClient.connect(
        endpoint=endpoint, plaintext=True, event_receiver=mode.receiver, **options
    )


def event_lists(
    session: Session, mode: StreamMode, **kwargs: Any
) -> AsyncGenerator[list[MxEvent], None]:
    """The session's events in lists, on the mode's rpc."""
    return session.stream_event_batches(path=mode.path, **kwargs)
