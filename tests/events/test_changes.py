"""The change spool: notices written by any process, read and removed by process 0."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media_worker import changes
from media_worker.changes import ChangeConsumer, ChangeForwarder, Notice, attach, spool_dir
from storage import ChangeEvent, ChangeKind, MessageInfo, Storage, open_storage
from storage.testing import DOMAIN, TS, USER, make_wav


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Storage]:
    store = await open_storage(f"fs://{tmp_path / 'spool'}")
    try:
        yield store
    finally:
        await store.close()


def test_notice_round_trip() -> None:
    info = MessageInfo("1700000000+alice", False, 1234, TS, "alice", 2.5)
    event = ChangeEvent(ChangeKind.READ, DOMAIN, USER, info.name, info, 1_700_000_123.25)
    notice = Notice.of(event, "42-abcdef01", ("bob", "lab.example"))
    back = Notice.parse(notice.serialize())
    assert back == notice
    assert (back.event.info, back.event.occurred_at) == (info, 1_700_000_123.25)
    greeting = Notice.of(ChangeEvent(ChangeKind.GREETING_DELETED, DOMAIN, USER, "vm"), "o")
    assert Notice.parse(greeting.serialize()) == greeting
    assert greeting.file_name().endswith(f"-{greeting.id}.chg")


def test_a_huge_sender_leaves_a_small_notice() -> None:
    info = MessageInfo("1700000000+x", True, 10, TS, "😀" * 100_000, None)
    notice = Notice.of(ChangeEvent(ChangeKind.NEW, DOMAIN, USER, info.name, info), "o")
    data = notice.serialize()
    assert len(data) < changes.MAX_NOTICE_BYTES
    parsed = Notice.parse(data).event.info
    assert parsed is not None
    assert parsed.sender == "😀" * changes.MAX_SENDER


def test_ids_and_origins_are_plain_ascii() -> None:
    good = Notice.of(ChangeEvent(ChangeKind.NEW, DOMAIN, USER, "1700000000+a"), "42-ab")
    for bad in (
        Notice("١٢٣", good.event, good.origin),
        Notice(good.id, good.event, "line\nbreak"),
        Notice(good.id, good.event, "x" * 65),
    ):
        with pytest.raises(ValueError, match=r"bad (id|origin)"):
            Notice.parse(bad.serialize())


@given(st.binary(max_size=300))
def test_arbitrary_bytes_are_refused_with_value_error(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        Notice.parse(data)


@given(
    st.dictionaries(
        st.sampled_from(
            ["v", "id", "kind", "domain", "user", "name", "at", "info", "origin", "address"]
        ),
        st.one_of(
            st.none(), st.booleans(), st.integers(-(2**63), 2**63 - 1), st.floats(),
            st.text(max_size=5),
            st.lists(st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=3), st.booleans()), max_size=7),
        ),
    )
)  # fmt: skip
def test_malformed_records_are_refused_with_value_error(record: dict[str, object]) -> None:
    import msgpack

    with contextlib.suppress(ValueError):
        Notice.parse(msgpack.packb(record))


async def test_forwarder_spools_each_change_in_order(tmp_path: Path, store: Storage) -> None:
    forwarder = attach(store, tmp_path, address_of=lambda d, u: ("bob", "lab.example"))
    name = await store.put_message(DOMAIN, USER, make_wav(0.3), sender="alice", received_at=TS)
    await store.mark_read(DOMAIN, USER, name)
    await store.mark_unread(DOMAIN, USER, name)
    await store.put_greeting(DOMAIN, USER, "vm", b"g")
    await store.delete_message(DOMAIN, USER, name)
    await forwarder.flush()
    seen: list[Notice] = []

    async def handle(notice: Notice) -> None:
        seen.append(notice)

    consumer = ChangeConsumer(spool_dir(tmp_path), handle)
    assert await consumer.scan() == 5
    assert [n.event.kind for n in seen] == [
        ChangeKind.NEW, ChangeKind.READ, ChangeKind.UNREAD, ChangeKind.GREETING,
        ChangeKind.DELETED,
    ]  # fmt: skip
    assert {n.origin for n in seen} == {forwarder.origin}
    assert all(n.address == ("bob", "lab.example") for n in seen)
    assert seen[0].event.info is not None
    assert seen[0].event.info.sender == "alice"
    assert list(spool_dir(tmp_path).glob("*.chg")) == []  # removed once handled
    await forwarder.stop()
    await store.put_message(DOMAIN, USER, b"x", sender="a", received_at=TS)  # not forwarded
    assert await consumer.scan() == 0


async def test_a_failing_handler_keeps_the_notice(tmp_path: Path, store: Storage) -> None:
    forwarder = attach(store, tmp_path)
    await store.put_message(DOMAIN, USER, b"one", sender="a", received_at=TS)
    await store.put_message(DOMAIN, USER, b"two", sender="b", received_at=TS)
    await forwarder.stop()
    calls: list[str] = []

    async def broken(notice: Notice) -> None:
        calls.append(notice.event.name)
        raise OSError("webhook outbox not writable")

    assert await ChangeConsumer(spool_dir(tmp_path), broken).scan() == 0
    assert len(calls) == 1  # stopped at the first: order is kept
    assert len(list(spool_dir(tmp_path).glob("*.chg"))) == 2
    names: list[str] = []

    async def working(notice: Notice) -> None:
        names.append(notice.event.name)

    assert await ChangeConsumer(spool_dir(tmp_path), working).scan() == 2
    assert names[0] == calls[0]


async def test_corrupt_notices_are_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    directory = spool_dir(tmp_path)
    directory.mkdir()
    (directory / "00000000000000000001-bad.chg").write_bytes(b"\x93garbage")
    (directory / "00000000000000000002-big.chg").write_bytes(b"\0" * (1 << 20))
    good = Notice.of(ChangeEvent(ChangeKind.NEW, DOMAIN, USER, "1700000000+a"), "o")
    changes.write_notice(directory, good)
    seen: list[Notice] = []

    async def handle(notice: Notice) -> None:
        seen.append(notice)

    with caplog.at_level(logging.ERROR, logger="voicemail.changes"):
        assert await ChangeConsumer(directory, handle).scan() == 1
    assert seen == [good]
    assert (directory / "corrupt" / "00000000000000000001-bad.chg").exists()
    assert (directory / "corrupt" / "00000000000000000002-big.chg").exists()
    assert any("unreadable" in r.getMessage() for r in caplog.records)


async def test_a_failed_write_is_retried_not_dropped(
    tmp_path: Path, store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(changes, "WRITE_RETRY", 0.05)
    blocker = tmp_path / "data"
    blocker.write_text("a file where the data directory should be")
    forwarder = ChangeForwarder(store, spool_dir(blocker))
    forwarder.start()
    await store.put_message(DOMAIN, USER, b"x", sender="a", received_at=TS)
    while forwarder.pending and not forwarder.written:
        await asyncio.sleep(0.06)  # a few failed attempts
        if blocker.is_file():
            blocker.unlink()  # the operator fixes the directory
            blocker.mkdir()
    await asyncio.wait_for(forwarder.flush(), 10)
    await forwarder.stop()
    assert forwarder.written == 1
    assert len(list(spool_dir(blocker).glob("*.chg"))) == 1


async def test_consumer_runs_and_kick_scans_at_once(tmp_path: Path, store: Storage) -> None:
    got = asyncio.Event()

    async def handle(notice: Notice) -> None:
        got.set()

    consumer = ChangeConsumer(spool_dir(tmp_path), handle, poll=3600)
    await consumer.start()
    try:
        forwarder = attach(store, tmp_path)
        await store.put_message(DOMAIN, USER, b"x", sender="a", received_at=TS)
        await forwarder.stop()
        consumer.kick()
        await asyncio.wait_for(got.wait(), 10)
    finally:
        await consumer.stop()


async def test_flush_waits_for_the_changes_made_so_far_not_for_later_ones(
    tmp_path: Path, store: Storage
) -> None:
    forwarder = attach(store, tmp_path)
    gates = [threading.Event(), threading.Event()]
    calls = iter(gates)
    write = forwarder._write

    def gated(batch: list[Notice], done: list[int]) -> None:
        next(calls).wait(10)
        write(batch, done)

    forwarder._write = gated  # type: ignore[method-assign]
    try:
        await store.put_message(DOMAIN, USER, b"mine", sender="a", received_at=TS)
        flushing = asyncio.create_task(forwarder.flush())
        await asyncio.sleep(0)
        await store.put_message(DOMAIN, USER, b"later", sender="b", received_at=TS)
        gates[0].set()  # the first write ends; the second waits
        await asyncio.wait_for(flushing, 10)
        assert (forwarder.written, forwarder.pending) == (1, 1)
    finally:
        gates[1].set()
        await forwarder.stop()
    assert forwarder.written == 2
