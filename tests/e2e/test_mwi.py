"""Message-waiting lights end to end: bob's baresip (with its mwi module) subscribes at
Kamailio; the worker publishes bob's mailbox state when alice leaves a message, when bob
listens to it and when he deletes it through the voicebox, and when an operator
imports and deletes one with ``voicemail mailbox --config``; Kamailio NOTIFYs bob's
phone each time. The phone reports each NOTIFY's body as an MWI_NOTIFY event of its
ctrl_tcp module (baresip 1.0's mwi module logs nothing about it)."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest

from media_worker.lab.layout import DOMAIN
from media_worker.mwi import MessageSummary
from tests.e2e.conftest import PhoneFactory, StackFactory
from tests.e2e.test_calls import mailbox
from tests.support.baresip import MODULES, Baresip
from tests.support.procs import free_udp_tcp_port, wait_until
from tests.support.stack import voicemail

pytestmark = pytest.mark.integration


class PhoneEvents:
    """The events a baresip phone sends on its ctrl_tcp connection: netstrings
    (``length:json,``) of JSON objects."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.setblocking(False)
        self.buffer = b""
        self.events: list[dict[str, Any]] = []

    def poll(self) -> list[dict[str, Any]]:
        while True:
            try:
                chunk = self.sock.recv(65536)
            except BlockingIOError:
                break
            if not chunk:
                break
            self.buffer += chunk
        while b":" in self.buffer:
            length, _, rest = self.buffer.partition(b":")
            size = int(length)
            if len(rest) < size + 1:
                break
            self.events.append(json.loads(rest[:size]))
            self.buffer = rest[size + 1 :]
        return self.events

    def summaries(self) -> list[MessageSummary]:
        """The bodies of the NOTIFYs the phone got (the first may be empty: no state)."""
        return [
            MessageSummary.parse(event["param"].encode())
            for event in self.poll()
            if event.get("type") == "MWI_NOTIFY" and event.get("param", "").strip()
        ]

    def last(self) -> tuple[bool, int, int] | None:
        summaries = self.summaries()
        if not summaries:
            return None
        last = summaries[-1]
        return (last.waiting, last.new, last.old)

    def close(self) -> None:
        self.sock.close()


@pytest.fixture
def mwi_phone() -> Iterator[Any]:
    """``mwi_phone(stack, user, source)``: a registered baresip with mwi and ctrl_tcp.

    The phone starts without the user's account, so that nothing it reports is missed:
    the account is added (it registers, then subscribes) once its events are listened to.
    """
    with ExitStack() as stop:

        def start(stack: Any, user: str, source: Path) -> tuple[Baresip, PhoneEvents]:
            ctrl_port = free_udp_tcp_port()
            phone = Baresip(
                source,
                user="nobody",  # an unregistered placeholder account
                modules=(*MODULES, "mwi.so", "ctrl_tcp.so"),
                extra_config=f"ctrl_tcp_listen 127.0.0.1:{ctrl_port}",
            )
            stop.callback(phone.cleanup)
            stop.enter_context(phone)
            events = PhoneEvents(ctrl_port)
            stop.callback(events.close)
            phone.command(f"/uanew {stack.phone_account(user)}")
            phone.wait_for_log("200 OK", 10)
            phone.wait_for_log("mwi: subscribing", 10)
            return phone, events

        yield start


def test_bobs_light_follows_a_message_left_read_and_deleted_and_a_new_phone_gets_it(
    make_stack: StackFactory,
    phone: PhoneFactory,
    mwi_phone: Any,
    message_speech: Path,
    silence: Path,
) -> None:
    stack = make_stack(mwi=True)
    bob, light = mwi_phone(stack, "bob", silence)

    def logs() -> str:
        return f"{stack.logs()}\n----- bob\n{bob.log()[-4000:]}\n{light.poll()}"

    # The subscription's first NOTIFY has no body (nothing was published for bob yet):
    # the phone reports none.
    wait_until(lambda: "NOTIFY sip:bob@" in stack.kamailio.log(), 15, logs)
    assert light.last() is None

    alice = phone(stack, "alice", message_speech)
    alice.dial(f"sip:bob@{DOMAIN}")  # bob's phone rings unanswered: voicemail
    alice.wait_for_log("Call established", 20)
    wait_until(lambda: len(mailbox(stack, "bob")) == 1, 40, logs)
    wait_until(lambda: light.last() == (True, 1, 0), 15, logs)
    assert light.summaries()[-1].account == f"sip:bob@{DOMAIN}"
    # A phone that starts (again) and subscribes gets the state at once.
    _, rebooted = mwi_phone(stack, "bob", silence)
    wait_until(lambda: rebooted.last() == (True, 1, 0), 15, logs)

    bob.dial(f"sip:1000@{DOMAIN}")
    bob.wait_for_log("Call established", 15)
    # The message is saved (read) as its playback starts: no new message any more.
    wait_until(lambda: light.last() == (False, 0, 1), 30, logs)
    assert not mailbox(stack, "bob")[0].new
    bob.command("3")  # delete
    wait_until(lambda: mailbox(stack, "bob") == [], 20, logs)
    wait_until(lambda: light.last() == (False, 0, 0), 15, logs)
    bob.hangup()

    # The operator's commands, given the worker's configuration, move the light too:
    # they tell the worker through its change spool.
    config = str(stack.workers[0].config)
    voicemail("mailbox", "import", "--config", config, "--sender", "alice", DOMAIN, "bob",
              str(message_speech))  # fmt: skip
    wait_until(lambda: light.last() == (True, 1, 0), 15, logs)
    [left] = mailbox(stack, "bob")
    voicemail("mailbox", "delete", "--config", config, DOMAIN, "bob", left.name)
    wait_until(lambda: light.last() == (False, 0, 0), 15, logs)
