"""Finding 6 (the proxy->worker hop is trusted by address alone): with the stack's
signing secret configured (Kamailio VM_SECRET, worker sip.secret), a request straight
to the worker's port from a local process (127.0.0.1, the worker's trusted address) that
is unsigned, signed with another key or signed too long ago gets 403; an authenticated
phone that dials ``sip:x@127.0.0.1:<worker port>`` is refused by the proxy (the worker
never sees it); ``pin=`` in P-App-Param never opens a mailbox that has a PIN of its own.
A normal call (which the proxy signs) still leaves a message."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from media_worker.audio import write_wav
from media_worker.lab.layout import DOMAIN, USERS
from media_worker.rtp import RtpPacket
from storage import open_storage
from tests.security.conftest import Checks, running
from tests.support.attack import (
    SipAgent,
    Transaction,
    sdp_media,
    sdp_offer,
    signed_app_headers,
    telephone_event_packets,
)
from tests.support.procs import wait_until
from tests.support.secure_stack import SecureStack, tone
from tests.support.stack import voicemail

pytestmark = pytest.mark.integration
LOCAL = "127.0.0.1"  # a local process: the address the worker trusts
PARAM = f"usr=bob;dom={DOMAIN};snd=sip:mallory@outside.example;mod=box;typ=vm"
BOB_PIN = "4321"


@pytest.fixture(scope="module")
def stack() -> Iterator[SecureStack]:
    with running(SecureStack()) as started:
        voicemail("pin", "set", "--storage", f"fs://{started.spool}", DOMAIN, "bob",
                  stdin=BOB_PIN + "\n")  # fmt: skip
        yield started


def hang_up_if_answered(agent: SipAgent, txn: Transaction, dest: tuple[str, int]) -> None:
    if txn.final is not None and txn.final.status == 200:
        agent.hang_up(agent.confirm(txn), dest)


def test_a_request_straight_to_the_worker_needs_the_proxy_signature(
    stack: SecureStack, message_speech: Path, checks: Checks
) -> None:
    checks.expect("sip.secret" not in stack.missing_options, "the worker has no sip.secret option")
    for signature in ("unsigned", "other-key", "stale"):
        with SipAgent(LOCAL) as agent:
            call_id = f"{secrets.token_hex(8)}@{LOCAL}"
            if signature == "unsigned":
                headers = [("P-App-Name", "voicemail"), ("P-App-Param", PARAM)]
            elif signature == "other-key":
                headers = signed_app_headers(secrets.token_hex(20), call_id, "voicemail", PARAM)
            else:
                stale = time.time() - 120
                headers = signed_app_headers(
                    stack.hop_secret, call_id, "voicemail", PARAM, now=stale
                )
            txn = agent.invite(
                f"sip:bob@{DOMAIN}", stack.worker_address(), from_="sip:mallory@outside.example",
                call_id=call_id, headers=headers, body=sdp_offer(LOCAL, 44000), timeout=4,
            )  # fmt: skip
            hang_up_if_answered(agent, txn, stack.worker_address())
            final = txn.final.first_line if txn.final else "no answer"
            checks.expect(txn.status == 403, f"{signature}: 403 expected: {final}")
    # The proxy signs what it relays: a normal call still reaches the worker.
    stack.leave_message(message_speech)
    checks.verify(stack.workers[0].log()[-4000:])


def test_a_phone_cannot_dial_the_worker_through_the_proxy(
    stack: SecureStack, message_speech: Path, checks: Checks
) -> None:
    with SipAgent(LOCAL) as alice:
        ruri = f"sip:x@{LOCAL}:{stack.workers[0].port}"
        txn = alice.invite(
            ruri, stack.proxy, from_=f"sip:alice@{DOMAIN}", to=ruri,
            password=USERS["alice"][0], body=sdp_offer(LOCAL, 44100), timeout=5,
        )  # fmt: skip
        hang_up_if_answered(alice, txn, stack.proxy)
        time.sleep(0.5)
        final = txn.final.first_line if txn.final else "no answer"
        checks.expect(
            txn.final is not None and 400 <= txn.final.status < 500, f"refusal expected: {final}"
        )
        checks.expect(
            txn.call_id not in stack.workers[0].log(), "the proxy relayed the call to the worker"
        )
    stack.leave_message(message_speech)
    checks.verify(stack.logs())


@pytest.mark.parametrize("user", ["bob", "alice"], ids=["stored-pin", "control-no-pin"])
def test_pin_in_p_app_param_does_not_replace_a_stored_pin(
    stack: SecureStack, message_speech: Path, checks: Checks, user: str
) -> None:
    """bob has a PIN of his own: pin= must not open his box. alice has none: pin= is
    her PIN, and entering it opens the box (the control that shows the keys arrive)."""

    async def leave() -> None:
        async with open_storage(f"fs://{stack.spool}") as store:
            await store.put_message(DOMAIN, user, write_wav(tone(2.0, 440)),
                                    sender="sip:carol@lab.example", received_at=int(time.time()))  # fmt: skip

    asyncio.run(leave())

    def seeded_is_new() -> bool:
        """The message just left (the newest, so the first played) is still new."""
        return any(m.new for m in stack.mailbox(user) if "carol" in m.sender)

    param = f"usr={user};dom={DOMAIN};pin=1234"
    with SipAgent(LOCAL) as agent, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as rtp:
        rtp.bind((LOCAL, 0))
        call_id = f"{secrets.token_hex(8)}@{LOCAL}"
        txn = agent.invite(
            f"sip:{user}@{DOMAIN}", stack.worker_address(), from_="sip:mallory@outside.example",
            call_id=call_id, headers=signed_app_headers(stack.hop_secret, call_id, "voicebox", param),
            body=sdp_offer(LOCAL, rtp.getsockname()[1]), timeout=4,
        )  # fmt: skip
        assert txn.status == 200, (txn.final, stack.logs())
        dialog = agent.confirm(txn)
        worker_rtp = sdp_media(dialog.answer)
        ssrc, sequence = secrets.randbits(32), 0
        for _ in range(50):  # a second of silence, then the P-App PIN and '#'
            rtp.sendto(
                RtpPacket(0, sequence, sequence * 160, ssrc, b"\xff" * 160).serialize(), worker_rtp
            )
            sequence += 1
            time.sleep(0.02)
        for digit in "1234#":
            for packet in telephone_event_packets(
                digit, payload_type=101, ssrc=ssrc, sequence=sequence, timestamp=sequence * 160
            ):
                rtp.sendto(packet, worker_rtp)
            sequence += 6
            time.sleep(0.25)
        # Had the PIN opened the box, the new message would be played, and so read.
        deadline = time.monotonic() + 5
        while seeded_is_new() and time.monotonic() < deadline:
            agent.pump(0.2)
        opened = not seeded_is_new()
        if user == "bob":
            checks.expect(not opened, "pin=1234 opened a mailbox whose PIN is 4321")
        else:
            checks.expect(opened, "control: pin=1234 did not open alice's box (no PIN stored)")
        agent.hang_up(dialog, stack.worker_address())
    wait_until(lambda: call_id in stack.workers[0].log(), 5, stack.logs)
    if user == "bob":
        stack.leave_message(message_speech)
    checks.verify(stack.workers[0].log()[-4000:])
