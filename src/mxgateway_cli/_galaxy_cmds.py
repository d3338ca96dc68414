"""Galaxy Repository commands (read-only, API key scope ``metadata:read``).

``galaxy-test-connection`` prints ``{"ok": ...}`` (exit 1 when the gateway cannot reach the
Galaxy Repository database); ``galaxy-last-deploy`` the GetLastDeployTimeReply;
``galaxy-discover`` one GalaxyObject per line (lazily, page by page); ``galaxy-browse`` one
``{"depth", "hasChildren", "object"}`` per line; ``galaxy-watch`` one DeployEvent per line until
``--max-events`` or ``--timeout`` (exit 0), reconnecting after cuts and restarts for up to
``--retry-budget`` seconds (then exit 3) without printing a deploy twice.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mxgateway import BrowseNode, DeployEvent, GalaxyObject, MxDataType
from mxgateway.generated import galaxy_repository_pb2 as gpb
from mxgateway_cli._connection import (
    connected,
    connection_parent,
    galaxy_client,
    int32,
    json_parent,
    non_negative_int32,
    positive_int,
)
from mxgateway_cli._exit_codes import EXIT_FAILURE, EXIT_OK, UsageError
from mxgateway_cli._json import message_dict
from mxgateway_cli._output import emit, emit_json, progress
from mxgateway_cli._streams import Trouble, add_retry_budget, consume
from mxgateway_cli._values import parse_time

__all__ = ["add_galaxy_commands"]


async def cmd_test_connection(args: argparse.Namespace) -> int:
    """TestConnection: exit 0 when the Galaxy Repository database is reachable, else 1."""
    async with galaxy_client(args) as galaxy:
        ok = await galaxy.test_connection()
    emit(args.json, {"ok": ok}, "ok" if ok else "the gateway cannot reach the Galaxy Repository")
    return EXIT_OK if ok else EXIT_FAILURE


async def cmd_last_deploy(args: argparse.Namespace) -> int:
    """GetLastDeployTime: the time of the last deploy (``present`` false when none)."""
    async with galaxy_client(args) as galaxy:
        deployed = await galaxy.get_last_deploy_time()
    reply = gpb.GetLastDeployTimeReply(present=deployed is not None)
    if deployed is not None:
        reply.time_of_last_deploy.FromDatetime(deployed)
    data = message_dict(reply)
    emit(args.json, data, data.get("timeOfLastDeploy", "no deploy"))
    return EXIT_OK


def _attribute_text(attribute: Any, indent: str) -> str:
    data_type = attribute.data_type
    type_name = data_type.name if isinstance(data_type, MxDataType) else f"type {data_type}"
    if attribute.is_array:
        type_name += f"[{attribute.array_dimension}]"
    flags = [
        flag
        for flag, on in (("historized", attribute.is_historized), ("alarm", attribute.is_alarm))
        if on
    ]
    extra = f" ({', '.join(flags)})" if flags else ""
    return f"{indent}  .{attribute.attribute_name}: {type_name}{extra}"


def _object_text(obj: GalaxyObject, depth: int = 0) -> str:
    kind = "area" if obj.is_area else f"category {obj.category_id}"
    name = obj.hierarchical_name or obj.contained_name or obj.tag_name
    indent = "  " * depth
    lines = [f"{indent}{obj.tag_name} [{kind}] {name}"]
    lines += [_attribute_text(attribute, indent) for attribute in obj.attributes]
    return "\n".join(lines)


def _say_if_nothing(count: int, args: argparse.Namespace) -> None:
    """A listing that found nothing says so on stderr (stdout stays parseable), naming the
    filters that were given."""
    if count:
        return
    given = [
        f"{flag} {value!r}" if not isinstance(value, bool) else flag
        for name, flag in _FILTER_FLAGS.items()
        if name != "page_size" and (value := _filters(args).get(name))
    ]
    where = f" matches {', '.join(given)}" if given else " was found"
    sys.stderr.write(f"mxgw-py {args.command}: no object{where}\n")


def _root(args: argparse.Namespace) -> tuple[int | str | None, str | None]:
    """The root/parent from --root/--root-id/--root-path (mutually exclusive)."""
    if args.root_id is not None:
        return args.root_id, None
    if args.root is not None:
        return args.root, None
    return None, args.root_path


_FILTER_FLAGS = {
    "category_ids": "--category-id",
    "template_chain_contains": "--template",
    "tag_name_glob": "--tag-glob",
    "alarm_bearing_only": "--alarm-only",
    "historized_only": "--historized-only",
    "page_size": "--page-size",
}


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "category_ids": args.category_id,
        "template_chain_contains": args.template,
        "tag_name_glob": args.tag_glob,
        "include_attributes": False if args.no_attributes else None,
        "alarm_bearing_only": args.alarm_only,
        "historized_only": args.historized_only,
        "page_size": args.page_size,
    }


async def cmd_discover(args: argparse.Namespace) -> int:
    """DiscoverHierarchy: one GalaxyObject per line, page by page."""
    root, path = _root(args)
    async with galaxy_client(args) as galaxy:
        objects = galaxy.iter_hierarchy(
            root=root, root_contained_path=path, max_depth=args.max_depth, **_filters(args)
        )

        def show(obj: GalaxyObject) -> None:
            if args.json:
                emit_json(message_dict(obj))
            else:
                emit(False, None, _object_text(obj))

        count = await consume(objects, show, max_items=None, seconds=None)
    _say_if_nothing(count, args)
    return EXIT_OK


async def cmd_browse(args: argparse.Namespace) -> int:
    """BrowseChildren of a parent (the roots without one); ``--max-depth`` walks below."""
    parent, path = _root(args)

    def show(obj: GalaxyObject, depth: int, has_children: bool) -> None:
        data: dict[str, Any] = {"depth": depth, "hasChildren": has_children}
        if args.json:
            data["object"] = message_dict(obj)
        emit(args.json, data, lambda: _object_text(obj, depth) + (" +" if has_children else ""))

    async with galaxy_client(args) as galaxy:
        if args.max_depth is None:
            children = galaxy.iter_children(parent, parent_contained_path=path, **_filters(args))
            count = await consume(
                children, lambda pair: show(pair[0], 0, pair[1]), max_items=None, seconds=None
            )
            _say_if_nothing(count, args)
        else:
            if path is not None:
                raise UsageError("--max-depth walks from --root or --root-id, not --root-path")
            filters = _filters(args)
            if any(filters[name] for name in _FILTER_FLAGS):
                flags = ", ".join(flag for name, flag in _FILTER_FLAGS.items() if filters[name])
                raise UsageError(f"--max-depth walks the whole tree: {flags} need no --max-depth")
            nodes = galaxy.walk(
                parent,
                max_depth=args.max_depth,
                include_attributes=not args.no_attributes,
            )

            def show_node(node: BrowseNode) -> None:
                show(node.object, node.depth, node.has_children)

            await consume(nodes, show_node, max_items=None, seconds=None)
    return EXIT_OK


async def cmd_watch(args: argparse.Namespace) -> int:
    """WatchDeployEvents: one DeployEvent per line until the bound or the timeout."""
    last_seen = None
    if args.last_seen is not None:
        last_seen = parse_time(args.last_seen, "--last-seen")

    def show(event: DeployEvent) -> None:
        data = message_dict(event)
        emit(
            args.json,
            data,
            lambda: (
                f"#{event.sequence} deploy={data.get('timeOfLastDeploy', '-')} "
                f"objects={event.object_count} attributes={event.attribute_count}"
            ),
        )

    trouble = Trouble("the deploy watch")
    async with galaxy_client(args) as galaxy:
        await connected(galaxy, args)
        progress("watching Galaxy deploys (Ctrl-C to stop)")
        await consume(
            galaxy.watch_deploy_events(
                last_seen_deploy_time=last_seen,
                retry_budget_s=args.retry_budget,
                on_trouble=trouble,
            ),
            show,
            max_items=args.max_events,
            seconds=args.timeout,
        )
        trouble.check()
    return EXIT_OK


def _root_flags(parser: argparse.ArgumentParser, word: str) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument("--root", metavar="TAG", help=f"{word} object by tag name")
    group.add_argument("--root-id", type=int32, metavar="ID", help=f"{word} object by gobject id")
    group.add_argument(
        "--root-path", metavar="PATH", help=f"{word} object by contained path (Area/Obj)"
    )


def _filter_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--category-id", type=int32, action="append", metavar="N", help="only this category"
    )
    parser.add_argument(
        "--template", action="append", metavar="NAME", help="template chain contains NAME"
    )
    parser.add_argument("--tag-glob", metavar="GLOB", help="tag name glob (* and ?)")
    parser.add_argument("--no-attributes", action="store_true", help="leave attributes out")
    parser.add_argument("--alarm-only", action="store_true", help="only alarm-bearing objects")
    parser.add_argument("--historized-only", action="store_true", help="only historized objects")
    parser.add_argument(
        "--page-size",
        type=non_negative_int32,
        default=0,
        metavar="N",
        help="objects per request (0: the gateway's default)",
    )


def add_galaxy_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the ``galaxy-*`` commands to the ``mxgw-py`` parser."""
    unary = [json_parent(), connection_parent()]

    parser = commands.add_parser(
        "galaxy-test-connection",
        help="can the gateway reach the Galaxy Repository database? (exit 1 if not)",
        parents=unary,
    )
    parser.set_defaults(handler=cmd_test_connection)

    parser = commands.add_parser(
        "galaxy-last-deploy", help="time of the last Galaxy deploy", parents=unary
    )
    parser.set_defaults(handler=cmd_last_deploy)

    parser = commands.add_parser(
        "galaxy-discover",
        help="the deployed object hierarchy, one object per line",
        parents=unary,
    )
    _root_flags(parser, "start at this")
    parser.add_argument(
        "--max-depth", type=non_negative_int32, metavar="N", help="levels below the root"
    )
    _filter_flags(parser)
    parser.set_defaults(handler=cmd_discover)

    parser = commands.add_parser(
        "galaxy-browse",
        help="children of an object (or the roots), one per line",
        parents=unary,
    )
    _root_flags(parser, "parent")
    parser.add_argument(
        "--max-depth",
        type=non_negative_int32,
        metavar="N",
        help="walk the tree this many levels below the children (no filters)",
    )
    _filter_flags(parser)
    parser.set_defaults(handler=cmd_browse)

    parser = commands.add_parser(
        "galaxy-watch",
        help="Galaxy deploy events, one per line",
        description=(
            "Print the current deploy state, then one event per deploy, until --max-events "
            "or --timeout (exit 0). A cut or a gateway restart is reconnected (exit 3 after "
            "--retry-budget) from the last deploy printed: none twice, none missed."
        ),
        parents=[json_parent(), connection_parent(stream=True)],
    )
    parser.add_argument("--max-events", type=positive_int, metavar="N", help="stop after N")
    parser.add_argument(
        "--last-seen",
        metavar="ISO8601",
        help="deploy time already known (suppresses the first event when it is current)",
    )
    add_retry_budget(parser, "deploy watch")
    parser.set_defaults(handler=cmd_watch)
