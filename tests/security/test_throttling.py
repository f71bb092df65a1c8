"""Finding 8 (no throttling), the proxy's part: 300 wrong passwords from one source
(127.0.0.80, not the phones' 127.0.0.1) get that source banned, with a log line, while a
phone on 127.0.0.1 keeps working; a captured Proxy-Authorization replayed with a new
Call-ID is refused; 40 concurrent unauthenticated calls from one source are not all
accepted. A normal call right after each leaves a message."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from media_worker.lab.layout import DOMAIN, USERS
from tests.kamailio.uac import digest
from tests.security.conftest import Checks, running
from tests.support.attack import SipAgent, sdp_offer
from tests.support.secure_stack import SecureStack

pytestmark = pytest.mark.integration
GUESSER, REPLAYER, FLOODER = "127.0.0.80", "127.0.0.81", "127.0.0.82"
ALICE = f"sip:alice@{DOMAIN}"


@pytest.fixture(scope="module")
def stack() -> Iterator[SecureStack]:
    with running(SecureStack()) as started:
        yield started


def register(agent: SipAgent, stack: SecureStack, password: str, timeout: float = 2.0) -> int:
    """REGISTER alice with ``password`` (challenge, answer); the final status, 0 for none."""
    first = agent.request("REGISTER", f"sip:{DOMAIN}", stack.proxy, from_=ALICE, to=ALICE)
    challenge = agent.wait_final(first, timeout)
    if challenge is None or challenge.status != 401:
        return challenge.status if challenge else 0
    credentials = digest(challenge.header("WWW-Authenticate") or "", user="alice",
                         password=password, method="REGISTER", uri=f"sip:{DOMAIN}")  # fmt: skip
    second = agent.request("REGISTER", f"sip:{DOMAIN}", stack.proxy, from_=ALICE, to=ALICE,
                           call_id=first.call_id, headers=[("Authorization", credentials)])  # fmt: skip
    final = agent.wait_final(second, timeout)
    return final.status if final else 0


def test_password_guessing_bans_the_source_and_not_the_phones(
    stack: SecureStack, message_speech: Path, checks: Checks
) -> None:
    with SipAgent(GUESSER) as guesser:
        first = guesser.request("REGISTER", f"sip:{DOMAIN}", stack.proxy, from_=ALICE, to=ALICE)
        challenge = guesser.wait_final(first, 3)
        assert challenge is not None, first
        assert challenge.status == 401, challenge
        header = challenge.header("WWW-Authenticate") or ""
        for attempt in range(300):
            credentials = digest(header, user="alice", password=f"guess-{attempt}",
                                 method="REGISTER", uri=f"sip:{DOMAIN}")  # fmt: skip
            txn = guesser.request("REGISTER", f"sip:{DOMAIN}", stack.proxy, from_=ALICE,
                                  to=ALICE, headers=[("Authorization", credentials)])  # fmt: skip
            guesser.wait_final(txn, 0.005)
            if txn.final is not None and txn.final.header("WWW-Authenticate"):
                header = txn.final.header("WWW-Authenticate") or header
        guesser.drain(0.5)
        after = register(guesser, stack, USERS["alice"][0])
        checks.expect(after != 200, "the right password still works from the guessing source")
    log = stack.kamailio.log()
    banned = [line for line in log.splitlines() if GUESSER in line and re.search("ban", line, re.I)]
    checks.expect(bool(banned), f"no log line bans {GUESSER}")
    with SipAgent("127.0.0.1") as phone:
        checks.expect(register(phone, stack, USERS["alice"][0]) == 200,
                      "alice's phone on 127.0.0.1 cannot register")  # fmt: skip
    stack.leave_message(message_speech)
    checks.verify(log[-5000:])


def test_a_replayed_proxy_authorization_is_refused(
    stack: SecureStack, message_speech: Path, checks: Checks
) -> None:
    voicebox = f"sip:1000@{DOMAIN}"
    with SipAgent(REPLAYER) as alice:
        txn = alice.invite(voicebox, stack.proxy, from_=ALICE, body=sdp_offer(REPLAYER, 45000))
        challenge = txn.final
        assert challenge is not None, stack.logs()
        assert challenge.status == 407, challenge
        credentials = digest(challenge.header("Proxy-Authenticate") or "", user="alice",
                             password=USERS["alice"][0], method="INVITE", uri=voicebox)  # fmt: skip
        headers = [("Proxy-Authorization", credentials)]
        txn = alice.invite(voicebox, stack.proxy, from_=ALICE, call_id=txn.call_id,
                           headers=headers, body=sdp_offer(REPLAYER, 45000))  # fmt: skip
        assert txn.status == 200, (txn.final, stack.logs())
        alice.hang_up(alice.confirm(txn), stack.proxy)
        time.sleep(1)
        # Someone who captured that INVITE sends it again as a new call.
        replay = alice.invite(voicebox, stack.proxy, from_=ALICE, headers=headers,
                              body=sdp_offer(REPLAYER, 45100))  # fmt: skip
        final = replay.final
        if final is not None and final.status == 200:
            alice.hang_up(alice.confirm(replay), stack.proxy)
        checks.expect(
            final is not None and final.status in (401, 403, 407),
            f"the replayed credentials got {final.first_line if final else 'no answer'}",
        )
    stack.leave_message(message_speech)
    checks.verify(stack.kamailio.log()[-5000:])


KAMAILIO_PROCESSES = 2  # layout.kamailio_command's -n


def test_one_source_cannot_hold_40_unauthenticated_calls(
    stack: SecureStack, message_speech: Path, checks: Checks
) -> None:
    with SipAgent(FLOODER) as flooder:
        calls = [
            flooder.request(
                "INVITE",
                f"sip:bob@{DOMAIN}",
                stack.proxy,
                from_=f"sip:caller{n}@outside.example",
                body=sdp_offer(FLOODER, 46000 + 2 * n),
            )
            for n in range(40)
        ]
        deadline = time.monotonic() + 5
        while any(c.final is None for c in calls) and flooder.pump(deadline - time.monotonic()):
            pass
        answered = [c for c in calls if c.final is not None and c.final.status == 200]
        dialogs = [flooder.confirm(c) for c in answered]
        # VM_MAX_CALLS_PER_SOURCE is 10; each of Kamailio's SIP processes checks the count
        # as its INVITE arrives, so a burst may pass by one call per process (-n 2).
        checks.expect(
            len(answered) <= 10 + KAMAILIO_PROCESSES,
            f"{len(answered)} of 40 calls from one source answered",
        )
        for dialog in dialogs:  # all at once: a banned source's BYEs get no answer
            flooder.in_dialog(dialog, "BYE", stack.proxy)
        flooder.drain(1)
    stack.leave_message(message_speech)
    checks.verify(stack.kamailio.log()[-5000:])
