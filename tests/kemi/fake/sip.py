"""SIP requests as the fake receives them, and the URI, header and regex helpers
the modules share."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


def uri_of(value: str) -> str:
    """The URI of a name-addr or addr-spec header value (no display name, no params)."""
    if "<" in value:
        return value[value.index("<") + 1 : value.index(">")]
    return value.split(";", 1)[0].strip()


def uri_user_host(uri: str) -> tuple[str, str]:
    """(user, host) of ``sip:user@host:port;params``; user is "" when absent."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    user, _, hostport = rest.rpartition("@")  # a user part may hold ';' and '?'
    return user, re.split(r"[;?:]", hostport, maxsplit=1)[0]


def uri_host_port(uri: str) -> tuple[str, int]:
    """(host, port) of ``sip:user@host:port;params``; port is 0 when absent."""
    rest = uri.split(":", 1)[1] if ":" in uri else uri
    hostport = re.split(r"[;?]", rest.rpartition("@")[2], maxsplit=1)[0]
    host, _, port = hostport.partition(":")
    return host, int(port) if port else 0


def _header_param(value: str, name: str) -> str | None:
    tail = value[value.index(">") + 1 :] if ">" in value else value
    for part in tail.split(";")[1:]:
        key, _, val = part.partition("=")
        if key.strip().lower() == name:
            return val.strip()
    return None


# POSIX extended regular expressions (Kamailio's regcomp) as Python patterns: the
# character classes are translated; Python-only syntax is refused, since Kamailio would
# read it differently.
_POSIX_CLASSES = {
    "[:alpha:]": "a-zA-Z",
    "[:digit:]": "0-9",
    "[:alnum:]": "a-zA-Z0-9",
    "[:upper:]": "A-Z",
    "[:lower:]": "a-z",
    "[:space:]": r" \t\r\n\v\f",
    "[:xdigit:]": "0-9A-Fa-f",
    "[:punct:]": re.escape("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
}


def posix_regex(pattern: str, *, icase: bool = False) -> re.Pattern[str]:
    if re.search(r"\\[dDwWsSbBAZ0-9]|\(\?|[*+?}]\?", pattern):
        raise ValueError(f"not a POSIX extended regex (Python-only syntax): {pattern!r}")
    for posix, python in _POSIX_CLASSES.items():
        pattern = pattern.replace(posix, python)
    return re.compile(pattern, re.IGNORECASE if icase else 0)


@dataclass(frozen=True)
class Credentials:
    """Digest credentials a request carries: whose, and whether the password is right."""

    user: str  # user@domain
    valid: bool = True
    replayed: bool = False  # a captured header sent again (its nonce count already seen)


@dataclass
class Request:
    """A SIP request as Kamailio received it."""

    method: str
    ruri: str
    headers: list[tuple[str, str]]
    body: str = ""
    src_ip: str = "192.0.2.10"
    src_port: int = 5060
    credentials: Credentials | None = None
    behind_nat: bool = False
    sane: bool = True
    # tm: an existing transaction this request matches (a CANCEL's INVITE, or this is a
    # retransmission): t_check_trans answers accordingly.
    known_transaction: bool = False
    # tmx: another process is routing this very request now (a retransmission that
    # arrived meanwhile): t_precheck_trans answers 1.
    in_process: bool = False
    # app_python3 hands the body to the script as text: a body that is not UTF-8 makes
    # KSR.pv.get("$rb") raise UnicodeDecodeError.
    binary_body: bool = False
    body_padding: int = 0  # bytes $bs counts beyond ``body`` (a body too large to write out)

    def header_values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None


def sip_request(
    method: str,
    ruri: str,
    *,
    from_: str,
    to: str | None = None,
    call_id: str = "call-1@192.0.2.10",
    headers: Iterable[tuple[str, str]] = (),
    body: str = "",
    content_type: str | None = None,
    to_tag: str | None = None,
    **fields: Any,
) -> Request:
    """A request with Via, From (tagged), To, Call-ID, CSeq, Max-Forwards, Contact."""
    to_value = f"<{to or ruri}>" + (f";tag={to_tag}" if to_tag else "")
    src_ip = fields.get("src_ip", "192.0.2.10")
    lines = [
        ("Via", f"SIP/2.0/UDP {src_ip}:5060;branch=z9hG4bK-{call_id.split('@')[0]};rport"),
        ("From", f"<{from_}>;tag=from-tag-1"),
        ("To", to_value),
        ("Call-ID", call_id),
        ("CSeq", f"1 {method}"),
        ("Max-Forwards", "70"),
        ("Contact", f"<sip:{uri_user_host(from_)[0]}@{src_ip}:5060>"),
        *headers,
    ]
    if body:
        lines.append(("Content-Type", content_type or "application/sdp"))
    lines.append(("Content-Length", str(len(body.encode()))))
    return Request(method, ruri, lines, body, **fields)


SDP = (
    "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    "m=audio 4000 RTP/AVP 0 8 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)
