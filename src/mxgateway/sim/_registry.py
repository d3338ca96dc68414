"""The session table: open, find, close (idempotent), the session limit, and the reaper."""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable

from mxgateway.generated import mxaccess_gateway_pb2 as pb
from mxgateway.sim._config import SimConfig
from mxgateway.sim._plant import Plant, now_ns
from mxgateway.sim._session import Session

__all__ = ["SessionLimitError", "SessionRegistry"]

log = logging.getLogger("mxgateway.sim")

_TOMBSTONES = 4096


class SessionLimitError(Exception):
    """OpenSession beyond max_sessions."""


class SessionRegistry:
    """Open sessions by id, and recently closed ids (so a second close is still OK)."""

    def __init__(
        self,
        config: SimConfig,
        plant: Plant,
        *,
        monotonic: Callable[[], float] = time.monotonic,
        clock: Callable[[], int] = now_ns,
    ) -> None:
        self._config = config
        self._plant = plant
        self._monotonic = monotonic
        self._clock = clock
        self.sessions: dict[str, Session] = {}
        self._closed: OrderedDict[str, None] = OrderedDict()

    def open(self, name: str, lease_seconds: int) -> Session:
        """A new READY session, or SessionLimitError."""
        if len(self.sessions) >= self._config.max_sessions:
            raise SessionLimitError(f"session limit reached ({self._config.max_sessions})")
        session_id = f"sim-{secrets.token_hex(12)}"
        session = Session(
            session_id,
            name,
            self._config,
            self._plant,
            lease_seconds=lease_seconds or self._config.lease_seconds,
            monotonic=self._monotonic,
            clock=self._clock,
        )
        self.sessions[session_id] = session
        log.info("session %s opened (%s)", session_id, name or "unnamed")
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
        self.sessions.pop(session.session_id, None)
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
