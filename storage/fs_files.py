"""Low-level file operations of the file-system spool: durable writes, reads that keep the
new/read flag (the atime), and the mapping of OSErrors onto the storage errors."""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from stat import ST_ATIME, ST_MTIME

from storage.errors import BackendUnavailable, StorageError, StorageFull

log = logging.getLogger("voicemail.storage.fs")

SUFFIX = ".wav"
NS = 1_000_000_000
DIR_MODE = 0o775
FILE_MODE = 0o664
O_NOATIME = getattr(os, "O_NOATIME", 0)


@contextlib.contextmanager
def os_errors(what: str) -> Iterator[None]:
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


def is_new(st: os.stat_result) -> bool:
    """SEMS' flag: atime and mtime in the same whole second (st[ST_*TIME] are whole seconds;
    the listing loops inline this test)."""
    return st[ST_ATIME] == st[ST_MTIME]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temp(directory: Path, data: bytes, times_ns: tuple[int, int] | None) -> Path:
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


def read_keeping_atime(path: Path, use_noatime: bool) -> tuple[bytes, os.stat_result]:
    """Read a file without touching its atime (which carries the new/read flag)."""
    if use_noatime:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | O_NOATIME)
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
