"""Recording journals: a recording survives a worker crash.

While a caller speaks, the audio is appended to ``<id>.pcm`` in the worker's data
directory and written out at least once a second (from a thread, never on the event loop:
one ``JournalFlusher`` per worker writes every open journal in one thread hand-off a
second, rather than one hand-off per call);
``<id>.meta`` (msgpack: mailbox, mode, sender, email, template variables, answer time) is
written before the first byte of audio. A process crash loses at most the last second.
At start-up, ``recover`` hands back every recording a crash left behind, so the worker
finishes it (stores and/or emails it) like any other, once: the journal is removed only
after that; a delivery that fails leaves it for the retries (``apps/redelivery.py``),
and the record notes the steps already done (``note``) so that none is repeated. An
unreadable record is set aside in ``corrupt/`` with a log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import msgpack

from media_worker.files import write_atomic

log = logging.getLogger("voicemail.journal")

T = TypeVar("T")

# Journal file work (creating a journal with its fsyncs, the flusher's writes, closing,
# reading, removing) has threads of its own. When hundreds of calls reach their beep
# together, their journals' fsyncs would otherwise queue on the loop's default pool ahead
# of other calls' prompt and mailbox reads, and hold up their greetings and beeps (a
# caller would hear a pause before the beep, and speak into it).
JOURNAL_THREADS = 4
_files = ThreadPoolExecutor(JOURNAL_THREADS, thread_name_prefix="voicemail-journal")


async def in_journal_thread(func: Callable[..., T], /, *args: Any) -> T:
    """``func(*args)`` on the journals' own threads."""
    return await asyncio.get_running_loop().run_in_executor(_files, func, *args)


META_VERSION = 1
FLUSH_BYTES = 16000  # one second of 8 kHz 16-bit audio
FLUSH_INTERVAL = 1.0  # seconds between the flusher's passes: what a crash may lose


@dataclass(frozen=True)
class Leftover:
    """A recording found at start-up: what it was for, and the audio written so far."""

    id: str
    meta: dict[str, Any]
    pcm: bytes


class Journal:
    """One recording in progress."""

    def __init__(self, directory: Path, journal_id: str) -> None:
        self.directory = directory
        self.id = journal_id
        self._pending = bytearray()
        self._fd: int | None = None
        self._lock = asyncio.Lock()
        self.written = 0
        self.meta: dict[str, Any] = {}
        self.write_error: Exception | None = None  # the flusher's last failure, until one works

    @property
    def pcm_path(self) -> Path:
        return self.directory / f"{self.id}.pcm"

    @property
    def meta_path(self) -> Path:
        return self.directory / f"{self.id}.meta"

    @classmethod
    async def create(cls, directory: Path, meta: Mapping[str, Any]) -> Journal:
        journal = cls(directory, f"{secrets.token_hex(8)}")
        journal.meta = {"v": META_VERSION, **meta}
        await in_journal_thread(journal._open, bytes(msgpack.packb(journal.meta)))
        return journal

    def _open(self, record: bytes) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        write_atomic(self.meta_path, record)  # the record first: audio never lacks its meta
        self._fd = os.open(
            self.pcm_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640
        )

    @property
    def done(self) -> dict[str, str]:
        """The delivery steps already completed (see ``remember``)."""
        return dict(self.meta.get("done", {}))

    async def remember(self, done: dict[str, str]) -> None:
        """Record completed delivery steps, so a retry does not repeat them."""
        self.meta = {**self.meta, "done": dict(done)}
        await in_journal_thread(note, self.directory, self.id, self.meta)

    def append(self, pcm: bytes) -> None:
        """Take audio (called on the event loop); it reaches the file within a second."""
        self._pending += pcm

    @property
    def due(self) -> bool:
        return len(self._pending) >= FLUSH_BYTES

    async def flush(self) -> None:
        """Write what is pending now (``close`` does; the flusher writes the rest of the
        time). On failure the audio stays pending and the error is raised."""
        async with self._lock:
            if not self._pending or self._fd is None:
                return
            data, self._pending = bytes(self._pending), bytearray()
            try:
                await in_journal_thread(_write_all, self._fd, data)
            except BaseException:
                self._pending[:0] = data  # kept for the next try, in order
                raise
            self.written += len(data)

    async def close(self) -> None:
        """Write the rest and close the file; the journal stays until ``remove``."""
        await self.flush()
        async with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                await in_journal_thread(os.close, fd)

    async def read(self) -> bytes:
        return await in_journal_thread(self.pcm_path.read_bytes)

    async def remove(self) -> None:
        """The recording has been dealt with: forget it."""
        await self.close()
        await in_journal_thread(_remove, self.directory, self.id)


def _write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is out (a regular file may take less on a full disk)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _write_batch(batch: list[tuple[int | None, bytes]]) -> list[Exception | None]:
    """Each (fd, data) written (in a thread); one error per item, None where it worked."""
    errors: list[Exception | None] = []
    for fd, data in batch:
        try:
            if fd is None:
                raise OSError("the journal is closed")
            _write_all(fd, data)
        except Exception as exc:  # noqa: BLE001 - reported per journal, never lost
            errors.append(exc)
        else:
            errors.append(None)
    return errors


class JournalFlusher:
    """Writes the pending audio of every open journal every ``interval`` seconds, all in
    one thread hand-off: with hundreds of calls, one hop per call per second cost about a
    seventh of the worker's busy time (bench/README.md).

    A crash loses at most the audio since the last pass. A journal being flushed holds
    its lock for the pass, so ``close()`` never closes a file descriptor a write is
    using; a journal whose lock is held (closing) is left to ``close()``. A write that
    fails leaves that journal's audio pending (in order) for the next pass or ``close()``,
    which raises it; the others are written all the same. The task runs while there are
    journals, and ends by itself when the last is gone.
    """

    def __init__(self, interval: float = FLUSH_INTERVAL) -> None:
        self.interval = interval
        self._journals: dict[Journal, None] = {}  # insertion order: oldest calls first
        self._task: asyncio.Task[None] | None = None
        self.passes = 0  # thread hand-offs made (one a pass with anything to write)

    def __len__(self) -> int:
        return len(self._journals)

    def add(self, journal: Journal) -> None:
        """Write ``journal`` from the next pass on (called on the event loop)."""
        self._journals[journal] = None
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def discard(self, journal: Journal) -> None:
        """Stop writing ``journal`` (its call closes it, which writes the rest)."""
        self._journals.pop(journal, None)

    async def stop(self) -> None:
        """End the task after its current pass (the worker stops)."""
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due = loop.time()
        while self._journals:
            # An absolute schedule: a slow pass does not push the next one later.
            due = max(due + self.interval, loop.time())
            await asyncio.sleep(due - loop.time())
            await self.flush_all()

    async def flush_all(self) -> None:
        """One pass: everything pending in every journal, in one thread hand-off."""
        taken: list[tuple[Journal, bytes]] = []
        for journal in list(self._journals):
            if journal._fd is None and not journal._lock.locked():
                del self._journals[journal]  # closed without discard(): nothing to write
                continue
            if not journal._pending or journal._fd is None or journal._lock.locked():
                continue
            await journal._lock.acquire()  # free (checked above): returns at once
            taken.append((journal, bytes(journal._pending)))
            journal._pending = bytearray()
        if not taken:
            return
        # The fds stay open: close() waits for the locks held here.
        write = asyncio.ensure_future(
            in_journal_thread(_write_batch, [(journal._fd, data) for journal, data in taken])
        )
        cancelled = False
        while True:
            try:
                errors = await asyncio.shield(write)
                break
            except asyncio.CancelledError:
                cancelled = True  # the thread still writes: finish the pass first
        self.passes += 1
        for (journal, data), error in zip(taken, errors, strict=True):
            journal._lock.release()
            if error is None:
                journal.written += len(data)
                journal.write_error = None
                continue
            journal._pending[:0] = data
            if journal.write_error is None:  # once per failing spell, not every second
                log.warning(
                    "journal %s (call %s): audio not written (%s); kept in memory, retried",
                    journal.id, journal.meta.get("call_id", "-"), error,
                )  # fmt: skip
            journal.write_error = error
        if cancelled:
            raise asyncio.CancelledError


def _remove(directory: Path, journal_id: str) -> None:
    (directory / f"{journal_id}.meta").unlink(missing_ok=True)  # the meta goes first
    (directory / f"{journal_id}.pcm").unlink(missing_ok=True)


def pending(directory: Path, skip: frozenset[str] = frozenset()) -> list[str]:
    """Ids of the journals on disk, oldest first, but those in ``skip`` (calls in progress)."""
    if not directory.is_dir():
        return []
    found = []
    for meta_path in directory.glob("*.meta"):
        if meta_path.stem in skip:
            continue
        try:
            found.append((meta_path.stat().st_mtime, meta_path.stem))
        except FileNotFoundError:
            continue  # delivered meanwhile
    return [journal_id for _, journal_id in sorted(found)]


def load(directory: Path, journal_id: str) -> Leftover | None:
    """A journal's record and audio; None when it is gone or was set aside as unreadable."""
    meta_path = directory / f"{journal_id}.meta"
    try:
        meta: Any = msgpack.unpackb(meta_path.read_bytes())
        if not isinstance(meta, dict) or meta.get("v") != META_VERSION:
            raise ValueError("not a version 1 journal record")
        pcm_path = directory / f"{journal_id}.pcm"
        pcm = pcm_path.read_bytes() if pcm_path.exists() else b""
    except FileNotFoundError:
        return None
    except Exception as exc:  # noqa: BLE001 - any damage: set aside, never crash
        set_aside(directory, journal_id, str(exc))
        return None
    return Leftover(journal_id, meta, pcm[: len(pcm) // 2 * 2])


def set_aside(directory: Path, journal_id: str, why: str) -> None:
    """Move a journal that cannot be delivered to corrupt/, with a log line."""
    log.error("journal %s.meta is unreadable (%s): moved to corrupt/", journal_id, why)
    corrupt = directory / "corrupt"
    corrupt.mkdir(exist_ok=True)
    for path in (directory / f"{journal_id}.meta", directory / f"{journal_id}.pcm"):
        if path.exists():
            os.replace(path, corrupt / path.name)


def recover(directory: Path) -> list[Leftover]:
    """Recordings a crash left behind, oldest first; broken records go to corrupt/."""
    # Orphan audio without a record cannot happen (the record is written first); a
    # leftover .pcm alone means its record was set aside or removed: leave it be.
    return [found for i in pending(directory) if (found := load(directory, i)) is not None]


def note(directory: Path, journal_id: str, meta: Mapping[str, Any]) -> None:
    """Rewrite a journal's record (what was done already, so a retry does not repeat it)."""
    write_atomic(directory / f"{journal_id}.meta", bytes(msgpack.packb(dict(meta))))


def forget(directory: Path, journal_id: str) -> None:
    """Remove a recovered journal once its recording was delivered."""
    _remove(directory, journal_id)
