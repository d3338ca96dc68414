"""The bridge's state and lease in a JetStream key-value bucket (never on local disk).

Keys of bridge ``N`` in the bucket (``mxgw-bridge`` unless configured):

- ``N.state``: JSON: the gateway session, whether the bridge opened it, the last
  worker_sequence JetStream acknowledged (saved about once a second: the stream's own last
  message is what a restart resumes after; this is the fallback when that message is gone),
  the last deploy forwarded;
- ``N.items.<session hex>`` (+ ``.<n>`` chunks): the session's server handle and items
  (handle → reference), zlib-compressed JSON, written before the first message of the session
  is published: a restarted bridge rebuilds the session object from it (and a recovery its
  items), and consumers of the batch layout name the events' tags from it;
- ``N.lease``: who forwards now. The holder renews it (a compare-and-set on its revision)
  every quarter of ``takeover_s``; a standby that sees no new revision for ``takeover_s``
  takes it over with a compare-and-set, so only one of several can win. A holder found dead
  on this host (same host, PID namespace and a PID that no longer exists) is taken over at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
import uuid
import zlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from mxgateway.bridge._errors import BridgeError, BridgeFencedError

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext
    from nats.js.kv import KeyValue

__all__ = ["BridgeState", "Lease", "SessionItems", "StateStore", "open_store"]

logger = logging.getLogger("mxgateway.bridge")

STATE_VERSION = 1
_CHUNK = 512 * 1024  # well under the default max_payload (1 MiB)
_MAX_CHUNKS = 256


@dataclass(frozen=True, slots=True)
class BridgeState:
    """What ``N.state`` holds (see the module docstring)."""

    session_id: str
    owned: bool
    last_sequence: int
    deploy_time: str | None = None

    def to_bytes(self) -> bytes:
        return json.dumps(
            {
                "v": STATE_VERSION,
                "session": self.session_id,
                "owned": self.owned,
                "last": self.last_sequence,
                "deployTime": self.deploy_time,
                "saved": time.time(),
            },
            sort_keys=True,
        ).encode()

    @classmethod
    def from_bytes(cls, data: bytes) -> BridgeState:
        try:
            obj = json.loads(data)
            if obj.get("v") != STATE_VERSION:
                raise ValueError(f"state version {obj.get('v')!r}")
            return cls(
                session_id=str(obj["session"]),
                owned=bool(obj["owned"]),
                last_sequence=int(obj["last"]),
                deploy_time=obj.get("deployTime"),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise BridgeError(f"the bridge's saved state is not readable: {error}") from None


@dataclass(frozen=True, slots=True)
class SessionItems:
    """A session's servers and items, as the gateway numbers them (live handles):
    ``servers`` server handle → client name; ``items`` item handle → (server handle,
    reference)."""

    servers: dict[int, str]
    items: dict[int, tuple[int, str]]

    def names(self) -> dict[int, str]:
        """Item handle → reference (what the decoder fills ``MxEvent.tag`` from)."""
        return {handle: ref for handle, (_, ref) in self.items.items()}

    def to_bytes(self) -> bytes:
        obj = {
            "servers": [[h, name] for h, name in self.servers.items()],
            "items": [[h, s, ref] for h, (s, ref) in self.items.items()],
        }
        return zlib.compress(json.dumps(obj, separators=(",", ":")).encode(), 6)

    @classmethod
    def from_bytes(cls, data: bytes) -> SessionItems:
        try:
            obj = json.loads(zlib.decompress(data))
            return cls(
                servers={int(h): str(name) for h, name in obj["servers"]},
                items={int(h): (int(s), str(ref)) for h, s, ref in obj["items"]},
            )
        except (ValueError, KeyError, TypeError, zlib.error) as error:
            raise BridgeError(f"saved session items are not readable: {error}") from None


def _transient(error: Exception) -> bool:
    from nats.errors import Error as NatsError
    from nats.js.errors import APIError, KeyWrongLastSequenceError, NotFoundError

    if isinstance(error, KeyWrongLastSequenceError | NotFoundError):
        return False
    if isinstance(error, APIError):
        return error.code in (None, 408, 500, 503)
    return isinstance(error, NatsError | TimeoutError | OSError)


class StateStore:
    """The keys of one bridge in the bucket (module docstring)."""

    def __init__(self, kv: KeyValue, name: str) -> None:
        self.kv = kv
        self.name = name

    def _items_key(self, session_id: str) -> str:
        return f"{self.name}.items.{session_id.encode().hex()}"

    async def load_state(self) -> BridgeState | None:
        from nats.js.errors import KeyNotFoundError

        try:
            entry = await self.kv.get(f"{self.name}.state")
        except KeyNotFoundError:
            return None
        if entry.value is None:
            return None
        return BridgeState.from_bytes(entry.value)

    async def save_state(self, state: BridgeState) -> None:
        await self.kv.put(f"{self.name}.state", state.to_bytes())

    async def clear_state(self) -> None:
        from nats.js.errors import KeyNotFoundError

        with contextlib.suppress(KeyNotFoundError):
            await self.kv.delete(f"{self.name}.state")

    async def save_items(self, session_id: str, items: SessionItems) -> None:
        data = items.to_bytes()
        chunks = [data[i : i + _CHUNK] for i in range(0, len(data), _CHUNK)] or [b""]
        if len(chunks) > _MAX_CHUNKS:
            raise BridgeError(f"the session's item list is too large to save ({len(data)} bytes)")
        key = self._items_key(session_id)
        for index, chunk in enumerate(chunks[1:], start=1):
            await self.kv.put(f"{key}.{index}", chunk)
        # The head last: a reader that finds it finds every chunk.
        head = json.dumps({"chunks": len(chunks)}).encode() + b"\n" + chunks[0]
        await self.kv.put(key, head)

    async def load_items(self, session_id: str) -> SessionItems | None:
        from nats.js.errors import KeyNotFoundError

        key = self._items_key(session_id)
        try:
            entry = await self.kv.get(key)
        except KeyNotFoundError:
            return None
        value = entry.value or b""
        line, _, first = value.partition(b"\n")
        try:
            count = int(json.loads(line)["chunks"])
        except (ValueError, KeyError, TypeError):
            raise BridgeError("saved session items are not readable") from None
        parts = [first]
        for index in range(1, min(count, _MAX_CHUNKS)):
            try:
                parts.append((await self.kv.get(f"{key}.{index}")).value or b"")
            except KeyNotFoundError:
                raise BridgeError("saved session items are incomplete") from None
        return SessionItems.from_bytes(b"".join(parts))


async def open_store(js: JetStreamContext, bucket: str, name: str, *, replicas: int) -> StateStore:
    """The bucket (created when missing, with ``replicas``) and bridge ``name``'s keys."""
    from nats.js.api import KeyValueConfig
    from nats.js.errors import BucketNotFoundError

    try:
        kv = await js.key_value(bucket)
    except BucketNotFoundError:
        try:
            kv = await js.create_key_value(
                KeyValueConfig(bucket=bucket, history=1, replicas=replicas)
            )
        except Exception as error:
            # Two bridges starting at once both create it: the second finds it made.
            try:
                kv = await js.key_value(bucket)
            except Exception:
                raise BridgeError(f"cannot create key-value bucket {bucket}: {error}") from error
    return StateStore(kv, name)


def _pid_namespace() -> str | None:
    try:
        return os.readlink("/proc/self/ns/pid")
    except OSError:
        return None


def _holder() -> dict[str, Any]:
    return {
        "holder": uuid.uuid4().hex,
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "pidns": _pid_namespace(),
    }


def _dead_here(holder: dict[str, Any]) -> bool:
    """The holder ran on this host, in this PID namespace, and its process is gone."""
    pidns = _pid_namespace()
    if pidns is None or holder.get("pidns") != pidns:
        return False
    if holder.get("host") != socket.gethostname():
        return False
    pid = holder.get("pid")
    if not isinstance(pid, int) or pid <= 0 or pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # it exists (another user's)
    return False


class Lease:
    """Who forwards for bridge ``name`` (module docstring). ``acquire`` waits as a standby;
    ``keep`` renews until the lease is lost (BridgeFencedError); ``release`` hands it over.

    ``fresh`` says whether the lease was renewed recently enough to act on it: a holder that
    was frozen (a stopped process, a long pause) must not publish on a lease a standby may have
    taken meanwhile, so ``wait_fresh`` holds the publisher until a renewal succeeds (or raises
    BridgeFencedError when it fails because another bridge holds the lease)."""

    def __init__(self, store: StateStore, takeover_s: float) -> None:
        self._kv = store.kv
        self._key = f"{store.name}.lease"
        self.takeover_s = takeover_s
        self.renew_every_s = takeover_s / 4
        # A standby takes over after takeover_s without a new revision, measured from when it
        # saw the last one; acting on a lease renewed longer ago than this is not safe.
        self.fresh_for_s = takeover_s / 2
        self._poll_s = min(0.5, takeover_s / 8)
        self._me = _holder()
        self._revision: int | None = None
        self._renewed_at = float("-inf")
        self._renewed = asyncio.Event()
        self._lost: BridgeFencedError | None = None

    @property
    def holder_id(self) -> str:
        return str(self._me["holder"])

    def _value(self) -> bytes:
        return json.dumps({**self._me, "renewed": time.time()}, sort_keys=True).encode()

    def _mine(self, value: bytes | None) -> bool:
        with contextlib.suppress(ValueError, TypeError):
            return bool(json.loads(value or b"{}").get("holder") == self._me["holder"])
        return False

    def _held(self, revision: int, since: float) -> None:
        self._revision = revision
        self._renewed_at = since
        self._lost = None
        self._renewed.set()

    def fresh(self) -> bool:
        """Renewed within ``fresh_for_s`` (cheap: for every publish)."""
        return time.monotonic() - self._renewed_at < self.fresh_for_s

    async def wait_fresh(self) -> None:
        """Wait until the lease is fresh again; BridgeFencedError once it is lost."""
        while not self.fresh():
            if self._lost is not None:
                raise self._lost
            self._renewed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._renewed.wait(), self._poll_s)

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this bridge holds the lease (True) or ``stop`` is set (False)."""
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        seen_revision: int | None = None
        seen_at = time.monotonic()
        announced = False
        while not stop.is_set():
            started = time.monotonic()
            try:
                self._held(await self._kv.create(self._key, self._value()), started)
                return True
            except KeyWrongLastSequenceError:
                pass
            except Exception as error:
                if not _transient(error):
                    raise
                seen_revision = None  # time unobserved does not count towards a takeover
                await _pause(stop, self._poll_s)
                continue
            try:
                entry = await self._kv.get(self._key)
            except KeyNotFoundError:
                continue  # released meanwhile: create it next round
            except Exception as error:
                if not _transient(error):
                    raise
                seen_revision = None
                await _pause(stop, self._poll_s)
                continue
            now = time.monotonic()
            holder: dict[str, Any] = {}
            with contextlib.suppress(ValueError):
                holder = json.loads(entry.value or b"{}")
            if self._mine(entry.value):
                # Our own write that landed after we gave up on it (a timeout while NATS was
                # away): the lease is ours.
                self._held(entry.revision or 0, now)
                return True
            if entry.revision != seen_revision:
                seen_revision, seen_at = entry.revision, now
                if not announced:
                    logger.warning(
                        "standby: bridge lease held by %s (pid %s on %s); taking over after "
                        "%g s without renewal",
                        holder.get("holder", "?"),
                        holder.get("pid", "?"),
                        holder.get("host", "?"),
                        self.takeover_s,
                    )
                    announced = True
            expired = now - seen_at >= self.takeover_s - self._poll_s
            if expired or _dead_here(holder):
                try:
                    revision = await self._kv.update(self._key, self._value(), last=entry.revision)
                    self._held(revision, now)
                    logger.warning("took over the bridge lease (revision %d)", revision)
                    return True
                except KeyWrongLastSequenceError:
                    continue  # renewed or taken by another standby: watch again
                except Exception as error:
                    if not _transient(error):
                        raise
                    seen_revision = None
            await _pause(stop, self._poll_s)
        return False

    async def keep(self) -> None:
        """Renew the lease until it is lost: raises BridgeFencedError then. NATS being away
        is waited out (the publisher waits too: the lease is not fresh)."""
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        while True:
            # Renew early after a pause longer than planned (a frozen process thawed).
            wait = self._renewed_at + self.renew_every_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            started = time.monotonic()
            try:
                revision = await self._kv.update(self._key, self._value(), last=self._revision)
                self._held(revision, started)
                continue
            except KeyWrongLastSequenceError:
                pass
            except Exception as error:
                if not _transient(error):
                    raise
                logger.warning("renewing the bridge lease failed (%s); trying again", error)
                await asyncio.sleep(self._poll_s)
                continue
            # Refused: someone else's revision, or our own earlier renewal that timed out
            # here and landed later (NATS sends what it buffered on reconnect).
            try:
                entry = await self._kv.get(self._key)
            except KeyNotFoundError:
                entry = None
            except Exception as error:
                if not _transient(error):
                    raise
                await asyncio.sleep(self._poll_s)
                continue
            if entry is not None and self._mine(entry.value):
                self._revision = entry.revision
                continue
            self._lost = BridgeFencedError("another bridge of this name took over the lease")
            self._renewed.set()
            raise self._lost

    async def confirm(self) -> bool:
        """Renew now: True while the lease is this bridge's, False once another holds it."""
        from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError

        while True:
            started = time.monotonic()
            try:
                revision = await self._kv.update(self._key, self._value(), last=self._revision)
                self._held(revision, started)
                return True
            except KeyWrongLastSequenceError:
                try:
                    entry = await self._kv.get(self._key)
                except KeyNotFoundError:
                    return False
                if self._mine(entry.value):
                    self._revision = entry.revision
                    continue
                return False
            except Exception as error:
                if not _transient(error):
                    raise
                await asyncio.sleep(self._poll_s)

    async def release(self) -> None:
        """Give the lease up (a standby takes over at once); best effort."""
        if self._revision is None:
            return
        revision, self._revision = self._revision, None
        self._renewed_at = float("-inf")
        try:
            await self._kv.delete(self._key, last=revision)
        except Exception as error:
            logger.debug("releasing the bridge lease failed: %r", error)


async def _pause(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
