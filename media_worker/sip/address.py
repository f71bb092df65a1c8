"""SIP URIs, name-addr values (From, To, Contact, Route) and Via values."""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace

from media_worker.sip.errors import RemoteProtocolError

Params = tuple[tuple[str, str | None], ...]

_HOSTPORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::([0-9]{1,5}))?")
_VIA = re.compile(r"SIP\s*/\s*2\.0\s*/\s*([A-Za-z]+)\s+([^;\s]+)\s*(;.*)?", re.DOTALL)


def parse_params(text: str) -> Params:
    """``;a=1;b;c="x;y"`` into ((a, 1), (b, None), (c, "x;y"))."""
    params: list[tuple[str, str | None]] = []
    for part in _split_outside_quotes(text, ";"):
        part = part.strip()
        if not part:
            continue
        name, eq, value = part.partition("=")
        params.append((name.strip().lower(), value.strip() if eq else None))
    return tuple(params)


def format_params(params: Params) -> str:
    return "".join(f";{k}" if v is None else f";{k}={v}" for k, v in params)


def param(params: Params, name: str) -> str | None:
    for key, value in params:
        if key == name:
            return value if value is not None else ""
    return None


def _split_outside_quotes(text: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for char in text:
        if char == '"':
            quoted = not quoted
        if char == sep and not quoted:
            parts.append("".join(current))
            current = []
        else:
            current.append(char)
    parts.append("".join(current))
    return parts


def split_hostport(text: str) -> tuple[str, int | None]:
    match = _HOSTPORT.fullmatch(text.strip())
    if match is None:
        raise RemoteProtocolError(f"malformed host {text!r}")
    port = int(match[2]) if match[2] else None
    if port is not None and not 0 < port < 65536:
        raise RemoteProtocolError(f"port out of range in {text!r}")
    return match[1], port


def format_host(host: str, port: int | None) -> str:
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return host if port is None else f"{host}:{port}"


@dataclass(frozen=True)
class SipUri:
    scheme: str
    host: str
    user: str | None = None
    password: str | None = None
    port: int | None = None
    params: Params = ()
    headers: str | None = None

    @classmethod
    def parse(cls, text: str) -> SipUri:
        scheme, colon, rest = text.strip().partition(":")
        scheme = scheme.lower()
        if not colon or scheme not in ("sip", "sips"):
            raise RemoteProtocolError(f"not a SIP URI: {text[:80]!r}")
        rest, qmark, headers = rest.partition("?")
        userinfo, at, hostpart = rest.rpartition("@")
        if not at:
            hostpart = userinfo or hostpart
            userinfo = ""
        user, pcolon, password = userinfo.partition(":")
        hostport, semi, params = hostpart.partition(";")
        host, port = split_hostport(hostport)
        return cls(
            scheme=scheme,
            host=host,
            user=user if at else None,
            password=password if pcolon else None,
            port=port,
            params=parse_params(params) if semi else (),
            headers=headers if qmark else None,
        )

    def __str__(self) -> str:
        userinfo = ""
        if self.user is not None:
            userinfo = self.user + (f":{self.password}" if self.password is not None else "") + "@"
        text = f"{self.scheme}:{userinfo}{format_host(self.host, self.port)}"
        text += format_params(self.params)
        return text + (f"?{self.headers}" if self.headers is not None else "")

    def param(self, name: str) -> str | None:
        return param(self.params, name)

    @property
    def transport(self) -> str:
        """The transport the URI asks for (udp unless it says tcp/tls, or is sips)."""
        wanted = (self.param("transport") or "").lower()
        if self.scheme == "sips":
            return "tls"
        return wanted or "udp"


@dataclass(frozen=True)
class NameAddr:
    """``"Display" <uri>;params`` (or a bare addr-spec, whose params are the header's)."""

    uri: str
    display: str | None = None
    params: Params = ()

    @classmethod
    def parse(cls, text: str) -> NameAddr:
        text = text.strip()
        start = _find_unquoted(text, "<")
        if start == -1:
            uri, _, rest = text.partition(";")
            if not uri or ":" not in uri:
                raise RemoteProtocolError(f"malformed address {text[:80]!r}")
            return cls(uri.strip(), None, parse_params(rest))
        end = text.find(">", start)
        if end == -1:
            raise RemoteProtocolError(f"unterminated <uri> in {text[:80]!r}")
        display = text[:start].strip()
        if display.startswith('"') and display.endswith('"') and len(display) >= 2:
            display = display[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        uri = text[start + 1 : end].strip()
        if ":" not in uri:
            raise RemoteProtocolError(f"malformed address {text[:80]!r}")
        return cls(uri, display or None, parse_params(text[end + 1 :]))

    def __str__(self) -> str:
        display = ""
        if self.display:
            escaped = self.display.replace("\\", "\\\\").replace('"', '\\"')
            display = f'"{escaped}" '
        return f"{display}<{self.uri}>{format_params(self.params)}"

    @property
    def tag(self) -> str | None:
        return param(self.params, "tag")

    def with_tag(self, tag: str) -> NameAddr:
        kept = tuple((k, v) for k, v in self.params if k != "tag")
        return NameAddr(self.uri, self.display, (*kept, ("tag", tag)))

    def sip_uri(self) -> SipUri:
        return SipUri.parse(self.uri)


def _find_unquoted(text: str, char: str) -> int:
    quoted = False
    for i, current in enumerate(text):
        if current == '"':
            quoted = not quoted
        elif current == char and not quoted:
            return i
    return -1


@dataclass(frozen=True)
class Via:
    transport: str
    host: str
    port: int | None = None
    params: Params = field(default=())

    @classmethod
    def parse(cls, text: str) -> Via:
        match = _VIA.fullmatch(text.strip())
        if match is None:
            raise RemoteProtocolError(f"malformed Via {text[:80]!r}")
        host, port = split_hostport(match[2])
        return cls(match[1].upper(), host, port, parse_params(match[3] or ""))

    def __str__(self) -> str:
        return f"SIP/2.0/{self.transport} {format_host(self.host, self.port)}" + format_params(
            self.params
        )

    @property
    def branch(self) -> str | None:
        return param(self.params, "branch")

    def param(self, name: str) -> str | None:
        return param(self.params, name)

    def with_param(self, name: str, value: str | None) -> Via:
        """Set (or add) a parameter, keeping the others in place."""
        params = list(self.params)
        for i, (key, _) in enumerate(params):
            if key == name:
                params[i] = (name, value)
                break
        else:
            params.append((name, value))
        return replace(self, params=tuple(params))


@dataclass(frozen=True)
class Peer:
    """The other side of a message: where it came from, or where it goes (a name until
    resolved)."""

    transport: str  # "udp" or "tcp"
    host: str
    port: int
    connection: int | None = None  # the stream it arrived on, or one to reuse

    @property
    def reliable(self) -> bool:
        return self.transport != "udp"

    @classmethod
    def from_uri(cls, uri: SipUri, connection: int | None = None) -> Peer:
        transport = "tcp" if uri.transport in ("tcp", "tls") else "udp"
        return cls(transport, uri.host.strip("[]"), uri.port or 5060, connection)
