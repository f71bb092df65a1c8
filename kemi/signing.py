"""Signatures of the proxy<->worker hop: one construction for the KEMI script, the native
cfg and the worker.

The proxy signs each request it sends to a worker, and the worker each PUBLISH it sends to
the proxy, with a secret both sides share. The signature travels in its own header::

    P-App-Signature: t=1764625504; sig=<64 lowercase hex digits>

over the text ``"<t>|<field 1>|<field 2>|..."``: for a request to a worker the fields are
Call-ID, P-App-Name and P-App-Param (an absent header is an empty field); for a PUBLISH,
Call-ID, the Request-URI and the body. Only the last field may contain ``|``, so the text
reads one way only; :func:`signed_text` refuses any other.

The hash is keyed SHA-256 applied twice, ``H(k ":" hex(H(k ":" text)))``: Kamailio 5.6's
native cfg has no HMAC primitive but computes this with ``{s.sha256}``, and the outer hash
over a fixed-length input leaves nothing to extend. Standard library only (Kamailio's
interpreter loads this module); pure: the time is an argument.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from dataclasses import dataclass

HEADER = "P-App-Signature"
MAX_AGE = 30  # seconds a signature stays valid either side of its time stamp
MIN_SECRET_LENGTH = 16
# A secret must sit unquoted-safe in a cfg string define and in YAML.
SECRET_PATTERN = re.compile(rf"[A-Za-z0-9._~+/=-]{{{MIN_SECRET_LENGTH},256}}")
_HEADER_PATTERN = re.compile(r"\s*t\s*=\s*([0-9]{1,12})\s*;\s*sig\s*=\s*([0-9a-f]{64})\s*")


class SignatureError(ValueError):
    """A signature is missing, malformed, stale or wrong; the text says which."""


def check_secret(secret: str) -> str:
    """The secret itself, or ValueError naming what is wrong with it."""
    if not SECRET_PATTERN.fullmatch(secret):
        raise ValueError(
            f"a signing secret is {MIN_SECRET_LENGTH} to 256 characters of "
            "A-Z a-z 0-9 . _ ~ + / = -"
        )
    return secret


def signed_text(timestamp: int, fields: Sequence[str]) -> str:
    """The text a signature covers; ValueError if a field but the last holds ``|``."""
    if any("|" in field for field in fields[:-1]):
        raise ValueError("only the last signed field may contain '|'")
    return "|".join([str(timestamp), *fields])


def keyed_hash(secret: str, text: str) -> str:
    """hex(H(k ":" hex(H(k ":" text)))) with H = SHA-256."""
    inner = hashlib.sha256(f"{secret}:{text}".encode("utf-8", "surrogateescape")).hexdigest()
    return hashlib.sha256(f"{secret}:{inner}".encode()).hexdigest()


def sign(secret: str, timestamp: int, fields: Sequence[str]) -> str:
    """The value of a P-App-Signature header."""
    return f"t={timestamp}; sig={keyed_hash(secret, signed_text(timestamp, fields))}"


@dataclass(frozen=True)
class Signature:
    timestamp: int
    digest: str


def parse(value: str) -> Signature:
    match = _HEADER_PATTERN.fullmatch(value)
    if match is None:
        raise SignatureError("malformed signature")
    return Signature(int(match.group(1)), match.group(2))


def verify(
    secret: str, value: str | None, fields: Sequence[str], now: float, max_age: int = MAX_AGE
) -> Signature:
    """The signature if ``value`` signs ``fields`` and is fresh at ``now``, else SignatureError."""
    if value is None:
        raise SignatureError("unsigned request")
    signature = parse(value)
    if abs(now - signature.timestamp) > max_age:
        raise SignatureError("stale signature")
    try:
        text = signed_text(signature.timestamp, fields)
    except ValueError as exc:
        raise SignatureError("unsignable field") from exc
    if not hmac.compare_digest(keyed_hash(secret, text), signature.digest):
        raise SignatureError("bad signature")
    return signature
