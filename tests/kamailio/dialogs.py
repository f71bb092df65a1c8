"""Raw SIP dialogs through the real Kamailio for tests of both cfgs: a stranger's call
ringing a registered phone (what the caller may send in its early dialog), and a call
between two phones answered, re-INVITEd from each side and hung up by either."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from tests.kamailio.uac import Message

SDP = (
    "v=0\r\no=- 1 1 IN IP4 {host}\r\ns=-\r\nc=IN IP4 {host}\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0\r\n"
)


def receive(sock: socket.socket, wanted: Callable[[Message], bool], timeout: float = 5) -> Message:
    """The next message on ``sock`` that is ``wanted`` (others, a 100 say, skipped)."""
    deadline = time.monotonic() + timeout
    while (remaining := deadline - time.monotonic()) > 0:
        sock.settimeout(remaining)
        message = Message.parse(sock.recv(65535))
        if wanted(message):
            return message
    raise TimeoutError("nothing wanted arrived")


def request_of(method: str) -> Callable[[Message], bool]:
    return lambda m: not m.status and m.method == method


def final_of(method: str, cseq: int) -> Callable[[Message], bool]:
    return lambda m: m.status >= 200 and m.header("CSeq") == f"{cseq} {method}"


def response(
    request: Message,
    status: int,
    reason: str,
    *,
    to_tag: str,
    contact: str,
    record_route: tuple[str, ...] = (),
) -> bytes:
    """A UAS's response: Via, From, To (tagged), Call-ID, CSeq, Record-Route copied,
    ``record_route`` (a proxy on the UAS's side) first."""
    lines = [f"SIP/2.0 {status} {reason}", *(f"Record-Route: {rr}" for rr in record_route)]
    for name, value in request.headers:
        if name.lower() == "to" and ";tag=" not in value:
            value += f";tag={to_tag}"
        if name.lower() in ("via", "from", "to", "call-id", "cseq", "record-route"):
            lines.append(f"{name}: {value}")
    lines += [f"Contact: <{contact}>", "Content-Length: 0"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


@dataclass
class End:
    """One end of a dialog: its socket, URI, tag and Contact; the peer's too."""

    sock: socket.socket
    proxy_port: int
    uri: str
    tag: str
    peer_uri: str
    peer_tag: str = ""
    call_id: str = ""
    target: str = ""  # the peer's Contact: the R-URI of requests in the dialog
    routes: list[str] = field(default_factory=list)  # Route header values
    cseq: int = 1

    advertised: str = ""  # a Contact behind a proxy of its own, else the socket's

    @property
    def contact(self) -> str:
        if self.advertised:
            return self.advertised
        host, port = self.sock.getsockname()
        return f"sip:{self.uri.split(':')[1].split('@')[0]}@{host}:{port}"

    def send(self, method: str, ruri: str, *extra: str, body: str = "") -> int:
        host, port = self.sock.getsockname()
        if method != "ACK":
            self.cseq += 1
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{secrets.token_hex(8)};rport",
            f"From: <{self.uri}>;tag={self.tag}",
            f"To: <{self.peer_uri}>" + (f";tag={self.peer_tag}" if self.peer_tag else ""),
            f"Call-ID: {self.call_id}",
            f"CSeq: {self.cseq} {method}",
            "Max-Forwards: 70",
            f"Contact: <{self.contact}>",
            *(f"Route: {route}" for route in self.routes),
            *extra,
            *(["Content-Type: application/sdp"] if body else []),
            f"Content-Length: {len(body.encode())}",
        ]
        data = ("\r\n".join(lines) + "\r\n\r\n" + body).encode()
        self.sock.sendto(data, ("127.0.0.1", self.proxy_port))
        return self.cseq


def sdp_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()
    return SDP.format(host=host, port=port + 1)


def phone_call(
    proxy_port: int,
    caller_sock: socket.socket,
    caller_uri: str,
    callee_sock: socket.socket,
    callee_aor: str,
    *,
    hangup_by_callee: bool,
    callee_proxy: bool = False,
    gateway: socket.socket | None = None,
) -> None:
    """``caller_sock`` calls the phone registered for ``callee_aor`` on ``callee_sock``;
    it answers; each side re-INVITEs the other; one side hangs up. Every request must
    reach the other end (else TimeoutError) and every final response be 200.
    ``callee_proxy``: the callee answers as if behind a record-routing proxy of its own
    (at its socket's address; its Contact another port): the caller's requests go to
    that proxy as their next hop. ``gateway``: before the hangup each side sends
    MESSAGEs toward it (R-URI, NAT alias), which must not arrive."""
    call_id = f"p2p-{secrets.token_hex(6)}@x"
    caller = End(caller_sock, proxy_port, caller_uri, "caller-1", callee_aor, call_id=call_id)
    caller.cseq = 0
    caller.send("INVITE", callee_aor, body=sdp_of(caller_sock))
    invite = receive(callee_sock, request_of("INVITE"))
    record_route = [v for n, v in invite.headers if n.lower() == "record-route"]
    callee = End(
        callee_sock, proxy_port, callee_aor, "callee-1", caller_uri, "caller-1", call_id=call_id
    )
    callee.target = caller.contact
    callee.routes = record_route  # the callee uses the Record-Route in order
    own_proxy: tuple[str, ...] = ()
    if callee_proxy:
        host, port = callee_sock.getsockname()
        callee.advertised = f"sip:phone@{host}:{port + 1}"
        own_proxy = (f"<sip:{host}:{port};lr>",)
    proxy = ("127.0.0.1", proxy_port)
    # The ringing phone names another Contact than the answer: the answer's counts.
    early = callee.contact.replace("sip:", "sip:early-", 1)
    for status, reason, contact in ((180, "Ringing", early), (200, "OK", callee.contact)):
        answered = response(
            invite, status, reason, to_tag="callee-1", contact=contact, record_route=own_proxy
        )
        callee_sock.sendto(answered, proxy)
    answer = receive(caller_sock, final_of("INVITE", 1))
    assert answer.status == 200, answer
    caller.peer_tag = "callee-1"
    caller.target = callee.contact
    caller.routes = list(reversed([v for n, v in answer.headers if n.lower() == "record-route"]))
    caller.send("ACK", caller.target)
    receive(callee_sock, request_of("ACK"))
    for sender, receiver in ((caller, callee), (callee, caller)):
        cseq = sender.send("INVITE", sender.target, body=sdp_of(sender.sock))
        reinvite = receive(receiver.sock, request_of("INVITE"))
        if receiver is callee:  # the callee's answer moves its Contact (same socket)
            callee.advertised = callee.contact.replace("sip:", "sip:moved-", 1)
        receiver.sock.sendto(
            response(reinvite, 200, "OK", to_tag=sender.peer_tag, contact=receiver.contact),
            proxy,
        )
        assert receive(sender.sock, final_of("INVITE", cseq)).status == 200
        sender.target = receiver.contact
        sender.send("ACK", sender.target)
        receive(receiver.sock, request_of("ACK"))
    if gateway is not None:  # neither side's request reaches another target
        gw_port = gateway.getsockname()[1]
        for end in (caller, callee):
            end.send("MESSAGE", f"sip:+4930123@127.0.0.1:{gw_port}", "Content-Type: text/plain")
            end.send("MESSAGE", f"{end.target};alias=127.0.0.1~{gw_port}~1")
        gateway.settimeout(1)
        try:
            leaked = gateway.recv(65535)
        except TimeoutError:
            leaked = b""
        assert leaked == b"", leaked[:300]
    sender, receiver = (callee, caller) if hangup_by_callee else (caller, callee)
    cseq = sender.send("BYE", sender.target)
    bye = receive(receiver.sock, request_of("BYE"))
    receiver.sock.sendto(
        response(bye, 200, "OK", to_tag=sender.peer_tag, contact=receiver.contact), proxy
    )
    assert receive(sender.sock, final_of("BYE", cseq)).status == 200
