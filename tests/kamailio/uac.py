"""A small SIP user agent over UDP on a loopback address for tests against the real Kamailio:
sends a request, answers a 401/407 with digest credentials (RFC 2617, with or without
qop=auth), and answers 200 to the requests Kamailio sends it (OPTIONS probes, NOTIFYs),
keeping the NOTIFYs."""

from __future__ import annotations

import hashlib
import itertools
import re
import secrets
import socket
import time
from dataclasses import dataclass, field


@dataclass
class Message:
    """A SIP request or response: its first line, headers in order, body."""

    first_line: str
    headers: list[tuple[str, str]]
    body: str = ""

    @classmethod
    def parse(cls, data: bytes) -> Message:
        head, _, body = data.decode(errors="replace").partition("\r\n\r\n")
        first_line, *lines = head.split("\r\n")
        headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines)]
        return cls(first_line, headers, body)

    @property
    def status(self) -> int:
        return int(self.first_line.split()[1]) if self.first_line.startswith("SIP/2.0") else 0

    @property
    def reason(self) -> str:
        return self.first_line.split(" ", 2)[2]

    @property
    def method(self) -> str:
        return self.first_line.split()[0]

    def header(self, name: str) -> str | None:
        return next((v for n, v in self.headers if n.lower() == name.lower()), None)


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # noqa: S324 - SIP digest is MD5


def digest(challenge: str, *, user: str, password: str, method: str, uri: str) -> str:
    """The Authorization value answering a WWW-/Proxy-Authenticate ``challenge``."""
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', challenge))
    realm, nonce = params["realm"], params["nonce"]
    ha1 = _md5(f"{user}:{realm}:{password}")
    ha2 = _md5(f"{method}:{uri}")
    value = f'Digest username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}"'
    if "auth" in params.get("qop", "").split(","):
        cnonce, nc = secrets.token_hex(8), "00000001"
        response = _md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        value += f', qop=auth, nc={nc}, cnonce="{cnonce}"'
    else:
        response = _md5(f"{ha1}:{nonce}:{ha2}")
    return value + f', response="{response}", algorithm=MD5'


@dataclass
class Uac:
    """One UDP socket on ``host`` (``port`` 0: any) toward the proxy at 127.0.0.1
    ``proxy_port``. Attacks come from other loopback addresses (127.0.0.2 ...), so that
    a ban of the attacker leaves the phones on 127.0.0.1 alone."""

    proxy_port: int
    port: int = 0
    notifies: list[Message] = field(default_factory=list)
    host: str = "127.0.0.1"

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((self.host, self.port))
        self.port = self.sock.getsockname()[1]
        self._cseq = itertools.count(1)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Uac:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(
        self,
        method: str,
        ruri: str,
        *,
        from_: str,
        to: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: str = "",
        call_id: str | None = None,
        from_tag: str = "uac-1",
        to_tag: str | None = None,
        password: str | None = None,
    ) -> Message:
        """Send a request; the final response, after one digest retry if ``password``."""
        call_id = call_id or f"{secrets.token_hex(8)}@127.0.0.1"
        extra = list(headers)
        for _ in range(2):
            cseq = next(self._cseq)
            lines = [
                f"{method} {ruri} SIP/2.0",
                f"Via: SIP/2.0/UDP {self.host}:{self.port};branch=z9hG4bK{secrets.token_hex(8)};rport",
                f"From: <{from_}>;tag={from_tag}",
                f"To: <{to or ruri}>" + (f";tag={to_tag}" if to_tag else ""),
                f"Call-ID: {call_id}",
                f"CSeq: {cseq} {method}",
                "Max-Forwards: 70",
                f"Contact: <sip:{from_.split(':')[1].split('@')[0]}@{self.host}:{self.port}>",
                *(f"{n}: {v}" for n, v in extra),
                f"Content-Length: {len(body.encode())}",
            ]
            self.sock.sendto(
                ("\r\n".join(lines) + "\r\n\r\n" + body).encode(), ("127.0.0.1", self.proxy_port)
            )
            response = self._response(call_id, cseq)
            if response.status not in (401, 407) or password is None:
                return response
            name = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
            answer = "Authorization" if response.status == 401 else "Proxy-Authorization"
            user = from_.split(":")[1].split("@")[0]
            challenge = response.header(name) or ""
            extra = [
                *headers,
                (answer, digest(challenge, user=user, password=password, method=method, uri=ruri)),
            ]
        return response

    def _response(self, call_id: str, cseq: int, timeout: float = 5.0) -> Message:
        deadline = time.monotonic() + timeout
        while True:
            message = self._receive(deadline)
            if message is None:
                raise TimeoutError(f"no final response to CSeq {cseq} of {call_id}")
            if (
                message.status >= 200
                and message.header("Call-ID") == call_id
                and (message.header("CSeq") or "").split()[0] == str(cseq)
            ):
                return message

    def wait_notify(self, count: int, timeout: float = 5.0) -> list[Message]:
        """The NOTIFYs received, once there are ``count`` of them."""
        deadline = time.monotonic() + timeout
        while len(self.notifies) < count:
            if self._receive(deadline) is None:
                raise TimeoutError(f"{len(self.notifies)} NOTIFYs, not {count}")
        return self.notifies

    def _receive(self, deadline: float) -> Message | None:
        """The next message; requests are answered 200 (NOTIFYs kept), and returned too."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return None
        self.sock.settimeout(remaining)
        try:
            data, source = self.sock.recvfrom(65535)
        except TimeoutError:
            return None
        message = Message.parse(data)
        if message.status == 0:
            if message.method == "NOTIFY":
                self.notifies.append(message)
            self.sock.sendto(self._ok(message), source)
        return message

    @staticmethod
    def _ok(request: Message) -> bytes:
        copied = [
            f"{n}: {v}"
            for n, v in request.headers
            if n.lower() in ("via", "from", "to", "call-id", "cseq")
        ]
        to_index = next(i for i, line in enumerate(copied) if line.lower().startswith("to:"))
        if ";tag=" not in copied[to_index]:
            copied[to_index] += ";tag=uas-1"
        return (
            "SIP/2.0 200 OK\r\n" + "\r\n".join(copied) + "\r\nContent-Length: 0\r\n\r\n"
        ).encode()
