"""The change spool: how every process that changes a mailbox tells the worker about it.

A store's change events (storage/base.py) reach only the listeners of that store object,
in that process. The message-waiting lamps and the webhooks are run by one process, the
worker's process 0, so every other process that changes a mailbox (the other worker
processes, ``voicemail api``, the ``voicemail mailbox`` commands) writes each change as a
*notice* into ``<data_dir>/changes/``: one small msgpack file per change, written
atomically and durably (temp file, fsync, rename, fsync of the directory). Process 0
reads the directory every 0.2 s, moves the lamp, turns the notice into webhook jobs and
removes it only once those are durable; a notice it cannot read is moved to
``changes/corrupt/`` with a log line. File names start with the time of the change in
nanoseconds, so notices are taken in about the order they were made.

Writers (:class:`ChangeForwarder`) never block the change itself: the listener queues the
notice and a task writes it off the event loop; ``flush()`` waits until everything queued
is on disk. A notice is lost only when the process dies in the few milliseconds between
the change and its notice's fsync.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import msgpack

from media_worker.files import write_atomic
from storage import ChangeEvent, ChangeKind, MessageInfo, Storage
from storage.identity import check_greeting_type, check_mailbox, check_message_name

log = logging.getLogger("voicemail.changes")

NOTICE_VERSION = 1
SUFFIX = ".chg"
POLL = 0.2  # seconds between two scans of the spool by process 0
WRITE_RETRY = 1.0  # seconds before a failed notice write is tried again, doubling ...
MAX_WRITE_RETRY = 30.0  # ... up to this
MAX_NOTICE_BYTES = 64 * 1024  # a notice is a few hundred bytes; anything larger is damage
MAX_SENDER = 1024  # characters of a message's sender a notice carries
BATCH = 500  # notices taken per scan, so that a backlog never starves the event loop

Address = tuple[str, str]  # (user, domain): the SIP address of a uid/did mailbox
AddressOf = Callable[[str, str], Address | None]  # (domain, user) -> learnt address


def spool_dir(data_dir: Path) -> Path:
    """The change spool of the worker whose ``data_dir`` (process 0's) this is."""
    return data_dir / "changes"


def process_token() -> str:
    """A token naming this process in the notices it writes (pid plus random part: pids
    are reused across restarts)."""
    return f"{os.getpid()}-{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, slots=True)
class Notice:
    """One change, as written to the spool. ``id`` names the change (webhooks send it as
    the event id); ``origin`` the process that wrote it; ``address`` the SIP address the
    writer learnt for a uid/did mailbox, if any."""

    id: str
    event: ChangeEvent
    origin: str
    address: Address | None = None

    @classmethod
    def of(cls, event: ChangeEvent, origin: str, address: Address | None = None) -> Notice:
        return cls(uuid.uuid4().hex, event, origin, address)

    def file_name(self) -> str:
        return f"{math.floor(self.event.occurred_at * 1e9):020d}-{self.id}{SUFFIX}"

    def serialize(self) -> bytes:
        event = self.event
        return bytes(
            msgpack.packb(
                {
                    "v": NOTICE_VERSION,
                    "id": self.id,
                    "kind": event.kind.value,
                    "domain": event.domain,
                    "user": event.user,
                    "name": event.name,
                    "at": event.occurred_at,
                    "info": None if event.info is None else _bounded(event.info),
                    "origin": self.origin,
                    "address": None if self.address is None else list(self.address),
                }
            )
        )

    @classmethod
    def parse(cls, data: bytes) -> Notice:
        """The notice in ``data``; ValueError (naming what is wrong) for anything else."""
        if len(data) > MAX_NOTICE_BYTES:
            raise ValueError(f"{len(data)} bytes is too large for a notice")
        try:
            record = msgpack.unpackb(data, raw=False, strict_map_key=True)
        except Exception as exc:  # noqa: BLE001 - msgpack raises several unrelated types
            raise ValueError(f"not msgpack: {exc}") from None
        if not isinstance(record, dict) or record.get("v") != NOTICE_VERSION:
            raise ValueError("not a version 1 notice")
        notice_id = _text(record, "id")
        if not (notice_id.isascii() and notice_id.isalnum()) or len(notice_id) > 64:
            raise ValueError(f"bad id {notice_id!r}")
        origin = _text(record, "origin")
        if not (origin.isascii() and origin.isprintable()) or len(origin) > 64:
            raise ValueError(f"bad origin {origin!r}")
        try:
            kind = ChangeKind(record.get("kind"))
        except ValueError:
            raise ValueError(f"unknown kind {record.get('kind')!r}") from None
        at = record.get("at")
        if isinstance(at, bool) or not isinstance(at, int | float) or not math.isfinite(at):
            raise ValueError(f"bad time {at!r}")
        # Identities as strictly as the store takes them: a notice names a mailbox and
        # a message, never a path, in the log lines, lamps and webhooks it leads to.
        domain, user = check_mailbox(record.get("domain"), record.get("user"))
        name = record.get("name")
        check_name = check_message_name if kind.moves_lamp else check_greeting_type
        event = ChangeEvent(
            kind, domain, user, check_name(name), _info(record.get("info")), float(at)
        )
        address = record.get("address")
        if address is not None:
            if (
                not isinstance(address, list)
                or len(address) != 2
                or not all(isinstance(part, str) and part for part in address)
            ):
                raise ValueError(f"bad address {address!r}")
            address = (address[0], address[1])
        return cls(notice_id, event, origin, address)


def _bounded(info: MessageInfo) -> list[object]:
    """The info's fields, the sender cut to MAX_SENDER chars: it comes from the caller's
    From header, and a notice (and the webhook made of it) stays small whatever it says."""
    return list(info._replace(sender=info.sender[:MAX_SENDER]))


def _text(record: dict[str, object], key: str) -> str:
    value = record.get(key)
    if not isinstance(value, str) or not value:
        raise ValueError(f"{key}: expected non-empty text, got {value!r}")
    return value


def _info(value: object) -> MessageInfo | None:
    if value is None:
        return None
    if not isinstance(value, list) or len(value) != len(MessageInfo._fields):
        raise ValueError(f"bad message info {value!r}")
    name, new, size, received_at, sender, duration = value
    ints_ok = all(isinstance(n, int) and not isinstance(n, bool) for n in (size, received_at))
    duration_ok = duration is None or (
        isinstance(duration, int | float) and not isinstance(duration, bool)
    )
    if not (isinstance(name, str) and isinstance(new, bool) and isinstance(sender, str)):
        raise ValueError(f"bad message info {value!r}")
    if not ints_ok or not duration_ok:
        raise ValueError(f"bad message info {value!r}")
    return MessageInfo(name, new, size, received_at, sender, duration)


def write_notice(directory: Path, notice: Notice) -> Path:
    """Write one notice durably into the spool ``directory``, created if need be inside
    an existing data_dir (a mistyped data_dir fails, rather than grow a tree of its own)."""
    directory.mkdir(mode=0o775, exist_ok=True)
    path = directory / notice.file_name()
    write_atomic(path, notice.serialize())
    return path


class ChangeForwarder:
    """Writes each change ``store`` makes into the spool ``directory``.

    ``start()`` (on the running event loop) subscribes; ``flush()`` waits until every
    change so far is on disk; ``stop()`` unsubscribes, flushes and ends. A write that
    fails (disk full, permissions, no data_dir) is logged and tried again after 1 s,
    doubling up to 30 s: notices are kept in memory meanwhile, never dropped.
    """

    def __init__(
        self,
        store: Storage,
        directory: Path,
        *,
        origin: str | None = None,
        address_of: AddressOf | None = None,
    ) -> None:
        self.store = store
        self.directory = directory
        self.origin = origin or process_token()
        self._address_of = address_of
        self._queue: list[Notice] = []
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None
        self.written = 0  # notices written since start (for logs and tests)
        self._queued = 0  # notices queued since start
        # flush() callers: (notices that must be written, their future), so that a
        # caller waits for its own changes, not for a queue that steady traffic refills.
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []

    @property
    def pending(self) -> int:
        """Notices queued but not yet on disk."""
        return len(self._queue)

    def start(self) -> None:
        if self._task is not None:
            return
        self._task = asyncio.get_running_loop().create_task(
            self._run(), name=f"change spool {self.directory}"
        )
        self._unsubscribe = self.store.subscribe(self._on_change)

    def _on_change(self, event: ChangeEvent) -> None:
        address = None if self._address_of is None else self._address_of(event.domain, event.user)
        self._queue.append(Notice.of(event, self.origin, address))
        self._queued += 1
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Wait until every change made so far is durable in the spool."""
        if self._task is None or self._task.done():
            if self._queue:
                raise RuntimeError("change forwarder not running: notices are pending")
            return
        if self.written >= self._queued:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((self._queued, waiter))
        await waiter

    def _wake_flushers(self) -> None:
        waiting = []
        for target, waiter in self._waiters:
            if self.written >= target:
                if not waiter.done():
                    waiter.set_result(None)
            elif not waiter.done():  # one that gave up (wait_for) is dropped
                waiting.append((target, waiter))
        self._waiters = waiting

    async def stop(self, *, give_up_after: float | None = None) -> None:
        """Unsubscribe and write what is queued; with ``give_up_after``, stop trying after
        that many seconds (the notices not written are logged as lost)."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        task, self._task = self._task, None
        if task is None:
            return
        try:
            if self._queue:
                try:
                    async with asyncio.timeout(give_up_after):
                        await self._idle.wait()
                except TimeoutError:
                    log.error(
                        "%d change notice(s) could not be written to %s: lost",
                        len(self._queue), self.directory,
                    )  # fmt: skip
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            for target, waiter in self._waiters:
                if not waiter.done():
                    if self.written >= target:
                        waiter.set_result(None)
                    else:
                        waiter.set_exception(RuntimeError("change forwarder stopped"))
            self._waiters = []

    async def _run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            retry = WRITE_RETRY
            while self._queue:
                batch, done = list(self._queue), [0]
                try:
                    await asyncio.to_thread(self._write, batch, done)
                except Exception as exc:  # the disk, mostly: keep the notices, try again
                    log.error(
                        "cannot write %d change notice(s) to %s (%s): trying again in %g s; "
                        "lamps and webhooks wait",
                        len(batch) - done[0], self.directory, exc, retry,
                        exc_info=not isinstance(exc, OSError),
                    )  # fmt: skip
                    await asyncio.sleep(retry)
                    retry = min(retry * 2, MAX_WRITE_RETRY)
                    continue
                finally:
                    # Those written leave the queue: written again, process 0 could take
                    # one of them twice.
                    del self._queue[: done[0]]
                    self.written += done[0]
                    self._wake_flushers()
            self._idle.set()

    def _write(self, batch: list[Notice], done: list[int]) -> None:
        for notice in batch:
            write_notice(self.directory, notice)
            done[0] += 1


Handler = Callable[[Notice], Awaitable[None]]


class ChangeConsumer:
    """Process 0's reader of the spool: hands each notice to ``handle`` (which returns once
    whatever it does with it is durable) and then removes it. A notice whose handling fails
    stays and is tried again on the next scans."""

    def __init__(self, directory: Path, handle: Handler, *, poll: float = POLL) -> None:
        self.directory = directory
        self._handle = handle
        self._poll = poll
        self._task: asyncio.Task[None] | None = None
        self._kick = asyncio.Event()
        self._failures = 0  # scans in a row that stopped on a failing notice
        self.handled = 0

    async def start(self) -> None:
        await asyncio.to_thread(self.directory.mkdir, mode=0o775, parents=True, exist_ok=True)
        self._task = asyncio.create_task(self._run(), name=f"change consumer {self.directory}")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def kick(self) -> None:
        """Scan now rather than at the next poll (a local change was just spooled)."""
        self._kick.set()

    async def _run(self) -> None:
        while True:
            try:
                await self.scan()
            except Exception:  # the loop must outlive any one failure
                log.exception("change spool %s: scan failed", self.directory)
            # After failures, back off (up to 30 s) rather than log five times a second.
            delay = min(self._poll * 2**self._failures, 30.0) if self._failures else self._poll
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._kick.wait()
            self._kick.clear()

    async def scan(self) -> int:
        """Handle the notices now in the spool (up to BATCH); returns how many."""
        names = await asyncio.to_thread(self._names)
        done, failed = 0, False
        for name in names[:BATCH]:
            path = self.directory / name
            notice = await asyncio.to_thread(self._read, path)
            if notice is None:
                continue
            try:
                await self._handle(notice)
            except Exception:
                log.exception(
                    "change %s of %s@%s: handling failed; kept for the next scan",
                    notice.id, notice.event.user, notice.event.domain,
                )  # fmt: skip
                failed = True
                break  # keep the order: later notices wait behind this one
            await asyncio.to_thread(path.unlink, missing_ok=True)
            done += 1
        self.handled += done
        self._failures = min(self._failures + 1, 8) if failed else 0
        return done

    def _names(self) -> list[str]:
        try:
            return sorted(
                entry.name
                for entry in os.scandir(self.directory)
                if entry.name.endswith(SUFFIX) and not entry.name.startswith(".")
            )
        except FileNotFoundError:
            return []

    def _read(self, path: Path) -> Notice | None:
        try:
            with open(path, "rb") as fh:
                data = fh.read(MAX_NOTICE_BYTES + 1)  # never a whole stray large file
            return Notice.parse(data)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            log.error("change notice %s is unreadable (%s): moved to corrupt/", path.name, exc)
            corrupt = self.directory / "corrupt"
            corrupt.mkdir(exist_ok=True)
            with contextlib.suppress(FileNotFoundError):
                os.replace(path, corrupt / path.name)
            return None


def attach(
    store: Storage, data_dir: Path, *, address_of: AddressOf | None = None
) -> ChangeForwarder:
    """Forward every change ``store`` makes to the spool of the worker whose ``data_dir``
    this is; started (call on the running loop). ``await forwarder.stop()`` at shutdown."""
    forwarder = ChangeForwarder(store, spool_dir(data_dir), address_of=address_of)
    forwarder.start()
    return forwarder
