"""Browse the Galaxy and pick tags (blocking): walk the object tree, pick attributes, read them.

    python examples/browse_galaxy_sync.py --plaintext --root Area_001 --attribute 'Level'

browse_galaxy.py with ``mxgateway.sync``: ``walk`` is a plain iterator; leaving the ``for``
loop ends the walk.
"""

from __future__ import annotations

import argparse
import fnmatch
import os
import sys

from mxgateway import BrowseNode, GalaxyAttribute, MxGatewayError, TagValue
from mxgateway.sync import GalaxyRepositoryClient, GatewayClient


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


def browse(args: argparse.Namespace) -> int:
    api_key = os.environ[args.api_key_env] if args.api_key_env else None
    picked: list[str] = []
    with GalaxyRepositoryClient.connect(
        args.endpoint, api_key=api_key, plaintext=args.plaintext
    ) as galaxy:
        # include_attributes: the objects come with their attributes (the tags to pick from).
        nodes = galaxy.walk(args.root, max_depth=args.max_depth, include_attributes=True)
        for visited, node in enumerate(nodes, start=1):
            print(outline(node))
            for attribute in node.object.attributes:
                if wanted(attribute, args) and len(picked) < args.max_tags:
                    picked.append(attribute.full_tag_reference)
            if visited == args.max_objects:
                break  # leaving the loop ends the walk: nothing more is fetched
    print(f"picked {len(picked)} tag(s): {', '.join(picked)}")
    if picked:
        with GatewayClient.connect(
            args.endpoint, api_key=api_key, plaintext=args.plaintext
        ) as client:
            for value in client.read(picked).values():
                print(show(value))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return browse(args)
    except MxGatewayError as error:
        print(f"error: {type(error).__name__}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
