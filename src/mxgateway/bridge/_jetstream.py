"""The stream the bridge writes to: created when missing, checked when present."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from mxgateway.bridge._errors import BridgeError

if TYPE_CHECKING:
    from nats.js.client import JetStreamContext

__all__ = ["ensure_stream"]

logger = logging.getLogger("mxgateway.bridge")

# JetStream's default de-duplication window; the bridge's resynchronisation never relies on a
# longer one (it reads the stream's tail instead).
DUPLICATE_WINDOW_S = 120.0


async def ensure_stream(
    js: JetStreamContext,
    name: str,
    prefix: str,
    *,
    replicas: int = 1,
    max_age_s: float | None = None,
    max_bytes: int | None = None,
) -> None:
    """Create stream ``name`` holding ``prefix.>`` (file storage, ``replicas`` copies, the
    limits given; old messages discarded first), or check that the existing one holds it."""
    from nats.js.api import DiscardPolicy, StorageType, StreamConfig
    from nats.js.errors import NotFoundError

    subject = prefix + ".>"
    try:
        info = await js.stream_info(name)
    except NotFoundError:
        config = StreamConfig(
            name=name,
            description="MXAccess Gateway events forwarded by mxgw-py bridge",
            subjects=[subject],
            storage=StorageType.FILE,
            num_replicas=replicas,
            max_age=max_age_s,
            max_bytes=max_bytes,
            discard=DiscardPolicy.OLD,
            duplicate_window=DUPLICATE_WINDOW_S,
            allow_direct=True,
        )
        try:
            await js.add_stream(config)
            logger.info("created stream %s (%s, %d replica(s))", name, subject, replicas)
            return
        except Exception as error:
            try:  # another bridge (the standby) created it at the same moment
                info = await js.stream_info(name)
            except Exception:
                raise BridgeError(f"cannot create stream {name}: {error}") from error
    subjects = list(info.config.subjects or [])
    if subject not in subjects and not any(s in (">", prefix + ".>") for s in subjects):
        raise BridgeError(
            f"stream {name} exists but does not hold {subject} (it holds "
            f"{', '.join(subjects) or 'no subjects'}): give another --stream or --subject-prefix"
        )
    if info.config.num_replicas and info.config.num_replicas != replicas:
        logger.info(
            "stream %s exists with %d replica(s); --replicas %d applies to new streams only",
            name,
            info.config.num_replicas,
            replicas,
        )
