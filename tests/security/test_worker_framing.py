"""Finding 1 (one request takes the only worker out of service): an unauthenticated
INVITE to an unregistered user carrying a header byte that is not UTF-8, or more header
fields than the worker's limit, must get a 4xx from the worker through the proxy, and the
worker must stay in the dispatcher set: a normal call right after reaches voicemail."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from media_worker.lab.layout import DOMAIN
from media_worker.sip.message import MAX_HEADER_FIELDS
from tests.security.conftest import Checks, running
from tests.support.attack import SipAgent, dispatcher_flags, sdp_offer
from tests.support.secure_stack import SecureStack

pytestmark = pytest.mark.integration
ATTACKER = "127.0.0.13"

MALFORMED = {
    "non-utf8-header": b"X-Junk: caf\xe9 \xff\xfe\r\n",
    "too-many-headers": b"".join(b"X-Pad-%d: x\r\n" % n for n in range(MAX_HEADER_FIELDS + 20)),
}


@pytest.fixture(scope="module")
def stack() -> Iterator[SecureStack]:
    with running(SecureStack()) as started:
        yield started


@pytest.mark.parametrize("kind", list(MALFORMED))
def test_a_malformed_invite_is_answered_and_the_worker_stays_in_the_set(
    stack: SecureStack, message_speech: Path, checks: Checks, kind: str
) -> None:
    with SipAgent(ATTACKER) as attacker:
        txn = attacker.invite(
            f"sip:bob@{DOMAIN}",
            stack.proxy,
            from_="sip:mallory@outside.example",
            body=sdp_offer(ATTACKER, 41000),
            raw_headers=MALFORMED[kind],
            timeout=10,
        )
    final = txn.final.first_line if txn.final else "no final answer"
    # The worker's own 4xx; a 408 or 5xx is the proxy giving up on a silent worker.
    checks.expect(
        txn.final is not None and 400 <= txn.final.status < 500 and txn.final.status != 408,
        f"the worker's 4xx expected, got {final}",
    )
    flags = dispatcher_flags(stack.dispatcher(), stack.workers[0].port)
    checks.expect(flags.startswith("A"), f"worker not active in the set: {flags}")
    stack.leave_message(message_speech)
    checks.verify(stack.logs())
