"""Finding 4 (unauthenticated relay through a forged in-dialog request, toll fraud): an
INVITE with any To-tag and ``Route: <sip:PROXY;lr>``, From a local user, toward any
other target must not be relayed: 403/404 comes back and the target receives nothing.
Both the KEMI script and the native cfg; a normal call right after leaves a message."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from media_worker.lab.layout import DOMAIN
from tests.security.conftest import Checks, running
from tests.support.attack import SipAgent, sdp_offer
from tests.support.secure_stack import SecureStack

pytestmark = pytest.mark.integration
ATTACKER, TARGET = "127.0.0.41", "127.0.0.40"


@pytest.fixture(scope="module", params=["kemi", "native"])
def stack(request: pytest.FixtureRequest) -> Iterator[SecureStack]:
    with running(SecureStack(native=request.param == "native")) as started:
        yield started


def test_a_forged_in_dialog_invite_is_not_relayed(
    stack: SecureStack, message_speech: Path, checks: Checks
) -> None:
    # A plain loose route, and one that looks like a call this proxy anchored to a worker.
    for route_params in (";lr", ";lr;ftag=1a2b;vm=1"):
        with SipAgent(TARGET, answer=False) as target, SipAgent(ATTACKER) as attacker:
            txn = attacker.invite(
                f"sip:+4930123456@{TARGET}:{target.port}",
                stack.proxy,
                from_=f"sip:alice@{DOMAIN}",
                to=f"sip:+4930123456@{DOMAIN}",
                to_tag="forged-1",
                headers=[("Route", f"<sip:127.0.0.1:{stack.kamailio.port}{route_params}>")],
                body=sdp_offer(ATTACKER, 43000),
                timeout=4,
            )
            if txn.status == 200:
                attacker.hang_up(attacker.confirm(txn), stack.proxy)
            target.drain(1.0)
            final = txn.final.first_line if txn.final else "no answer"
            checks.expect(
                txn.status in (403, 404), f"Route {route_params}: 403/404 expected: {final}"
            )
            reached = [m.first_line for m, _ in target.requests]
            checks.expect(not reached, f"Route {route_params}: relayed to the target: {reached}")
    stack.leave_message(message_speech)
    checks.verify(stack.kamailio.log()[-5000:])
