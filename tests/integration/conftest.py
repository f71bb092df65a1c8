"""Fixtures for tests that run a real worker and real phones (baresip)."""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from media_worker.worker import Application, Worker, WorkerSettings
from tests.support.baresip import Baresip

PROMPT = Path("/usr/share/asterisk/sounds/en_US_f_Allison/vm-intro.wav")


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
    """``await start_worker(app, **settings)``: a worker on free ports, stopped afterwards."""
    workers: list[Worker] = []

    async def start(app: Application, **settings: object) -> Worker:
        worker = Worker(
            WorkerSettings(sip_port=0, rtp_ports=(32000, 33000), **settings),  # type: ignore[arg-type]
            app,
        )
        await worker.start()
        workers.append(worker)
        return worker

    try:
        yield start
    finally:
        for worker in workers:
            await worker.stop()
