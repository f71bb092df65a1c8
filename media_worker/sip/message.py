"""SIP requests and responses: parse bytes into messages and serialize them back.

``parse_message`` never raises anything but :class:`SipParseError`; where the start line and
the headers a response needs (Via, From, To, Call-ID, CSeq) were readable, the error carries
the partial request so that the caller can answer 400 instead of dropping it. Header bytes
that are not UTF-8 and header fields beyond the limit are such answerable errors: the head
is decoded with ``surrogateescape`` and the response headers are kept, so the answer echoes
the peer's own bytes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from media_worker.sip.address import Via
from media_worker.sip.errors import RemoteProtocolError
from media_worker.sip.headers import Headers, canonical_name
from media_worker.sip.numbers import parse_number

SIP_VERSION = "SIP/2.0"
# Larger than any sane SIP message; a UDP datagram cannot exceed 65,507 bytes anyway.
MAX_MESSAGE_BYTES = 65_535
MAX_HEADER_FIELDS = 200
RESPONSE_HEADERS = ("Via", "From", "To", "Call-ID", "CSeq")
# What is kept of a head beyond MAX_HEADER_FIELDS: enough to answer, and the framing.
_KEPT_KEYS = frozenset(name.lower() for name in (*RESPONSE_HEADERS, "Content-Length"))
MAX_CSEQ = 2**31 - 1  # RFC 3261 8.1.1.5

_TOKEN = re.compile(r"[A-Za-z0-9.!%*_+`'~-]+")
_HEADER_NAME = _TOKEN
_CSEQ = re.compile(r"\s*(\S+)\s+([A-Za-z0-9.!%*_+`'~-]+)\s*")

REASONS = {
    100: "Trying",
    180: "Ringing",
    183: "Session Progress",
    200: "OK",
    202: "Accepted",
    400: "Bad Request",
    403: "Forbidden",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    415: "Unsupported Media Type",
    420: "Bad Extension",
    480: "Temporarily Unavailable",
    481: "Call/Transaction Does Not Exist",
    482: "Loop Detected",
    483: "Too Many Hops",
    486: "Busy Here",
    487: "Request Terminated",
    488: "Not Acceptable Here",
    491: "Request Pending",
    500: "Server Internal Error",
    501: "Not Implemented",
    503: "Service Unavailable",
    505: "Version Not Supported",
    513: "Message Too Large",
}


class SipParseError(RemoteProtocolError):
    """Bytes that are not a SIP message we accept; ``request`` is what could be read."""

    def __init__(self, message: str, request: Request | None = None, status: int = 400) -> None:
        super().__init__(message, status)
        self.request = request
        # Over a stream: whether the message's end is unknown, so the connection must close.
        self.framing_lost = True


class _HeaderAccess:
    """What requests and responses both answer from their headers."""

    headers: Headers

    @property
    def call_id(self) -> str:
        return self.headers.get("Call-ID") or ""

    def cseq(self) -> tuple[int, str]:
        return parse_cseq(self.headers.get("CSeq"))


@dataclass(eq=True)
class Request(_HeaderAccess):
    method: str
    uri: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""


@dataclass(eq=True)
class Response(_HeaderAccess):
    status: int
    reason: str
    headers: Headers = field(default_factory=Headers)
    body: bytes = b""


Message = Request | Response


def parse_cseq(value: str | None) -> tuple[int, str]:
    """(sequence number, method) of a CSeq value."""
    match = _CSEQ.fullmatch(value or "")
    if match is None:
        raise RemoteProtocolError(f"malformed CSeq {value!r}")
    number = parse_number(
        match[1],
        "CSeq number",
        0,
        MAX_CSEQ,
        lambda _: RemoteProtocolError(f"malformed CSeq {value!r}"),
    )
    return number, match[2].upper()


def serialize(message: Message) -> bytes:
    """Wire form; Content-Length is always written and always matches the body."""
    if isinstance(message, Request):
        start = f"{message.method} {message.uri} {SIP_VERSION}"
    else:
        start = f"{SIP_VERSION} {message.status} {message.reason}"
    lines = [start]
    lines.extend(f"{name}: {value}" for name, value in message.headers if name != "Content-Length")
    lines.append(f"Content-Length: {len(message.body)}")
    # surrogateescape: a header copied from a request that was not UTF-8 goes back unchanged.
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + message.body


def _split_head(data: bytes) -> tuple[str, bytes, bool]:
    """(head text, body, whether the head was UTF-8)."""
    for sep in (b"\r\n\r\n", b"\n\n"):
        end = data.find(sep)
        if end != -1:
            head = data[:end]
            body = data[end + len(sep) :]
            break
    else:
        head, body = data, b""
    try:
        return head.decode("utf-8"), body, True
    except UnicodeDecodeError:
        return head.decode("utf-8", "surrogateescape"), body, False


def _header_lines(head: str) -> list[str]:
    """Lines of the head with folded continuation lines joined (RFC 3261 7.3.1)."""
    lines: list[str] = []
    for raw in head.replace("\r\n", "\n").split("\n"):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] += " " + raw.strip()
        else:
            lines.append(raw)
    return lines


def _parse_start_line(line: str) -> Request | Response:
    if line.startswith("SIP/"):
        version, _, rest = line.partition(" ")
        if version != SIP_VERSION:
            raise SipParseError(f"unsupported SIP version {version!r}", status=505)
        code, _, reason = rest.strip().partition(" ")
        if len(code) != 3:
            raise SipParseError(f"malformed status code {code!r}")
        status = parse_number(code, "status code", 100, 699, SipParseError)
        return Response(status, reason.strip())
    parts = line.split()
    if len(parts) != 3:
        raise SipParseError(f"malformed request line {line[:80]!r}")
    method, uri, version = parts
    if not _TOKEN.fullmatch(method):
        raise SipParseError(f"malformed method {method[:32]!r}")
    if version.upper() != SIP_VERSION:
        raise SipParseError(f"unsupported SIP version {version[:16]!r}", status=505)
    if ":" not in uri:
        raise SipParseError(f"malformed Request-URI {uri[:80]!r}")
    return Request(method.upper(), uri)


def parse_message(data: bytes, *, stream: bool = False) -> Message:
    """Parse one whole message (a UDP datagram, or one framed by :class:`StreamParser`).

    Over a stream (``stream=True``) Content-Length is required; in a datagram it may be
    missing (the body is the rest) but never larger than what arrived.
    """
    if len(data) > MAX_MESSAGE_BYTES:
        raise SipParseError(f"message of {len(data)} bytes is too large", status=513)
    data = data.lstrip(b"\r\n")  # RFC 3261 7.5: ignore CRLFs before the start line
    if not data:
        raise SipParseError("empty message")
    head, body, utf8 = _split_head(data)
    lines = _header_lines(head)
    message = _parse_start_line(lines[0])
    headers = message.headers
    # The first problem found; the parse goes on to collect what a response needs.
    problem: tuple[str, int] | None = None if utf8 else ("header section is not UTF-8", 400)
    fields = 0
    for line in lines[1:]:
        if not line.strip():
            continue
        name, colon, value = line.partition(":")
        name = name.strip()
        if not colon or not _HEADER_NAME.fullmatch(name):
            problem = problem or (f"malformed header line {line[:80]!r}", 400)
            continue
        fields += 1
        if fields > MAX_HEADER_FIELDS:
            problem = problem or (f"more than {MAX_HEADER_FIELDS} header fields", 400)
            if canonical_name(name).lower() not in _KEPT_KEYS:
                continue
        headers.add(name, value.strip())
    request = message if isinstance(message, Request) else None
    for name in RESPONSE_HEADERS:
        if not headers.get(name):
            raise SipParseError(f"missing {name} header", request if name != "Via" else None)
    top_via = headers.get_all("Via")[:1]
    try:
        Via.parse(top_via[0] if top_via else "")
    except RemoteProtocolError as exc:
        raise SipParseError(str(exc)) from None  # nowhere to answer
    try:
        _, cseq_method = parse_cseq(headers.get("CSeq"))
    except RemoteProtocolError as exc:
        raise SipParseError(str(exc), request) from None
    if request is not None and cseq_method != request.method and request.method != "ACK":
        problem = problem or (f"CSeq method {cseq_method} does not match {request.method}", 400)
    length_value = headers.get("Content-Length")
    if length_value is None:
        if stream:
            raise SipParseError("missing Content-Length over a stream transport", request)
        message.body = body
    else:
        length = parse_number(
            length_value,
            "Content-Length",
            0,
            MAX_MESSAGE_BYTES,
            lambda problem: SipParseError(problem, request),
        )
        if length > len(body):
            raise SipParseError(
                f"Content-Length {length} exceeds the {len(body)} body bytes received", request
            )
        message.body = body[:length]
    headers.remove("Content-Length")  # derived from the body when serialized
    if problem is not None:
        raise SipParseError(problem[0], request, problem[1])
    return message


class StreamParser:
    """Frames SIP messages out of a byte stream (TCP) by Content-Length.

    ``feed`` returns complete messages (or SipParseError instances, which the caller should
    answer if it can, closing the connection when their ``framing_lost`` says so) and
    keep-alive pings.
    """

    PING = b"\r\n\r\n"

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Message | SipParseError | bytes]:
        self._buffer += data
        out: list[Message | SipParseError | bytes] = []
        while True:
            if bytes(self._buffer[:1]) in (b"\r", b"\n"):
                # RFC 5626 keep-alive: a double CRLF between messages is a ping.
                if self._buffer.startswith(self.PING):
                    del self._buffer[:4]
                    out.append(self.PING)
                    continue
                if self.PING.startswith(bytes(self._buffer[:4])):
                    break  # perhaps a ping still arriving
                del self._buffer[:1]  # a stray line break (a pong, or RFC 3261 7.5)
                continue
            end = self._buffer.find(b"\r\n\r\n")
            if end == -1:
                if len(self._buffer) > MAX_MESSAGE_BYTES:
                    self._buffer.clear()
                    out.append(SipParseError("header section too large", status=513))
                break
            head = bytes(self._buffer[:end])
            length = _content_length(head)
            if length is None:
                message_end = end + 4
            else:
                message_end = end + 4 + length
                if message_end > MAX_MESSAGE_BYTES:
                    self._buffer.clear()
                    out.append(SipParseError("message too large", status=513))
                    break
                if len(self._buffer) < message_end:
                    break
            chunk = bytes(self._buffer[:message_end])
            del self._buffer[:message_end]
            try:
                out.append(parse_message(chunk, stream=True))
            except SipParseError as exc:
                exc.framing_lost = length is None  # a valid Content-Length framed it
                out.append(exc)
        return out


def _content_length(head: bytes) -> int | None:
    for line in head.split(b"\r\n")[1:]:
        name, colon, value = line.partition(b":")
        if colon and name.strip().lower() in (b"content-length", b"l"):
            value = value.strip()
            if not value.isdigit():  # bytes.isdigit() is ASCII only
                return None  # parse_message reports it
            # More digits than any message length has is a message too large.
            return int(value) if len(value) <= 10 else MAX_MESSAGE_BYTES + 1
    return None


def response_to(
    request: Request, status: int, reason: str | None = None, *, to_tag: str | None = None
) -> Response:
    """A response to ``request`` with the headers RFC 3261 8.2.6.2 copies over."""
    headers = Headers()
    for via in request.headers.get_all("Via"):
        headers.add("Via", via)
    for name in ("From", "To", "Call-ID", "CSeq"):
        value = request.headers.get(name)
        if value is not None:
            if name == "To" and to_tag and ";tag=" not in value.lower().replace(" ", ""):
                value = f"{value};tag={to_tag}"
            headers.add(name, value)
    timestamp = request.headers.get("Timestamp")
    if status == 100 and timestamp:
        headers.add("Timestamp", timestamp)
    return Response(status, reason or REASONS.get(status, "Unknown"), headers)
