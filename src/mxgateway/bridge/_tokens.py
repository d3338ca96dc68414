"""Tag references ⇄ NATS subject tokens, reversibly.

A reference is split at its dots, one subject token per part, so ``Pump_001.Speed`` becomes the
tokens ``Pump_001`` and ``Speed`` and subscribers can filter with NATS wildcards
(``<prefix>.items.Pump_001.*``, ``<prefix>.items.*.Speed``, ``<prefix>.items.>``). Within a part,
ASCII letters, digits, ``_`` and ``-`` stand for themselves; every other character (including
``%`` itself and the wildcards ``*`` and ``>``) is written as ``%XX`` for each byte of its UTF-8
encoding, in upper-case hex. An empty part (``A..B``, a trailing dot) is the token ``%``, which
no escape produces. So ``Tag.Arr[]`` becomes ``Tag.Arr%5B%5D`` and ``Zone 1.Temp`` becomes
``Zone%201.Temp``; ``tag_of_tokens`` inverts it exactly, and a string that no reference maps to
raises ValueError.
"""

from __future__ import annotations

import re

__all__ = ["tag_of_subject", "tag_of_tokens", "tag_tokens"]

_PLAIN = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_PLAIN_PART = re.compile(r"[A-Za-z0-9_-]+")
_TOKEN = re.compile(r"(?:[A-Za-z0-9_-]|%[0-9A-F]{2})+|%")
_HEX = "0123456789ABCDEF"
# The longest reference tag_tokens accepts; NATS's own limit on a subject is the server's
# max_payload-bounded control line (4 KiB by default), so a longer name could never be sent.
MAX_REFERENCE_CHARS = 1024

_cache: dict[str, str] = {}
_CACHE_LIMIT = 200_000


def _part(part: str) -> str:
    if not part:
        return "%"
    if _PLAIN_PART.fullmatch(part):
        return part
    out = []
    for ch in part:
        if ch in _PLAIN:
            out.append(ch)
        else:
            for byte in ch.encode("utf-8"):
                out.append("%" + _HEX[byte >> 4] + _HEX[byte & 15])
    return "".join(out)


def tag_tokens(reference: str) -> str:
    """The subject tokens of a tag reference, dot-separated (see the module docstring)."""
    cached = _cache.get(reference)
    if cached is not None:
        return cached
    if not isinstance(reference, str):
        raise TypeError(f"a tag reference is a str, not {type(reference).__name__}")
    if len(reference) > MAX_REFERENCE_CHARS:
        raise ValueError(f"tag reference longer than {MAX_REFERENCE_CHARS} characters")
    tokens = ".".join(_part(part) for part in reference.split("."))
    if len(_cache) < _CACHE_LIMIT:  # tags repeat for ever: map each once
        _cache[reference] = tokens
    return tokens


def _unpart(token: str) -> str:
    if token == "%":
        return ""
    if "%" not in token:
        return token
    raw = bytearray()
    i = 0
    while i < len(token):
        ch = token[i]
        if ch == "%":
            raw.append(int(token[i + 1 : i + 3], 16))
            i += 3
        else:
            raw.extend(ch.encode("ascii"))
            i += 1
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"subject token {token!r} is not UTF-8 once unescaped") from None
    if _part(text) != token:
        # Escaped what needs no escape (or lower-case hex): not what tag_tokens writes.
        raise ValueError(f"subject token {token!r} is not in canonical form")
    return text


def tag_of_tokens(tokens: str) -> str:
    """The tag reference of dot-separated subject tokens (the inverse of ``tag_tokens``).

    Raises ValueError for tokens ``tag_tokens`` never writes (a bad escape, an empty token).
    """
    parts = tokens.split(".")
    for token in parts:
        if not _TOKEN.fullmatch(token):
            raise ValueError(f"{token!r} is not a subject token of a tag reference")
    return ".".join(_unpart(token) for token in parts)


def tag_of_subject(subject: str, prefix: str) -> str:
    """The tag reference of an items-layout subject ``<prefix>.items.<tokens>``."""
    head = prefix + ".items."
    if not subject.startswith(head):
        raise ValueError(f"{subject!r} is not an items subject under {prefix!r}")
    return tag_of_tokens(subject[len(head) :])
