"""Calls through Kamailio and rtpengine to a media worker, as phones make them."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from storage import MailboxNotFound, MessageInfo, open_storage
from tests.e2e.conftest import PhoneFactory
from tests.support.procs import wait_until
from tests.support.stack import DOMAIN, Stack

pytestmark = pytest.mark.integration


def mailbox(stack: Stack, user: str) -> list[MessageInfo]:
    async def listing() -> list[MessageInfo]:
        async with open_storage(f"fs://{stack.spool}") as store:
            try:
                return await store.list_mailbox(DOMAIN, user)
            except MailboxNotFound:
                return []

    return asyncio.run(listing())


def test_alice_leaves_unregistered_bob_a_message(
    stack: Stack, phone: PhoneFactory, message_speech: Path
) -> None:
    alice = phone("alice", message_speech)
    alice.dial(f"sip:bob@{DOMAIN}")
    alice.wait_for_log("Call established", 15)
    wait_until(lambda: len(mailbox(stack, "bob")) == 1, 40, stack.logs)
    [message] = mailbox(stack, "bob")
    assert message.new
    assert "alice" in message.sender
    wait_until(lambda: len(stack.smtp.messages()) == 1, 20, stack.logs)
    [mail] = stack.smtp.messages()
    assert mail["To"] == f"bob@{DOMAIN}"
