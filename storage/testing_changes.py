"""The change-event part of the storage contract: which operations publish which events,
with what they carry. :class:`storage.testing.StorageContract` includes it.

Import this module only from tests: it needs pytest.
"""

from __future__ import annotations

import time

import pytest

from storage import (
    ChangeEvent,
    ChangeKind,
    Counts,
    MailboxNotFound,
    MessageNotFound,
    Storage,
)
from storage.testing_support import DOMAIN, TS, USER, make_wav


class ChangeContract:
    """Change events and marking a message new again; needs the ``store`` fixture."""

    async def test_change_events(self, store: Storage) -> None:
        events: list[ChangeEvent] = []
        unsubscribe = store.subscribe(events.append)

        def broken(event: ChangeEvent) -> None:
            raise RuntimeError("listener bug")

        store.subscribe(broken)  # must not break the operation or other listeners
        name = await store.put_message(DOMAIN, USER, b"x", sender="a", received_at=TS)
        await store.mark_read(DOMAIN, USER, name)
        await store.mark_read(DOMAIN, USER, name)  # no change, no event
        await store.mark_unread(DOMAIN, USER, name)
        await store.mark_unread(DOMAIN, USER, name)  # no change, no event
        await store.put_greeting(DOMAIN, USER, "vm", b"g")
        await store.delete_greeting(DOMAIN, USER, "vm")
        assert await store.delete_greeting(DOMAIN, USER, "vm") is False  # no event
        await store.delete_message(DOMAIN, USER, name)
        with pytest.raises(MessageNotFound):
            await store.delete_message(DOMAIN, USER, name)  # failed: no event
        with pytest.raises(MessageNotFound):
            await store.mark_unread(DOMAIN, USER, name)  # failed: no event
        assert events == [
            ChangeEvent(ChangeKind.NEW, DOMAIN, USER, name),
            ChangeEvent(ChangeKind.READ, DOMAIN, USER, name),
            ChangeEvent(ChangeKind.UNREAD, DOMAIN, USER, name),
            ChangeEvent(ChangeKind.GREETING, DOMAIN, USER, "vm"),
            ChangeEvent(ChangeKind.GREETING_DELETED, DOMAIN, USER, "vm"),
            ChangeEvent(ChangeKind.DELETED, DOMAIN, USER, name),
        ]
        unsubscribe()
        await store.put_message(DOMAIN, USER, b"y", sender="a", received_at=TS)
        assert len(events) == 6

    async def test_change_events_carry_the_message_and_the_time(self, store: Storage) -> None:
        events: list[ChangeEvent] = []
        store.subscribe(events.append)
        audio = make_wav(0.5)
        before = time.time()
        name = await store.put_message(DOMAIN, USER, audio, sender="alice", received_at=TS)
        await store.mark_read(DOMAIN, USER, name)
        await store.mark_unread(DOMAIN, USER, name)
        await store.delete_message(DOMAIN, USER, name)
        await store.put_greeting(DOMAIN, USER, "vm", b"g")
        after = time.time()
        created, read, unread, deleted, greeting = events
        for event in events:
            assert before <= event.occurred_at <= after
        assert greeting.info is None
        assert created.info is not None
        assert created.info.new is True
        assert (created.info.name, created.info.size) == (name, len(audio))
        assert (created.info.received_at, created.info.sender) == (TS, "alice")
        assert created.info.duration == pytest.approx(0.5, abs=0.01)
        # A backend may not know the message after a change; when it does, it is right.
        for event, new in ((read, False), (unread, True), (deleted, True)):
            if event.info is not None:
                assert (event.info.name, event.info.new) == (name, new)
                assert (event.info.size, event.info.received_at) == (len(audio), TS)
                assert event.info.sender == "alice"

    async def test_mark_unread(self, store: Storage) -> None:
        first = await store.put_message(DOMAIN, USER, b"one", sender="a", received_at=TS)
        second = await store.put_message(DOMAIN, USER, b"two", sender="a", received_at=TS + 1)
        await store.mark_unread(DOMAIN, USER, first)  # already new: harmless
        await store.mark_read(DOMAIN, USER, first)
        await store.mark_read(DOMAIN, USER, second)
        assert await store.count(DOMAIN, USER) == Counts(new=0, saved=2)
        await store.mark_unread(DOMAIN, USER, first)
        assert await store.count(DOMAIN, USER) == Counts(new=1, saved=1)
        flags = {m.name: m.new for m in await store.list_mailbox(DOMAIN, USER)}
        assert flags == {first: True, second: False}
        message = await store.get_message(DOMAIN, USER, first)
        assert (message.info.new, message.audio) == (True, b"one")
        # New again is new like any other: reading it back and forth keeps working.
        await store.mark_read(DOMAIN, USER, first)
        await store.mark_unread(DOMAIN, USER, first)
        assert await store.count(DOMAIN, USER) == Counts(new=1, saved=1)
        with pytest.raises(MessageNotFound):
            await store.mark_unread(DOMAIN, USER, "1700000099+a")
        with pytest.raises(MailboxNotFound):
            await store.mark_unread(DOMAIN, "nobody", "1700000000+a")
