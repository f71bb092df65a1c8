"""Fixtures for tests that run a real worker and real phones (baresip)."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

import media_worker
from media_worker.application import Application
from media_worker.apps.context import ServiceSettings
from media_worker.apps.service import VoicemailService
from media_worker.config import AppsConfig, RtpConfig, SipConfig
from media_worker.mail.outbox import Outbox, SmtpSettings
from media_worker.mail.template import load_templates
from media_worker.prompts import PromptLibrary
from media_worker.worker import Worker, WorkerSettings
from storage import Storage, open_storage
from tests.support.baresip import Baresip
from tests.support.procs import free_port
from tests.support.smtp import Inbox

PROMPT = Path("/usr/share/asterisk/sounds/en_US_f_Allison/vm-intro.wav")
TEMPLATES = Path(media_worker.__file__).parent / "templates"


@pytest.fixture(scope="session")
def caller_speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Spoken words (espeak-ng) at 8 kHz, then silence: what the caller says."""
    out = tmp_path_factory.mktemp("speech")
    raw = out / "raw.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(raw), "Hello, this is Alice. Please call me back at five."],
        check=True,
    )
    speech = out / "speech.wav"
    subprocess.run(
        ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", str(speech), "pad", "0.5", "1.5"],
        check=True,
    )
    return speech


@pytest.fixture
def quiet_caller(tmp_path: Path) -> Path:
    """A caller who listens: 40 s of silence to send."""
    out = tmp_path / "quiet.wav"
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(out), "trim", "0", "40"], check=True
    )
    return out


@pytest.fixture
def phones() -> Iterator[Callable[..., Baresip]]:
    """Start phones with ``phones(source_wav, transport=...)``; all stop after the test."""
    with ExitStack() as stack:
        started: list[Baresip] = []

        def start(source: Path, **kwargs: object) -> Baresip:
            phone = Baresip(source, **kwargs)  # type: ignore[arg-type]
            stack.callback(phone.cleanup)
            stack.enter_context(phone)
            started.append(phone)
            return phone

        yield start


WorkerFactory = Callable[..., Awaitable[Worker]]


@pytest.fixture
async def start_worker() -> AsyncIterator[WorkerFactory]:
    """``await start_worker(app, **settings)``: a worker on free ports, stopped afterwards;
    ``settings`` are SipConfig's (``listen``, ``secret``, ...) or WorkerSettings' own."""
    workers: list[Worker] = []
    sip_keys = {f.name for f in dataclasses.fields(SipConfig)}

    async def start(app: Application[Any], **settings: Any) -> Worker:
        sip = SipConfig(port=0, **{k: v for k, v in settings.items() if k in sip_keys})
        own = {k: v for k, v in settings.items() if k not in sip_keys}
        worker = Worker(WorkerSettings(sip, RtpConfig(ports=(32000, 33000)), **own), app)
        await worker.start()
        workers.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            await worker.stop()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Storage]:
    async with open_storage(f"fs://{tmp_path}/spool") as opened:
        yield opened


@pytest.fixture
async def smtp_inbox() -> AsyncIterator[tuple[Inbox, int]]:
    """A real SMTP server (aiosmtpd) on a free port that keeps what it receives."""
    inbox, port = Inbox(), free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    await asyncio.to_thread(controller.start)
    try:
        yield inbox, port
    finally:
        await asyncio.to_thread(controller.stop)


def service(
    tmp_path: Path,
    store: Storage,
    smtp_port: int,
    apps: AppsConfig,
    prompts: PromptLibrary | None = None,
) -> tuple[VoicemailService, Outbox]:
    """The worker's application on ``store``, mailing through an outbox to ``smtp_port``."""
    outbox = Outbox(tmp_path / "outbox", SmtpSettings(port=smtp_port, timeout=5), backoff=(0.2,))
    settings = ServiceSettings(journal_dir=tmp_path / "journal", apps=apps)
    return VoicemailService(
        settings, store, outbox, load_templates(TEMPLATES), prompts or PromptLibrary()
    ), outbox
