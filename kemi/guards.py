"""What the home proxy refuses before it holds anything for a caller, pure.

Oversized INVITE bodies and SDPs with many media sections (each m= line costs rtpengine
ports), preloaded routes toward the media workers, domains written with a trailing dot,
and the counting of failed authentications that bans a source. The KEMI script gathers
the facts and acts on the verdicts. Standard library only (runs inside Kamailio).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from dataclasses import dataclass

# auth_check results that mean a wrong password or an unknown user (auth's
# auth_result_t): counted toward a ban. A stale or reused nonce and missing credentials
# are part of a normal exchange and never count.
AUTH_INVALID_PASSWORD, AUTH_USER_UNKNOWN = -2, -3
COUNTED_AUTH_FAILURES = (AUTH_INVALID_PASSWORD, AUTH_USER_UNKNOWN)

_MEDIA_LINE = re.compile(r"^m=", re.MULTILINE)
_URI_HOST = re.compile(r"^(?P<head>[a-zA-Z]+:(?:[^@;?]*@)?)(?P<host>[^:;?>]+)(?P<tail>.*)$")


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str


BODY_TOO_LARGE = Refusal(488, "Body too large")
TOO_MANY_MEDIA = Refusal(488, "Too many media streams")
UNREADABLE_BODY = Refusal(488, "Unreadable body")
ROUTE_TO_WORKER = Refusal(403, "No route to a media worker")
ROUTE_THROUGH_US = Refusal(403, "No relaying through this proxy")
TOO_MANY_CALLS = Refusal(486, "Too many calls from your address")


def media_sections(body: str) -> int:
    """The number of m= lines of an SDP (of any body: a multipart one counts too)."""
    return len(_MEDIA_LINE.findall(body))


def body_refusal(size: int, body: str | None, *, max_body: int, max_media: int) -> Refusal | None:
    """An INVITE's body against the limits; ``body`` None: it was not readable as text."""
    if size > max_body:
        return BODY_TOO_LARGE
    if body is None:
        return UNREADABLE_BODY
    if media_sections(body) > max_media:
        return TOO_MANY_MEDIA
    return None


def split_route_set(values: Sequence[str]) -> list[str]:
    """The URIs of Route header values (several per header, comma separated)."""
    uris: list[str] = []
    for value in values:
        depth, start = 0, 0
        for index, char in enumerate(value + ","):
            if char == "<":
                depth += 1
            elif char == ">":
                depth = max(depth - 1, 0)
            elif char == "," and depth == 0:
                part = value[start:index].strip()
                start = index + 1
                if part:
                    uris.append(part[part.find("<") + 1 : part.find(">")] if "<" in part else part)
    return uris


@dataclass(frozen=True)
class Hop:
    """A URI of an initial request's R-URI or Route set, as the proxy sees it."""

    myself: bool
    worker: bool


def route_refusal(ruri: Hop, routes: Sequence[Hop]) -> Refusal | None:
    """An initial request from outside the dispatcher set: its R-URI and Route set may
    point neither at a media worker nor through this proxy to somewhere else."""
    if ruri.worker or any(hop.worker for hop in routes):
        return ROUTE_TO_WORKER
    seen_myself = False
    for hop in routes:
        if hop.myself:
            seen_myself = True
        elif seen_myself:
            return ROUTE_THROUGH_US
    return None


def without_trailing_dot(uri: str) -> str:
    """``sip:alice@lab.example.:5060`` -> ``sip:alice@lab.example:5060``: a fully
    qualified name with its root dot is the same domain (RFC 1034)."""
    match = _URI_HOST.match(uri)
    if match is None or not match.group("host").endswith("."):
        return uri
    host = match.group("host").rstrip(".")
    return f"{match.group('head')}{host or '.'}{match.group('tail')}"


def has_address_host(uri: str) -> bool:
    """The URI names its host by an IP address (no DNS needed to compare it)."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    hostport = re.split(r"[;?>]", rest.rpartition("@")[2], maxsplit=1)[0].strip()
    if hostport.startswith("["):
        host = hostport[1 : hostport.find("]")] if "]" in hostport else ""
    else:
        host = hostport.partition(":")[0]
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def domain(host: str) -> str:
    """A domain as compared and looked up: without its trailing dot."""
    return host.rstrip(".") or host


def auth_failure_keys(source: str, user: str) -> tuple[str, str]:
    """The 'authfail' htable keys of a failure from ``source`` as ``user``."""
    return (f"ip:{source}", f"user:{user}")


def counts_as_failure(auth_result: int) -> bool:
    return auth_result in COUNTED_AUTH_FAILURES


def ban_due(source_failures: int, user_failures: int, limit: int) -> bool:
    """After counting this failure: does the source address get banned?"""
    return source_failures >= limit or user_failures >= limit


# ----- in-dialog targets of a call to a phone -----

_DEFAULT_PORTS = {"sip": 5060, "sips": 5061}
_ASCII_NUMBER = re.compile(r"[0-9]{1,10}")


def ascii_number(text: str, high: int) -> int | None:
    """``text`` as a number in 0..``high`` when it is ASCII digits only, else None
    (``str.isdigit()`` takes ``²`` that ``int()`` refuses, and ``int()`` takes ``٣``)."""
    if _ASCII_NUMBER.fullmatch(text) is None:
        return None
    value = int(text)
    return value if value <= high else None


def contact_uri(value: str | None) -> str | None:
    """The URI of a Contact header body's first contact; None without one (or ``*``)."""
    if not value:
        return None
    first = value.strip()
    if "<" in first and ">" in first:
        uri = first[first.find("<") + 1 : first.find(">")].strip()
    else:
        uri = re.split(r"[;,]", first, maxsplit=1)[0].strip()
    return uri if ":" in uri and uri != "*" else None


def _uri_parts(uri: str) -> tuple[str, str, str, int, dict[str, str]] | None:
    """(scheme, user, host, port, params) of a SIP URI, scheme and host lowercased,
    the port filled in with the scheme's default; None when it is no SIP URI."""
    scheme, sep, rest = uri.strip().partition(":")
    scheme = scheme.lower()
    if not sep or scheme not in _DEFAULT_PORTS:
        return None
    rest = rest.split("?", 1)[0]
    user, _, hostpart = rest.rpartition("@")
    hostport, *raw_params = hostpart.split(";")
    if hostport.startswith("["):
        host, _, port_text = hostport[1:].partition("]")
        port_text = port_text.lstrip(":")
    else:
        host, _, port_text = hostport.partition(":")
    port = ascii_number(port_text, 65535) if port_text else _DEFAULT_PORTS[scheme]
    if port is None:
        return None
    params = {}
    for raw in raw_params:
        key, _, val = raw.partition("=")
        params[key.strip().lower()] = val.strip()
    return scheme, user, domain(host.lower()), port, params


def same_target(uri: str, peer: str) -> bool:
    """``uri`` names the same target as ``peer`` (a stored Contact): scheme, user, host,
    port (a missing one is the scheme's default) and transport; other parameters (a NAT
    ``alias`` this proxy or the phone added, ``ob``) do not count."""
    one, other = _uri_parts(uri), _uri_parts(peer)
    if one is None or other is None:
        return False
    return (
        one[:4] == other[:4]
        and one[4].get("transport", "udp").lower() == other[4].get("transport", "udp").lower()
    )


def hop_address(uri: str) -> tuple[str, int] | None:
    """(host, port) a request for ``uri`` is sent to: its NAT ``alias`` (``ip~port~proto``)
    when it has one, else its host and port."""
    parts = _uri_parts(uri)
    if parts is None:
        return None
    alias = parts[4].get("alias", "")
    fields = alias.split("~")
    port = ascii_number(fields[1], 65535) if len(fields) == 3 else None
    if port is not None:
        return domain(fields[0].strip("[]").lower()), port
    return parts[2], parts[3]


def toward_peer(
    ruri: str, next_hop: str | None, peers: Sequence[str], hops: Sequence[str] = ()
) -> bool:
    """An in-dialog request of a call to a phone, from the caller: its R-URI (before NAT
    alias handling) is one of the callee's Contacts the dialog stored, and its next hop
    (``$du`` after alias handling and loose_route: an alias or a further Route) goes to
    that Contact's address or to a proxy of the callee's replies' Record-Route
    (``hops``), never to a target of the caller's choice."""
    if next_hop:
        hop = hop_address(next_hop)
        allowed = {hop_address(uri) for uri in (*peers, *hops)}
        if hop is None or hop not in allowed:
            return False
    return any(same_target(ruri, peer) for peer in peers)
