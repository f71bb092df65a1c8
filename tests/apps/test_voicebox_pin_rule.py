"""A mailbox's stored PIN always wins over P-App-Param's ``pin=``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import cast

import pytest

from media_worker.application import ActiveCall
from media_worker.apps.context import AppContext, ServiceSettings
from media_worker.apps.params import AppRequest
from media_worker.apps.pin import hash_pin
from media_worker.apps.voicebox_call import VoiceboxCall, pin_matches
from storage import PinRecord, Storage, open_storage

STORED = "4711"
PARAM_PIN = "1234"


def test_the_stored_pin_wins() -> None:
    stored = hash_pin(STORED)
    assert pin_matches(STORED, stored, PARAM_PIN)
    assert not pin_matches(PARAM_PIN, stored, PARAM_PIN)
    assert pin_matches(STORED, stored, None)
    assert not pin_matches(STORED, "not-a-hash", None)  # unreadable: nothing opens it


def test_pin_param_counts_only_without_a_stored_pin() -> None:
    assert pin_matches(PARAM_PIN, None, PARAM_PIN)
    assert not pin_matches(STORED, None, PARAM_PIN)
    assert not pin_matches("", None, None)
    assert not pin_matches("", None, "")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Storage]:
    async with open_storage(f"fs://{tmp_path / 'spool'}") as opened:
        yield opened


def voicebox_call(store: Storage, pin: str | None) -> VoiceboxCall:
    request = AppRequest(
        app="voicebox", user="bob", domain="lab.example", sender="bob", mode="box",
        email=None, language=None, typ="vm", pin=pin,
    )  # fmt: skip
    context = cast(AppContext, SimpleNamespace(store=store, settings=ServiceSettings()))
    return VoiceboxCall(context, cast(ActiveCall, None), request)


async def test_a_forged_pin_param_does_not_open_a_box_with_its_own_pin(store: Storage) -> None:
    stored = hash_pin(STORED)
    await store.update_pin("lab.example", "bob", lambda record: PinRecord(stored))
    call = voicebox_call(store, PARAM_PIN)
    assert (await call._check_pin(PARAM_PIN)).ok is False
    assert len((await store.get_pin("lab.example", "bob")).failures) == 1  # counted
    assert (await call._check_pin(STORED)).ok is True


async def test_the_pin_param_guards_a_box_without_one(store: Storage) -> None:
    call = voicebox_call(store, PARAM_PIN)
    assert (await call._check_pin(STORED)).ok is False
    assert (await call._check_pin(PARAM_PIN)).ok is True
