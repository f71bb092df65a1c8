"""Finding 3 (rtpengine port exhaustion): one unauthenticated 12 KB INVITE with 248 m=
lines must be refused with 488 before any rtpengine call (rtpengine's session count does
not grow), and every call toward a worker releases its rtpengine session however it
ends: refused by the worker, cancelled, timed out or hung up. A normal call right after
leaves a message."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from media_worker.lab.layout import DOMAIN
from tests.security.conftest import Checks, running
from tests.support.attack import RtpengineNg, SipAgent, Transaction, dispatcher_flags, sdp_offer
from tests.support.procs import wait_until
from tests.support.secure_stack import SecureStack

pytestmark = pytest.mark.integration
ATTACKER = "127.0.0.30"
CALLER = "sip:mallory@outside.example"


@pytest.fixture(scope="module")
def stack() -> Iterator[SecureStack]:
    # ring_time: the worker rings before answering, so that a caller can cancel; dave's
    # profile (mode both, no email) is one the worker refuses (400) after the offer.
    started = SecureStack(worker_sip={"ring_time": 1.5}, extra_users={"dave": ("--mode", "both")})
    with running(started):
        started.set_preference("dave", "email", "dave-has-no-address")
        yield started


@pytest.fixture
def ng(stack: SecureStack) -> RtpengineNg:
    return RtpengineNg(stack.rtpengine.ng_port)


def end(caller: SipAgent, txn: Transaction, stack: SecureStack) -> None:
    """Hang up a call that was answered (when the test expected otherwise)."""
    if txn.final is not None and txn.final.status == 200:
        caller.hang_up(caller.confirm(txn), stack.proxy)


def settles(count: Callable[[], int], expected: int, within: float = 5.0) -> bool:
    """Whether ``count()`` comes back to ``expected`` within ``within`` seconds."""
    deadline = time.monotonic() + within
    while count() != expected:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def test_an_invite_with_248_media_sections_is_refused_before_rtpengine(
    stack: SecureStack, ng: RtpengineNg, message_speech: Path, checks: Checks
) -> None:
    before = ng.session_count()
    body = sdp_offer(ATTACKER, 42000, media_lines=248)
    assert len(body) > 12000
    with SipAgent(ATTACKER) as attacker:
        txn = attacker.invite(f"sip:bob@{DOMAIN}", stack.proxy, from_=CALLER, body=body)
        held = ng.session_count()
        final = txn.final
        end(attacker, txn, stack)
    checks.expect(
        final is not None and final.status == 488,
        f"488 expected, got {final.first_line if final else 'nothing'}",
    )
    checks.expect(held == before, f"rtpengine sessions {before} -> {held} during the call")
    checks.expect(settles(ng.session_count, before), f"rtpengine: {ng.calls()} left")
    stack.leave_message(message_speech)
    checks.verify(stack.logs())


def test_calls_to_voicemail_release_their_rtpengine_session_however_they_end(
    stack: SecureStack, ng: RtpengineNg, message_speech: Path, checks: Checks
) -> None:
    before = ng.session_count()
    with SipAgent(ATTACKER) as caller:
        # Refused by the worker: dave's profile lacks the email address his mode needs.
        txn = caller.invite(f"sip:dave@{DOMAIN}", stack.proxy, from_=CALLER,
                            body=sdp_offer(ATTACKER, 42100))  # fmt: skip
        end(caller, txn, stack)
        checks.expect(
            txn.final is not None and 400 <= txn.final.status < 500,
            f"refused call: {txn.final.first_line if txn.final else 'no answer'}",
        )
        checks.expect(settles(ng.session_count, before), f"after a refusal: {ng.calls()}")

        # Cancelled while the worker rings.
        txn = caller.request("INVITE", f"sip:bob@{DOMAIN}", stack.proxy, from_=CALLER,
                             body=sdp_offer(ATTACKER, 42200))  # fmt: skip

        def ringing() -> bool:
            caller.pump(0.2)
            return 180 in txn.provisional

        wait_until(ringing, 5, stack.logs)
        caller.cancel(txn)
        caller.wait_final(txn, 5)
        end(caller, txn, stack)
        checks.expect(
            txn.final is not None and txn.final.status == 487,
            f"cancelled call: {txn.final.first_line if txn.final else 'no answer'}",
        )
        checks.expect(settles(ng.session_count, before), f"after a CANCEL: {ng.calls()}")

        # Timed out: the worker is stopped (SIGSTOP) and never answers.
        pid = stack.worker_pid()
        os.kill(pid, signal.SIGSTOP)
        try:
            txn = caller.invite(f"sip:bob@{DOMAIN}", stack.proxy, from_=CALLER,
                                body=sdp_offer(ATTACKER, 42300), timeout=15)  # fmt: skip
        finally:
            os.kill(pid, signal.SIGCONT)
        end(caller, txn, stack)
        checks.expect(
            txn.final is not None and txn.final.status >= 400,
            f"timed-out call: {txn.final.first_line if txn.final else 'no answer'}",
        )
        checks.expect(settles(ng.session_count, before), f"after a timeout: {ng.calls()}")

        # Answered, then hung up.
        txn = caller.invite(f"sip:bob@{DOMAIN}", stack.proxy, from_=CALLER,
                            body=sdp_offer(ATTACKER, 42400))  # fmt: skip
        if checks.expect(
            txn.final is not None and txn.final.status == 200,
            f"answered call: {txn.final.first_line if txn.final else 'no answer'}",
        ):
            dialog = caller.confirm(txn)
            time.sleep(0.5)
            caller.hang_up(dialog, stack.proxy)
        checks.expect(settles(ng.session_count, before), f"after a BYE: {ng.calls()}")

    # The stopped worker is probed back into the set before the normal call.
    with contextlib.suppress(AssertionError):
        wait_until(
            lambda: dispatcher_flags(stack.dispatcher(), stack.workers[0].port).startswith("A"),
            10,
            stack.dispatcher,
        )
    stack.leave_message(message_speech)
    checks.verify(stack.logs())
