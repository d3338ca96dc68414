"""Browse the Galaxy and pick tags (async): walk the object tree, pick attributes, read them.

    python examples/browse_galaxy.py --plaintext --root Area_001 --attribute 'Level' --historized

``GalaxyRepositoryClient.walk`` visits the deployed objects depth first and lazily (children
are fetched when the walk reaches them). Every attribute has a full tag reference
(``Tag.Attribute``), which is the name the tag-level calls take: here the picked ones are read
with ``GatewayClient.read``.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys

import mxgateway
from mxgateway import (
    BrowseNode,
    GalaxyAttribute,
    GalaxyRepositoryClient,
    GatewayClient,
    MxGatewayError,
    TagValue,
)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", default="127.0.0.1:5000", help="gateway HOST:PORT")
    parser.add_argument("--plaintext", action="store_true", help="no TLS (the simulator)")
    parser.add_argument("--api-key-env", metavar="NAME", help="env variable holding the API key")
    parser.add_argument("--root", help="tag name to start from (default: the roots)")
    parser.add_argument("--max-depth", type=int, default=2, help="levels below the start")
    parser.add_argument("--max-objects", type=int, default=50, help="stop the walk after N")
    parser.add_argument("--attribute", default="*", help="glob on attribute names to pick")
    parser.add_argument("--historized", action="store_true", help="pick historized ones only")
    parser.add_argument("--max-tags", type=int, default=10, help="pick at most N tags")
    return parser.parse_args(argv)


def outline(node: BrowseNode) -> str:
    """The object indented by its depth, with its kind and attribute count."""
    obj = node.object
    kind = "area" if obj.is_area else "/".join(obj.template_chain[-1:]) or "object"
    more = " +" if node.has_children else ""
    return f"{'  ' * node.depth}{obj.tag_name} [{kind}] ({len(obj.attributes)} attributes){more}"


def wanted(attribute: GalaxyAttribute, args: argparse.Namespace) -> bool:
    return fnmatch.fnmatchcase(attribute.attribute_name, args.attribute) and (
        attribute.is_historized or not args.historized
    )


def show(value: TagValue) -> str:
    if not value.ok:
        return f"{value.tag}: error: {value.error}"
    return f"{value.tag} = {value.value!r} (quality {value.quality})"


async def browse(args: argparse.Namespace) -> int:
    api_key = os.environ[args.api_key_env] if args.api_key_env else None
    picked: list[str] = []
    async with await GalaxyRepositoryClient.connect(
        args.endpoint, api_key=api_key, plaintext=args.plaintext
    ) as galaxy:
        visited = 0
        # include_attributes: the objects come with their attributes (the tags to pick from).
        async for node in galaxy.walk(args.root, max_depth=args.max_depth, include_attributes=True):
            print(outline(node))
            for attribute in node.object.attributes:
                if wanted(attribute, args) and len(picked) < args.max_tags:
                    picked.append(attribute.full_tag_reference)
            visited += 1
            if visited == args.max_objects:
                break  # leaving the loop ends the walk: nothing more is fetched
    print(f"picked {len(picked)} tag(s): {', '.join(picked)}")
    if picked:
        async with await GatewayClient.connect(
            args.endpoint, api_key=api_key, plaintext=args.plaintext
        ) as client:
            for value in (await client.read(picked)).values():
                print(show(value))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return mxgateway.run(browse(args))
    except MxGatewayError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
