"""Finding 7 (MWI can be forged): an unsigned message-summary PUBLISH for carol, even
from a media worker's own address and port (a spoofed UDP source), must be refused
(403) and must not move carol's lamp; a message-summary NOTIFY from an outsider must not
reach carol's registered phone. A normal call right after leaves a message."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from media_worker.lab.layout import DOMAIN, USERS
from tests.kamailio.uac import Uac
from tests.security.conftest import Checks, running
from tests.support.attack import SipAgent, can_spoof, send_udp_spoofed
from tests.support.secure_stack import SecureStack

pytestmark = pytest.mark.integration
CAROL = f"sip:carol@{DOMAIN}"
OUTSIDER = "127.0.0.71"
FORGED = f"Messages-Waiting: yes\r\nMessage-Account: {CAROL}\r\nVoice-Message: 99/0\r\n"
MWI = (("Event", "message-summary"), ("Expires", "600"))


@pytest.fixture(scope="module")
def stack() -> Iterator[SecureStack]:
    with running(SecureStack(mwi=True)) as started:
        yield started


@pytest.fixture
def carol(stack: SecureStack) -> Iterator[Uac]:
    """carol's phone: registered, subscribed to her own message summary."""
    phone = Uac(stack.kamailio.port)
    try:
        password = USERS["carol"][0]
        assert phone.request("REGISTER", f"sip:{DOMAIN}", from_=CAROL, to=CAROL,
                             headers=(("Expires", "600"),), password=password).status == 200  # fmt: skip
        assert phone.request("SUBSCRIBE", CAROL, from_=CAROL, headers=MWI,
                             password=password).status in (200, 202)  # fmt: skip
        phone.wait_notify(1)
        yield phone
    finally:
        phone.close()


def forged_notifies(phone: Uac, *counts: str, within: float = 4.0) -> list[str]:
    """The NOTIFYs that told one of ``counts`` (new/old messages), waiting up to ``within``."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError):
            phone.wait_notify(len(phone.notifies) + 1, timeout=deadline - time.monotonic())
        found = [n.first_line for n in phone.notifies if any(c in n.body for c in counts)]
        if found:
            return found
    return []


def publish(agent: SipAgent, stack: SecureStack) -> bytes:
    txn = agent.request(
        "PUBLISH", CAROL, stack.proxy, from_=CAROL, headers=MWI, body=FORGED,
        content_type="application/simple-message-summary", contact=False,
    )  # fmt: skip
    agent.wait_final(txn, 4)
    return txn.final.first_line.encode() if txn.final else b"no answer"


def test_an_unsigned_publish_does_not_move_carols_lamp(
    stack: SecureStack, carol: Uac, message_speech: Path, checks: Checks
) -> None:
    with SipAgent("127.0.0.1") as local, SipAgent(OUTSIDER) as outsider:
        for name, agent in (("a local process", local), ("an outsider", outsider)):
            answer = publish(agent, stack)
            checks.expect(answer.startswith(b"SIP/2.0 403"), f"{name}'s PUBLISH: {answer!r}")
        if can_spoof():  # the worker's own address and port (raw socket: root)
            worker = stack.worker_address()
            request = (
                f"PUBLISH {CAROL} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP {worker[0]}:{worker[1]};branch=z9hG4bKspoof1;rport\r\n"
                f"From: <{CAROL}>;tag=spoof\r\nTo: <{CAROL}>\r\nCall-ID: spoof-1@voicemail\r\n"
                "CSeq: 1 PUBLISH\r\nMax-Forwards: 70\r\nEvent: message-summary\r\n"
                "Expires: 600\r\nContent-Type: application/simple-message-summary\r\n"
                f"Content-Length: {len(FORGED)}\r\n\r\n{FORGED}"
            ).encode()
            send_udp_spoofed(worker, stack.proxy, request)
    forged = forged_notifies(carol, "99/0")
    checks.expect(not forged, f"carol's lamp was set by a forged PUBLISH: {forged}")
    stack.leave_message(message_speech)
    checks.verify(stack.kamailio.log()[-5000:])


def test_an_outsiders_notify_does_not_reach_carols_phone(
    stack: SecureStack, carol: Uac, message_speech: Path, checks: Checks
) -> None:
    with SipAgent(OUTSIDER) as outsider:
        for in_dialog in (False, True):
            extra = {"to_tag": "forged-2"} if in_dialog else {}
            route = [("Route", f"<sip:127.0.0.1:{stack.kamailio.port};lr>")] if in_dialog else []
            # In a forged dialog the R-URI is the phone's own contact (a dialog's target).
            ruri = f"sip:carol@127.0.0.1:{carol.port}" if in_dialog else CAROL
            count = "78/0" if in_dialog else "77/0"
            txn = outsider.request(
                "NOTIFY", ruri, stack.proxy, from_="sip:voicemail@outside.example", to=CAROL,
                headers=[*route, ("Event", "message-summary"), ("Subscription-State", "active")],
                body=FORGED.replace("99/0", count),
                content_type="application/simple-message-summary",
                **extra,  # type: ignore[arg-type]
            )  # fmt: skip
            outsider.wait_final(txn, 4)
    forged = forged_notifies(carol, "77/0", "78/0")
    checks.expect(not forged, f"an outsider's NOTIFY reached carol's phone: {forged}")
    stack.leave_message(message_speech)
    checks.verify(stack.kamailio.log()[-5000:])
