"""Finding 8 (no throttling), the worker's part: a worker at ``sip.max_calls`` answers a
new INVITE with 503 and Retry-After, and stays in the dispatcher set (the proxy tries
the next worker without marking anything): once calls end, a normal call still leaves a
message."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

from media_worker.lab.layout import DOMAIN
from tests.security.conftest import Checks, running
from tests.support.attack import Dialog, SipAgent, dispatcher_flags, sdp_offer, signed_app_headers
from tests.support.secure_stack import SecureStack

pytestmark = pytest.mark.integration
CALLER = "127.0.0.90"
MAX_CALLS = 2
PARAM = f"usr=bob;dom={DOMAIN};snd=sip:caller@outside.example;mod=box;typ=vm"


@pytest.fixture(scope="module")
def stack() -> Iterator[SecureStack]:
    with running(SecureStack(worker_sip={"max_calls": MAX_CALLS})) as started:
        yield started


def test_a_full_worker_answers_503_and_stays_in_the_set(
    stack: SecureStack, message_speech: Path, checks: Checks
) -> None:
    checks.expect(
        "sip.max_calls" not in stack.missing_options, "the worker has no sip.max_calls option"
    )
    held: list[Dialog] = []
    with SipAgent(CALLER) as caller, SipAgent("127.0.0.1") as local:
        for n in range(MAX_CALLS):
            txn = caller.invite(f"sip:bob@{DOMAIN}", stack.proxy, from_=f"sip:c{n}@outside.example",
                                body=sdp_offer(CALLER, 47000 + 2 * n))  # fmt: skip
            assert txn.status == 200, (txn.final, stack.logs())
            held.append(caller.confirm(txn))
        # Straight to the worker, signed as the proxy signs: its own answer.
        call_id = f"{secrets.token_hex(8)}@127.0.0.1"
        direct = local.invite(
            f"sip:bob@{DOMAIN}", stack.worker_address(), from_="sip:c9@outside.example",
            call_id=call_id, headers=signed_app_headers(stack.hop_secret, call_id, "voicemail", PARAM),
            body=sdp_offer("127.0.0.1", 47100), timeout=4,
        )  # fmt: skip
        final = direct.final
        if final is not None and final.status == 200:
            local.hang_up(local.confirm(direct), stack.worker_address())
        checks.expect(
            final is not None and final.status == 503 and final.header("Retry-After") is not None,
            f"503 with Retry-After expected: {final.first_line if final else 'no answer'}"
            + (f" {final.headers}" if final else ""),
        )
        # Through the proxy: refused (the only worker is full), and nothing is marked.
        txn = caller.invite(f"sip:bob@{DOMAIN}", stack.proxy, from_="sip:c8@outside.example",
                            body=sdp_offer(CALLER, 47200))  # fmt: skip
        if txn.final is not None and txn.final.status == 200:
            held.append(caller.confirm(txn))
        checks.expect(
            txn.final is not None and txn.final.status >= 500,
            f"a call beyond max_calls: {txn.final.first_line if txn.final else 'no answer'}",
        )
        flags = dispatcher_flags(stack.dispatcher(), stack.workers[0].port)
        checks.expect(flags.startswith("A"), f"worker not active in the set: {flags}")
        for dialog in held:
            caller.hang_up(dialog, stack.proxy)
    stack.leave_message(message_speech)
    checks.verify(stack.logs())
