"""Listing and counting a file-system mailbox.

Listing and counting stat every file (the flag is the atime, and SEMS may flip it beside
us): that is most of their cost, so the per-file Python work is kept minimal.
st[ST_ATIME] and st[ST_MTIME] are whole seconds (SEMS' rule), without st_*_ns arithmetic.
"""

from __future__ import annotations

import contextlib
import logging
import operator
import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from stat import S_ISREG, ST_ATIME, ST_MODE, ST_MTIME, ST_SIZE

from storage.fs_files import NS, SUFFIX, is_new, os_errors
from storage.identity import FORBIDDEN_CHARS
from storage.model import Counts, MessageInfo, estimated_duration
from storage.names import split_message_name

log = logging.getLogger("voicemail.storage.fs")

_SUFFIX_LEN = len(SUFFIX)
_NAME = operator.itemgetter(0)  # of a MessageInfo
_RECEIVED_AT = operator.itemgetter(3)
# Message entries kept (about 0.5 KiB each): enough for the largest mailboxes of a host.
INFO_CACHE_SIZE = 65_536

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


def message_info(name: str, st: os.stat_result, duration: float | None) -> MessageInfo:
    """The MessageInfo of message ``name`` whose file has status ``st``."""
    received_at, sender = split_message_name(name) or (st.st_mtime_ns // NS, "")
    return MessageInfo(name, is_new(st), st.st_size, received_at, sender, duration)


@contextlib.contextmanager
def _entries(box: Path) -> Iterator[Iterable[os.DirEntry[str]]]:
    """The directory entries of a mailbox (none if nobody has written to it yet).

    Scanned through a directory fd, so that each ``DirEntry.stat`` is a one-component
    lookup.
    """
    try:
        with os_errors(f"listing {box}"):
            fd = os.open(box, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except FileNotFoundError:
        yield ()
        return
    try:
        with os_errors(f"listing {box}"), os.scandir(fd) as scan:
            yield scan
    finally:
        os.close(fd)


def list_box(box: Path, mailbox: str) -> list[MessageInfo]:
    """The messages in directory ``box`` oldest first; ``mailbox`` names it in logs."""
    items: list[MessageInfo] = []
    append, known, remember = items.append, _INFOS.get, _remember_info
    with _entries(box) as entries:
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
                        "mailbox %s: skipping unusable file name %r",
                        mailbox,
                        fname[:-_SUFFIX_LEN],
                    )
                    continue
            append(info)
    # By time, then name: two stable sorts on plain keys cost half of one on key tuples.
    items.sort(key=_NAME)
    items.sort(key=_RECEIVED_AT)
    return items


def count_box(box: Path) -> Counts:
    new = saved = 0
    with _entries(box) as entries:
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
