"""Where the NATS servers are and how to authenticate to them, and the connection made from it.

``NatsOptions`` is validated at construction (a URL that is not ``nats://``/``tls://``
``HOST:PORT`` raises ValueError naming it) and never shows a secret: passwords and tokens in
URLs, the token, the password and the contents of credential files are masked in its repr, in
the log and in every error this module raises. Credentials are nats-py's usual ones: user and
password, a token, a ``.creds`` file (JWT + NKey seed) or an NKey seed file; TLS with a CA file
and optionally a client certificate.
"""

from __future__ import annotations

import logging
import re
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from mxgateway.bridge._errors import BridgeError, NatsUnavailableError

if TYPE_CHECKING:
    from nats.aio.client import Client as NATS

__all__ = ["NatsOptions", "connect_nats", "mask_url"]

logger = logging.getLogger("mxgateway.bridge")

_SCHEMES = ("nats", "tls")
_USERINFO = re.compile(r"(?<=://)[^@/\s]*@")
# The longest a list of servers may be (a cluster is 3-7 nodes; a gateway list a few more).
MAX_SERVERS = 64


def mask_url(url: str) -> str:
    """``url`` without its user information (``nats://***@host:4222``)."""
    return _USERINFO.sub("***@", url)


def _check_url(url: str) -> str:
    if not isinstance(url, str) or not url.strip():
        raise ValueError("a NATS server URL is empty")
    url = url.strip()
    if "://" not in url:
        url = "nats://" + url  # nats-py's own shorthand: host:port
    shown = mask_url(url)
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise ValueError(f"not a NATS server URL: {shown!r}") from None
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"NATS server URL {shown!r}: the scheme must be nats:// or tls://")
    if not parts.hostname:
        raise ValueError(f"NATS server URL {shown!r} has no host")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(f"NATS server URL {shown!r}: only scheme://[user:pass@]host[:port]")
    if port == 0:
        raise ValueError(f"NATS server URL {shown!r}: port 0")
    return url


@dataclass(frozen=True)
class NatsOptions:
    """How to reach NATS (validated at construction; secrets never in the repr).

    ``servers`` are ``nats://host:port`` or ``tls://host:port`` URLs (several for a cluster:
    the client fails over between them and learns the others from the cluster). Authenticate
    with ``user``/``password``, a ``token``, a ``creds_file`` or an ``nkey_seed_file``;
    ``ca_file`` (and ``cert_file``/``key_file`` for a client certificate) turn on TLS.
    ``connect_timeout_s`` bounds each connection attempt; once connected the client
    reconnects for as long as it takes (a bridge waits for JetStream rather than give up).
    """

    servers: tuple[str, ...] = ("nats://127.0.0.1:4222",)
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)
    creds_file: str | None = None
    nkey_seed_file: str | None = None
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    name: str = "mxgateway-bridge"
    connect_timeout_s: float = 5.0

    def __post_init__(self) -> None:
        given: Any = self.servers
        servers = (given,) if isinstance(given, str) else tuple(given)
        if not servers:
            raise ValueError("give at least one NATS server URL")
        if len(servers) > MAX_SERVERS:
            raise ValueError(f"at most {MAX_SERVERS} NATS server URLs")
        object.__setattr__(self, "servers", tuple(_check_url(url) for url in servers))
        if self.password is not None and self.user is None:
            raise ValueError("a NATS password needs a user")
        given = [
            name
            for name in ("user", "token", "creds_file", "nkey_seed_file")
            if getattr(self, name) is not None
        ]
        if len(given) > 1:
            raise ValueError(f"give one NATS credential, not {' and '.join(given)}")
        for name in ("creds_file", "nkey_seed_file", "ca_file", "cert_file", "key_file"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise ValueError(f"NATS {name.replace('_', ' ')} {path!r} is not a readable file")
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("a NATS client certificate needs both cert_file and key_file")
        if not 0 < self.connect_timeout_s <= 600:
            raise ValueError("connect_timeout_s must be in (0, 600]")

    def __repr__(self) -> str:
        servers = ", ".join(mask_url(url) for url in self.servers)
        secret = " password=***" if self.password else ""
        secret += " token=***" if self.token else ""
        user = f" user={self.user!r}" if self.user else ""
        creds = f" creds_file={self.creds_file!r}" if self.creds_file else ""
        return f"<NatsOptions [{servers}]{user}{secret}{creds}>"

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret these options hold (for masking in output): passwords and tokens,
        including those written into the URLs."""
        found = [s for s in (self.password, self.token) if s]
        for url in self.servers:
            parts = urlsplit(url)
            if parts.password:
                found.append(parts.password)
            if parts.username and not parts.password:
                found.append(parts.username)  # nats://TOKEN@host: a token in the URL
        return tuple(found)

    def redact(self, text: str) -> str:
        """``text`` with every secret of these options masked."""
        text = _USERINFO.sub("***@", text)
        for secret in sorted(self.secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    def _tls(self) -> ssl.SSLContext | None:
        tls_url = any(url.startswith("tls://") for url in self.servers)
        if self.ca_file is None and self.cert_file is None and not tls_url:
            return None
        context = ssl.create_default_context(cafile=self.ca_file)
        if self.cert_file is not None and self.key_file is not None:
            context.load_cert_chain(self.cert_file, self.key_file)
        return context

    def connect_kwargs(self) -> dict[str, Any]:
        """The keyword arguments of ``nats.connect`` for these options."""
        kwargs: dict[str, Any] = {
            "servers": list(self.servers),
            "name": self.name,
            "connect_timeout": self.connect_timeout_s,
            # Once connected, reconnect for as long as it takes: JetStream being away is
            # waited out (the bridge stops reading the gateway meanwhile).
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "allow_reconnect": True,
            # Publishes made while disconnected are buffered up to this size and sent on
            # reconnect; the bridge's own window is bounded well below it.
            "pending_size": 64 * 1024 * 1024,
        }
        if self.user is not None:
            kwargs["user"] = self.user
            kwargs["password"] = self.password
        if self.token is not None:
            kwargs["token"] = self.token
        if self.creds_file is not None:
            kwargs["user_credentials"] = self.creds_file
        if self.nkey_seed_file is not None:
            kwargs["nkeys_seed"] = self.nkey_seed_file
        tls = self._tls()
        if tls is not None:
            kwargs["tls"] = tls
        return kwargs


Callback = Callable[[], Awaitable[None]]


async def connect_nats(
    options: NatsOptions,
    *,
    disconnected: Callback | None = None,
    reconnected: Callback | None = None,
) -> NATS:
    """Connect to NATS with ``options``.

    Raises NatsUnavailableError (a transport error: exit 3 in the CLI) when no server answers
    within the connect timeout, BridgeError when a server refuses the credentials; neither
    message shows a secret.
    """
    try:
        import nats
        from nats.errors import Error as NatsError
    except ImportError:  # pragma: no cover - the extra is not installed
        raise BridgeError("the bridge needs nats-py: pip install 'mxgateway[nats]'") from None

    async def on_error(error: Exception) -> None:
        # nats-py reports every failed reconnect attempt here; the bridge logs what it does.
        logger.debug("NATS: %s", options.redact(str(error) or type(error).__name__))

    made: list[NATS] = []

    async def on_disconnected() -> None:
        if made and made[0].is_closed:
            return  # closed on purpose
        logger.warning("NATS: disconnected")
        if disconnected is not None:
            await disconnected()

    async def on_reconnected() -> None:
        logger.warning("NATS: reconnected")
        if reconnected is not None:
            await reconnected()

    kwargs = options.connect_kwargs()
    # The first connection tries each server twice, then gives up (exit 3), so a wrong URL or
    # refused credentials are a quick, clear error rather than a hang; once connected the
    # client reconnects for ever (see connect_kwargs).
    kwargs["max_reconnect_attempts"] = 1
    last_error: list[str] = []

    async def first_error(error: Exception) -> None:
        last_error[:] = [options.redact(str(error) or type(error).__name__)]
        await on_error(error)

    try:
        connection = await nats.connect(
            **kwargs,
            error_cb=first_error,
            disconnected_cb=on_disconnected,
            reconnected_cb=on_reconnected,
        )
    except (TimeoutError, OSError, NatsError) as error:
        text = options.redact(str(error) or type(error).__name__)
        if last_error and last_error[0] != text:
            text = f"{text} ({last_error[0]})"
        if "authorization" in text.lower() or "authentication" in text.lower():
            raise BridgeError(f"NATS refused the credentials: {text}") from None
        servers = ", ".join(mask_url(url) for url in options.servers)
        raise NatsUnavailableError(f"cannot connect to NATS at {servers}: {text}") from None
    connection.options["max_reconnect_attempts"] = -1
    made.append(connection)
    return connection
