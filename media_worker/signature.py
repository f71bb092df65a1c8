"""The worker's side of the signed proxy<->worker hop (``kemi.signing`` is the construction).

The proxy signs every request it sends a worker over (Call-ID, P-App-Name, P-App-Param);
with a secret configured the worker serves only what verifies, so neither a local process
nor a phone that makes the proxy relay to the worker's address can pose as the proxy. The
worker signs its PUBLISHes over (Call-ID, Request-URI, body), and the proxy checks them
the same way. Pure: the time is an argument.
"""

from __future__ import annotations

from kemi.signing import HEADER, MAX_AGE, SignatureError, sign, verify
from media_worker.sip.message import Request

# Requests the proxy sends without a signature, and that create nothing: Kamailio's
# dispatcher probes and the CANCEL tm builds itself (it matches a signed INVITE's branch).
UNSIGNED_METHODS = frozenset({"OPTIONS", "CANCEL", "ACK"})


def _header(request: Request, name: str) -> str:
    return (request.headers.get(name) or "").strip()


def request_fields(request: Request) -> tuple[str, str, str]:
    """What the proxy's signature covers: the header bodies as sent ("" when absent)."""
    return (
        _header(request, "Call-ID"),
        _header(request, "P-App-Name"),
        _header(request, "P-App-Param"),
    )


def check_request(secret: str, request: Request, now: float, max_age: int = MAX_AGE) -> None:
    """Nothing if ``request`` carries a valid, fresh signature; else SignatureError."""
    verify(secret, request.headers.get(HEADER), request_fields(request), now, max_age)


def refusal_reason(error: SignatureError) -> str:
    """The reason phrase of the 403: "Unsigned request", "Stale signature", ..."""
    text = str(error)
    return text[:1].upper() + text[1:]


def publish_fields(request: Request) -> tuple[str, str, str]:
    return (
        _header(request, "Call-ID"),
        request.uri,
        request.body.decode("utf-8", "surrogateescape"),
    )


def sign_publish(secret: str, request: Request, now: float) -> None:
    """Add (or replace) the P-App-Signature of a PUBLISH we send."""
    request.headers.set(HEADER, sign(secret, int(now), publish_fields(request)))


__all__ = [
    "HEADER",
    "UNSIGNED_METHODS",
    "SignatureError",
    "check_request",
    "publish_fields",
    "refusal_reason",
    "request_fields",
    "sign_publish",
]
