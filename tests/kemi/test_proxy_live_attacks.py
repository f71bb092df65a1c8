"""Attacks on the KEMI proxy through the real Kamailio and rtpengine (the lab of
test_proxy_live_defences: a stand-in worker, callers on other loopback addresses)."""

from __future__ import annotations

import re
import secrets
import socket
import time
from typing import Any

import pytest

from media_worker.lab.layout import DOMAIN, USERS
from tests.kamailio.dialogs import phone_call
from tests.kamailio.uac import Message, digest
from tests.kemi.test_proxy_live_defences import (
    BOB,
    EVE,
    SDP,
    Lab,
    Phone,
    lab,
    phone_at,
    response,
)
from tests.support.procs import wait_until

pytestmark = pytest.mark.integration
CAROL = f"sip:carol@{DOMAIN}"

__all__ = ["lab"]  # the module's fixture, shared


def rtpengine_ports(lab: Lab, call_id: str) -> int:
    """Local ports rtpengine holds for ``call_id`` (its 'query' of the call)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(2)
        cookie = secrets.token_hex(6).encode()
        command = f"d7:command5:query7:call-id{len(call_id)}:{call_id}e".encode()
        sock.sendto(cookie + b" " + command, ("127.0.0.1", lab.rtpengine.ng_port))
        reply = sock.recv(65535)
    return len(set(re.findall(rb"10:local porti(\d+)e", reply)))


def test_a_late_offer_ack_with_many_media_sections_takes_no_ports(lab: Lab) -> None:
    """An unauthenticated caller's INVITE without SDP (late offer) is answered by the
    worker's offer; the ACK's answer is the caller's SDP and is held to VM_MAX_MEDIA too,
    else rtpengine allocates ports for every m= line of it."""
    many = SDP.format(port=40200) + "".join(
        f"m=audio {40300 + 2 * i} RTP/AVP 0\r\n" for i in range(200)
    )
    with phone_at(lab, "127.0.0.30") as phone:
        call_id, _ = phone.send("INVITE", BOB, from_=EVE, call_id="ok-late@x")
        answer = phone.final(call_id)
        assert answer is not None
        assert answer.status == 200
        before = rtpengine_ports(lab, call_id)
        to_tag = (answer.header("To") or "").split("tag=")[1].split(";")[0]
        route_set = tuple(("Route", v) for n, v in answer.headers if n.lower() == "record-route")
        contact = re.search(r"<([^>]+)>", answer.header("Contact") or "")
        assert contact is not None
        phone.send(
            "ACK", contact.group(1), from_=EVE, to=BOB, to_tag=to_tag, call_id=call_id,
            headers=route_set, body=many,
        )  # fmt: skip
        time.sleep(1)
        after = rtpengine_ports(lab, call_id)
        phone.send(
            "BYE", contact.group(1), from_=EVE, to=BOB, to_tag=to_tag, call_id=call_id,
            headers=route_set, cseq=2,
        )  # fmt: skip
        phone.final(call_id)
    assert after <= before + 2, (before, after)


@pytest.mark.parametrize(
    "event",
    [("o", "message-summary"), ("EVENT", "Message-Summary ; id=1"), ("Event", "\tmessage-summary")],
)
def test_a_message_summary_notify_in_any_spelling_is_refused(
    lab: Lab, event: tuple[str, str]
) -> None:
    with phone_at(lab, "127.0.0.31") as phone:
        final = phone.request(
            "NOTIFY",
            BOB,
            from_=EVE,
            headers=(event, ("Subscription-State", "active")),
            body="Messages-Waiting: yes\r\n",
            content_type="application/simple-message-summary",
        )
    assert final is not None
    assert (final.status, final.reason) == (403, "Mailbox state comes from this proxy")


def test_media_sections_beyond_the_content_length_take_no_ports(lab: Lab) -> None:
    """An INVITE whose Content-Length covers a one-stream SDP, followed by hundreds of
    m= lines: refused before rtpengine sees it."""
    head = SDP.format(port=40400)
    tail = "".join(f"m=audio {40500 + 2 * i} RTP/AVP 0\r\n" for i in range(150))
    with phone_at(lab, "127.0.0.32") as phone:
        call_id = "ring-cl@x"
        lines = [
            f"INVITE {BOB} SIP/2.0",
            f"Via: SIP/2.0/UDP {phone.host}:{phone.port};branch=z9hG4bKcl{secrets.token_hex(4)};rport",
            f"From: <{EVE}>;tag=phone-1",
            f"To: <{BOB}>",
            f"Call-ID: {call_id}",
            "CSeq: 1 INVITE",
            "Max-Forwards: 70",
            f"Contact: <sip:phone@{phone.host}:{phone.port}>",
            "Content-Type: application/sdp",
            f"Content-Length: {len(head)}",
        ]
        data = ("\r\n".join(lines) + "\r\n\r\n" + head + tail).encode()
        phone.sock.sendto(data, ("127.0.0.1", lab.kamailio.port))
        time.sleep(1)
        ports = rtpengine_ports(lab, call_id)
        final = phone.final(call_id, timeout=1)
    assert final is not None
    assert (final.status, final.reason) == (400, "Content-Length mis-match")
    assert ports == 0


def register(phone: Phone, user: str) -> None:
    aor = f"sip:{user}@{DOMAIN}"
    headers: tuple[tuple[str, str], ...] = (("Expires", "120"),)
    call_id = f"reg-{secrets.token_hex(4)}@x"
    challenge = phone.request(
        "REGISTER", f"sip:{DOMAIN}", from_=aor, to=aor, call_id=call_id, headers=headers
    )
    assert challenge is not None
    assert challenge.status == 401
    credential = digest(
        challenge.header("WWW-Authenticate") or "",
        user=user,
        password=USERS[user][0],
        method="REGISTER",
        uri=f"sip:{DOMAIN}",
    )
    done = phone.request(
        "REGISTER", f"sip:{DOMAIN}", from_=aor, to=aor, call_id=call_id, cseq=2,
        headers=(*headers, ("Authorization", credential)),
    )  # fmt: skip
    assert done is not None
    assert done.status == 200


def refuse_next_invite(phone: Phone) -> None:
    """Answer the next INVITE the proxy sends this phone with 486 (busy: voicemail)."""
    phone.sock.settimeout(5)
    while True:
        request = Message.parse(phone.sock.recv(65535))
        if request.method == "INVITE" and not request.status:
            phone.sock.sendto(response(request, 486, "Busy Here"), ("127.0.0.1", phone.proxy_port))
            return


def test_a_busy_phone_sends_a_stranger_to_voicemail_within_the_per_source_limit(lab: Lab) -> None:
    """The failure route of a call to a busy phone takes it to a worker: there the
    stranger's calls are counted, and the one beyond VM_MAX_CALLS_PER_SOURCE (2) refused."""
    with phone_at(lab, "127.0.0.1") as carol, phone_at(lab, "127.0.0.33") as stranger:
        register(carol, "carol")
        ringing = []
        for n in range(3):
            call_id, branch = stranger.send(
                "INVITE",
                CAROL,
                from_=EVE,
                call_id=f"ring-busy-{n}@x",
                body=SDP.format(port=40600 + 2 * n),
            )
            refuse_next_invite(carol)
            if n < 2:
                lab.worker.invite(call_id)
                ringing.append((call_id, branch))
        final = stranger.final("ring-busy-2@x")
        assert final is not None
        assert (final.status, final.reason) == (486, "Too many calls from your address")
        assert not [m for m in lab.worker.invites if m.header("Call-ID") == "ring-busy-2@x"]
        for call_id, branch in ringing:
            stranger.send("CANCEL", CAROL, from_=EVE, call_id=call_id, branch=branch)
        wait_until(lambda: lab.rtpengine_calls() == 0, 5, lambda: "rtpengine kept a session")


def test_an_in_dialog_request_of_a_known_dialog_goes_nowhere_but_its_peer(lab: Lab) -> None:
    """A caller's own call to voicemail is a dialog this proxy knows; an in-dialog request
    in it with the R-URI of a gateway must not be relayed there (toll fraud through a
    gateway that trusts this proxy's address)."""
    gateway = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gateway.bind(("127.0.0.1", 0))
    gateway.settimeout(2)
    gw = f"sip:+4930123@127.0.0.1:{gateway.getsockname()[1]}"
    try:
        with phone_at(lab, "127.0.0.34") as phone:
            call_id, _ = phone.send(
                "INVITE", BOB, from_=EVE, call_id="ok-fraud@x", body=SDP.format(port=40700)
            )
            answer = phone.final(call_id)
            assert answer is not None
            assert answer.status == 200
            to_tag = (answer.header("To") or "").split("tag=")[1].split(";")[0]
            route_set = tuple(
                ("Route", v) for n, v in answer.headers if n.lower() == "record-route"
            )
            contact = re.search(r"<([^>]+)>", answer.header("Contact") or "")
            assert contact is not None
            dialog: dict[str, Any] = {
                "from_": EVE,
                "to": BOB,
                "to_tag": to_tag,
                "call_id": call_id,
                "headers": route_set,
            }
            worker = contact.group(1)
            phone.send("ACK", worker, **dialog)
            phone.send("INVITE", gw, cseq=2, body=SDP.format(port=40702), **dialog)
            phone.send("MESSAGE", gw, cseq=3, body="hi", content_type="text/plain", **dialog)
            # a worker's URI whose NAT alias or a further Route names the gateway
            alias = f";alias=127.0.0.1~{gateway.getsockname()[1]}~1"
            phone.send(
                "MESSAGE", worker + alias, cseq=4, body="hi", content_type="text/plain", **dialog
            )
            further = (*route_set, ("Route", f"<sip:127.0.0.1:{gateway.getsockname()[1]};lr>"))
            phone.send(
                "MESSAGE", worker, cseq=5, body="hi", content_type="text/plain",
                **{**dialog, "headers": further},
            )  # fmt: skip
            try:
                leaked = gateway.recv(65535)
            except TimeoutError:
                leaked = b""
            phone.send("BYE", worker, cseq=6, **dialog)
            phone.final(call_id)
    finally:
        gateway.close()
    assert leaked == b"", leaked[:200]


def test_a_request_in_a_strangers_call_to_a_phone_goes_nowhere_but_the_phone(lab: Lab) -> None:
    """A stranger's call rings a phone (its 180 names its Contact): what the stranger
    sends in the early dialog goes to that Contact only, not to a gateway named in the
    R-URI, a NAT alias or a further Route."""
    gateway = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    gateway.bind(("127.0.0.1", 0))
    gateway.settimeout(2)
    gw_port = gateway.getsockname()[1]
    gw = f"sip:+4930123@127.0.0.1:{gw_port}"
    try:
        with phone_at(lab, "127.0.0.1") as carol, phone_at(lab, "127.0.0.35") as stranger:
            register(carol, "carol")
            call_id, branch = stranger.send(
                "INVITE", CAROL, from_=EVE, call_id="ring-phone@x", body=SDP.format(port=40800)
            )
            carol.sock.settimeout(5)
            while True:
                invite = Message.parse(carol.sock.recv(65535))
                if invite.method == "INVITE" and not invite.status:
                    break
            contact = f"sip:carol@127.0.0.1:{carol.port}"
            ringing = response(invite, 180, "Ringing", f"Contact: <{contact}>")
            carol.sock.sendto(ringing, ("127.0.0.1", carol.proxy_port))
            routes = tuple(("Route", v) for n, v in invite.headers if n.lower() == "record-route")
            dialog: dict[str, Any] = {
                "from_": EVE, "to": CAROL, "to_tag": "worker-1", "call_id": call_id,
                "body": "hi", "content_type": "text/plain",
            }  # fmt: skip
            time.sleep(0.3)  # the 180 reached the proxy
            stranger.send("MESSAGE", gw, headers=routes, cseq=2, **dialog)
            alias = f";alias=127.0.0.1~{gw_port}~1"
            stranger.send("MESSAGE", contact + alias, headers=routes, cseq=3, **dialog)
            further = (*routes, ("Route", f"<sip:127.0.0.1:{gw_port};lr>"))
            stranger.send("MESSAGE", contact, headers=further, cseq=4, **dialog)
            try:
                leaked = gateway.recv(65535)
            except TimeoutError:
                leaked = b""
            # the phone's Contact is reached, through an alias naming its own address too
            own = f";alias=127.0.0.1~{carol.port}~1"
            stranger.send("MESSAGE", contact + own, headers=routes, cseq=5, **dialog)
            while Message.parse(carol.sock.recv(65535)).method != "MESSAGE":
                pass
            stranger.send("MESSAGE", contact, headers=routes, cseq=6, **dialog)
            while True:
                message = Message.parse(carol.sock.recv(65535))
                if message.method == "MESSAGE":
                    break
            stranger.send("CANCEL", CAROL, from_=EVE, call_id=call_id, branch=branch)
            carol.sock.sendto(
                response(invite, 487, "Request Terminated"), ("127.0.0.1", carol.proxy_port)
            )
    finally:
        gateway.close()
    assert leaked == b"", leaked[:200]
    assert message.header("CSeq") == "6 MESSAGE"
    assert "not ['sip:carol@127.0.0.1:" in lab.kamailio.log()


def test_a_worker_refusing_the_signature_is_logged_for_the_operator(lab: Lab) -> None:
    """$T_reply_reason in the real failure route: the worker's 403 Bad signature is
    named in the log (and with one worker, passed back)."""
    with phone_at(lab, "127.0.0.36") as phone:
        final = phone.request(
            "INVITE", BOB, from_=EVE, call_id="sig-1@x", body=SDP.format(port=40900)
        )
    assert final is not None
    assert (final.status, final.reason) == (403, "Bad signature")
    assert "refused the signature (Bad signature)" in lab.kamailio.log()
    assert lab.worker_flags() == "AP"
    wait_until(lambda: lab.rtpengine_calls() == 0, 5, lambda: "rtpengine kept the session")


@pytest.mark.parametrize(
    ("hangup_by_callee", "callee_proxy"),
    [(False, False), (True, False), (False, True)],
    ids=["caller-bye", "callee-bye", "callee-proxy"],
)
def test_a_call_between_phones_carries_both_sides_requests(
    lab: Lab, hangup_by_callee: bool, callee_proxy: bool
) -> None:
    """An answered call to a registered phone: the caller's ACK, re-INVITE and BYE go to
    the phone's Contact, the phone's re-INVITE and BYE back to the caller."""
    with (
        phone_at(lab, "127.0.0.1") as carol,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as gateway,
    ):
        register(carol, "carol")
        caller.bind(("127.0.0.37", 0))
        gateway.bind(("127.0.0.1", 0))
        phone_call(
            lab.kamailio.port, caller, EVE, carol.sock, CAROL,
            hangup_by_callee=hangup_by_callee, callee_proxy=callee_proxy, gateway=gateway,
        )  # fmt: skip
