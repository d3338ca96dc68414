"""The blocking API mirrors the async one: same public names, same parameters, blocking results
and Stream iterators where the async API awaits and iterates. No server needed."""

from __future__ import annotations

import inspect
import types
from typing import Any

import pytest

import mxgateway
import mxgateway.sync
from mxgateway import sync
from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sync import Stream

PAIRS = [
    pytest.param(mxgateway.GatewayClient, sync.GatewayClient, id="GatewayClient"),
    pytest.param(mxgateway.Session, sync.Session, id="Session"),
    pytest.param(
        mxgateway.GalaxyRepositoryClient, sync.GalaxyRepositoryClient, id="GalaxyRepositoryClient"
    ),
]

# What differs on purpose: the async context-manager protocol becomes the sync one, and the
# blocking clients tell which loop their thread runs.
ASYNC_ONLY = {"__aenter__", "__aexit__"}
SYNC_ONLY = {"__enter__", "__exit__", "loop_name"}


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_") or name in ASYNC_ONLY | SYNC_ONLY}


def _instance_attributes(cls: type) -> set[str]:
    """Public attributes the async class sets in ``__init__`` (not visible on the class)."""
    if cls is mxgateway.Session:
        client = types.SimpleNamespace(_track=lambda session: None)  # no gateway needed
        instance = mxgateway.Session(client, pb.OpenSessionReply())  # type: ignore[arg-type]
        return {name for name in vars(instance) if not name.startswith("_")}
    return set()


def _is_stream(method: Any) -> bool:
    annotation = str(inspect.signature(method).return_annotation)
    return inspect.isasyncgenfunction(method) or annotation.startswith("Async")


def test_all_is_sorted_and_complete() -> None:
    assert list(sync.__all__) == sorted(set(sync.__all__))
    assert all(hasattr(sync, name) for name in sync.__all__)
    public = {n for n in vars(mxgateway.sync) if not n.startswith("_")}
    assert public == set(sync.__all__)


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS)
def test_same_public_names(async_cls: type, sync_cls: type) -> None:
    expected = _public(async_cls) - ASYNC_ONLY | _instance_attributes(async_cls)
    assert expected == _public(sync_cls) - SYNC_ONLY


@pytest.mark.parametrize(("async_cls", "sync_cls"), PAIRS)
def test_same_signatures(async_cls: type, sync_cls: type) -> None:
    checked = 0
    for name in sorted(_public(async_cls) - ASYNC_ONLY):
        async_attr = inspect.getattr_static(async_cls, name)
        sync_attr = inspect.getattr_static(sync_cls, name)
        if isinstance(async_attr, property):
            assert isinstance(sync_attr, property), name
            continue
        async_fn = getattr(async_cls, name)
        sync_fn = getattr(sync_cls, name)
        assert callable(sync_fn), name
        async_sig = inspect.signature(async_fn)
        sync_sig = inspect.signature(sync_fn)
        assert list(sync_sig.parameters.values()) == list(async_sig.parameters.values()), name
        assert not inspect.iscoroutinefunction(sync_fn), name
        assert not inspect.isasyncgenfunction(sync_fn), name
        if _is_stream(async_fn):
            assert sync_sig.return_annotation is Stream, name
        elif name not in ("connect", "close", "__repr__"):
            # connect: Self either way; close: the client's returns None in both.
            assert sync_sig.return_annotation == async_sig.return_annotation, name
        checked += 1
    assert checked >= 8


def test_close_and_connect_keep_their_shape() -> None:
    pairs: list[tuple[type[mxgateway.GatewayClient | mxgateway.GalaxyRepositoryClient], Any]] = [
        (mxgateway.GatewayClient, sync.GatewayClient),
        (mxgateway.GalaxyRepositoryClient, sync.GalaxyRepositoryClient),
    ]
    for async_cls, sync_cls in pairs:
        assert str(inspect.signature(sync_cls.close)) == "(self) -> 'None'"
        assert str(inspect.signature(async_cls.close)) == "(self) -> 'None'"
        assert isinstance(inspect.getattr_static(sync_cls, "connect"), classmethod)
    assert str(inspect.signature(sync.Session.close)) == str(
        inspect.signature(mxgateway.Session.close)
    )


def test_docstrings_come_from_the_async_methods() -> None:
    assert sync.Session.write.__doc__ == mxgateway.Session.write.__doc__
    assert sync.GatewayClient.subscribe.__doc__ == mxgateway.GatewayClient.subscribe.__doc__


def test_instance_attributes_of_a_session_are_properties() -> None:
    names = _instance_attributes(mxgateway.Session)
    assert names == {"last_recovery", "recoveries", "event_path", "stream_trouble", "stats"}
    for name in names:
        assert isinstance(inspect.getattr_static(sync.Session, name), property), name
