"""A backend plugin written before ``mark_unread`` existed still loads and works; marking
a message new is refused with a storage error that names the backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from storage import ChangeEvent, MessageInfo, Storage, StorageError
from storage.fs import FsStorage
from storage.testing import DOMAIN, TS, USER


class OlderBackend(FsStorage):
    """What a plugin of the previous API looks like: mark_read answers a bool, delete
    answers nothing, and there is no _mark_unread."""

    backend = "older"

    async def _mark_read(self, domain: str, user: str, name: str) -> MessageInfo | bool:
        return bool(await super()._mark_read(domain, user, name))

    async def _delete_message(self, domain: str, user: str, name: str) -> None:
        await super()._delete_message(domain, user, name)

    # No _mark_unread of its own: the one every backend inherits.
    _mark_unread = Storage._mark_unread


async def test_an_older_plugin_loads_and_refuses_only_mark_unread(tmp_path: Path) -> None:
    async with OlderBackend(f"fs://{tmp_path}") as store:
        events: list[ChangeEvent] = []
        store.subscribe(events.append)
        name = await store.put_message(DOMAIN, USER, b"x", sender="a", received_at=TS)
        await store.mark_read(DOMAIN, USER, name)
        with pytest.raises(StorageError, match="the older storage backend cannot mark"):
            await store.mark_unread(DOMAIN, USER, name)
        await store.delete_message(DOMAIN, USER, name)
    assert [e.kind.value for e in events] == ["new", "read", "deleted"]
    assert events[1].info is None  # a bool says nothing of the message
    assert events[2].info is None
