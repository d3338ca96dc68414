"""Tag lists on the command line: repeated ``--item REF`` for a few, ``--items-file PATH`` (or
``-`` for stdin) for any number. The file is UTF-8 (a byte-order mark is skipped, as
PowerShell writes one), one reference a line; blank lines and ``#`` comments are skipped.
Parsing is linear: 100,000 references take a fraction of a second."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from mxgateway_cli._exit_codes import UsageError

__all__ = ["add_item_flags", "items_of", "read_items"]


def add_item_flags(parser: argparse.ArgumentParser, *, what: str = "a tag") -> None:
    """``--item REF`` (repeatable) and ``--items-file PATH``; ``items_of`` reads both."""
    parser.add_argument(
        "--item", action="append", default=[], metavar="REF", help=f"{what} (repeat for more)"
    )
    parser.add_argument(
        "--items-file",
        metavar="PATH",
        help="references, one a line (UTF-8; blank lines and # comments skipped); - for stdin",
    )


def read_items(text: str, where: str) -> list[str]:
    """The references of ``text`` (one a line; blank lines and ``#`` comments skipped)."""
    items = []
    for number, line in enumerate(text.splitlines(), start=1):
        reference = line.strip()
        if not reference or reference.startswith("#"):
            continue
        if any(ch < " " for ch in reference):
            raise UsageError(f"{where} line {number}: a reference has control characters")
        items.append(reference)
    return items


def items_of(args: argparse.Namespace, *, required: bool = True) -> list[str]:
    """Every ``--item`` and then every reference of ``--items-file``, in order."""
    items = list(args.item or [])
    path = getattr(args, "items_file", None)
    if path is not None:
        if path == "-":
            data = sys.stdin.buffer.read()
        else:
            try:
                data = Path(path).read_bytes()
            except OSError as exc:
                raise UsageError(f"--items-file: cannot read {path!r}: {exc.strerror}") from None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise UsageError(
                f"--items-file: not UTF-8 (byte {exc.start}); save it as UTF-8"
            ) from None
        items += read_items(text, "--items-file")
    if required and not items:
        raise UsageError("give at least one --item REF, or --items-file PATH")
    return items
