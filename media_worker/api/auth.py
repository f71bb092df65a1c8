"""Who is asking: HTTP Basic with SIP credentials, operator bearer tokens, and the
lockout after repeated failures.

Pure code: the credential lookup is passed in and the time is an argument, so the rules
are tested without a server. Every secret comparison is constant-time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import secrets
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from media_worker.api.config import LockoutConfig, TokenConfig
from media_worker.provisioning.provision import ha1

REALM = "voicemail"
# Bytes of an Authorization header we look at; anything longer is refused unread.
MAX_CREDENTIALS = 1024
# Compared against when the user does not exist, so that an unknown user costs the same.
_NO_HA1 = "0" * 32


class AuthError(Exception):
    """A request we do not let in; ``status`` is 401 (who are you) or 429 (locked out)."""

    def __init__(self, status: int, reason: str, retry_after: int | None = None) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.retry_after = retry_after


@dataclass(frozen=True)
class User:
    """A SIP user who logged in with their own credentials."""

    user: str
    domain: str

    def __str__(self) -> str:
        return f"{self.user}@{self.domain}"


@dataclass(frozen=True)
class Operator:
    """A bearer token's holder, allowed into the mailboxes of its domains."""

    token: TokenConfig

    def __str__(self) -> str:
        return f"token {self.token.name}"


Principal = User | Operator


@dataclass(frozen=True)
class BasicCredentials:
    user: str
    domain: str
    password: str


def parse_authorization(header: str) -> BasicCredentials | str:
    """``Basic base64(user@domain:password)`` -> its parts, ``Bearer TOKEN`` -> the token.

    Raises AuthError(401) for anything else, naming what was wrong.
    """
    if len(header) > MAX_CREDENTIALS:
        raise AuthError(401, "credentials too long")
    scheme, _, value = header.strip().partition(" ")
    value = value.strip()
    if scheme.lower() == "bearer":
        if not value:
            raise AuthError(401, "empty bearer token")
        return value
    if scheme.lower() != "basic":
        raise AuthError(401, "use HTTP Basic (user@domain) or a bearer token")
    try:
        decoded = base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise AuthError(401, "Basic credentials are not base64 of UTF-8 text") from None
    login, sep, password = decoded.partition(":")
    user, at, domain = login.rpartition("@")
    if not sep or not at or not user or not domain or not password:
        raise AuthError(401, "log in as user@domain with the SIP password")
    return BasicCredentials(user, domain, password)


def match_token(token: str, tokens: tuple[TokenConfig, ...]) -> TokenConfig | None:
    """The configured token whose hash is the SHA-256 of ``token``; every entry is
    compared, in constant time, so timing tells nothing about which (or whether) one
    matched."""
    digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
    found = None
    for candidate in tokens:
        if hmac.compare_digest(digest, candidate.sha256):
            found = candidate
    return found


def check_password(credentials: BasicCredentials, stored_ha1: str | None) -> bool:
    """Whether the password gives the subscriber's HA1 (realm = domain, as Kamailio)."""
    given = ha1(credentials.user, credentials.domain, credentials.password)
    expected = (stored_ha1 or _NO_HA1).lower()
    return hmac.compare_digest(given, expected) and stored_ha1 is not None


@dataclass
class _Entry:
    failures: list[float] = field(default_factory=list)
    locked_until: float = 0.0
    pending: int = 0  # attempts being checked right now (their outcome not known yet)


class FailureTable:
    """Recent failures per key (a user or an address); ``limit`` of them within
    ``window`` seconds lock the key for ``lock_for``. At most ``max_entries`` keys are
    kept, the least recently failed forgotten first."""

    def __init__(self, limit: int, window: float, lock_for: float, max_entries: int) -> None:
        self.limit = limit
        self.window = window
        self.lock_for = lock_for
        self.max_entries = max_entries
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def retry_after(self, key: str, now: float) -> float:
        """Seconds until ``key`` may try again; 0 when it is not locked. Attempts still
        being checked count as failures until they are known: a burst of guesses sent at
        once gets no more tries than the same guesses one after another."""
        entry = self._entries.get(key)
        if entry is None:
            return 0.0
        if entry.locked_until > now:
            return entry.locked_until - now
        recent = sum(1 for t in entry.failures if now - t < self.window)
        return 1.0 if recent + entry.pending >= self.limit else 0.0

    def begin(self, key: str) -> None:
        """An attempt for ``key`` is being checked; ``end`` it with its outcome."""
        entry = self._entries.pop(key, None) or _Entry()
        entry.pending += 1
        self._entries[key] = entry
        self._trim()

    def end(self, key: str, now: float, *, failed: bool) -> None:
        entry = self._entries.get(key)
        if entry is not None:
            entry.pending = max(entry.pending - 1, 0)
        if failed:
            self.failed(key, now)

    def failed(self, key: str, now: float) -> bool:
        """Record a failure; returns whether ``key`` is now locked."""
        entry = self._entries.pop(key, None) or _Entry()
        entry.failures = [t for t in entry.failures if now - t < self.window] + [now]
        if len(entry.failures) >= self.limit:
            entry.locked_until = now + self.lock_for
            entry.failures = []
        self._entries[key] = entry
        self._trim()
        return entry.locked_until > now

    def _trim(self) -> None:
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def succeeded(self, key: str) -> None:
        """The right credentials: forget the failures (attempts still pending stay)."""
        entry = self._entries.get(key)
        if entry is None:
            return
        if entry.pending:
            entry.failures, entry.locked_until = [], 0.0
        else:
            del self._entries[key]


HA1Lookup = Callable[[str, str], Awaitable[str | None]]


class Authenticator:
    """Turns an Authorization header and a source address into a principal."""

    def __init__(
        self, tokens: tuple[TokenConfig, ...], lockout: LockoutConfig, lookup: HA1Lookup | None
    ) -> None:
        self.tokens = tokens
        self.lookup = lookup
        self.users = FailureTable(
            lockout.user_failures, lockout.window, lockout.lock_for, lockout.max_entries
        )
        self.sources = FailureTable(
            lockout.source_failures, lockout.window, lockout.lock_for, lockout.max_entries
        )
        # Credentials that passed recently, as keyed hashes (the key never leaves this
        # process): their requests are still checked against the database every time,
        # but are not held as pending guesses, so a page's parallel requests and many
        # clients behind one address are not taken for a burst of guesses.
        self._key = secrets.token_bytes(32)
        self._good: OrderedDict[bytes, float] = OrderedDict()
        self._good_for = lockout.window
        self._max_good = lockout.max_entries

    async def authenticate(self, header: str | None, source: str, now: float) -> Principal:
        """The principal, or AuthError: 401 for missing or wrong credentials, 429 with
        Retry-After while the source or the user is locked out (even with the right
        password: a guesser must not learn when it found it)."""
        self._refuse_locked(self.sources, source, now)
        if header is None:
            raise AuthError(401, "credentials required")
        try:
            parsed = parse_authorization(header)
        except AuthError:
            self._fail(None, source, now)
            raise
        if isinstance(parsed, str):
            token = match_token(parsed, self.tokens)
            if token is None:
                self._fail(None, source, now)
                raise AuthError(401, "unknown bearer token")
            return Operator(token)
        login = f"{parsed.user}@{parsed.domain}"
        self._refuse_locked(self.users, login, now)
        if self.lookup is None:
            raise AuthError(401, "user logins are not configured (api.kamailio_db)")
        mark = hmac.new(self._key, f"{login}\0{parsed.password}".encode(), "sha256").digest()
        known = now - self._good.get(mark, -math.inf) < self._good_for
        # Unknown credentials are pending guesses while the database is asked, so that
        # guesses sent all at once are held to the limits of guesses sent one by one.
        if not known:
            self.users.begin(login)
            self.sources.begin(source)
        try:
            stored = await self.lookup(parsed.user, parsed.domain)
            ok = check_password(parsed, stored)
        except BaseException:
            if not known:  # no answer is no failed login
                self.users.end(login, now, failed=False)
                self.sources.end(source, now, failed=False)
            raise
        if known:
            if not ok:
                self._good.pop(mark, None)
                self._fail(login, source, now)
        else:
            self.users.end(login, now, failed=not ok)
            self.sources.end(source, now, failed=not ok)
        if not ok:
            raise AuthError(401, "wrong user or password")
        self.users.succeeded(login)
        self._good[mark] = now
        self._good.move_to_end(mark)
        while len(self._good) > self._max_good:
            self._good.popitem(last=False)
        return User(parsed.user, parsed.domain)

    def _fail(self, login: str | None, source: str, now: float) -> None:
        self.sources.failed(source, now)
        if login is not None:
            self.users.failed(login, now)

    @staticmethod
    def _refuse_locked(table: FailureTable, key: str, now: float) -> None:
        wait = table.retry_after(key, now)
        if wait > 0:
            raise AuthError(429, "too many failed logins; try again later", int(wait) + 1)
