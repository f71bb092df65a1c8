"""Failed deliveries are retried while the worker runs: backoff, a log line per attempt,
journals of calls in progress left alone, corrupt ones set aside, steps not repeated."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

import media_worker
from media_worker.apps.context import ServiceSettings
from media_worker.apps.journal import Journal, Leftover
from media_worker.apps.redelivery import CorruptJournal, Redelivery
from media_worker.apps.service import VoicemailService
from media_worker.config import AppsConfig
from media_worker.mail.outbox import Outbox, SmtpSettings
from media_worker.mail.template import load_templates
from media_worker.prompts import PromptLibrary
from storage import Storage, open_storage
from tests.support.procs import eventually

TEMPLATES = Path(media_worker.__file__).parent / "templates"
SOUND = (3000).to_bytes(2, "little", signed=True) * 32000  # 4 s


def request(mode: str = "box") -> dict[str, Any]:
    return {
        "app": "voicemail", "user": "bob", "domain": "lab.example", "sender": "alice",
        "mode": mode, "email": "bob@lab.example", "language": None, "typ": "vm", "pin": None,
    }  # fmt: skip


async def leave(directory: Path, call_id: str = "call-1", mode: str = "box") -> str:
    journal = await Journal.create(
        directory, {"call_id": call_id, "answered_at": 1_700_000_000, "request": request(mode)}
    )
    journal.append(SOUND)
    await journal.close()
    return journal.id


class Flaky:
    """A delivery that fails ``failures`` times (a store that is down), then works."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.failures = failures
        self.error = error or ConnectionRefusedError("store unreachable")
        self.calls: list[str] = []

    async def __call__(self, leftover: Leftover) -> str:
        self.calls.append(leftover.id)
        if len(self.calls) <= self.failures:
            raise self.error
        return "stored"


def test_the_wait_doubles_up_to_the_cap() -> None:
    redelivery = Redelivery(Path("/nonexistent"), Flaky(0), set(), first=5.0, cap=300.0)
    assert [redelivery.delay(n) for n in range(1, 9)] == [5, 10, 20, 40, 80, 160, 300, 300]
    assert redelivery.delay(10_000) == 300


async def test_a_failed_delivery_is_retried_with_backoff_until_it_works(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal_id = await leave(tmp_path)
    deliver = Flaky(failures=2)
    redelivery = Redelivery(tmp_path, deliver, set(), first=0.1, cap=0.2)
    await redelivery.start()
    try:
        with caplog.at_level(logging.INFO, "voicemail.journal"):
            redelivery.failed(journal_id)  # the call's own attempt failed
            assert deliver.calls == []  # not at once: after the first wait
            await eventually(lambda: redelivery.delivered == 1, 5)
    finally:
        await redelivery.stop()
    assert deliver.calls == [journal_id] * 3
    assert list(tmp_path.glob(f"{journal_id}.*")) == []
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "[call-1] message for bob@lab.example not delivered (attempt 2: store unreachable);"
        " next try in 0.2 s",
        "[call-1] message for bob@lab.example not delivered (attempt 3: store unreachable);"
        " next try in 0.2 s",
        "[call-1] recovered recording for bob@lab.example: stored (attempt 4)",
    ]


async def test_journals_of_calls_in_progress_are_left_alone(tmp_path: Path) -> None:
    busy, left = await leave(tmp_path, "busy"), await leave(tmp_path, "left")
    deliver = Flaky(failures=0)
    redelivery = Redelivery(tmp_path, deliver, {busy}, first=0.05)
    assert await redelivery.attempt_due() == 1
    assert deliver.calls == [left]
    assert [p.stem for p in tmp_path.glob("*.meta")] == [busy]


async def test_a_corrupt_journal_is_set_aside_and_never_retried(tmp_path: Path) -> None:
    bad_record = await leave(tmp_path, "bad-record")
    unreadable = await leave(tmp_path, "unreadable")
    (tmp_path / f"{unreadable}.meta").write_bytes(b"\xc1 not msgpack")
    deliver = Flaky(failures=1, error=CorruptJournal("the record lacks what delivery needs"))
    redelivery = Redelivery(tmp_path, deliver, set(), first=0.05)
    await redelivery.start()
    try:
        await eventually(lambda: not list(tmp_path.glob("*.meta")), 5)
        await asyncio.sleep(0.3)
    finally:
        await redelivery.stop()
    assert deliver.calls == [bad_record]  # once; the unreadable one never reached it
    assert sorted(p.name for p in (tmp_path / "corrupt").iterdir()) == sorted(
        f"{i}.{s}" for i in (bad_record, unreadable) for s in ("meta", "pcm")
    )


async def test_stop_ends_the_retries(tmp_path: Path) -> None:
    journal_id = await leave(tmp_path)
    deliver = Flaky(failures=1000)
    redelivery = Redelivery(tmp_path, deliver, set(), first=0.05, cap=0.05)
    await redelivery.start()
    redelivery.failed(journal_id)
    await eventually(lambda: len(deliver.calls) >= 2, 5)
    await redelivery.stop()
    tried = len(deliver.calls)
    await asyncio.sleep(0.2)
    assert len(deliver.calls) == tried
    assert (tmp_path / f"{journal_id}.meta").exists()  # kept for the next start-up
    await redelivery.stop()  # twice is harmless


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Storage]:
    async with open_storage(f"fs://{tmp_path}/spool") as opened:
        yield opened


async def test_a_retry_does_not_store_a_message_twice(
    tmp_path: Path, store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Mode both: stored, then the email fails (a full disk); the retry only emails."""
    outbox = Outbox(tmp_path / "outbox", SmtpSettings(port=9))
    settings = ServiceSettings(journal_dir=tmp_path / "journal", apps=AppsConfig(retry_delay=0.05))
    app = VoicemailService(settings, store, outbox, load_templates(TEMPLATES), PromptLibrary())
    submit, failures = outbox.submit, [OSError(28, "No space left on device")]

    async def full_disk(*args: Any, **kwargs: Any) -> str:
        if failures:
            raise failures.pop()
        return await submit(*args, **kwargs)

    monkeypatch.setattr(outbox, "submit", full_disk)
    (tmp_path / "outbox").mkdir()
    journal_id = await leave(tmp_path / "journal", mode="both")
    assert await app.recover() == 0  # stored, not emailed: kept
    assert (await store.count("lab.example", "bob")).new == 1
    assert (tmp_path / "journal" / f"{journal_id}.meta").exists()
    await app.start()
    try:
        await eventually(lambda: app.redelivery.delivered == 1, 5)
    finally:
        await app.stop()
    assert (await store.count("lab.example", "bob")).new == 1
    assert len(outbox.pending()) == 1
    assert not (tmp_path / "journal" / f"{journal_id}.meta").exists()


async def test_a_record_the_service_cannot_use_is_corrupt(tmp_path: Path, store: Storage) -> None:
    outbox = Outbox(tmp_path / "outbox", SmtpSettings(port=9))
    settings = ServiceSettings(journal_dir=tmp_path / "journal")
    app = VoicemailService(settings, store, outbox, load_templates(TEMPLATES), PromptLibrary())
    journal = await Journal.create(tmp_path / "journal", {"call_id": "x", "request": {"a": 1}})
    await journal.close()
    assert await app.recover() == 0
    assert (tmp_path / "journal" / "corrupt" / f"{journal.id}.meta").exists()
