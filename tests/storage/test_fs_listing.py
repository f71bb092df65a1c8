"""fs listing and counting: what a scan takes, skips and sees afresh each time."""

from __future__ import annotations

import builtins
import logging
import os
from pathlib import Path
from typing import Any

import pytest

from storage import MessageInfo, open_storage
from storage.fs_listing import _INFOS, INFO_CACHE_SIZE, _remember_info
from storage.model import estimated_duration
from storage.testing import DOMAIN, TS, USER, make_wav


def _file(box: Path, fname: str, data: bytes, *, atime: int, mtime: int) -> Path:
    box.mkdir(parents=True, exist_ok=True)
    path = box / fname
    path.write_bytes(data)
    os.utime(path, (atime, mtime))
    return path


@pytest.fixture
def box(tmp_path: Path) -> Path:
    return tmp_path / DOMAIN / USER


async def test_order_is_time_then_name_whatever_the_directory_order(box: Path) -> None:
    audio = make_wav(0.2)
    fnames = [
        f"{TS + 1}+b.wav",
        f"{TS}-1+a.wav",
        f"{TS}+z.wav",
        f"{TS}+a.wav",
        "greeting.wav",  # no time stamp: its mtime stands in
        f'{TS - 5}+"Bob" <sip:bob@example.com>.wav',
        f"{TS}+%22Zo%C3%AB%22.wav",
    ]
    for fname in fnames:
        _file(box, fname, audio, atime=TS, mtime=TS)
    store = await open_storage(f"fs://{box.parent.parent}")
    listed = await store.list_mailbox(DOMAIN, USER)
    assert [(m.received_at, m.name, m.sender) for m in listed] == [
        (TS - 5, f'{TS - 5}+"Bob" <sip:bob@example.com>', '"Bob" <sip:bob@example.com>'),
        (TS, f"{TS}+%22Zo%C3%AB%22", '"Zoë"'),
        (TS, f"{TS}+a", "a"),
        (TS, f"{TS}+z", "z"),
        (TS, f"{TS}-1+a", "a"),
        (TS, "greeting", ""),
        (TS + 1, f"{TS + 1}+b", "b"),
    ]
    assert all(type(m) is MessageInfo for m in listed)
    assert {m.duration for m in listed} == {estimated_duration(len(audio))}
    assert [m.received_at for m in listed] == sorted(m.received_at for m in listed)


async def test_only_non_empty_regular_wav_files_count(box: Path) -> None:
    _file(box, f"{TS}+kept.wav", b"x" * 100, atime=TS, mtime=TS)
    _file(box, f"{TS}+empty.wav", b"", atime=TS, mtime=TS)
    _file(box, f".tmp-{'0' * 32}.wav", b"x" * 100, atime=TS, mtime=TS)
    _file(box, f"{TS}+notes.txt", b"x" * 100, atime=TS, mtime=TS)
    (box / f"{TS}+a-directory.wav").mkdir()
    store = await open_storage(f"fs://{box.parent.parent}")
    assert [m.name for m in await store.list_mailbox(DOMAIN, USER)] == [f"{TS}+kept"]
    counts = await store.count(DOMAIN, USER)
    assert (counts.new, counts.saved) == (1, 0)


async def test_flags_set_beside_us_show_at_once(box: Path) -> None:
    """Another writer (SEMS) marks messages read with utime, which leaves the directory's
    mtime alone: every listing and count must look at each file again."""
    paths = [_file(box, f"{TS + i}+c{i}.wav", b"x" * 100, atime=TS + i, mtime=TS + i)
             for i in range(3)]  # fmt: skip
    store = await open_storage(f"fs://{box.parent.parent}")
    dir_mtime = box.stat().st_mtime_ns
    assert [m.new for m in await store.list_mailbox(DOMAIN, USER)] == [True, True, True]
    os.utime(paths[1], (TS + 2, TS + 1))  # read, SEMS' way
    assert box.stat().st_mtime_ns == dir_mtime
    assert [m.new for m in await store.list_mailbox(DOMAIN, USER)] == [True, False, True]
    counts = await store.count(DOMAIN, USER)
    assert (counts.new, counts.saved) == (2, 1)
    paths[0].write_bytes(b"y" * 300)  # rewritten in place: new size, mtime moves on
    first = (await store.list_mailbox(DOMAIN, USER))[0]
    assert first.size == 300
    assert first.new is False


async def test_a_name_the_api_cannot_address_is_skipped_each_time(
    box: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _file(box, f"{TS}+bad\x01name.wav", b"x" * 100, atime=TS, mtime=TS)
    _file(box, f"{TS}+good.wav", b"x" * 100, atime=TS, mtime=TS)
    store = await open_storage(f"fs://{box.parent.parent}")
    with caplog.at_level(logging.WARNING, logger="voicemail.storage.fs"):
        for _ in range(2):
            assert [m.name for m in await store.list_mailbox(DOMAIN, USER)] == [f"{TS}+good"]
    assert [r.getMessage().count("unusable file name") for r in caplog.records] == [1, 1]


async def test_entries_are_reused_only_while_flag_size_and_time_still_hold(
    tmp_path: Path,
) -> None:
    first = _file(tmp_path / DOMAIN / "u1", f"{TS}+a.wav", b"x" * 100, atime=TS, mtime=TS)
    # The same file name in another mailbox, already read.
    _file(tmp_path / DOMAIN / "u2", f"{TS}+a.wav", b"x" * 100, atime=TS + 1, mtime=TS)
    stamped = _file(tmp_path / DOMAIN / "u1", "greeting.wav", b"x" * 100, atime=TS, mtime=TS)
    store = await open_storage(f"fs://{tmp_path}")
    before = await store.list_mailbox(DOMAIN, "u1")
    again = await store.list_mailbox(DOMAIN, "u1")
    assert again[0] is before[0]  # built once, reused while nothing changed
    assert [m.new for m in await store.list_mailbox(DOMAIN, "u2")] == [False]
    os.utime(first, (TS + 1, TS))
    os.utime(stamped, (TS + 9, TS + 9))  # no time stamp in its name: its mtime stands in
    after = await store.list_mailbox(DOMAIN, "u1")
    assert [(m.name, m.new, m.received_at) for m in after] == [
        (f"{TS}+a", False, TS),
        ("greeting", True, TS + 9),
    ]


def test_the_entry_memo_is_bounded(tmp_path: Path) -> None:
    st = os.stat(_file(tmp_path, f"{TS}+a.wav", b"x", atime=TS, mtime=TS))
    for i in range(INFO_CACHE_SIZE + 10):
        assert _remember_info(f"{TS}+{i}.wav", True, 1, st) is not None
    assert len(_INFOS) <= INFO_CACHE_SIZE
    assert _remember_info(f"{TS}+a/b.wav", True, 1, st) is None


async def test_list_and_count_open_nothing_but_the_mailbox_directory(
    box: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(3):
        _file(box, f"{TS + i}+c{i}.wav", make_wav(0.2), atime=TS, mtime=TS)
    store = await open_storage(f"fs://{box.parent.parent}")
    opened: list[str] = []
    os_open, builtin_open = os.open, builtins.open

    def record_os_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        opened.append(f"{os.fspath(path)} directory={bool(flags & os.O_DIRECTORY)}")
        return os_open(path, flags, *args, **kwargs)

    def record_open(file: Any, *args: Any, **kwargs: Any) -> Any:
        opened.append(f"{file} by open()")
        return builtin_open(file, *args, **kwargs)

    monkeypatch.setattr(os, "open", record_os_open)
    monkeypatch.setattr(builtins, "open", record_open)
    assert len(await store.list_mailbox(DOMAIN, USER)) == 3
    assert (await store.count(DOMAIN, USER)).new == 3
    monkeypatch.undo()
    assert opened == [f"{box} directory=True"] * 2
