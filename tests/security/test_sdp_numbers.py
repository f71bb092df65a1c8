"""Finding 2 (number parsing trusts str.isdigit()): an SDP with a Unicode digit such as
'²' in a port or payload field must get a final 4xx/5xx answer, and nothing of the call
may stay behind in the worker (its memory does not grow over many such calls; its
sockets are released); a normal call right after leaves a message."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from media_worker.lab.layout import DOMAIN
from tests.security.conftest import Checks, running
from tests.support.attack import (
    SipAgent,
    Transaction,
    dispatcher_flags,
    open_sockets,
    rss_kib,
    sdp_offer,
    signed_app_headers,
)
from tests.support.secure_stack import SecureStack

pytestmark = pytest.mark.integration
ATTACKER = "127.0.0.20"
PARAM = f"usr=bob;dom={DOMAIN};snd=sip:mallory@outside.example;mod=box;typ=vm"


def bad_sdp(where: str) -> str:
    if where == "port":
        return sdp_offer(ATTACKER, 0, port_text="²0000")
    # The only payload type offered is the bad one: no codec is left to answer with.
    return sdp_offer(ATTACKER, 40000).replace("RTP/AVP 0 101", "RTP/AVP ²")


@pytest.fixture(scope="module")
def stack() -> Iterator[SecureStack]:
    with running(SecureStack()) as started:
        yield started


def to_worker(stack: SecureStack, agent: SipAgent, body: str) -> Transaction:
    """An INVITE straight to the worker, signed as the proxy signs it (127.0.0.1 is the
    proxy's address: this is what the proxy relays when rtpengine passes the SDP on)."""
    call_id = f"{secrets.token_hex(8)}@{agent.host}"
    return agent.request(
        "INVITE",
        f"sip:bob@{DOMAIN}",
        stack.worker_address(),
        from_="sip:mallory@outside.example",
        call_id=call_id,
        headers=signed_app_headers(stack.hop_secret, call_id, "voicemail", PARAM),
        body=body,
    )


def finals(agent: SipAgent, sent: list[Transaction], within: float) -> list[int]:
    deadline = time.monotonic() + within
    while any(t.final is None for t in sent) and agent.pump(deadline - time.monotonic()):
        pass
    return [t.final.status if t.final else 0 for t in sent]


@pytest.mark.parametrize("where", ["port", "payload"])
def test_a_unicode_digit_in_the_sdp_is_answered_and_nothing_is_retained(
    stack: SecureStack, message_speech: Path, checks: Checks, where: str
) -> None:
    pid = stack.worker_pid()
    with SipAgent("127.0.0.1") as agent:  # a local process: the worker's trusted address
        first = [to_worker(stack, agent, bad_sdp(where)) for _ in range(50)]
        statuses = finals(agent, first, 5)
        checks.expect(
            all(400 <= s < 600 for s in statuses),
            f"final 4xx/5xx to each bad SDP expected, got {sorted(set(statuses))} (0: none)",
        )
        if where == "port":
            # Memory: a round of calls, then another once the first round's transactions
            # have ended (Timer I, 5 s): what the second round adds is what is never freed.
            sizes = []
            for _ in range(2):
                for _ in range(6):  # 300 calls, in bursts the socket buffers take
                    finals(agent, [to_worker(stack, agent, bad_sdp(where)) for _ in range(50)], 1)
                agent.drain(6)
                sizes.append(rss_kib(pid))
            grown = sizes[1] - sizes[0]
            checks.expect(grown < 800, f"worker memory grew {grown} KiB over 300 refused calls")
        checks.expect(open_sockets(pid) < 20, f"worker holds {open_sockets(pid)} sockets")
    # Through the proxy: rtpengine sees the SDP first; a final answer still comes back.
    with SipAgent(ATTACKER) as attacker:
        txn = attacker.invite(
            f"sip:bob@{DOMAIN}", stack.proxy, from_="sip:mallory@outside.example",
            body=bad_sdp(where), timeout=10,
        )  # fmt: skip
        final = txn.final.first_line if txn.final else "none"
        checks.expect(
            txn.final is not None and txn.final.status >= 400 and txn.final.status != 408,
            f"through the proxy: final answer {final}",
        )
    flags = dispatcher_flags(stack.dispatcher(), stack.workers[0].port)
    checks.expect(flags.startswith("A"), f"worker not active in the set: {flags}")
    stack.leave_message(message_speech)
    checks.verify(stack.logs())
