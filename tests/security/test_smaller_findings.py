"""Finding 9 (smaller ones): the worker's stateless 403 to an untrusted source goes to
the packet's source, never to the address its Via names (no reflection); a TCP
connection from an untrusted address to the worker is closed at once; a From domain with
a trailing dot (``lab.example.``) is the local domain, so the proxy asks for
authentication (KEMI and native cfg). A normal call right after leaves a message."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from media_worker.lab.layout import DOMAIN
from tests.security.conftest import Checks, running
from tests.support.attack import SipAgent, sdp_offer
from tests.support.secure_stack import SecureStack

pytestmark = pytest.mark.integration
UNTRUSTED, VICTIM = "127.0.0.92", "127.0.0.93"  # the worker trusts only 127.0.0.1/32


@pytest.fixture(scope="module")
def stack() -> Iterator[SecureStack]:
    with running(SecureStack()) as started:
        yield started


@pytest.fixture(scope="module")
def native_stack() -> Iterator[SecureStack]:
    with running(SecureStack(native=True)) as started:
        yield started


@pytest.fixture(params=["kemi", "native"])
def cfg_stack(request: pytest.FixtureRequest, stack: SecureStack) -> SecureStack:
    """The KEMI stack, or (started only when asked for) the native cfg's."""
    if request.param == "native":
        native: SecureStack = request.getfixturevalue("native_stack")
        return native
    return stack


def test_the_workers_403_goes_to_the_source_not_the_via(
    stack: SecureStack, message_speech: Path, checks: Checks
) -> None:
    with SipAgent(UNTRUSTED) as attacker, SipAgent(VICTIM, answer=False) as victim:
        attacker.request(
            "INVITE", f"sip:bob@{DOMAIN}", stack.worker_address(), from_="sip:x@outside.example",
            via=(victim.host, victim.port), body=sdp_offer(UNTRUSTED, 48000),
        )  # fmt: skip
        victim.drain(1.5)
        attacker.drain(0.2)
        reflected = [m.first_line for m in victim.strays]
        checks.expect(not reflected, f"the worker answered the Via address: {reflected}")
        to_source = [m.first_line for m in attacker.strays]
        checks.expect(
            all(line.startswith("SIP/2.0 403") for line in to_source),
            f"to the source: {to_source}",
        )
    stack.leave_message(message_speech)
    checks.verify(stack.workers[0].log()[-3000:])


def test_an_untrusted_tcp_connection_to_the_worker_is_closed_at_once(
    stack: SecureStack, message_speech: Path, checks: Checks
) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
        tcp.bind((UNTRUSTED, 0))
        tcp.settimeout(3)
        tcp.connect(stack.worker_address())
        started = time.monotonic()
        try:
            closed = tcp.recv(1) == b""
        except ConnectionResetError:
            closed = True
        except TimeoutError:
            closed = False
        waited = time.monotonic() - started
        checks.expect(closed and waited < 2, f"connection still open after {waited:.1f} s")
    stack.leave_message(message_speech)
    checks.verify(stack.workers[0].log()[-3000:])


def test_a_trailing_dot_in_the_from_domain_is_still_local(
    cfg_stack: SecureStack, message_speech: Path, checks: Checks
) -> None:
    stack = cfg_stack
    caller = "127.0.0.94"
    with SipAgent(caller) as agent:
        txn = agent.invite(f"sip:bob@{DOMAIN}", stack.proxy, from_=f"sip:alice@{DOMAIN}.",
                           body=sdp_offer(caller, 48100))  # fmt: skip
        final = txn.final
        if final is not None and final.status == 200:
            agent.hang_up(agent.confirm(txn), stack.proxy)
        checks.expect(
            final is not None and final.status == 407,
            f"407 (authentication) expected: {final.first_line if final else 'no answer'}",
        )
    stack.leave_message(message_speech)
    checks.verify(stack.kamailio.log()[-4000:])
