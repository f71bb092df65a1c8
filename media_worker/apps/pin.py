"""Mailbox PINs: stored hashed (scrypt, standard library), compared in constant time, and
locked after repeated failures whatever the caller.

Pure code: the lockout keeps its own record of failures and takes the time as an
argument; where the record lives (the message store, for all workers) is the caller's
business.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass, field

SCHEME = "scrypt"
N, R, P = 2**14, 8, 1  # about 16 MiB and 50 ms a check: slow to guess, fine per call
MIN_DIGITS, MAX_DIGITS = 4, 16


class PinError(ValueError):
    """A PIN that cannot be set (length, characters) or a stored hash that cannot be read."""


def check_new_pin(pin: str) -> str:
    if not pin.isascii() or not pin.isdigit():
        raise PinError("a PIN is made of the digits 0-9")
    if not MIN_DIGITS <= len(pin) <= MAX_DIGITS:
        raise PinError(f"a PIN has {MIN_DIGITS} to {MAX_DIGITS} digits")
    return pin


def hash_pin(pin: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` (hex), for storing."""
    check_new_pin(pin)
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(pin.encode(), salt=salt, n=N, r=R, p=P, dklen=32)
    return f"{SCHEME}${N}${R}${P}${salt.hex()}${digest.hex()}"


def verify_pin(pin: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != SCHEME:
            raise ValueError(scheme)
        expected = bytes.fromhex(digest)
        actual = hashlib.scrypt(
            pin.encode(),
            salt=bytes.fromhex(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
        )
    except ValueError as exc:
        raise PinError(f"stored PIN hash is unreadable: {exc}") from None
    return hmac.compare_digest(actual, expected)


@dataclass
class Lockout:
    """After ``max_failures`` within ``window`` seconds, refuse PIN entry for ``lock_for``."""

    max_failures: int = 10
    window: float = 3600.0
    lock_for: float = 900.0
    failures: list[float] = field(default_factory=list)  # times of recent failures
    locked_until: float = 0.0

    def locked(self, now: float) -> bool:
        return now < self.locked_until

    def failed(self, now: float) -> bool:
        """Record a failure; returns whether the mailbox is now locked."""
        self.failures = [t for t in self.failures if now - t < self.window] + [now]
        if len(self.failures) >= self.max_failures:
            self.locked_until = now + self.lock_for
            self.failures = []
        return self.locked(now)

    def succeeded(self) -> None:
        self.failures = []
