"""Opt-in live checks against a real gateway (or any endpoint), as the original client has.

Skipped unless ``MXGATEWAY_INTEGRATION=1``. They read:

- ``MXGATEWAY_ENDPOINT`` (``host:port``), ``MXGATEWAY_API_KEY``, ``MXGATEWAY_TEST_ITEM``
  (an attribute reference, ``Object.Attribute``): required;
- ``MXGATEWAY_PLAINTEXT=1`` for a channel without TLS (TLS is the default), or
  ``MXGATEWAY_CA_FILE`` for a private CA;
- ``MXGATEWAY_TEST_WRITE=1`` to also write: the value just read is written back unchanged,
  and the write must complete (nothing else is ever written).

``.ci/run`` runs them once against ``mxgw-py sim`` so they are known to work:
``MXGATEWAY_INTEGRATION=1 ... python -m pytest -m live``.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Any

import pytest

from mxgateway import GatewayClient, MxEventFamily

pytestmark = [
    pytest.mark.live,
    pytest.mark.skipif(
        os.environ.get("MXGATEWAY_INTEGRATION") != "1",
        reason="live gateway checks: set MXGATEWAY_INTEGRATION=1 and MXGATEWAY_ENDPOINT, "
        "MXGATEWAY_API_KEY, MXGATEWAY_TEST_ITEM",
    ),
]

STREAM_WAIT_S = 30.0
"""How long to wait for the test item's first event (a real tag may change rarely: advising
delivers its current value at once, so one event is always due)."""


def _required(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        pytest.fail(f"MXGATEWAY_INTEGRATION=1 needs {name}")
    return value


@pytest.fixture
def item() -> str:
    """``MXGATEWAY_TEST_ITEM``."""
    return _required("MXGATEWAY_TEST_ITEM")


@pytest.fixture
async def client() -> AsyncIterator[GatewayClient]:
    """A client of ``MXGATEWAY_ENDPOINT`` with ``MXGATEWAY_API_KEY``."""
    async with await GatewayClient.connect(
        endpoint=_required("MXGATEWAY_ENDPOINT"),
        api_key=_required("MXGATEWAY_API_KEY"),
        plaintext=os.environ.get("MXGATEWAY_PLAINTEXT") == "1",
        ca_file=os.environ.get("MXGATEWAY_CA_FILE") or None,
    ) as gateway_client:
        yield gateway_client


async def _first_event(session: Any, item_handle: int) -> Any:
    async with asyncio.timeout(STREAM_WAIT_S):
        async for event in session.stream_events():
            if event.item_handle == item_handle and event.family == MxEventFamily.ON_DATA_CHANGE:
                return event
    raise AssertionError("the event stream ended")


async def test_smoke(client: GatewayClient, item: str) -> None:
    """Open, register, add, advise, one event, close: the CLI's ``smoke``."""
    async with await client.open_session("mxgateway-live") as session:
        server = await session.register("mxgateway-live")
        handle = await session.add_item(server, item)
        await session.advise(server, handle)
        event = await _first_event(session, handle)
        assert event.session_id == session.session_id
        assert event.worker_sequence >= 1
        await session.unadvise(server, handle)
        await session.remove_item(server, handle)
        await session.unregister(server)


async def test_read(client: GatewayClient, item: str) -> None:
    async with await client.open_session() as session:
        server = await session.register("mxgateway-live")
        [result] = await session.read_bulk(server, [item])
        assert result.tag_address == item
        assert result.was_successful, result.error_message


async def test_advise_and_stream(client: GatewayClient, item: str) -> None:
    """SubscribeBulk, then events of the item, in sequence, none doubled."""
    async with await client.open_session() as session:
        server = await session.register("mxgateway-live")
        [subscribed] = await session.subscribe_bulk(server, [item])
        assert subscribed.was_successful, subscribed.error_message
        event = await _first_event(session, subscribed.item_handle)
        # Resuming after the event seen gives only later sequences.
        async with asyncio.timeout(STREAM_WAIT_S):
            async for later in session.stream_events(after_worker_sequence=event.worker_sequence):
                assert later.worker_sequence > event.worker_sequence
                break


@pytest.mark.skipif(
    os.environ.get("MXGATEWAY_TEST_WRITE") != "1",
    reason="writes only with MXGATEWAY_TEST_WRITE=1 (the value read is written back)",
)
async def test_write_back_the_value_read(client: GatewayClient, item: str) -> None:
    async with await client.open_session() as session:
        server = await session.register("mxgateway-live")
        handle = await session.add_item(server, item)
        await session.advise(server, handle)
        current = await _first_event(session, handle)
        outcome = await session.write(
            server, handle, current.value, data_type=current.data_type, confirm=True
        )
        assert outcome is not None
        assert outcome.item_handle == handle
        assert outcome.ok, outcome.error
