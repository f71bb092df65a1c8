"""The ``api:`` section of the worker's YAML file, as ``voicemail api`` takes it.

Loaded by ``media_worker.config`` like every other section (unknown keys are errors,
each error names its key); the checks here run once, at start-up.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from media_worker.config_errors import ConfigError
from storage.errors import BadIdentity
from storage.identity import check_greeting_type

ALL_DOMAINS = "*"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
_TOKEN_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def _error(message: str) -> ConfigError:
    return ConfigError(message)


@dataclass(frozen=True)
class TokenConfig:
    """An operator's bearer token, kept only as the SHA-256 of the token text."""

    name: str  # for logs: which token acted
    sha256: str  # hex digest of the token, e.g. from `printf %s TOKEN | sha256sum`
    domains: str | tuple[str, ...] = ()  # "*" for every domain, else the SIP domains

    def check(self, key: str) -> None:
        if not _TOKEN_NAME.fullmatch(self.name):
            raise _error(f"{key}.name: 1 to 64 of A-Z a-z 0-9 . _ -, got {self.name!r}")
        if not _SHA256_HEX.fullmatch(self.sha256):
            raise _error(f"{key}.sha256: expected 64 lower-case hex digits (sha256sum output)")
        if isinstance(self.domains, str):
            if self.domains != ALL_DOMAINS:
                raise _error(f'{key}.domains: expected "*" or a list of domains')
        elif not self.domains:
            raise _error(f'{key}.domains: empty: list the domains, or "*" for all')

    def allows(self, domain: str) -> bool:
        return self.domains == ALL_DOMAINS or domain in self.domains


@dataclass(frozen=True)
class LockoutConfig:
    """Failed logins: ``user_failures`` for one user or ``source_failures`` from one
    address within ``window`` seconds lock that user or address out for ``lock_for``."""

    user_failures: int = 5
    source_failures: int = 20
    window: float = 300.0
    lock_for: float = 300.0
    max_entries: int = 100_000  # users and addresses remembered at once (memory bound)

    def check(self, key: str) -> None:
        for name in ("user_failures", "source_failures", "max_entries"):
            if getattr(self, name) < 1:
                raise _error(f"{key}.{name}: must be at least 1")
        for name in ("window", "lock_for"):
            if not 0 < getattr(self, name) <= 86400:
                raise _error(f"{key}.{name}: must be above 0 and at most 86400 seconds")


@dataclass(frozen=True)
class GreetingLimits:
    """What a greeting upload may be: the request body and the normalised audio."""

    max_bytes: int = 10 * 1024 * 1024
    max_seconds: float = 120.0
    types: tuple[str, ...] = ("vm",)  # greeting types the mailbox resource lists

    def check(self, key: str) -> None:
        if not 1024 <= self.max_bytes <= 200 * 1024 * 1024:
            raise _error(f"{key}.max_bytes: {self.max_bytes} is outside 1024..209715200")
        if not 0 < self.max_seconds <= 3600:
            raise _error(f"{key}.max_seconds: must be above 0 and at most 3600")
        for index, typ in enumerate(self.types):
            try:
                check_greeting_type(typ)
            except BadIdentity as exc:
                raise _error(f"{key}.types[{index}]: {exc}") from None


@dataclass(frozen=True)
class ApiConfig:
    """``api:``: where `voicemail api` listens and whom it lets in."""

    listen: str = "127.0.0.1"
    port: int = 8080
    public_url: str | None = None  # base URL users reach us at (email links); None: relative
    tls_certfile: str | None = None  # PEM files; both set: HTTPS only
    tls_keyfile: str | None = None
    kamailio_db: str | None = None  # sqlite:///PATH or postgresql://...; None: tokens only
    forwarded_allow_ips: tuple[str, ...] = ()  # proxies whose X-Forwarded-For we believe
    tokens: tuple[TokenConfig, ...] = ()
    lockout: LockoutConfig = field(default_factory=LockoutConfig)
    greetings: GreetingLimits = field(default_factory=GreetingLimits)
    max_conversions: int = 2  # MP3/Opus encodings at once (CPU bound)
    max_connections: int = 1000  # connections and requests at once; beyond, 503

    def check(self, key: str) -> None:
        try:
            ipaddress.ip_address(self.listen)
        except ValueError:
            raise _error(f"{key}.listen: not an IP address: {self.listen!r}") from None
        if not 0 <= self.port <= 65535:
            raise _error(f"{key}.port: port {self.port} out of range")
        if self.public_url is not None:
            parts = urlsplit(self.public_url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise _error(f"{key}.public_url: expected http(s)://host[:port][/path]")
            if parts.query or parts.fragment:
                raise _error(f"{key}.public_url: must not have a query or fragment")
        if (self.tls_certfile is None) != (self.tls_keyfile is None):
            raise _error(f"{key}: tls_certfile and tls_keyfile go together")
        for name in ("tls_certfile", "tls_keyfile"):
            path = getattr(self, name)
            if path is not None and not Path(path).is_file():
                raise _error(f"{key}.{name}: no such file: {path}")
        # The URL's full check is the provisioning code's (media_worker.api.accounts
        # runs it at start-up); this one keeps `voicemail worker --check` honest.
        if self.kamailio_db is not None and not re.match(
            r"(sqlite|postgres|postgresql)://", self.kamailio_db, re.IGNORECASE
        ):
            raise _error(
                f"{key}.kamailio_db: expected sqlite:///PATH or postgresql://..., "
                f"got {self.kamailio_db!r}"
            )
        for index, address in enumerate(self.forwarded_allow_ips):
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise _error(
                    f"{key}.forwarded_allow_ips[{index}]: not an address: {address!r}"
                ) from None
        names = [token.name for token in self.tokens]
        for index, name in enumerate(names):
            if name in names[:index]:
                raise _error(f"{key}.tokens[{index}].name: {name!r} is used twice")
        if self.kamailio_db is None and not self.tokens:
            raise _error(f"{key}: neither kamailio_db nor tokens: nobody could log in")
        if not 1 <= self.max_conversions <= 64:
            raise _error(f"{key}.max_conversions: must be 1..64")
        if self.max_connections < 1:
            raise _error(f"{key}.max_connections: must be at least 1")

    @property
    def scheme(self) -> str:
        return "https" if self.tls_certfile else "http"
