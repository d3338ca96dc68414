"""GalaxyRepositoryClient: read-only browse of the deployed Galaxy, and deploy watching."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import grpc
from google.protobuf.timestamp_pb2 import Timestamp
from google.protobuf.wrappers_pb2 import Int32Value

from mxgateway._base import ClientBase
from mxgateway._errors import MxGatewayTimeoutError, MxGatewayTransportError
from mxgateway._options import ClientOptions
from mxgateway._retry import TRANSIENT_CODES, Reconnect, check_budget
from mxgateway._rpc import call, translate_rpc_error
from mxgateway.generated import galaxy_repository_pb2 as gpb
from mxgateway.generated import galaxy_repository_pb2_grpc as gpb_grpc
from mxgateway.types import MxDataType

__all__ = ["BrowseNode", "GalaxyRepositoryClient", "attribute_data_type"]


def attribute_data_type(attribute: gpb.GalaxyAttribute) -> MxDataType | int:
    """The MxDataType of a Galaxy attribute.

    The Galaxy Repository stores MXAccess's native type code (``mx_data_type``: Boolean 1,
    Integer 2, Float 3, Double 4, String 5, Time 6, ...), which is one less than MxDataType
    (BOOLEAN 2, INTEGER 3, ...), the type of values on the wire. A code this version does not
    know comes back as a plain int. Also ``GalaxyAttribute.data_type``.
    """
    code = attribute.mx_data_type + 1
    try:
        return MxDataType(code)
    except ValueError:
        return code


# The generated message gets the mapped type as a property (its stub declares it too).
gpb.GalaxyAttribute.data_type = property(  # type: ignore[assignment]
    attribute_data_type, doc=attribute_data_type.__doc__
)

logger = logging.getLogger(__name__)

# How long a reconnecting deploy watch waits for the gateway to answer GetLastDeployTime.
_PROBE_TIMEOUT_S = 10.0

Parent = int | str | None
"""A parent or root object: a gobject id (int), a tag name (str), or None for the roots.
A str containing a ``/`` or ``.`` path is still a tag name; pass ``contained_path=`` for paths."""


@dataclass(frozen=True, slots=True)
class BrowseNode:
    """One object met by ``walk``: the object, its depth (roots are 0) and whether the
    Galaxy says it has children."""

    object: gpb.GalaxyObject
    depth: int
    has_children: bool


def _filters(
    *,
    category_ids: Sequence[int] | None,
    template_chain_contains: Sequence[str] | None,
    tag_name_glob: str | None,
    include_attributes: bool | None,
    alarm_bearing_only: bool,
    historized_only: bool,
) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "category_ids": list(category_ids or ()),
        "template_chain_contains": list(template_chain_contains or ()),
        "tag_name_glob": tag_name_glob or "",
        "alarm_bearing_only": alarm_bearing_only,
        "historized_only": historized_only,
    }
    if include_attributes is not None:
        fields["include_attributes"] = include_attributes
    return fields


class GalaxyRepositoryClient(ClientBase):
    """An async client of the read-only GalaxyRepository service (needs ``metadata:read``).

    Open with ``async with await GalaxyRepositoryClient.connect(endpoint=..., api_key=...)``.
    """

    def __init__(self, options: ClientOptions) -> None:
        super().__init__(options)
        self._stub = gpb_grpc.GalaxyRepositoryStub(self._live_channel())

    async def _unary(self, name: str, request: Any, timeout: float | None) -> Any:
        self._live_channel()
        method = getattr(self._stub, name)
        return await call(
            name,
            lambda: method(request, metadata=self._metadata, timeout=self._timeout(timeout)),
        )

    async def test_connection(self, *, timeout: float | None = None) -> bool:
        """True when the gateway can reach the Galaxy Repository database."""
        reply = await self._unary("TestConnection", gpb.TestConnectionRequest(), timeout)
        return bool(reply.ok)

    async def get_last_deploy_time(self, *, timeout: float | None = None) -> datetime | None:
        """The time of the last deploy (aware UTC), or None when the Galaxy has none."""
        reply = await self._unary("GetLastDeployTime", gpb.GetLastDeployTimeRequest(), timeout)
        if not reply.present:
            return None
        deployed: datetime = reply.time_of_last_deploy.ToDatetime(tzinfo=UTC)
        return deployed

    async def iter_hierarchy(
        self,
        *,
        root: Parent = None,
        root_contained_path: str | None = None,
        max_depth: int | None = None,
        page_size: int = 0,
        category_ids: Sequence[int] | None = None,
        template_chain_contains: Sequence[str] | None = None,
        tag_name_glob: str | None = None,
        include_attributes: bool | None = None,
        alarm_bearing_only: bool = False,
        historized_only: bool = False,
        timeout: float | None = None,
    ) -> AsyncIterator[gpb.GalaxyObject]:
        """Yield the deployed objects page by page (DiscoverHierarchy).

        Lazy: the next page is requested only once every object of the current page has been
        consumed, so memory stays bounded by one page.
        """
        request = gpb.DiscoverHierarchyRequest(
            page_size=page_size,
            **_filters(
                category_ids=category_ids,
                template_chain_contains=template_chain_contains,
                tag_name_glob=tag_name_glob,
                include_attributes=include_attributes,
                alarm_bearing_only=alarm_bearing_only,
                historized_only=historized_only,
            ),
        )
        _set_root(request, "root", root, root_contained_path)
        if max_depth is not None:
            request.max_depth.CopyFrom(Int32Value(value=max_depth))
        while True:
            reply = await self._unary("DiscoverHierarchy", request, timeout)
            for obj in reply.objects:
                yield obj
            if not reply.next_page_token:
                return
            request.page_token = reply.next_page_token

    async def discover_hierarchy(self, **kwargs: Any) -> list[gpb.GalaxyObject]:
        """Every deployed object (with attributes) in one list; see ``iter_hierarchy`` for the
        filters, and prefer it for a large Galaxy."""
        return [obj async for obj in self.iter_hierarchy(**kwargs)]

    async def iter_children(
        self,
        parent: Parent = None,
        *,
        parent_contained_path: str | None = None,
        page_size: int = 0,
        category_ids: Sequence[int] | None = None,
        template_chain_contains: Sequence[str] | None = None,
        tag_name_glob: str | None = None,
        include_attributes: bool | None = None,
        alarm_bearing_only: bool = False,
        historized_only: bool = False,
        timeout: float | None = None,
    ) -> AsyncIterator[tuple[gpb.GalaxyObject, bool]]:
        """Yield ``(child, has_children)`` of ``parent`` (None: the roots), page by page."""
        request = gpb.BrowseChildrenRequest(
            page_size=page_size,
            **_filters(
                category_ids=category_ids,
                template_chain_contains=template_chain_contains,
                tag_name_glob=tag_name_glob,
                include_attributes=include_attributes,
                alarm_bearing_only=alarm_bearing_only,
                historized_only=historized_only,
            ),
        )
        _set_root(request, "parent", parent, parent_contained_path)
        while True:
            reply = await self._unary("BrowseChildren", request, timeout)
            flags = list(reply.child_has_children)
            for index, child in enumerate(reply.children):
                yield child, (flags[index] if index < len(flags) else False)
            if not reply.next_page_token:
                return
            request.page_token = reply.next_page_token

    async def browse_children(self, parent: Parent = None, **kwargs: Any) -> list[gpb.GalaxyObject]:
        """The children of ``parent`` (None: the roots) in one list (every page)."""
        return [child async for child, _ in self.iter_children(parent, **kwargs)]

    async def walk(
        self,
        parent: Parent = None,
        *,
        max_depth: int | None = None,
        include_attributes: bool | None = False,
        timeout: float | None = None,
    ) -> AsyncIterator[BrowseNode]:
        """Walk the tree depth-first from ``parent`` (None: the roots), lazily.

        Children of a node are requested only when the walk reaches them, and only for nodes
        that have children; ``max_depth`` (0 = only the first level) bounds the descent.
        """
        stack: list[AsyncIterator[tuple[gpb.GalaxyObject, bool]]] = [
            self.iter_children(parent, include_attributes=include_attributes, timeout=timeout)
        ]
        try:
            while stack:
                try:
                    child, has_children = await anext(stack[-1])
                except StopAsyncIteration:
                    stack.pop()
                    continue
                depth = len(stack) - 1
                yield BrowseNode(child, depth, has_children)
                if has_children and (max_depth is None or depth < max_depth):
                    stack.append(
                        self.iter_children(
                            child.gobject_id,
                            include_attributes=include_attributes,
                            timeout=timeout,
                        )
                    )
        finally:
            for iterator in stack:
                await iterator.aclose()  # type: ignore[attr-defined]

    def watch_deploy_events(
        self,
        *,
        last_seen_deploy_time: datetime | None = None,
        resume: bool = True,
        retry_budget_s: float = 30.0,
        on_trouble: Callable[[str | None], None] | None = None,
    ) -> AsyncIterator[gpb.DeployEvent]:
        """Follow Galaxy deploys: the current state first (unless ``last_seen_deploy_time``
        equals it), then one DeployEvent per deploy. Breaking out, ``aclose()`` or cancelling
        the task closes the stream.

        With ``resume`` (the default) a cut or a gateway restart is retried with backoff for
        up to ``retry_budget_s`` seconds (then ``MxGatewayStreamLostError``); authentication
        and permission errors raise at once. Each reconnect asks for what follows the last
        deploy time yielded, so the deploy already yielded is not yielded again, and the
        current state arrives once when deploys happened during the outage (several deploys
        in one outage arrive as that one event). ``sequence`` counts per gateway start: it
        starts again after a gateway restart, which is not a gap; within one connection a
        gap means events were dropped from this subscriber's buffer. ``on_trouble`` hears why
        while reconnecting, and None once the watch is back.
        """
        check_budget("retry_budget_s", retry_budget_s)
        seen: Timestamp | None = None
        if last_seen_deploy_time is not None:
            if last_seen_deploy_time.tzinfo is None:
                raise ValueError("last_seen_deploy_time must be timezone-aware")
            seen = Timestamp()
            seen.FromDatetime(last_seen_deploy_time)
        self._live_channel()
        reconnect = Reconnect("deploy watch", retry_budget_s, on_trouble=on_trouble)
        probe_timeout = min(_PROBE_TIMEOUT_S, retry_budget_s)
        return self._watch(seen, resume, reconnect, probe_timeout)

    async def _watch(
        self, seen: Timestamp | None, resume: bool, reconnect: Reconnect, probe_timeout: float
    ) -> AsyncIterator[gpb.DeployEvent]:
        last: tuple[bool, int] | None = None  # the deploy last yielded: (present, time in ns)
        while True:
            self._live_channel()
            request = gpb.WatchDeployEventsRequest()
            if seen is not None:
                request.last_seen_deploy_time.CopyFrom(seen)
            stream = self._stub.WatchDeployEvents(request, metadata=self._metadata)
            try:
                if reconnect.failing:
                    # A watch whose bootstrap is suppressed is silent until the next deploy,
                    # maybe for days: a unary call on the same channel tells that the gateway
                    # is back, so the budget is not still running at the next cut.
                    await self._unary(
                        "GetLastDeployTime",
                        gpb.GetLastDeployTimeRequest(),
                        probe_timeout,
                    )
                    reconnect.healthy()
                async for event in stream:
                    reconnect.healthy()
                    deploy = (
                        event.time_of_last_deploy_present,
                        event.time_of_last_deploy.ToNanoseconds(),
                    )
                    if deploy == last:
                        continue  # a gateway that did not suppress the bootstrap
                    last = deploy
                    if event.time_of_last_deploy_present:
                        seen = Timestamp()
                        seen.CopyFrom(event.time_of_last_deploy)
                    yield event
                if not resume:
                    return
                reason = "stream ended by the gateway"
            except grpc.aio.AioRpcError as error:
                if not resume or self.closed or error.code() not in TRANSIENT_CODES:
                    raise translate_rpc_error(error, "WatchDeployEvents") from None
                reason = _reason(error.code().name, error.details())
            except (MxGatewayTransportError, MxGatewayTimeoutError) as error:
                if self.closed:
                    raise
                reason = str(error)  # the probe failed: the gateway is not back yet
            finally:
                stream.cancel()
            if not reconnect.failing:
                logger.warning("deploy watch lost (%s); reconnecting", reason)
            await reconnect.wait(reason)


def _reason(code: str, details: str | None) -> str:
    return f"{code}: {details}" if details else code


def _set_root(request: Any, prefix: str, node: Parent, contained_path: str | None) -> None:
    if node is not None and contained_path is not None:
        raise ValueError(f"give either the {prefix} object or {prefix}_contained_path, not both")
    if contained_path is not None:
        setattr(request, f"{prefix}_contained_path", contained_path)
    elif isinstance(node, bool):
        raise TypeError(f"{prefix} must be a gobject id (int) or a tag name (str)")
    elif isinstance(node, int):
        setattr(request, f"{prefix}_gobject_id", node)
    elif isinstance(node, str):
        setattr(request, f"{prefix}_tag_name", node)
    elif node is not None:
        raise TypeError(f"{prefix} must be a gobject id (int) or a tag name (str)")
