"""Output of every command: deterministic JSON, plain text, errors, progress, secret masking.

JSON is sorted-key and compact, one object per line, so the same input gives the same bytes.
Errors are ``{"error": ..., "type": "error"}`` on stdout with ``--json``, else text on stderr.
Every error text goes through :func:`redact`, so an API key never reaches any output.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from typing import Any

import msgspec

from mxgateway._options import mask_api_key

__all__ = [
    "emit",
    "emit_error",
    "emit_json",
    "progress",
    "redact",
    "register_secret",
    "text_line",
]

# Built once and reused (msgspec's advice); order="sorted" makes the bytes deterministic.
_ENCODER = msgspec.json.Encoder(order="sorted")

# Anything shaped like a gateway key (mxgw_<keyId>_<secret>) is masked in error texts, even
# when it was never given as a key (e.g. pasted as a stray argument).
_KEY_SHAPE = re.compile(r"mxgw_[A-Za-z0-9-]+_[A-Za-z0-9_\-]+")
_SECRETS: set[str] = set()


def register_secret(secret: str) -> None:
    """Remember a secret (the API key in use) so that :func:`redact` masks it."""
    if secret:
        _SECRETS.add(secret)


def redact(text: str) -> str:
    """``text`` with every registered secret and every key-shaped word masked."""
    for secret in sorted(_SECRETS, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, mask_api_key(secret) or "***")
    return _KEY_SHAPE.sub(lambda match: mask_api_key(match.group(0)) or "***", text)


def emit_json(obj: Any) -> None:
    """Write ``obj`` as one line of sorted-key JSON to stdout."""
    out = sys.stdout.buffer
    out.write(_ENCODER.encode(obj))
    out.write(b"\n")
    out.flush()


def _scalar_text(value: Any) -> str:
    if isinstance(value, dict | list):
        return _ENCODER.encode(value).decode()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def text_line(data: dict[str, Any]) -> str:
    """A dict as one human line ``key=value ...`` (sorted keys; nested values as JSON)."""
    return " ".join(f"{key}={_scalar_text(data[key])}" for key in sorted(data))


def emit(json_mode: bool, data: Any, text: str | Callable[[], str] | None = None) -> None:
    """Print a result: ``data`` as JSON with ``--json``, else ``text`` (default: a
    ``key=value`` line of ``data``) on stdout."""
    if json_mode:
        emit_json(data)
        return
    if text is None:
        line = text_line(data) if isinstance(data, dict) else _scalar_text(data)
    else:
        line = text() if callable(text) else text
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def emit_error(json_mode: bool, prog: str, message: str) -> None:
    """Report an error: JSON on stdout with ``--json``, else ``prog: error: ...`` on stderr."""
    message = redact(message)
    if json_mode:
        emit_json({"error": message, "type": "error"})
    else:
        sys.stderr.write(f"{prog}: error: {message}\n")
        sys.stderr.flush()


def progress(message: str) -> None:
    """A progress note on stderr, only when stderr is a terminal (never in pipes or logs)."""
    stream = sys.stderr
    if stream.isatty():
        stream.write(message + "\n")
        stream.flush()
