"""File-system spool, laid out and flagged exactly as SEMS msg_storage does.

``<root>/<domain>/<user>/<ts>+<sender>.wav`` holds a message; it is new while its atime
equals its mtime (whole seconds) and read once atime = mtime + 1 (new again: atime back
to mtime). Greetings live at ``<root>/<domain>-prompts/<user>/<typ>.wav``. Dot files are
never messages (SEMS skips them; our temporary files start with a dot).
"""

from __future__ import annotations

import fcntl
import json
import os
from asyncio import to_thread
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar
from urllib.parse import unquote, urlsplit

from storage.base import Storage
from storage.errors import BackendUnavailable, MailboxNotFound, MessageNotFound, StorageError
from storage.fs_files import (
    DIR_MODE,
    NS,
    O_NOATIME,
    SUFFIX,
    fsync_dir,
    is_new,
    os_errors,
    read_keeping_atime,
    write_temp,
)
from storage.fs_listing import count_box, list_box, message_info
from storage.identity import PROMPTS_SUFFIX
from storage.model import (
    Counts,
    Message,
    MessageInfo,
    PinRecord,
    estimated_duration,
    wav_duration,
)
from storage.names import message_name

PIN_FILE = "pin.json"


class FsStorage(Storage):
    """SEMS-compatible spool directory; the default backend."""

    backend: ClassVar[str] = "fs"
    #: Open messages with O_NOATIME so that reading never flips the new flag.
    use_noatime: ClassVar[bool] = bool(O_NOATIME)

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
        with os_errors(f"spool root {self.root}"):
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
        with os_errors(f"storing a message in {box}"):
            box.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)  # races are harmless
            # atime == mtime: the message is new.
            tmp = write_temp(box, audio, (received_at * NS, received_at * NS))
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
            fsync_dir(box)
        return name

    async def _get_message(self, domain: str, user: str, name: str) -> Message:
        return await to_thread(self._get_message_sync, domain, user, name)

    def _get_message_sync(self, domain: str, user: str, name: str) -> Message:
        path = self._message_path(domain, user, name)
        try:
            with os_errors(f"reading {path}"):
                audio, st = read_keeping_atime(path, self.use_noatime)
        except FileNotFoundError:
            raise self._not_found(domain, user, name) from None
        if not audio:
            raise MessageNotFound(domain, user, name)
        return Message(message_info(name, st, wav_duration(audio)), audio)

    async def _mark_read(self, domain: str, user: str, name: str) -> MessageInfo | bool:
        return await to_thread(self._set_flag_sync, domain, user, name, False)

    async def _mark_unread(self, domain: str, user: str, name: str) -> MessageInfo | bool:
        return await to_thread(self._set_flag_sync, domain, user, name, True)

    def _set_flag_sync(self, domain: str, user: str, name: str, new: bool) -> MessageInfo | bool:
        """SEMS' flag is atime = mtime (new) or mtime + 1 (read); mtime never moves."""
        path = self._message_path(domain, user, name)
        try:
            with os_errors(f"marking {path} {'new' if new else 'read'}"):
                st = os.stat(path)
                if st.st_size == 0:
                    raise MessageNotFound(domain, user, name)
                if is_new(st) == new:
                    return False
                mtime = st.st_mtime_ns // NS
                os.utime(path, ns=((mtime + (0 if new else 1)) * NS, st.st_mtime_ns))
                return message_info(name, os.stat(path), estimated_duration(st.st_size))
        except FileNotFoundError:
            raise self._not_found(domain, user, name) from None

    async def _delete_message(self, domain: str, user: str, name: str) -> MessageInfo | None:
        return await to_thread(self._delete_message_sync, domain, user, name)

    def _delete_message_sync(self, domain: str, user: str, name: str) -> MessageInfo | None:
        path = self._message_path(domain, user, name)
        try:
            with os_errors(f"deleting {path}"):
                st = os.stat(path)  # for the change event: the file's last state
                path.unlink()
                fsync_dir(path.parent)
        except FileNotFoundError:
            raise self._not_found(domain, user, name) from None
        return message_info(name, st, estimated_duration(st.st_size)) if st.st_size else None

    # ----- listing -----

    async def _list_mailbox(self, domain: str, user: str) -> list[MessageInfo]:
        return await to_thread(list_box, self._box(domain, user), f"{user}@{domain}")

    async def _count(self, domain: str, user: str) -> Counts:
        return await to_thread(count_box, self._box(domain, user))

    # ----- greetings -----

    async def _put_greeting(self, domain: str, user: str, typ: str, audio: bytes) -> None:
        await to_thread(self._put_greeting_sync, domain, user, typ, audio)

    def _put_greeting_sync(self, domain: str, user: str, typ: str, audio: bytes) -> None:
        path = self._greeting_path(domain, user, typ)
        with os_errors(f"storing greeting {path}"):
            path.parent.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
            tmp = write_temp(path.parent, audio, None)
            try:
                os.replace(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
            fsync_dir(path.parent)

    async def _get_greeting(self, domain: str, user: str, typ: str) -> bytes | None:
        return await to_thread(self._get_greeting_sync, domain, user, typ)

    def _get_greeting_sync(self, domain: str, user: str, typ: str) -> bytes | None:
        path = self._greeting_path(domain, user, typ)
        try:
            with os_errors(f"reading greeting {path}"):
                audio = path.read_bytes()
        except FileNotFoundError:
            return None
        return audio or None

    async def _delete_greeting(self, domain: str, user: str, typ: str) -> bool:
        return await to_thread(self._delete_greeting_sync, domain, user, typ)

    def _delete_greeting_sync(self, domain: str, user: str, typ: str) -> bool:
        path = self._greeting_path(domain, user, typ)
        try:
            with os_errors(f"deleting greeting {path}"):
                path.unlink()
                fsync_dir(path.parent)
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
            with os_errors(f"reading {path}"):
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
        with os_errors(f"updating {path}"):
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
                tmp = write_temp(path.parent, data, None)
                try:
                    os.chmod(tmp, 0o600)  # a PIN hash is nobody else's business
                    os.replace(tmp, path)
                finally:
                    tmp.unlink(missing_ok=True)
                fsync_dir(path.parent)
                return record
            finally:
                os.close(lock_fd)  # releases the lock
