"""The KEMI proxy's defences against the real Kamailio and rtpengine, with raw UDP
sockets: a stand-in media worker that answers as told, callers on other loopback
addresses (bans key on the source; 127.0.0.1 is Kamailio's own address and exempt).

What runs here: the signature of every request to a worker and of the PUBLISH, a worker's
503 moving nothing out of service, rtpengine sessions released after a refusal and a
CANCEL, the body/media limits, the per-source call limit, the forged in-dialog INVITE,
routes aimed at a worker, the forged message-summary NOTIFY, digest replay and the ban
after failed authentications."""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import socket
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest

from kemi.mwi import publication_fields
from kemi.signing import sign, verify
from media_worker.lab.layout import DOMAIN, USERS
from tests.kamailio.uac import Message, digest
from tests.support.procs import free_udp_tcp_port, wait_until
from tests.support.stack import Kamailio, MediaWorker, Rtpengine, user_database

pytestmark = pytest.mark.integration

SECRET = "live-test-secret-0123456789"
SWITCHES = ("WITH_AUTH", "WITH_VOICEMAIL", "WITH_RTPENGINE", "WITH_MWI", "WITH_ANTIFLOOD")
SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n"
)


def response(request: Message, status: int, reason: str, *extra: str, body: str = "") -> bytes:
    copied = [
        f"{n}: {v}"
        for n, v in request.headers
        if n.lower() in ("via", "from", "to", "call-id", "cseq", "record-route")
    ]
    copied = [
        line + ";tag=worker-1"
        if line.lower().startswith("to:") and ";tag=" not in line and status > 100
        else line
        for line in copied
    ]
    typed = ["Content-Type: application/sdp"] if body else []
    lines = [f"SIP/2.0 {status} {reason}", *copied, *extra, *typed]
    lines.append(f"Content-Length: {len(body.encode())}")
    return ("\r\n".join(lines) + "\r\n\r\n" + body).encode()


@dataclass
class FakeWorker:
    """A UDP socket in the dispatcher set: 200 to OPTIONS probes; an INVITE is kept and
    answered by its Call-ID's prefix: ``w503-`` 503 with Retry-After, ``sig-`` 403 Bad
    signature, ``ring-`` 180
    (then 487 after a CANCEL), ``mute-`` nothing, ``ok-`` 200 with SDP, anything else 486."""

    port: int = field(default_factory=free_udp_tcp_port)
    invites: list[Message] = field(default_factory=list)
    received: list[str] = field(default_factory=list)  # method and Call-ID of each request

    def __post_init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.settimeout(0.2)
        self.stopping = threading.Event()
        self.pending: dict[str, Message] = {}
        self.thread = threading.Thread(target=self.serve, daemon=True)
        self.thread.start()

    def serve(self) -> None:
        while not self.stopping.is_set():
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            request = Message.parse(data)
            if request.status or request.method == "ACK":
                continue
            call_id = request.header("Call-ID") or ""
            self.received.append(f"{request.method} {call_id}")
            if request.method == "INVITE":
                self.invites.append(request)
                if call_id.startswith("ring-"):
                    self.pending[call_id] = request
                    self.sock.sendto(response(request, 180, "Ringing"), source)
                elif call_id.startswith("ok-"):
                    self.sock.sendto(
                        response(
                            request,
                            200,
                            "OK",
                            f"Contact: <sip:worker@127.0.0.1:{self.port}>",
                            body=SDP.format(port=41000),
                        ),
                        source,
                    )
                elif call_id.startswith("mute-"):
                    pass  # a worker that never answers: the proxy's timer ends the branch
                elif call_id.startswith("w503-"):
                    self.sock.sendto(response(request, 503, "Too busy", "Retry-After: 5"), source)
                elif call_id.startswith("sig-"):  # a worker with another secret
                    self.sock.sendto(response(request, 403, "Bad signature"), source)
                else:
                    self.sock.sendto(response(request, 486, "Busy Here"), source)
            elif request.method == "CANCEL":
                self.sock.sendto(response(request, 200, "OK"), source)
                if call_id in self.pending:
                    invite = self.pending.pop(call_id)
                    self.sock.sendto(response(invite, 487, "Request Terminated"), source)
            else:
                self.sock.sendto(response(request, 200, "OK"), source)

    def invite(self, call_id: str, timeout: float = 5.0) -> Message:
        wait_until(
            lambda: any(m.header("Call-ID") == call_id for m in self.invites),
            timeout,
            lambda: "no INVITE",
        )
        return next(m for m in self.invites if m.header("Call-ID") == call_id)

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join()
        self.sock.close()


class Phone:
    """Raw SIP over UDP from ``host`` (any 127.0.0.0/8 address) to Kamailio."""

    def __init__(self, host: str, proxy_port: int) -> None:
        self.host, self.proxy_port = host, proxy_port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, 0))
        self.port = self.sock.getsockname()[1]

    def close(self) -> None:
        self.sock.close()

    def send(
        self,
        method: str,
        ruri: str,
        *,
        from_: str,
        call_id: str | None = None,
        to: str | None = None,
        to_tag: str | None = None,
        headers: tuple[tuple[str, str], ...] = (),
        body: str = "",
        content_type: str = "application/sdp",
        branch: str | None = None,
        cseq: int = 1,
    ) -> tuple[str, str]:
        """Send a request; (Call-ID, Via branch)."""
        call_id = call_id or f"{secrets.token_hex(8)}@{self.host}"
        branch = branch or f"z9hG4bK{secrets.token_hex(8)}"
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={branch};rport",
            f"From: <{from_}>;tag=phone-1",
            f"To: <{to or ruri}>" + (f";tag={to_tag}" if to_tag else ""),
            f"Call-ID: {call_id}",
            f"CSeq: {cseq} {method}",
            "Max-Forwards: 70",
            f"Contact: <sip:phone@{self.host}:{self.port}>",
            *(f"{n}: {v}" for n, v in headers),
            *([f"Content-Type: {content_type}"] if body else []),
            f"Content-Length: {len(body.encode())}",
        ]
        data = ("\r\n".join(lines) + "\r\n\r\n" + body).encode()
        self.sock.sendto(data, ("127.0.0.1", self.proxy_port))
        return call_id, branch

    def final(self, call_id: str, timeout: float = 5.0) -> Message | None:
        """The final response for ``call_id``, or None when nothing came (dropped)."""
        deadline = time.monotonic() + timeout
        while (remaining := deadline - time.monotonic()) > 0:
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65535)
            except TimeoutError:
                return None
            message = Message.parse(data)
            if message.status >= 200 and message.header("Call-ID") == call_id:
                return message
        return None

    def request(self, method: str, ruri: str, **fields: Any) -> Message | None:
        call_id, _ = self.send(method, ruri, **fields)
        return self.final(call_id)


@dataclass
class Lab:
    kamailio: Kamailio
    rtpengine: Rtpengine
    worker: FakeWorker

    def phone(self, host: str) -> Phone:
        return Phone(host, self.kamailio.port)

    def rtpengine_reply(self) -> bytes:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            # A new cookie each time: rtpengine answers a repeated one from its cache.
            cookie = secrets.token_hex(6).encode()
            sock.sendto(cookie + b" d7:command4:liste", ("127.0.0.1", self.rtpengine.ng_port))
            return sock.recv(65535)

    def rtpengine_calls(self) -> int:
        reply = self.rtpengine_reply()
        match = re.search(rb"5:callsl(.*)e6:result", reply)
        assert match is not None, reply
        return len(re.findall(rb"\d+:", match.group(1)))

    def worker_flags(self) -> str:
        listing = self.kamailio.kamcmd("dispatcher.list")
        match = re.search(r"FLAGS: (\w+)", listing)
        assert match is not None, listing
        return match.group(1)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    directory = Path(tempfile.mkdtemp(prefix="vm-kemi-defences-"))
    worker = FakeWorker()
    try:
        db_url = user_database(
            f"sqlite://{directory / 'kamailio.sqlite'}",
            {user: (password, "box") for user, (password, _mode) in USERS.items()},
        )
        with Rtpengine(directory) as rtpengine:
            kamailio = Kamailio(
                directory,
                db_url=db_url,
                workers=cast(list[MediaWorker], [worker]),
                rtpengine=rtpengine,
                switches=SWITCHES,
                secret=SECRET,
                settings={
                    "VM_AUTH_FAIL_LIMIT": "3",
                    "VM_MAX_CALLS_PER_SOURCE": "2",
                    "VM_BAN_TIME": "60",
                    "MWI_SERVER_ADDRESS": '"sip:voicemail@127.0.0.1:5060"',
                },
            )
            with kamailio:
                lab = Lab(kamailio, rtpengine, worker)
                wait_until(lambda: lab.worker_flags() == "AP", 10, kamailio.log)
                yield lab
    finally:
        worker.stop()
        shutil.rmtree(directory, ignore_errors=True)


@contextlib.contextmanager
def phone_at(lab: Lab, host: str) -> Iterator[Phone]:
    phone = lab.phone(host)
    try:
        yield phone
    finally:
        phone.close()


EVE = "sip:eve@elsewhere.example"
BOB = f"sip:bob@{DOMAIN}"


def test_a_signed_call_a_busy_worker_and_no_session_left(lab: Lab) -> None:
    """A 503 from the only worker reaches the caller (as 500); the worker stays in service and
    rtpengine holds nothing afterwards; the INVITE carried a valid signature."""
    with phone_at(lab, "127.0.0.10") as phone:
        call_id, _ = phone.send(
            "INVITE", BOB, from_=EVE, call_id="w503-1@x", body=SDP.format(port=40000)
        )
        final = phone.final(call_id)
    assert final is not None
    assert final.status == 500  # tm turns a 503 into 500 on its way downstream (RFC 3261 16.7)
    invite = lab.worker.invite(call_id)
    fields = (call_id, invite.header("P-App-Name") or "", invite.header("P-App-Param") or "")
    verify(SECRET, invite.header("P-App-Signature"), fields, time.time())
    assert lab.worker_flags() == "AP"  # not marked down by one call's 503
    wait_until(lambda: lab.rtpengine_calls() == 0, 5, lambda: "rtpengine kept the session")


def test_a_worker_that_never_answers_is_not_marked_and_leaves_no_session(lab: Lab) -> None:
    with phone_at(lab, "127.0.0.20") as phone:
        call_id, _ = phone.send(
            "INVITE", BOB, from_=EVE, call_id="mute-1@x", body=SDP.format(port=40060)
        )
        final = phone.final(call_id, timeout=10)
    assert final is not None
    assert final.status == 408
    assert lab.worker_flags() == "AP"
    wait_until(lambda: lab.rtpengine_calls() == 0, 5, lambda: "rtpengine kept the session")


def test_a_cancelled_call_and_the_per_source_limit(lab: Lab) -> None:
    with phone_at(lab, "127.0.0.11") as phone:
        ringing = []
        for n in range(2):
            call_id, branch = phone.send(
                "INVITE", BOB, from_=EVE, call_id=f"ring-{n}@x", body=SDP.format(port=40010 + n)
            )
            lab.worker.invite(call_id)
            ringing.append((call_id, branch))
        assert lab.rtpengine_calls() == 2, lab.rtpengine_reply()
        third = phone.request("INVITE", BOB, from_=EVE, call_id="third@x", body=SDP.format(port=1))
        assert third is not None
        assert (third.status, third.reason) == (486, "Too many calls from your address")
        for call_id, branch in ringing:
            phone.send("CANCEL", BOB, from_=EVE, call_id=call_id, branch=branch)
        wait_until(
            lambda: lab.rtpengine_calls() == 0,
            5,
            lambda: (
                f"rtpengine kept cancelled calls: {lab.rtpengine_reply()!r} {lab.worker.received}"
            ),
        )


def test_oversized_and_many_stream_bodies_are_refused(lab: Lab) -> None:
    many = SDP.format(port=40020) + "".join(
        f"m=audio {40100 + 2 * i} RTP/AVP 0\r\n" for i in range(500)
    )
    with phone_at(lab, "127.0.0.12") as phone:
        final = phone.request("INVITE", BOB, from_=EVE, body=many)
        assert final is not None
        assert (final.status, final.reason) == (488, "Body too large")
        five = SDP.format(port=40020) + "m=audio 40030 RTP/AVP 0\r\n" * 4
        final = phone.request("INVITE", BOB, from_=EVE, body=five)
        assert final is not None
        assert (final.status, final.reason) == (488, "Too many media streams")
    assert lab.rtpengine_calls() == 0


def test_a_forged_in_dialog_invite_is_not_relayed(lab: Lab) -> None:
    with phone_at(lab, "127.0.0.13") as phone:
        final = phone.request(
            "INVITE",
            f"sip:+4930123@127.0.0.1:{lab.worker.port}",
            from_=f"sip:alice@{DOMAIN}",
            to_tag="any-tag",
            headers=(("Route", f"<sip:127.0.0.1:{lab.kamailio.port};lr>"),),
            body=SDP.format(port=40040),
        )
    assert final is not None
    assert final.status == 404
    assert "in-dialog request" in lab.kamailio.log()


def test_routes_aimed_at_a_worker_are_refused(lab: Lab) -> None:
    with phone_at(lab, "127.0.0.14") as phone:
        final = phone.request(
            "INVITE", f"sip:bob@127.0.0.1:{lab.worker.port}", from_=EVE, body=SDP.format(port=2)
        )
        assert final is not None
        assert (final.status, final.reason) == (403, "No route to a media worker")
        final = phone.request(
            "INVITE",
            BOB,
            from_=EVE,
            headers=(("Route", f"<sip:127.0.0.1:{lab.kamailio.port};lr>,<sip:gw.example;lr>"),),
            body=SDP.format(port=3),
        )
        assert final is not None
        assert (final.status, final.reason) == (403, "No relaying through this proxy")


def summary_request(phone: Phone, *, signed: bool) -> Message | None:
    ruri = BOB
    body = "Messages-Waiting: yes\r\nVoice-Message: 99/0\r\n"
    call_id = f"{secrets.token_hex(6)}@worker"
    headers: tuple[tuple[str, str], ...] = (("Event", "message-summary"), ("Expires", "60"))
    if signed:
        value = sign(SECRET, int(time.time()), publication_fields(call_id, ruri, body))
        headers = (*headers, ("P-App-Signature", value))
    return phone.request(
        "PUBLISH",
        ruri,
        from_=ruri,
        call_id=call_id,
        headers=headers,
        body=body,
        content_type="application/simple-message-summary",
    )


def test_only_a_signed_publish_sets_a_lamp(lab: Lab) -> None:
    with phone_at(lab, "127.0.0.15") as phone:
        refused = summary_request(phone, signed=False)
        assert refused is not None
        assert (refused.status, refused.reason) == (403, "Mailbox state needs a valid signature")
        taken = summary_request(phone, signed=True)
        assert taken is not None
        assert taken.status == 200


def test_a_message_summary_notify_from_outside_is_refused(lab: Lab) -> None:
    with phone_at(lab, "127.0.0.16") as phone:
        final = phone.request(
            "NOTIFY",
            BOB,
            from_=EVE,
            headers=(("Event", "message-summary"), ("Subscription-State", "active")),
            body="Messages-Waiting: yes\r\n",
            content_type="application/simple-message-summary",
        )
    assert final is not None
    assert (final.status, final.reason) == (403, "Mailbox state comes from this proxy")


def authenticated_invite(phone: Phone, call_id: str, authorization: str | None) -> Message | None:
    headers = (("Proxy-Authorization", authorization),) if authorization else ()
    return phone.request(
        "INVITE",
        f"sip:1000@{DOMAIN}",
        from_=f"sip:alice@{DOMAIN}",
        call_id=call_id,
        headers=headers,
        body=SDP.format(port=40050),
    )


def test_a_replayed_credential_with_a_new_call_id_fails(lab: Lab) -> None:
    with phone_at(lab, "127.0.0.17") as phone:
        challenge = authenticated_invite(phone, "replay-1@x", None)
        assert challenge is not None
        assert challenge.status == 407
        header = challenge.header("Proxy-Authenticate") or ""
        assert "qop=" in header
        credential = digest(
            header,
            user="alice",
            password=USERS["alice"][0],
            method="INVITE",
            uri=f"sip:1000@{DOMAIN}",
        )
        first = authenticated_invite(phone, "replay-1@x", credential)
        assert first is not None
        assert first.status == 486  # through to the worker, which said busy
        replayed = authenticated_invite(phone, "replay-2@x", credential)
        assert replayed is not None
        assert replayed.status == 407
    assert not [m for m in lab.worker.invites if m.header("Call-ID") == "replay-2@x"]


def test_failed_authentications_ban_the_source_only(lab: Lab) -> None:
    with phone_at(lab, "127.0.0.18") as attacker, phone_at(lab, "127.0.0.19") as other:
        for n in range(3):
            challenge = authenticated_invite(attacker, f"guess-{n}@x", None)
            assert challenge is not None
            wrong = digest(
                challenge.header("Proxy-Authenticate") or "",
                user="alice",
                password="wrong",
                method="INVITE",
                uri=f"sip:1000@{DOMAIN}",
            )
            answer = authenticated_invite(attacker, f"guess-{n}@x", wrong)
            assert (answer.status if answer else None) == (407 if n < 2 else None)
        assert authenticated_invite(attacker, "after@x", None) is None  # banned: silence
        answer = authenticated_invite(other, "other@x", None)  # another address: answered
        assert answer is not None
        assert answer.status == 407
    bans = [line for line in lab.kamailio.log().splitlines() if "banning 127.0.0.18" in line]
    assert len(bans) == 1
    assert "alice@lab.example" in bans[0]


def test_an_answered_call_is_relayed_in_its_dialog_and_its_bye_frees_rtpengine(lab: Lab) -> None:
    """The worker's 200 and the caller's ACK and BYE go through: a dialog this proxy set
    up; the BYE deletes the rtpengine session."""
    with phone_at(lab, "127.0.0.22") as phone:
        call_id, _ = phone.send(
            "INVITE", BOB, from_=EVE, call_id="ok-1@x", body=SDP.format(port=40070)
        )
        answer = phone.final(call_id)
        assert answer is not None
        assert answer.status == 200
        assert lab.rtpengine_calls() == 1
        to_tag = (answer.header("To") or "").split("tag=")[1].split(";")[0]
        route_set = tuple(("Route", v) for n, v in answer.headers if n.lower() == "record-route")
        assert route_set
        contact = re.search(r"<([^>]+)>", answer.header("Contact") or "")
        assert contact is not None
        for method, cseq in (("ACK", 1), ("BYE", 2)):
            phone.send(
                method,
                contact.group(1),
                from_=EVE,
                to=BOB,
                to_tag=to_tag,
                call_id=call_id,
                headers=route_set,
                cseq=cseq,
            )
        final = phone.final(call_id)
        assert final is not None
        assert final.status == 200
        assert (final.header("CSeq") or "").endswith("BYE")
    assert f"BYE {call_id}" in lab.worker.received
    wait_until(lambda: lab.rtpengine_calls() == 0, 5, lambda: "rtpengine kept the session")


def test_a_request_flood_bans_the_source(lab: Lab) -> None:
    """pike (WITH_ANTIFLOOD): a burst of requests from one address bans it; one line."""
    with phone_at(lab, "127.0.0.23") as flood, phone_at(lab, "127.0.0.24") as other:
        for _ in range(60):
            flood.send("OPTIONS", f"sip:127.0.0.1:{lab.kamailio.port}", from_=EVE)
        time.sleep(0.5)
        assert flood.request("OPTIONS", f"sip:127.0.0.1:{lab.kamailio.port}", from_=EVE) is None
        answer = other.request("OPTIONS", f"sip:127.0.0.1:{lab.kamailio.port}", from_=EVE)
        assert answer is not None
        assert answer.status == 200
    bans = [line for line in lab.kamailio.log().splitlines() if "banning 127.0.0.23" in line]
    assert len(bans) == 1
    assert "request flood" in bans[0]
