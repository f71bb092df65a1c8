"""Tools for attacking the stack from the outside, as the security tests do: a SIP user
agent on raw UDP that sends whatever bytes it is given from a chosen loopback address
(127.0.0.2 ... 127.0.0.254 all reach the loopback interface on Linux, so a ban of the
attacker leaves the phones on 127.0.0.1 alone), a client of rtpengine's ng control
protocol (bencode over UDP), RFC 4733 events, a spoofed-source UDP sender and a look at
a process's sockets and memory."""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import struct
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from media_worker.dtmf import DIGITS, TelephoneEvent
from media_worker.rtp import RtpPacket
from tests.kamailio.uac import Message, Uac, digest

Address = tuple[str, int]


# ----- bencode and rtpengine's ng protocol -----

BValue = int | bytes | str | list["BValue"] | dict[str, "BValue"]


def bencode(value: BValue) -> bytes:
    if isinstance(value, bool):
        raise TypeError("bencode has no booleans")
    if isinstance(value, int):
        return b"i%de" % value
    if isinstance(value, str):
        value = value.encode()
    if isinstance(value, bytes):
        return b"%d:%s" % (len(value), value)
    if isinstance(value, list):
        return b"l" + b"".join(bencode(item) for item in value) + b"e"
    return b"d" + b"".join(bencode(k) + bencode(value[k]) for k in sorted(value)) + b"e"


def bdecode(data: bytes) -> object:
    """bencode to Python (strings decoded as UTF-8 with replacement)."""
    value, end = _bdecode(data, 0)
    if end != len(data):
        raise ValueError(f"bencode: {len(data) - end} bytes after the value")
    return value


def _bdecode(data: bytes, at: int) -> tuple[object, int]:
    kind = data[at : at + 1]
    if kind == b"i":
        end = data.index(b"e", at)
        return int(data[at + 1 : end]), end + 1
    if kind in (b"l", b"d"):
        at += 1
        items: list[object] = []
        while data[at : at + 1] != b"e":
            item, at = _bdecode(data, at)
            items.append(item)
        if kind == b"l":
            return items, at + 1
        return {str(k): v for k, v in zip(items[::2], items[1::2], strict=True)}, at + 1
    colon = data.index(b":", at)
    length = int(data[at:colon])
    start = colon + 1
    return data[start : start + length].decode(errors="replace"), start + length


class RtpengineNg:
    """rtpengine's control port: ``<cookie> <bencoded dict>`` both ways over UDP."""

    def __init__(self, port: int, host: str = "127.0.0.1") -> None:
        self.address = (host, port)

    def command(self, name: str, **arguments: BValue) -> dict[str, object]:
        cookie = secrets.token_hex(6).encode()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(3)
            sock.sendto(cookie + b" " + bencode({"command": name, **arguments}), self.address)
            while True:
                data = sock.recv(1 << 20)
                head, _, body = data.partition(b" ")
                if head == cookie:
                    break
        answer = bdecode(body)
        assert isinstance(answer, dict), answer
        assert answer.get("result") == "ok", answer
        return answer

    def calls(self) -> list[str]:
        """The Call-IDs of the sessions rtpengine holds."""
        calls = self.command("list", limit=10000).get("calls", [])
        assert isinstance(calls, list)
        return [str(c) for c in calls]

    def session_count(self) -> int:
        return len(self.calls())

    def query(self, call_id: str) -> dict[str, object]:
        return self.command("query", **{"call-id": call_id})

    def endpoints(self, call_id: str) -> list[Address]:
        """The remote RTP endpoints rtpengine knows for a call (both sides)."""
        found: list[Address] = []
        tags = self.query(call_id).get("tags", {})
        assert isinstance(tags, dict)
        for tag in tags.values():
            for media in tag.get("medias", []):
                for stream in media.get("streams", []):
                    endpoint = stream.get("endpoint") or {}
                    if endpoint.get("port"):
                        found.append((str(endpoint["address"]), int(endpoint["port"])))
        return found


# ----- SIP on raw UDP -----


def sdp_offer(host: str, port: int, media_lines: int = 1, port_text: str | None = None) -> str:
    """A PCMU + telephone-event offer; ``media_lines`` audio sections; ``port_text``
    replaces the port digits of the first one (a Unicode digit, say)."""
    lines = [
        "v=0",
        f"o=attacker {secrets.randbelow(10**9)} 1 IN IP4 {host}",
        "s=-",
        f"c=IN IP4 {host}",
        "t=0 0",
    ]
    for index in range(media_lines):
        text = port_text if (index == 0 and port_text is not None) else str(port + 2 * index)
        lines += [
            f"m=audio {text} RTP/AVP 0 101",
            "a=rtpmap:0 PCMU/8000",
            "a=rtpmap:101 telephone-event/8000",
            "a=sendrecv",
        ]
    return "\r\n".join(lines) + "\r\n"


@dataclass
class Transaction:
    """An INVITE (or other request) sent, and what came back."""

    method: str
    ruri: str
    call_id: str
    cseq: int
    branch: str
    from_header: str
    to_header: str
    dest: Address
    responses: list[Message] = field(default_factory=list)

    @property
    def final(self) -> Message | None:
        return next((r for r in self.responses if r.status >= 200), None)

    @property
    def status(self) -> int:
        """The final status, 0 while there is none."""
        final = self.final
        return final.status if final is not None else 0

    @property
    def provisional(self) -> list[int]:
        return [r.status for r in self.responses if r.status < 200]


@dataclass
class Dialog:
    call_id: str
    from_header: str
    to_header: str  # with the remote tag
    target: str  # the remote Contact URI
    route: list[str]
    cseq: int
    answer: str  # the SDP of the 200


def _uri(header_value: str) -> str:
    match = re.search(r"<([^>]*)>", header_value)
    return match.group(1) if match else header_value.split(";")[0].strip()


class SipAgent:
    """One UDP socket bound to ``host`` (any free port). Requests it receives are kept
    and answered 200 (as tests/kamailio/uac.py does); responses go to their transaction."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, answer: bool = True) -> None:
        """``answer``: answer the requests received with 200 (False: a silent target)."""
        self.answer = answer
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.host, self.port = self.sock.getsockname()
        self.requests: list[tuple[Message, Address]] = []
        self.strays: list[Message] = []  # responses to nothing we track
        self._transactions: dict[tuple[str, int, str], Transaction] = {}
        self._cseq = 1

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> SipAgent:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ----- sending -----

    def send(self, data: bytes, dest: Address) -> None:
        self.sock.sendto(data, dest)

    def request(
        self,
        method: str,
        ruri: str,
        dest: Address,
        *,
        from_: str,
        to: str | None = None,
        call_id: str | None = None,
        cseq: int | None = None,
        from_tag: str | None = None,
        to_tag: str | None = None,
        headers: Sequence[tuple[str, str]] = (),
        raw_headers: bytes = b"",
        body: str | bytes = "",
        content_type: str | None = None,
        via: Address | None = None,
        branch: str | None = None,
        contact: bool = True,
    ) -> Transaction:
        """Send one request; nothing is waited for. ``raw_headers``: header lines as bytes
        (any bytes at all) added as they are; ``via``: the address the Via names
        (default: this socket)."""
        call_id = call_id or f"{secrets.token_hex(8)}@{self.host}"
        if cseq is None:
            cseq = self._cseq
            self._cseq += 1
        branch = branch or f"z9hG4bK{secrets.token_hex(8)}"
        via_host, via_port = via or (self.host, self.port)
        from_header = f"<{from_}>;tag={from_tag or secrets.token_hex(4)}"
        to_header = f"<{to or ruri}>" + (f";tag={to_tag}" if to_tag else "")
        payload = body.encode() if isinstance(body, str) else body
        user = from_.split(":", 1)[1].split("@")[0] if "@" in from_ else "anonymous"
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {via_host}:{via_port};branch={branch};rport",
            f"From: {from_header}",
            f"To: {to_header}",
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            "Max-Forwards: 70",
            *([f"Contact: <sip:{user}@{self.host}:{self.port}>"] if contact else []),
            *(f"{name}: {value}" for name, value in headers),
            *(
                [f"Content-Type: {content_type or 'application/sdp'}"]
                if payload and not any(n.lower() == "content-type" for n, _ in headers)
                else []
            ),
        ]
        head = "\r\n".join(lines).encode() + b"\r\n" + raw_headers
        data = head + f"Content-Length: {len(payload)}\r\n\r\n".encode() + payload
        self.send(data, dest)
        txn = Transaction(method, ruri, call_id, cseq, branch, from_header, to_header, dest)
        self._transactions[(call_id, cseq, method)] = txn
        return txn

    def invite(
        self,
        ruri: str,
        dest: Address,
        *,
        from_: str,
        body: str = "",
        password: str | None = None,
        timeout: float = 8.0,
        **options: object,
    ) -> Transaction:
        """An INVITE and its final response (ACKed when it is not a 2xx); a 401/407 is
        answered once with digest credentials when ``password`` is given."""
        txn = self.request("INVITE", ruri, dest, from_=from_, body=body, **options)  # type: ignore[arg-type]
        self.wait_final(txn, timeout)
        final = txn.final
        if final is not None and final.status in (401, 407) and password is not None:
            name = "WWW-Authenticate" if final.status == 401 else "Proxy-Authenticate"
            answer = "Authorization" if final.status == 401 else "Proxy-Authorization"
            user = from_.split(":", 1)[1].split("@")[0]
            credentials = digest(
                final.header(name) or "", user=user, password=password, method="INVITE", uri=ruri
            )
            extra = [*options.pop("headers", ()), (answer, credentials)]  # type: ignore[misc]
            txn = self.request(
                "INVITE", ruri, dest, from_=from_, body=body, call_id=txn.call_id,
                from_tag=txn.from_header.split("tag=")[1], headers=extra, **options,  # type: ignore[arg-type]
            )  # fmt: skip
            self.wait_final(txn, timeout)
        return txn

    def wait_final(self, txn: Transaction, timeout: float) -> Message | None:
        """Wait for the final response; a non-2xx one is ACKed (hop by hop)."""
        deadline = time.monotonic() + timeout
        while txn.final is None and self.pump(deadline - time.monotonic()):
            pass
        return txn.final

    def pump(self, timeout: float) -> bool:
        """Receive one message (False when ``timeout`` passed without one)."""
        if timeout <= 0:
            return False
        self.sock.settimeout(timeout)
        try:
            data, source = self.sock.recvfrom(65535)
        except TimeoutError:
            return False
        message = Message.parse(data)
        if message.status == 0:
            self.requests.append((message, source))
            if message.method != "ACK" and self.answer:
                self.send(Uac._ok(message), source)
            return True
        call_id = message.header("Call-ID") or ""
        number, _, method = (message.header("CSeq") or "0 X").partition(" ")
        txn = self._transactions.get((call_id, int(number), method.strip()))
        if txn is None:
            self.strays.append(message)
            return True
        first_final = message.status >= 200 and txn.final is None
        txn.responses.append(message)
        if first_final and txn.method == "INVITE" and message.status >= 300:
            self._ack_failure(txn, message)
        return True

    def drain(self, seconds: float) -> None:
        """Keep receiving (and answering) for ``seconds``."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.pump(deadline - time.monotonic())

    def _ack_failure(self, txn: Transaction, response: Message) -> None:
        lines = [
            f"ACK {txn.ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={txn.branch};rport",
            f"From: {txn.from_header}",
            f"To: {response.header('To')}",
            f"Call-ID: {txn.call_id}",
            f"CSeq: {txn.cseq} ACK",
            "Max-Forwards: 70",
            "Content-Length: 0",
        ]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode(), txn.dest)

    # ----- dialogs -----

    def confirm(self, txn: Transaction) -> Dialog:
        """ACK a 2xx: the dialog it set up."""
        final = txn.final
        assert final is not None, txn
        assert 200 <= final.status < 300, final
        route = [
            part.strip()
            for name, value in final.headers
            if name.lower() in ("record-route", "rr")
            for part in value.split(",")
        ][::-1]
        dialog = Dialog(
            txn.call_id,
            txn.from_header,
            final.header("To") or "",
            _uri(final.header("Contact") or final.header("m") or ""),
            route,
            txn.cseq,
            final.body,
        )
        self.in_dialog(dialog, "ACK", txn.dest, cseq=txn.cseq)
        return dialog

    def in_dialog(
        self, dialog: Dialog, method: str, dest: Address, *, cseq: int | None = None
    ) -> Transaction:
        if cseq is None:
            dialog.cseq += 1
            cseq = dialog.cseq
        branch = f"z9hG4bK{secrets.token_hex(8)}"
        lines = [
            f"{method} {dialog.target} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={branch};rport",
            *(f"Route: {r}" for r in dialog.route),
            f"From: {dialog.from_header}",
            f"To: {dialog.to_header}",
            f"Call-ID: {dialog.call_id}",
            f"CSeq: {cseq} {method}",
            "Max-Forwards: 70",
            "Content-Length: 0",
        ]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode(), dest)
        txn = Transaction(
            method, dialog.target, dialog.call_id, cseq, branch, dialog.from_header,
            dialog.to_header, dest,
        )  # fmt: skip
        if method != "ACK":
            self._transactions[(dialog.call_id, cseq, method)] = txn
        return txn

    def hang_up(self, dialog: Dialog, dest: Address, timeout: float = 5.0) -> Message | None:
        return self.wait_final(self.in_dialog(dialog, "BYE", dest), timeout)

    def cancel(self, txn: Transaction) -> Transaction:
        """CANCEL a pending INVITE (same branch, RFC 3261 9.1)."""
        lines = [
            f"CANCEL {txn.ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={txn.branch};rport",
            f"From: {txn.from_header}",
            f"To: {txn.to_header}",
            f"Call-ID: {txn.call_id}",
            f"CSeq: {txn.cseq} CANCEL",
            "Max-Forwards: 70",
            "Content-Length: 0",
        ]
        self.send(("\r\n".join(lines) + "\r\n\r\n").encode(), txn.dest)
        cancel = Transaction(
            "CANCEL", txn.ruri, txn.call_id, txn.cseq, txn.branch, txn.from_header,
            txn.to_header, txn.dest,
        )  # fmt: skip
        self._transactions[(txn.call_id, txn.cseq, "CANCEL")] = cancel
        return cancel

    def byes_received(self, call_id: str) -> list[Message]:
        return [m for m, _ in self.requests if m.method == "BYE" and m.header("Call-ID") == call_id]


def sdp_media(sdp: str) -> Address:
    """The (connection address, port) of the first audio section of an SDP."""
    host = re.search(r"^c=IN IP4 (\S+)", sdp, re.M)
    port = re.search(r"^m=audio (\d+) ", sdp, re.M)
    assert host, sdp
    assert port, sdp
    return host.group(1), int(port.group(1))


# ----- RTP -----


def telephone_event_packets(
    digit: str, *, payload_type: int, ssrc: int, sequence: int, timestamp: int
) -> list[bytes]:
    """One RFC 4733 key press: a start packet (marker), two updates, three end packets."""
    event = DIGITS.index(digit)
    packets: list[bytes] = []
    for index, (end, duration) in enumerate(
        [(False, 160), (False, 320), (False, 480), (True, 640), (True, 640), (True, 640)]
    ):
        payload = TelephoneEvent(event, end, 10, duration).serialize()
        packets.append(
            RtpPacket(
                payload_type, (sequence + index) & 0xFFFF, timestamp, ssrc, payload, index == 0
            ).serialize()
        )
    return packets


def send_udp_spoofed(source: Address, dest: Address, payload: bytes) -> None:
    """A UDP datagram with a forged source address and port (raw socket: needs root or
    CAP_NET_RAW; PermissionError otherwise). Checksum 0: none, as IPv4 allows."""
    udp = struct.pack("!HHHH", source[1], dest[1], 8 + len(payload), 0) + payload
    ip = struct.pack(
        "!BBHHHBBH4s4s",
        0x45, 0, 20 + len(udp), secrets.randbelow(65536), 0, 64, socket.IPPROTO_UDP, 0,
        socket.inet_aton(source[0]), socket.inet_aton(dest[0]),
    )  # fmt: skip
    with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW) as raw:
        raw.setsockopt(socket.IPPROTO_IP, socket.IP_HDRINCL, 1)
        raw.sendto(ip + udp, (dest[0], 0))


def can_spoof() -> bool:
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW):
            return True
    except PermissionError:
        return False


# ----- looking at a process from outside -----


def open_sockets(pid: int) -> int:
    """How many sockets the process holds open (its /proc/PID/fd)."""
    count = 0
    for name in os.listdir(f"/proc/{pid}/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                count += 1
    return count


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def dispatcher_flags(listing: str, port: int) -> str:
    """The FLAGS of the destination at ``port`` in ``kamcmd dispatcher.list`` output
    (AP: active and probed; IP/TP: inactive or trying)."""
    blocks = listing.split("DEST:")
    for block in blocks:
        if f":{port}" in block.split("FLAGS:")[0]:
            match = re.search(r"FLAGS:\s*(\w+)", block)
            if match:
                return match.group(1)
    raise AssertionError(f"no destination at port {port} in:\n{listing}")


# ----- the proxy's side of the proxy<->worker hop -----


def signed_app_headers(
    secret: str, call_id: str, app: str, param: str, *, now: float | None = None
) -> list[tuple[str, str]]:
    """P-App-Name, P-App-Param and their P-App-Signature, as the proxy sends them."""
    from kemi.signing import HEADER, sign

    stamp = int(time.time() if now is None else now)
    return [
        ("P-App-Name", app),
        ("P-App-Param", param),
        (HEADER, sign(secret, stamp, (call_id, app, param))),
    ]
