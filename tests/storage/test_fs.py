"""The fs backend: the storage contract, plus SEMS spool compatibility."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from storage import BackendUnavailable, MessageNotFound, Storage, StorageFull, open_storage
from storage.fs import FsStorage
from storage.testing import DOMAIN, TS, USER, StorageContract, make_wav


def _snapshot(top: Path) -> set[str]:
    return {str(p.relative_to(top)) for p in top.rglob("*")}


class TestFsContract(StorageContract):
    @pytest.fixture
    def storage_url(self, tmp_path: Path) -> str:
        return f"fs://{tmp_path}/spool"

    @pytest.fixture
    def footprint(self, tmp_path: Path) -> Callable[[], set[str]]:
        # The whole temporary directory, so that anything written beside the root shows.
        return lambda: _snapshot(tmp_path)


def _sems_file(box: Path, name: str, data: bytes, *, read: bool, mtime: int) -> Path:
    """Write a message the way SEMS leaves it: new = atime == mtime, read = atime mtime+1."""
    box.mkdir(parents=True, exist_ok=True)
    path = box / name
    path.write_bytes(data)
    os.utime(path, (mtime + 1 if read else mtime, mtime))
    return path


@pytest.fixture
def sems_spool(tmp_path: Path) -> Path:
    """A spool exactly as SEMS msg_storage writes it."""
    root = tmp_path / "voicebox"
    box = root / DOMAIN / USER
    _sems_file(box, '1700000000+"Bob" <sip:bob@example.com>.wav', make_wav(1), read=False,
               mtime=1700000005)  # fmt: skip
    _sems_file(box, "1700000100+sip:alice@example.com.wav", make_wav(2), read=True,
               mtime=1700000105)  # fmt: skip
    _sems_file(box, "1700000200+carol.wav", make_wav(0.5), read=False, mtime=1700000202)
    _sems_file(box, "1700000300+empty.wav", b"", read=False, mtime=1700000300)  # 0-byte
    _sems_file(box, "notes.txt", b"not a message", read=False, mtime=1700000000)
    _sems_file(box, ".hidden.wav", b"dot files are skipped", read=False, mtime=1700000000)
    _sems_file(root / f"{DOMAIN}-prompts" / USER, "vm.wav", b"GREETING", read=False,
               mtime=1700000000)  # fmt: skip
    return root


async def test_lists_a_sems_spool(sems_spool: Path) -> None:
    store = await open_storage(f"fs://{sems_spool}")
    listed = await store.list_mailbox(DOMAIN, USER)
    assert [(m.name, m.new, m.received_at, m.sender) for m in listed] == [
        ('1700000000+"Bob" <sip:bob@example.com>', True, 1700000000, '"Bob" <sip:bob@example.com>'),
        ("1700000100+sip:alice@example.com", False, 1700000100, "sip:alice@example.com"),
        ("1700000200+carol", True, 1700000200, "carol"),
    ]
    assert [m.duration for m in listed] == pytest.approx([1.0, 2.0, 0.5], abs=0.01)
    counts = await store.count(DOMAIN, USER)
    assert (counts.new, counts.saved) == (2, 1)
    assert await store.get_greeting(DOMAIN, USER, "vm") == b"GREETING"


async def test_marks_and_deletes_in_a_sems_spool(sems_spool: Path) -> None:
    store = await open_storage(f"fs://{sems_spool}")
    box = sems_spool / DOMAIN / USER
    bob = '1700000000+"Bob" <sip:bob@example.com>'
    message = await store.get_message(DOMAIN, USER, bob)
    assert message.audio == make_wav(1)
    assert message.info.new is True

    await store.mark_read(DOMAIN, USER, bob)
    st = os.stat(box / f"{bob}.wav")
    assert (int(st.st_atime), int(st.st_mtime)) == (1700000006, 1700000005)  # SEMS' rule

    await store.delete_message(DOMAIN, USER, "1700000200+carol")
    assert not (box / "1700000200+carol.wav").exists()
    counts = await store.count(DOMAIN, USER)
    assert (counts.new, counts.saved) == (0, 2)
    with pytest.raises(MessageNotFound):  # 0-byte messages do not exist for the API
        await store.get_message(DOMAIN, USER, "1700000300+empty")
    # Files that are not messages are left alone.
    assert (box / "notes.txt").exists()
    assert (box / ".hidden.wav").exists()


async def test_writes_the_sems_layout(tmp_path: Path) -> None:
    store = await open_storage(f"fs://{tmp_path}")
    name = await store.put_message(DOMAIN, USER, b"RIFF", sender="alice", received_at=TS)
    path = tmp_path / DOMAIN / USER / f"{name}.wav"
    assert name == f"{TS}+alice"
    st = os.stat(path)
    assert st.st_atime_ns == st.st_mtime_ns == TS * 1_000_000_000  # new, by SEMS' rule
    await store.put_greeting(DOMAIN, USER, "vm", b"G")
    assert (tmp_path / f"{DOMAIN}-prompts" / USER / "vm.wav").read_bytes() == b"G"
    # Nothing temporary is left behind.
    assert sorted(p.name for p in (tmp_path / DOMAIN / USER).iterdir()) == [f"{name}.wav"]


async def test_reading_restores_the_flag_without_o_noatime(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where O_NOATIME is not allowed, a read that bumped atime puts it back."""
    monkeypatch.setattr(FsStorage, "use_noatime", False)
    store = await open_storage(f"fs://{tmp_path}")
    name = await store.put_message(DOMAIN, USER, b"x" * 100, sender="a", received_at=TS)
    path = tmp_path / DOMAIN / USER / f"{name}.wav"
    real_open = open

    def bumping_open(file: object, *args: object, **kwargs: object) -> object:
        # Emulate a strictatime mount: every read moves atime forward.
        handle = real_open(file, *args, **kwargs)  # type: ignore[call-overload]
        if str(file) == str(path):
            os.utime(path, ns=((TS + 50) * 1_000_000_000, TS * 1_000_000_000))
        return handle

    monkeypatch.setattr("builtins.open", bumping_open)
    message = await store.get_message(DOMAIN, USER, name)
    monkeypatch.undo()
    assert message.info.new is True
    st = os.stat(path)
    assert st.st_atime_ns == st.st_mtime_ns


async def test_concurrent_puts_create_directories_safely(tmp_path: Path) -> None:
    stores = [await open_storage(f"fs://{tmp_path}") for _ in range(4)]
    names = await asyncio.gather(
        *(
            s.put_message(DOMAIN, f"user{i % 2}", b"x", sender="a", received_at=TS)
            for i, s in enumerate(stores * 5)
        )
    )
    assert len(set(zip(names, [i % 2 for i in range(20)], strict=True))) == 20


async def test_bare_path_means_fs(tmp_path: Path) -> None:
    store = open_storage(str(tmp_path))
    assert isinstance(store, FsStorage)
    assert store.root == tmp_path


def test_url_must_be_absolute() -> None:
    with pytest.raises(ValueError, match="absolute"):
        FsStorage("fs:relative/path")
    with pytest.raises(ValueError, match="fs:///abs/path"):
        FsStorage("fs://host/path")


async def test_store_is_a_context_manager(tmp_path: Path) -> None:
    async with open_storage(f"fs://{tmp_path}/root") as store:
        assert isinstance(store, Storage)
        assert (tmp_path / "root").is_dir()


async def test_full_disk_is_storage_full_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await open_storage(f"fs://{tmp_path}")
    await store.put_message(DOMAIN, USER, b"first", sender="a", received_at=TS)
    real_write = os.write

    def full(fd: int, data: object) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(StorageFull, match="No space left"):
        await store.put_message(DOMAIN, USER, b"second", sender="a", received_at=TS + 1)
    monkeypatch.setattr(os, "write", real_write)
    # The failed write left no temporary file, and the mailbox is as it was.
    assert sorted(p.name for p in (tmp_path / DOMAIN / USER).iterdir()) == [f"{TS}+a.wav"]
    assert (await store.count(DOMAIN, USER)).total == 1


async def test_unusable_root_is_backend_unavailable(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    store = open_storage(f"fs://{blocker}/spool")
    with pytest.raises(BackendUnavailable, match="spool root"):
        await store.count(DOMAIN, USER)
