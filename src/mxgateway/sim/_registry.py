"""The session table: open, find, close (idempotent), the session limits, and the reaper.

Two limits on opening: ``max_sessions`` for the whole gateway, ``max_sessions_per_key`` for
each API key (with auth off there is no key to tell clients apart: only the global limit
applies). A lease asked for beyond ``max_lease_seconds`` is granted that maximum. The reaper
closes sessions whose lease ran out (nobody attached, no unary call for a lease), so the slots
of a client that vanished come back.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim._config import SimConfig
from mxgateway.sim._metrics import SimCounters
from mxgateway.sim._plant import Plant, now_ns
from mxgateway.sim._session import Session
from mxgateway.sim._status import quoted

__all__ = ["SessionLimitError", "SessionRegistry"]

log = logging.getLogger("mxgateway.sim")

_TOMBSTONES = 4096


class SessionLimitError(Exception):
    """OpenSession beyond max_sessions (``reason`` "sessions") or max_sessions_per_key
    ("sessions_per_key")."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(text)
        self.reason = reason


class SessionRegistry:
    """Open sessions by id, and recently closed ids (so a second close is still OK)."""

    def __init__(
        self,
        config: SimConfig,
        plant: Plant,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], int] = now_ns,
        counters: SimCounters | None = None,
    ) -> None:
        self._config = config
        self._plant = plant
        self._monotonic = monotonic
        self._clock = clock
        self.counters = counters if counters is not None else SimCounters()
        self.sessions: dict[str, Session] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()
        self._per_owner: dict[int, int] = {}

    def granted_lease(self, asked: int) -> int:
        """The lease a request for ``asked`` seconds gets (0 = the default; capped)."""
        return min(asked or self._config.lease_seconds, self._config.max_lease_seconds)

    def open(self, name: str, lease_seconds: int, owner: int | None = None) -> Session:
        """A new READY session, or SessionLimitError.

        ``owner`` identifies the API key (None with auth off); ``lease_seconds`` (0 = the
        default) is capped at ``max_lease_seconds``.
        """
        config = self._config
        if len(self.sessions) >= config.max_sessions:
            self.counters.refuse("sessions")
            raise SessionLimitError(f"session limit reached ({config.max_sessions})", "sessions")
        if owner is not None and self._per_owner.get(owner, 0) >= config.max_sessions_per_key:
            self.counters.refuse("sessions_per_key")
            raise SessionLimitError(
                f"session limit per API key reached ({config.max_sessions_per_key}): close "
                "sessions of this key, or let their lease run out",
                "sessions_per_key",
            )
        granted = self.granted_lease(lease_seconds)
        if granted < (lease_seconds or config.lease_seconds):
            self.counters.leases_capped += 1
        session_id = f"sim-{secrets.token_hex(12)}"
        session = Session(
            session_id,
            name,
            config,
            self._plant,
            lease_seconds=granted,
            monotonic=self._monotonic,
            clock=self._clock,
            counters=self.counters,
        )
        session.owner = owner
        if owner is not None:
            self._per_owner[owner] = self._per_owner.get(owner, 0) + 1
        self.sessions[session_id] = session
        self.counters.sessions_opened += 1
        log.info("session %s opened (%s)", session_id, quoted(name) if name else "unnamed")
        return session

    def get(self, session_id: str) -> Session | None:
        """The open (READY or FAULTED) session, else None."""
        return self.sessions.get(session_id)

    def was_closed(self, session_id: str) -> bool:
        """True for a session closed recently (CloseSession stays idempotent)."""
        return session_id in self._closed

    def close(self, session: Session, reason: str) -> None:
        """Close and forget ``session``."""
        session.close()
        if self.sessions.pop(session.session_id, None) is not None and session.owner is not None:
            left = self._per_owner.get(session.owner, 0) - 1
            if left > 0:
                self._per_owner[session.owner] = left
            else:
                self._per_owner.pop(session.owner, None)
        self._closed[session.session_id] = None
        while len(self._closed) > _TOMBSTONES:
            self._closed.popitem(last=False)
        log.info("session %s closed (%s)", session.session_id, reason)

    def close_all(self, reason: str) -> None:
        """Close every session (server stop)."""
        for session in list(self.sessions.values()):
            self.close(session, reason)

    def flush_buffered(self, now: int) -> None:
        """The plant's tick: buffered items of every session."""
        for session in list(self.sessions.values()):
            session.flush_buffered(now)

    def reap(self) -> None:
        """Close sessions whose lease or detach grace ran out."""
        now = self._monotonic()
        for session in list(self.sessions.values()):
            if session.expired(now):
                reason = "detach grace over" if session.detached_at is not None else "lease over"
                self.counters.sessions_reaped += 1
                self.close(session, reason)

    async def run_reaper(self) -> None:
        """Check leases several times per detach grace (at most every 0.5 s)."""
        interval = max(0.01, min(0.5, self._config.detach_grace_s / 4))
        while True:
            await asyncio.sleep(interval)
            try:
                self.reap()
            except Exception:
                log.exception("session reaper failed")

    def state_of(self, session: Session) -> pb.SessionState:
        """The session's state."""
        return session.state
