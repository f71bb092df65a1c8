"""Recording journals: a recording survives a worker crash.

While a caller speaks, the audio is appended to ``<id>.pcm`` in the worker's data
directory and written out at least once a second (from a thread, never on the event loop);
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
import logging
import os
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from media_worker.files import write_atomic

log = logging.getLogger("voicemail.journal")

META_VERSION = 1
FLUSH_BYTES = 16000  # one second of 8 kHz 16-bit audio


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
        await asyncio.to_thread(journal._open, bytes(msgpack.packb(journal.meta)))
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
        await asyncio.to_thread(note, self.directory, self.id, self.meta)

    def append(self, pcm: bytes) -> None:
        """Take audio (called on the event loop); it reaches the file within a second."""
        self._pending += pcm

    @property
    def due(self) -> bool:
        return len(self._pending) >= FLUSH_BYTES

    async def flush(self) -> None:
        """Write what is pending; the session driver calls this at least every second."""
        async with self._lock:
            if not self._pending or self._fd is None:
                return
            data, self._pending = bytes(self._pending), bytearray()
            await asyncio.to_thread(os.write, self._fd, data)
            self.written += len(data)

    async def close(self) -> None:
        """Write the rest and close the file; the journal stays until ``remove``."""
        await self.flush()
        async with self._lock:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                await asyncio.to_thread(os.close, fd)

    async def read(self) -> bytes:
        return await asyncio.to_thread(self.pcm_path.read_bytes)

    async def remove(self) -> None:
        """The recording has been dealt with: forget it."""
        await self.close()
        await asyncio.to_thread(_remove, self.directory, self.id)


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
