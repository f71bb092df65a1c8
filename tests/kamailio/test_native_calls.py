"""End to end through the native cfg: Kamailio runs kamailio.cfg with WITH_NATIVE (the
routes of kamailio-cfg/native/) instead of the KEMI script, in front of rtpengine, a media
worker and an SMTP server; baresip phones call as users do."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from media_worker.lab.demo import mailbox_listing
from media_worker.lab.layout import DOMAIN
from storage import MessageInfo
from tests.integration.conftest import caller_speech
from tests.kamailio.native import use_native
from tests.support.baresip import Baresip
from tests.support.procs import free_port, wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
__all__ = ["caller_speech"]

BOB_PARAM = f"usr=bob;dom={DOMAIN};snd=sip:alice@{DOMAIN};eml=bob@{DOMAIN};mod=both;typ=vm"


class NativeStack(Stack):
    """The stack of tests/support/stack.py with the native cfg in Kamailio's directory."""

    def __init__(self, *, dead_worker: bool = False) -> None:
        """``dead_worker``: the dispatcher tries a port where no worker listens first."""
        settings = {"VM_NO_ANSWER_TIMEOUT": "4"}
        if dead_worker:
            settings["VM_WORKER_ALGORITHM"] = "8"  # by priority, then ds_next_dst
        super().__init__(kamailio_settings=settings)
        if dead_worker:
            dead = free_port(kind=socket.SOCK_DGRAM)
            (self.dir / "dispatcher.list").write_text(
                f"1 sip:127.0.0.1:{dead};transport=udp 0 10\n"
                + "".join(f"1 sip:127.0.0.1:{w.port};transport=udp 0 0\n" for w in self.workers)
            )
        use_native(self.kamailio.dir)


@pytest.fixture
def stack(request: pytest.FixtureRequest) -> Iterator[NativeStack]:
    started = NativeStack(dead_worker=getattr(request, "param", False))
    try:
        with started:
            yield started
    finally:
        started.cleanup()


@pytest.fixture
def phones() -> Iterator[ExitStack]:
    with ExitStack() as stop:
        yield stop


def phone(stop: ExitStack, stack: Stack, user: str, source: Path, extra: str = "") -> Baresip:
    """A baresip phone registered as ``user`` (digest auth) at the stack's Kamailio."""
    started = Baresip(source, account=stack.phone_account(user) + extra)
    stop.callback(started.cleanup)
    stop.enter_context(started)
    started.wait_for_log("200 OK", 10)
    return started


@pytest.fixture(scope="module")
def message_speech(caller_speech: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Silence while the greeting and beep play, then speech; baresip hangs up at its end."""
    out = tmp_path_factory.mktemp("message") / "message.wav"
    subprocess.run(["sox", str(caller_speech), str(out), "pad", "8", "0"], check=True)
    return out


def mailbox(stack: Stack, user: str) -> list[MessageInfo]:
    return mailbox_listing(stack.spool, user)


def assert_message_for_bob(stack: NativeStack) -> None:
    wait_until(lambda: len(mailbox(stack, "bob")) == 1, 40, stack.logs)
    [message] = mailbox(stack, "bob")
    assert message.new
    assert "alice" in message.sender
    wait_until(lambda: len(stack.smtp.messages()) == 1, 20, stack.logs)
    [mail] = stack.smtp.messages()
    assert mail["To"] == f"bob@{DOMAIN}"
    log = stack.kamailio.log()
    # The P-App-Param voicemail.cfg built from bob's usr_preferences (avp_db_load).
    assert f": {BOB_PARAM}" in log, log[-4000:]
    # The caller's BYE passed route(VMDIALOG): rtpengine forgot the call.
    wait_until(lambda: "Received command 'delete'" in stack.rtpengine.log(), 10, stack.logs)
    assert not [line for line in log.splitlines() if " ERROR: " in line], log[-4000:]


def test_alice_leaves_unregistered_bob_a_message(
    stack: NativeStack, phones: ExitStack, message_speech: Path
) -> None:
    alice = phone(phones, stack, "alice", message_speech)
    alice.dial(f"sip:bob@{DOMAIN}")
    alice.wait_for_log("Call established", 15)
    assert_message_for_bob(stack)


def test_bob_does_not_answer_and_alice_leaves_a_message(
    stack: NativeStack, phones: ExitStack, message_speech: Path
) -> None:
    """Bob's phone rings past VM_NO_ANSWER_TIMEOUT: failure_route[VMPHONE] sends the
    INVITE to the worker (headers, rtpengine offer and ;vm=1 added in a failure route)."""
    bob = phone(phones, stack, "bob", message_speech)
    alice = phone(phones, stack, "alice", message_speech)
    alice.dial(f"sip:bob@{DOMAIN}")
    bob.wait_for_log("Incoming call", 10)
    alice.wait_for_log("Call established", 20)
    assert_message_for_bob(stack)


@pytest.mark.parametrize("stack", [True], indirect=True, ids=["dead-worker-first"])
@pytest.mark.parametrize("bob_registered", [False, True], ids=["unregistered", "no-answer"])
def test_a_silent_worker_is_skipped(
    stack: NativeStack, phones: ExitStack, message_speech: Path, bob_registered: bool
) -> None:
    """failure_route[VMWORKER] moves on to the next worker. The INVITE to it still
    carries P-App-* and the rtpengine offer: kept from request_route (unregistered bob),
    added again after failure_route[VMPHONE] (no answer)."""
    if bob_registered:
        phone(phones, stack, "bob", message_speech)
    alice = phone(phones, stack, "alice", message_speech)
    alice.dial(f"sip:bob@{DOMAIN}")
    wait_until(lambda: "Call established" in alice.log(), 30, stack.logs)
    assert "worker failed (408); trying sip:127.0.0.1:" in stack.kamailio.log()
    assert_message_for_bob(stack)
