"""A message left while PostgreSQL is down reaches the box once it is back, without a
restart of the worker: a real call (baresip to a worker), a private PostgreSQL stopped
during the recording and started again a few failed attempts later."""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from media_worker.apps.context import ServiceSettings
from media_worker.apps.service import VoicemailService
from media_worker.config import AppsConfig
from media_worker.mail.outbox import Outbox, SmtpSettings
from media_worker.mail.template import load_templates
from media_worker.prompts import PromptLibrary
from storage import Storage, open_storage
from tests.integration.conftest import TEMPLATES, WorkerFactory
from tests.support.baresip import Baresip
from tests.support.postgres import PostgresServer
from tests.support.procs import eventually

pytestmark = [pytest.mark.integration, pytest.mark.postgres]


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    """A server of this test's own: stopping it disturbs no other test."""
    with PostgresServer() as server:
        yield server


@pytest.fixture
async def pg_store(postgres: PostgresServer) -> AsyncIterator[Storage]:
    postgres.psql("CREATE DATABASE voicemail")
    url = postgres.url("voicemail")
    await open_storage(url).init()
    async with open_storage(url) as opened:
        yield opened


@pytest.fixture
def patient_caller(caller_speech: Path, tmp_path: Path) -> Path:
    """Seven seconds of silence (the greeting and the beep), then the caller speaks."""
    out = tmp_path / "patient.wav"
    subprocess.run(["sox", str(caller_speech), str(out), "pad", "7", "0"], check=True)
    return out


async def test_message_reaches_the_box_once_postgres_is_back(
    tmp_path: Path,
    postgres: PostgresServer,
    pg_store: Storage,
    start_worker: WorkerFactory,
    phones: Callable[..., Baresip],
    patient_caller: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = ServiceSettings(
        journal_dir=tmp_path / "journal",
        apps=AppsConfig(
            default_mode="box", simple_mode="voicemail", retry_delay=0.5, retry_max_delay=2.0
        ),
    )
    outbox = Outbox(tmp_path / "outbox", SmtpSettings(timeout=5))
    app = VoicemailService(settings, pg_store, outbox, load_templates(TEMPLATES), PromptLibrary())
    await app.start()
    try:
        worker = await start_worker(app)
        phone = phones(patient_caller)
        with caplog.at_level(logging.INFO):
            phone.dial(f"sip:bob@127.0.0.1:{worker.port}")
            await phone.wait_for("Call established")
            await asyncio.to_thread(postgres.pause)  # while the caller speaks
            await phone.wait_for("terminated", 30)  # baresip hangs up when its file ends

            def retried() -> bool:
                return "message for bob@127.0.0.1 not delivered (attempt 3" in caplog.text

            await eventually(retried, 20, lambda: caplog.text)
            assert [p.suffix for p in sorted((tmp_path / "journal").glob("*.*"))] == [
                ".meta",
                ".pcm",
            ]
            await asyncio.to_thread(postgres.resume)
            back = asyncio.get_running_loop().time()

            async def stored() -> bool:
                return (await pg_store.count("127.0.0.1", "bob")).new == 1

            await eventually(stored, 60, lambda: caplog.text)
            assert asyncio.get_running_loop().time() - back < 60
        assert "recovered recording for bob@127.0.0.1: " in caplog.text
        assert list((tmp_path / "journal").glob("*.meta")) == []
        [info] = await pg_store.list_mailbox("127.0.0.1", "bob")
        message = await pg_store.get_message("127.0.0.1", "bob", info.name)
        assert len(message.audio) > 16000 * 3  # the caller's words, about 4 s
    finally:
        await app.stop()
