"""The shared journal flusher: every open journal written in one thread hand-off a pass,
all that is pending each time (so a crash loses at most what came after the last pass),
never racing a journal's close(), and a failing write loses nothing."""

from __future__ import annotations

import asyncio
import errno
import logging
import threading
from pathlib import Path

import pytest

from media_worker.apps import journal as journal_module
from media_worker.apps.journal import Journal, JournalFlusher


def frame(n: int) -> bytes:
    return n.to_bytes(4, "little") * 80  # 20 ms, numbered


async def open_journals(directory: Path, count: int) -> list[Journal]:
    return [await Journal.create(directory, {"mailbox": f"u{i}@lab.example"}) for i in range(count)]


async def test_one_thread_hand_off_writes_every_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    journals = await open_journals(tmp_path, 50)
    flusher = JournalFlusher()
    for journal in journals:
        flusher.add(journal)
    hand_offs = []
    in_thread = journal_module.in_journal_thread

    async def counting(func, /, *args):  # type: ignore[no-untyped-def]
        hand_offs.append(func)
        return await in_thread(func, *args)

    monkeypatch.setattr(journal_module, "in_journal_thread", counting)
    for n in range(50):
        for journal in journals:
            journal.append(frame(n))
    await flusher.flush_all()
    assert len(hand_offs) == 1
    assert flusher.passes == 1
    expected = b"".join(frame(n) for n in range(50))
    for journal in journals:
        assert journal.pcm_path.read_bytes() == expected  # on disk before any close()
        assert (journal.written, journal.due) == (len(expected), False)
    await flusher.flush_all()  # nothing pending: no hand-off at all
    assert len(hand_offs) == 1
    monkeypatch.undo()
    for journal in journals:
        flusher.discard(journal)
        await journal.remove()
    await flusher.stop()


async def test_close_waits_for_the_pass_that_writes_its_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [journal] = await open_journals(tmp_path, 1)
    flusher = JournalFlusher()
    flusher.add(journal)
    writing, release = threading.Event(), threading.Event()
    write_all = journal_module._write_all

    def slow_write(fd: int, data: bytes) -> None:
        writing.set()
        release.wait(10)
        write_all(fd, data)

    monkeypatch.setattr(journal_module, "_write_all", slow_write)
    journal.append(frame(0))
    pass_ = asyncio.create_task(flusher.flush_all())
    await asyncio.to_thread(writing.wait, 10)  # the pass holds the file descriptor now
    journal.append(frame(1))  # arrives during the pass: the pass did not take it
    flusher.discard(journal)
    closing = asyncio.create_task(journal.close())
    await asyncio.sleep(0.05)
    assert not closing.done()  # close() does not close the fd under the writing thread
    monkeypatch.setattr(journal_module, "_write_all", write_all)
    release.set()
    await pass_
    await closing
    assert journal.pcm_path.read_bytes() == frame(0) + frame(1)
    await flusher.stop()
    await journal.remove()


async def test_a_failing_write_keeps_the_audio_and_spares_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    full, fine = await open_journals(tmp_path, 2)
    flusher = JournalFlusher()
    flusher.add(full)
    flusher.add(fine)
    write_all = journal_module._write_all
    full_fd = full._fd

    def disk_full_for_one(fd: int, data: bytes) -> None:
        if fd == full_fd:
            raise OSError(errno.ENOSPC, "No space left on device")
        write_all(fd, data)

    monkeypatch.setattr(journal_module, "_write_all", disk_full_for_one)
    caplog.set_level(logging.WARNING, "voicemail.journal")
    for n in range(2):
        full.append(frame(n))
        fine.append(frame(n))
        await flusher.flush_all()
    assert fine.pcm_path.read_bytes() == frame(0) + frame(1)
    assert full.pcm_path.read_bytes() == b""
    assert isinstance(full.write_error, OSError)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1  # once per failing spell, not once a second
    assert full.id in warnings[0]
    assert "No space left" in warnings[0]
    flusher.discard(full)
    with pytest.raises(OSError, match="No space left"):
        await full.close()  # the call's end hears of it (the message is retried later)
    monkeypatch.setattr(journal_module, "_write_all", write_all)  # space again
    await full.close()
    assert full.pcm_path.read_bytes() == frame(0) + frame(1)  # in order, nothing lost
    flusher.discard(fine)
    await flusher.stop()
    for journal in (full, fine):
        await journal.remove()


async def test_the_task_writes_each_interval_and_ends_with_the_last_journal(
    tmp_path: Path,
) -> None:
    [journal] = await open_journals(tmp_path, 1)
    flusher = JournalFlusher(interval=0.05)
    flusher.add(journal)
    journal.append(frame(0))
    task = flusher._task
    assert task is not None
    for _ in range(200):
        if journal.written:
            break
        await asyncio.sleep(0.01)
    assert journal.pcm_path.read_bytes() == frame(0)  # written without any close()
    flusher.discard(journal)
    await asyncio.wait_for(task, 5)  # nothing left to write: the task ends by itself
    assert len(flusher) == 0
    flusher.add(journal)  # a new call: a new task
    new_task = flusher._task
    assert new_task is not None
    assert new_task is not task
    await flusher.stop()
    assert new_task.done()
    assert flusher._task is None
    await journal.remove()


async def test_a_journal_closed_without_discard_is_dropped(tmp_path: Path) -> None:
    kept, closed = await open_journals(tmp_path, 2)
    flusher = JournalFlusher()
    flusher.add(kept)
    flusher.add(closed)
    await closed.close()  # its call ended on a path that did not discard it
    kept.append(frame(0))
    await flusher.flush_all()
    assert len(flusher) == 1
    assert kept.pcm_path.read_bytes() == frame(0)
    flusher.discard(kept)
    await flusher.stop()
    for journal in (kept, closed):
        await journal.remove()


async def test_journal_files_are_written_on_threads_of_their_own(tmp_path: Path) -> None:
    # Not on the loop's default pool, where prompt and mailbox reads of other calls wait.
    names: list[str] = []
    [journal] = await open_journals(tmp_path, 1)
    flusher = JournalFlusher()
    flusher.add(journal)
    write_all = journal_module._write_all

    def noting(fd: int, data: bytes) -> None:
        names.append(threading.current_thread().name)
        write_all(fd, data)

    journal_module._write_all = noting
    try:
        journal.append(frame(0))
        await flusher.flush_all()
    finally:
        journal_module._write_all = write_all
    assert len(names) == 1
    assert names[0].startswith("voicemail-journal")
    flusher.discard(journal)
    await flusher.stop()
    await journal.remove()
