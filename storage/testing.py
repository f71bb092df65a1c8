"""The contract every storage backend passes, as a test class backends subclass.

A backend's test module subclasses :class:`StorageContract` and provides two fixtures:

``storage_url``
    URL of an empty store, already initialised (``await open_storage(url).init()``).
``footprint``
    A callable returning a snapshot (set of strings) of everything the backend holds, used
    to prove that refused requests leave nothing behind.

Import this module only from tests: it needs pytest.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest

from storage import (
    BadIdentity,
    Counts,
    InvalidMessage,
    MailboxNotFound,
    MessageNotFound,
    PinRecord,
    Storage,
    open_storage,
)
from storage.testing_changes import ChangeContract
from storage.testing_support import (
    DOMAIN,
    HOSTILE_VALUES,
    SENDERS,
    TS,
    USER,
    fail_pins,
    hammer,
    make_wav,
    run_processes,
)

__all__ = ["DOMAIN", "HOSTILE_VALUES", "SENDERS", "TS", "USER", "StorageContract", "make_wav"]


class StorageContract(ChangeContract):
    """Behaviour every backend must show; subclass it and provide the two fixtures."""

    @pytest.fixture
    async def store(self, storage_url: str) -> AsyncIterator[Storage]:
        store = await open_storage(storage_url)
        try:
            yield store
        finally:
            await store.close()

    # ----- messages -----

    async def test_put_then_get_round_trip(self, store: Storage) -> None:
        audio = make_wav(1.5)
        name = await store.put_message(
            DOMAIN, USER, audio, sender="sip:alice@example.com", received_at=TS
        )
        message = await store.get_message(DOMAIN, USER, name)
        assert message.audio == audio
        assert message.info.name == name
        assert message.info.new is True
        assert message.info.size == len(audio)
        assert message.info.received_at == TS
        assert message.info.sender == "sip:alice@example.com"
        assert message.info.duration == pytest.approx(1.5, abs=0.01)

    @pytest.mark.parametrize("sender", SENDERS)
    async def test_sender_survives_the_name(self, store: Storage, sender: str) -> None:
        name = await store.put_message(DOMAIN, USER, b"audio", sender=sender, received_at=TS)
        for forbidden in ("/", "\\", "\0", "\n", '"', "<", " "):
            assert forbidden not in name
        [info] = await store.list_mailbox(DOMAIN, USER)
        assert info.sender == sender
        assert (await store.get_message(DOMAIN, USER, name)).info.sender == sender

    async def test_a_very_long_sender_is_stored(self, store: Storage) -> None:
        """A From header is the caller's to choose: an absurdly long, incompressible one
        still leaves a message (a backend may keep only a prefix of the sender)."""
        rng = random.Random(7)  # noqa: S311 - fixed test data, not a secret
        sender = "".join(rng.choice("abcdefghijkXYZ0123456789éü€😀") for _ in range(6000))
        name = await store.put_message(DOMAIN, USER, b"audio", sender=sender, received_at=TS)
        [info] = await store.list_mailbox(DOMAIN, USER)
        assert info.name == name
        assert len(info.sender) >= 10
        assert sender.startswith(info.sender)
        assert (await store.get_message(DOMAIN, USER, name)).info.sender == info.sender

    async def test_nul_is_dropped_from_the_sender(self, store: Storage) -> None:
        await store.put_message(DOMAIN, USER, b"audio", sender="a\0b", received_at=TS)
        [info] = await store.list_mailbox(DOMAIN, USER)
        assert info.sender == "ab"

    async def test_same_second_same_sender_keeps_both(self, store: Storage) -> None:
        first = await store.put_message(DOMAIN, USER, b"one", sender="alice", received_at=TS)
        second = await store.put_message(DOMAIN, USER, b"two", sender="alice", received_at=TS)
        assert first != second
        assert (await store.get_message(DOMAIN, USER, first)).audio == b"one"
        assert (await store.get_message(DOMAIN, USER, second)).audio == b"two"
        listed = await store.list_mailbox(DOMAIN, USER)
        assert [(m.received_at, m.sender) for m in listed] == [(TS, "alice"), (TS, "alice")]

    async def test_list_is_oldest_first_with_metadata(self, store: Storage) -> None:
        later = await store.put_message(DOMAIN, USER, b"later", sender="b", received_at=TS + 60)
        earlier = await store.put_message(DOMAIN, USER, b"earlier!", sender="a", received_at=TS)
        listed = await store.list_mailbox(DOMAIN, USER)
        assert [m.name for m in listed] == [earlier, later]
        assert [m.size for m in listed] == [8, 5]
        assert all(m.new for m in listed)

    async def test_absent_mailbox_is_empty(self, store: Storage) -> None:
        assert await store.list_mailbox(DOMAIN, "nobody") == []
        counts = await store.count(DOMAIN, "nobody")
        assert (counts.new, counts.saved, counts.total) == (0, 0, 0)

    async def test_mailboxes_are_separate(self, store: Storage) -> None:
        await store.put_message(DOMAIN, USER, b"for bob", sender="a", received_at=TS)
        await store.put_message("other.org", USER, b"other bob", sender="a", received_at=TS)
        await store.put_message(DOMAIN, "carol", b"for carol", sender="a", received_at=TS)
        assert (await store.count(DOMAIN, USER)).total == 1
        assert (await store.count("other.org", USER)).total == 1
        [info] = await store.list_mailbox(DOMAIN, "carol")
        assert (await store.get_message(DOMAIN, "carol", info.name)).audio == b"for carol"

    async def test_mark_read_and_count(self, store: Storage) -> None:
        names = [
            await store.put_message(DOMAIN, USER, b"m%d" % i, sender="a", received_at=TS + i)
            for i in range(3)
        ]
        assert await store.count(DOMAIN, USER) == Counts(new=3, saved=0)
        await store.mark_read(DOMAIN, USER, names[1])
        await store.mark_read(DOMAIN, USER, names[1])  # twice is harmless
        counts = await store.count(DOMAIN, USER)
        assert (counts.new, counts.saved) == (2, 1)
        flags = {m.name: m.new for m in await store.list_mailbox(DOMAIN, USER)}
        assert flags == {names[0]: True, names[1]: False, names[2]: True}
        assert (await store.get_message(DOMAIN, USER, names[1])).info.new is False

    async def test_reading_never_flips_the_flag(self, store: Storage) -> None:
        name = await store.put_message(DOMAIN, USER, make_wav(0.2), sender="a", received_at=TS)
        for _ in range(3):
            assert (await store.get_message(DOMAIN, USER, name)).info.new is True
        assert (await store.count(DOMAIN, USER)).new == 1
        [info] = await store.list_mailbox(DOMAIN, USER)
        assert info.new is True

    async def test_delete(self, store: Storage) -> None:
        keep = await store.put_message(DOMAIN, USER, b"keep", sender="a", received_at=TS)
        drop = await store.put_message(DOMAIN, USER, b"drop", sender="b", received_at=TS)
        await store.delete_message(DOMAIN, USER, drop)
        assert [m.name for m in await store.list_mailbox(DOMAIN, USER)] == [keep]
        with pytest.raises(MessageNotFound):
            await store.delete_message(DOMAIN, USER, drop)
        with pytest.raises(MessageNotFound):
            await store.get_message(DOMAIN, USER, drop)
        with pytest.raises(MessageNotFound):
            await store.mark_read(DOMAIN, USER, drop)

    async def test_missing_mailbox_is_reported_as_such(self, store: Storage) -> None:
        with pytest.raises(MailboxNotFound):
            await store.get_message(DOMAIN, "nobody", "1700000000+a")
        with pytest.raises(MailboxNotFound):
            await store.mark_read(DOMAIN, "nobody", "1700000000+a")
        with pytest.raises(MailboxNotFound):
            await store.delete_message(DOMAIN, "nobody", "1700000000+a")
        await store.put_message(DOMAIN, USER, b"x", sender="a", received_at=TS)
        with pytest.raises(MessageNotFound) as caught:
            await store.get_message(DOMAIN, USER, "1700000001+a")
        assert not isinstance(caught.value, MailboxNotFound)

    async def test_empty_audio_is_refused(self, store: Storage) -> None:
        with pytest.raises(InvalidMessage, match="empty"):
            await store.put_message(DOMAIN, USER, b"", sender="a", received_at=TS)
        with pytest.raises(InvalidMessage, match="received_at"):
            await store.put_message(DOMAIN, USER, b"x", sender="a", received_at=-1)
        assert await store.list_mailbox(DOMAIN, USER) == []

    # ----- greetings -----

    async def test_greetings(self, store: Storage) -> None:
        assert await store.get_greeting(DOMAIN, USER, "vm") is None
        await store.put_greeting(DOMAIN, USER, "vm", b"first")
        await store.put_greeting(DOMAIN, USER, "vm", b"replaced")
        await store.put_greeting(DOMAIN, USER, "busy", b"busy greeting")
        assert await store.get_greeting(DOMAIN, USER, "vm") == b"replaced"
        assert await store.get_greeting(DOMAIN, USER, "busy") == b"busy greeting"
        assert await store.get_greeting(DOMAIN, "carol", "vm") is None
        # Greetings are not messages.
        assert await store.list_mailbox(DOMAIN, USER) == []
        assert (await store.count(DOMAIN, USER)).total == 0
        assert await store.delete_greeting(DOMAIN, USER, "vm") is True
        assert await store.delete_greeting(DOMAIN, USER, "vm") is False
        assert await store.get_greeting(DOMAIN, USER, "vm") is None
        assert await store.get_greeting(DOMAIN, USER, "busy") == b"busy greeting"

    # ----- PIN -----

    async def test_pin_record(self, store: Storage) -> None:
        assert await store.get_pin(DOMAIN, USER) == PinRecord()
        stored = await store.update_pin(DOMAIN, USER, lambda r: PinRecord("scrypt$x", (), 0.0))
        assert stored == PinRecord("scrypt$x", (), 0.0)
        locked = await store.update_pin(DOMAIN, USER, lambda r: PinRecord(r.hash, (1.5, 2.5), 99.0))
        assert (
            await store.get_pin(DOMAIN, USER) == locked == PinRecord("scrypt$x", (1.5, 2.5), 99.0)
        )
        assert await store.get_pin(DOMAIN, "carol") == PinRecord()
        await store.update_pin(DOMAIN, USER, lambda r: PinRecord())
        assert await store.get_pin(DOMAIN, USER) == PinRecord()
        # The PIN is neither a message nor a greeting.
        assert await store.list_mailbox(DOMAIN, USER) == []
        assert await store.get_greeting(DOMAIN, USER, "pin") is None

    async def test_pin_updates_from_two_processes_are_atomic(
        self, storage_url: str, store: Storage
    ) -> None:
        per_worker = 25
        await run_processes(fail_pins, [(storage_url, per_worker)] * 2)
        record = await store.get_pin(DOMAIN, USER)
        assert record.failures == tuple(float(i) for i in range(2 * per_worker))

    # ----- hostile identities -----

    @pytest.mark.parametrize("value", HOSTILE_VALUES)
    async def test_hostile_identities_are_refused(
        self, store: Storage, footprint: Callable[[], set[str]], value: str
    ) -> None:
        before = footprint()
        calls: list[Callable[[], Awaitable[object]]] = [
            lambda: store.put_message(value, USER, b"x", sender="a", received_at=TS),
            lambda: store.put_message(DOMAIN, value, b"x", sender="a", received_at=TS),
            lambda: store.get_message(value, USER, "1700000000+a"),
            lambda: store.get_message(DOMAIN, value, "1700000000+a"),
            lambda: store.get_message(DOMAIN, USER, value),
            lambda: store.mark_read(DOMAIN, USER, value),
            lambda: store.mark_read(value, USER, "1700000000+a"),
            lambda: store.mark_unread(DOMAIN, USER, value),
            lambda: store.mark_unread(DOMAIN, value, "1700000000+a"),
            lambda: store.delete_message(DOMAIN, USER, value),
            lambda: store.delete_message(DOMAIN, value, "1700000000+a"),
            lambda: store.list_mailbox(value, USER),
            lambda: store.list_mailbox(DOMAIN, value),
            lambda: store.count(DOMAIN, value),
            lambda: store.put_greeting(DOMAIN, USER, value, b"g"),
            lambda: store.put_greeting(value, USER, "vm", b"g"),
            lambda: store.get_greeting(DOMAIN, value, "vm"),
            lambda: store.get_greeting(DOMAIN, USER, value),
            lambda: store.delete_greeting(DOMAIN, USER, value),
            lambda: store.get_pin(DOMAIN, value),
            lambda: store.update_pin(value, USER, lambda r: r),
        ]
        for call in calls:
            with pytest.raises(BadIdentity):
                await call()
        assert footprint() == before

    async def test_reserved_and_hidden_forms_are_refused(
        self, store: Storage, footprint: Callable[[], set[str]]
    ) -> None:
        before = footprint()
        with pytest.raises(BadIdentity, match="-prompts"):
            await store.put_message("example.com-prompts", USER, b"x", sender="a", received_at=TS)
        with pytest.raises(BadIdentity, match="start with"):
            await store.get_message(DOMAIN, USER, ".tmp-1234.wav")
        with pytest.raises(BadIdentity, match="start with"):
            await store.put_greeting(DOMAIN, USER, ".vm", b"g")
        assert footprint() == before

    # ----- concurrency -----

    async def test_two_processes_lose_nothing(self, storage_url: str, store: Storage) -> None:
        per_worker = 40
        await run_processes(hammer, [(storage_url, w, per_worker) for w in (1, 2)])
        listed = await store.list_mailbox(DOMAIN, USER)
        assert len({m.name for m in listed}) == 2 * per_worker
        counts = await store.count(DOMAIN, USER)
        assert (counts.new, counts.saved) == (per_worker, per_worker)
        bodies = {(await store.get_message(DOMAIN, USER, m.name)).audio for m in listed}
        assert bodies == {
            f"worker {w} message {i}".encode() for w in (1, 2) for i in range(per_worker)
        }
