"""File-system spool, laid out and flagged exactly as SEMS msg_storage does.

``<root>/<domain>/<user>/<ts>+<sender>.wav`` holds a message; it is new while its atime
equals its mtime (whole seconds) and read once atime = mtime + 1. Greetings live at
``<root>/<domain>-prompts/<user>/<typ>.wav``. Dot files are never messages (SEMS skips
them; our temporary files start with a dot).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import operator
import os
import uuid
from asyncio import to_thread
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from stat import S_ISREG, ST_ATIME, ST_MODE, ST_MTIME, ST_SIZE
from typing import ClassVar
from urllib.parse import unquote, urlsplit

from storage.base import Storage
from storage.errors import (
    BackendUnavailable,
    MailboxNotFound,
    MessageNotFound,
    StorageError,
    StorageFull,
)
from storage.identity import FORBIDDEN_CHARS, PROMPTS_SUFFIX
from storage.model import (
    Counts,
    Message,
    MessageInfo,
    PinRecord,
    estimated_duration,
    wav_duration,
)
from storage.names import message_name, split_message_name

log = logging.getLogger("voicemail.storage.fs")

SUFFIX = ".wav"
PIN_FILE = "pin.json"
_SUFFIX_LEN = len(SUFFIX)
NS = 1_000_000_000
DIR_MODE = 0o775
FILE_MODE = 0o664
_O_NOATIME = getattr(os, "O_NOATIME", 0)
_NAME = operator.itemgetter(0)  # of a MessageInfo
_RECEIVED_AT = operator.itemgetter(3)
# Message entries kept (about 0.5 KiB each): enough for the largest mailboxes of a host.
INFO_CACHE_SIZE = 65_536


@contextlib.contextmanager
def _os_errors(what: str) -> Iterator[None]:
    """Turn OSErrors other than 'not found' into the storage error hierarchy."""
    try:
        yield
    except FileNotFoundError:
        raise
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise StorageFull(f"{what}: {exc.strerror}") from exc
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS, errno.EIO, errno.ENOTDIR):
            raise BackendUnavailable(f"{what}: {exc}") from exc
        raise StorageError(f"{what}: {exc}") from exc


def _is_new(st: os.stat_result) -> bool:
    """SEMS' flag: atime and mtime in the same whole second (st[ST_*TIME] are whole seconds;
    the listing loops inline this test)."""
    return st[ST_ATIME] == st[ST_MTIME]


# The MessageInfo of each file name seen, with the flag and size it was built for. A listing
# still stats every file and rebuilds an entry whose flag or size changed, so this memoises
# decoding and building, never the state of a mailbox (SEMS may mark messages read beside
# us). Dict operations are atomic, so listings in several threads may share it.
_INFOS: dict[str, MessageInfo] = {}


def _remember_info(fname: str, new: bool, size: int, st: os.stat_result) -> MessageInfo | None:
    """The MessageInfo of a message file, or None when the API could not address it."""
    name = fname[:-_SUFFIX_LEN]
    if FORBIDDEN_CHARS.search(name):
        return None
    parts = split_message_name(name)
    # A name without a time stamp takes the file's mtime, which the name cannot vouch for:
    # such entries are built every time.
    received_at, sender = (st[ST_MTIME], "") if parts is None else parts
    info = tuple.__new__(
        MessageInfo, (name, new, size, received_at, sender, estimated_duration(size))
    )
    if parts is not None:
        if len(_INFOS) >= INFO_CACHE_SIZE:
            _INFOS.clear()
        _INFOS[fname] = info
    return info


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_temp(directory: Path, data: bytes, times_ns: tuple[int, int] | None) -> Path:
    """Write ``data`` durably to a new dot file in ``directory`` and return its path."""
    tmp = directory / f".tmp-{uuid.uuid4().hex}{SUFFIX}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, FILE_MODE)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        if times_ns is not None:
            os.utime(fd, ns=times_ns)
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        tmp.unlink(missing_ok=True)
        raise
    os.close(fd)
    return tmp


class FsStorage(Storage):
    """SEMS-compatible spool directory; the default backend."""

    backend: ClassVar[str] = "fs"
    #: Open messages with O_NOATIME so that reading never flips the new flag.
    use_noatime: ClassVar[bool] = bool(_O_NOATIME)

    def __init__(self, url: str) -> None:
        super().__init__(url)
        parts = urlsplit(url)
        if parts.scheme != "fs" or parts.netloc not in ("", "localhost"):
            raise ValueError(f"fs storage URL must look like fs:///abs/path, got {url!r}")
        path = unquote(parts.path)
        if not path.startswith("/"):
            raise ValueError(f"fs storage URL needs an absolute path, got {url!r}")
        self.root = Path(os.path.normpath(path))

    # ----- paths (identities are validated before they get here) -----

    def _box(self, domain: str, user: str) -> Path:
        return self.root / domain / user

    def _message_path(self, domain: str, user: str, name: str) -> Path:
        return self._box(domain, user) / f"{name}{SUFFIX}"

    def _greeting_path(self, domain: str, user: str, typ: str) -> Path:
        return self.root / f"{domain}{PROMPTS_SUFFIX}" / user / f"{typ}{SUFFIX}"

    def _not_found(self, domain: str, user: str, name: str) -> MessageNotFound:
        if self._box(domain, user).is_dir():
            return MessageNotFound(domain, user, name)
        return MailboxNotFound(domain, user, name)

    # ----- life cycle -----

    async def _open(self) -> None:
        await to_thread(self._make_root)

    async def _close(self) -> None:
        return None

    async def _init(self) -> None:
        await to_thread(self._make_root)

    def _make_root(self) -> None:
        with _os_errors(f"spool root {self.root}"):
            self.root.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            if not os.access(self.root, os.R_OK | os.W_OK | os.X_OK):
                raise BackendUnavailable(f"spool root {self.root} is not writable")

    # ----- messages -----

    async def _put_message(
        self, domain: str, user: str, audio: bytes, sender: str, received_at: int
    ) -> str:
        return await to_thread(self._put_message_sync, domain, user, audio, sender, received_at)

    def _put_message_sync(
        self, domain: str, user: str, audio: bytes, sender: str, received_at: int
    ) -> str:
        box = self._box(domain, user)
        with _os_errors(f"storing a message in {box}"):
            box.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)  # races are harmless
            # atime == mtime: the message is new.
            tmp = _write_temp(box, audio, (received_at * NS, received_at * NS))
            try:
                seq = 0
                while True:
                    name = message_name(received_at, sender, seq)
                    try:
                        # link() never replaces an existing file, unlike rename().
                        os.link(tmp, box / f"{name}{SUFFIX}")
                        break
                    except FileExistsError:
                        seq += 1
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(box)
        return name

    async def _get_message(self, domain: str, user: str, name: str) -> Message:
        return await to_thread(self._get_message_sync, domain, user, name)

    def _get_message_sync(self, domain: str, user: str, name: str) -> Message:
        path = self._message_path(domain, user, name)
        try:
            with _os_errors(f"reading {path}"):
                audio, st = self._read_keeping_atime(path)
        except FileNotFoundError:
            raise self._not_found(domain, user, name) from None
        if not audio:
            raise MessageNotFound(domain, user, name)
        return Message(self._info(name, st, wav_duration(audio)), audio)

    def _read_keeping_atime(self, path: Path) -> tuple[bytes, os.stat_result]:
        """Read a file without touching its atime (which carries the new/read flag)."""
        if self.use_noatime:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | _O_NOATIME)
            except PermissionError:
                pass  # O_NOATIME needs file ownership: fall back to restoring the times
            else:
                with os.fdopen(fd, "rb") as fh:
                    return fh.read(), os.fstat(fh.fileno())
        before = os.stat(path)
        with open(path, "rb") as fh:
            audio = fh.read()
        after = os.stat(path)
        if after.st_atime_ns != before.st_atime_ns and after.st_mtime_ns == before.st_mtime_ns:
            try:
                os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
            except OSError as exc:
                log.warning("cannot restore the read flag of %s: %s", path, exc)
        return audio, before

    async def _mark_read(self, domain: str, user: str, name: str) -> bool:
        return await to_thread(self._mark_read_sync, domain, user, name)

    def _mark_read_sync(self, domain: str, user: str, name: str) -> bool:
        path = self._message_path(domain, user, name)
        try:
            with _os_errors(f"marking {path} read"):
                st = os.stat(path)
                if st.st_size == 0:
                    raise MessageNotFound(domain, user, name)
                if not _is_new(st):
                    return False
                mtime = st.st_mtime_ns // NS
                os.utime(path, ns=((mtime + 1) * NS, mtime * NS))
                return True
        except FileNotFoundError:
            raise self._not_found(domain, user, name) from None

    async def _delete_message(self, domain: str, user: str, name: str) -> None:
        await to_thread(self._delete_message_sync, domain, user, name)

    def _delete_message_sync(self, domain: str, user: str, name: str) -> None:
        path = self._message_path(domain, user, name)
        try:
            with _os_errors(f"deleting {path}"):
                path.unlink()
                _fsync_dir(path.parent)
        except FileNotFoundError:
            raise self._not_found(domain, user, name) from None

    # ----- listing -----
    # Listing and counting stat every file (the flag is the atime, and SEMS may flip it
    # beside us): that is most of their cost, so the per-file Python work is kept minimal.
    # st[ST_ATIME] and st[ST_MTIME] are whole seconds (SEMS' rule), without st_*_ns arithmetic.

    @contextlib.contextmanager
    def _entries(self, domain: str, user: str) -> Iterator[Iterable[os.DirEntry[str]]]:
        """The directory entries of a mailbox (none if nobody has written to it yet).

        Scanned through a directory fd, so that each ``DirEntry.stat`` is a one-component
        lookup.
        """
        box = self._box(domain, user)
        try:
            with _os_errors(f"listing {box}"):
                fd = os.open(box, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            yield ()
            return
        try:
            with _os_errors(f"listing {box}"), os.scandir(fd) as scan:
                yield scan
        finally:
            os.close(fd)

    async def _list_mailbox(self, domain: str, user: str) -> list[MessageInfo]:
        return await to_thread(self._list_sync, domain, user)

    def _list_sync(self, domain: str, user: str) -> list[MessageInfo]:
        items: list[MessageInfo] = []
        append, known, remember = items.append, _INFOS.get, _remember_info
        with self._entries(domain, user) as entries:
            for entry in entries:
                fname = entry.name
                if fname[0] == "." or fname[-_SUFFIX_LEN:] != SUFFIX:
                    continue  # not a message, or one of our temporary files
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue  # deleted while we listed
                size = st[ST_SIZE]
                if not size or not S_ISREG(st[ST_MODE]):
                    continue
                new = st[ST_ATIME] == st[ST_MTIME]
                info = known(fname)
                if info is None or info[1] is not new or info[2] != size:
                    info = remember(fname, new, size, st)
                    if info is None:
                        # The API could not address it; SEMS never writes such names.
                        log.warning(
                            "mailbox %s@%s: skipping unusable file name %r",
                            user,
                            domain,
                            fname[:-_SUFFIX_LEN],
                        )
                        continue
                append(info)
        # By time, then name: two stable sorts on plain keys cost half of one on key tuples.
        items.sort(key=_NAME)
        items.sort(key=_RECEIVED_AT)
        return items

    async def _count(self, domain: str, user: str) -> Counts:
        return await to_thread(self._count_sync, domain, user)

    def _count_sync(self, domain: str, user: str) -> Counts:
        new = saved = 0
        with self._entries(domain, user) as entries:
            for entry in entries:
                fname = entry.name
                if fname[0] == "." or fname[-_SUFFIX_LEN:] != SUFFIX:
                    continue
                try:
                    st = entry.stat()
                except FileNotFoundError:
                    continue
                if not st.st_size or not S_ISREG(st.st_mode):
                    continue
                if st[ST_ATIME] == st[ST_MTIME]:
                    new += 1
                else:
                    saved += 1
        return Counts(new=new, saved=saved)

    def _info(self, name: str, st: os.stat_result, duration: float | None) -> MessageInfo:
        received_at, sender = split_message_name(name) or (st.st_mtime_ns // NS, "")
        return MessageInfo(name, _is_new(st), st.st_size, received_at, sender, duration)

    # ----- greetings -----

    async def _put_greeting(self, domain: str, user: str, typ: str, audio: bytes) -> None:
        await to_thread(self._put_greeting_sync, domain, user, typ, audio)

    def _put_greeting_sync(self, domain: str, user: str, typ: str, audio: bytes) -> None:
        path = self._greeting_path(domain, user, typ)
        with _os_errors(f"storing greeting {path}"):
            path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            tmp = _write_temp(path.parent, audio, None)
            try:
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            _fsync_dir(path.parent)

    async def _get_greeting(self, domain: str, user: str, typ: str) -> bytes | None:
        return await to_thread(self._get_greeting_sync, domain, user, typ)

    def _get_greeting_sync(self, domain: str, user: str, typ: str) -> bytes | None:
        path = self._greeting_path(domain, user, typ)
        try:
            with _os_errors(f"reading greeting {path}"):
                audio = path.read_bytes()
        except FileNotFoundError:
            return None
        return audio or None

    async def _delete_greeting(self, domain: str, user: str, typ: str) -> bool:
        return await to_thread(self._delete_greeting_sync, domain, user, typ)

    def _delete_greeting_sync(self, domain: str, user: str, typ: str) -> bool:
        path = self._greeting_path(domain, user, typ)
        try:
            with _os_errors(f"deleting greeting {path}"):
                path.unlink()
                _fsync_dir(path.parent)
        except FileNotFoundError:
            return False
        return True

    # ----- PIN -----

    def _pin_path(self, domain: str, user: str) -> Path:
        # Beside the greetings; never a .wav, so never taken for one.
        return self.root / f"{domain}{PROMPTS_SUFFIX}" / user / PIN_FILE

    async def _get_pin(self, domain: str, user: str) -> PinRecord:
        return await to_thread(self._read_pin, self._pin_path(domain, user))

    @staticmethod
    def _read_pin(path: Path) -> PinRecord:
        try:
            with _os_errors(f"reading {path}"):
                data = json.loads(path.read_text("utf-8"))
        except FileNotFoundError:
            return PinRecord()
        except ValueError as exc:
            raise StorageError(f"{path} is not a PIN record: {exc}") from exc
        return PinRecord(
            data.get("hash"), tuple(data.get("failures", ())), float(data.get("locked_until", 0))
        )

    async def _update_pin(
        self, domain: str, user: str, change: Callable[[PinRecord], PinRecord]
    ) -> PinRecord:
        return await to_thread(self._update_pin_sync, domain, user, change)

    def _update_pin_sync(
        self, domain: str, user: str, change: Callable[[PinRecord], PinRecord]
    ) -> PinRecord:
        path = self._pin_path(domain, user)
        with _os_errors(f"updating {path}"):
            path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            # An exclusive lock on a lock file serialises workers on this host (and on
            # NFS, where flock maps to byte-range locks).
            lock_fd = os.open(
                path.parent / ".pin.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
            try:
                fcntl.flock(lock_fd, fcntl.LOCK_EX)
                record = change(self._read_pin(path))
                data = json.dumps(
                    {"hash": record.hash, "failures": list(record.failures),
                     "locked_until": record.locked_until}
                ).encode()  # fmt: skip
                tmp = _write_temp(path.parent, data, None)
                try:
                    os.chmod(tmp, 0o600)  # a PIN hash is nobody else's business
                    os.replace(tmp, path)
                finally:
                    tmp.unlink(missing_ok=True)
                _fsync_dir(path.parent)
                return record
            finally:
                os.close(lock_fd)  # releases the lock
