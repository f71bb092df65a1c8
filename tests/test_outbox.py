"""The durable outbox against a real SMTP server (aiosmtpd) on a free loopback port."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from media_worker.mail.outbox import Job, Outbox, SmtpSettings
from tests.support.procs import eventually, free_port
from tests.support.smtp import Inbox

pytestmark = pytest.mark.integration


@pytest.fixture
async def smtp() -> AsyncIterator[Callable[[], tuple[Inbox, Controller]]]:
    """Start SMTP servers on demand (on a given port); all are stopped afterwards."""
    started: list[Controller] = []
    port = free_port()

    def start() -> tuple[Inbox, Controller]:
        inbox = Inbox()
        controller = Controller(inbox, hostname="127.0.0.1", port=port)
        controller.start()
        started.append(controller)
        return inbox, controller

    start.port = port  # type: ignore[attr-defined]
    try:
        yield start
    finally:
        for controller in started:
            controller.stop()


def message(subject: str = "Voice message") -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"], msg["From"], msg["To"] = subject, "vm@lab.example", "bob@lab.example"
    msg.set_content("Hello")
    msg.add_attachment(b"RIFF....WAVE", maintype="audio", subtype="wav", filename="m.wav")
    return msg


async def test_delivers_and_forgets(
    tmp_path: Path, smtp: Callable[[], tuple[Inbox, Controller]]
) -> None:
    inbox, _ = await asyncio.to_thread(smtp)
    outbox = Outbox(tmp_path, SmtpSettings(port=smtp.port))  # type: ignore[attr-defined]
    await outbox.start()
    try:
        await outbox.submit(message(), mailbox="bob@lab.example", call_id="c1")
        await eventually(lambda: len(inbox.messages) == 1)
        await eventually(lambda: outbox.pending() == [])
    finally:
        await outbox.stop()
    assert b"Subject: Voice message" in inbox.messages[0]
    assert list(tmp_path.glob("*.eml")) == []


async def test_smtp_down_then_up_delivers_once(
    tmp_path: Path, smtp: Callable[[], tuple[Inbox, Controller]], caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path, SmtpSettings(port=smtp.port, timeout=2), backoff=(0.2,))  # type: ignore[attr-defined]
    await outbox.start()
    try:
        job = await outbox.submit(message(), mailbox="bob@lab.example", call_id="c2")
        await eventually(lambda: "not sent (attempt 1" in caplog.text)
        assert outbox.pending() == [job]  # still on disk while the server is down
        inbox, _ = await asyncio.to_thread(smtp)
        await eventually(lambda: len(inbox.messages) == 1)
        await eventually(lambda: outbox.pending() == [])
        await asyncio.sleep(0.5)
        assert len(inbox.messages) == 1
    finally:
        await outbox.stop()


async def test_survives_a_restart(
    tmp_path: Path, smtp: Callable[[], tuple[Inbox, Controller]]
) -> None:
    first = Outbox(tmp_path, SmtpSettings(port=smtp.port, timeout=2), backoff=(3600.0,))  # type: ignore[attr-defined]
    await first.start()
    await first.submit(message(), mailbox="bob@lab.example", call_id="c3")
    await eventually(
        lambda: Job.from_record(next(tmp_path.glob("*.job")).read_bytes()).attempts == 1
    )
    await first.stop()  # "crash" with the job waiting an hour for its retry
    inbox, _ = await asyncio.to_thread(smtp)
    # A new worker process: the job is due again only after its backoff, so make it due.
    job_path = next(tmp_path.glob("*.job"))
    job = Job.from_record(job_path.read_bytes())
    job.next_attempt = 0
    job_path.write_bytes(job.record())
    second = Outbox(tmp_path, SmtpSettings(port=smtp.port))  # type: ignore[attr-defined]
    await second.start()
    try:
        await eventually(lambda: len(inbox.messages) == 1)
    finally:
        await second.stop()


async def test_permanent_refusal_is_set_aside(
    tmp_path: Path, smtp: Callable[[], tuple[Inbox, Controller]], caplog: pytest.LogCaptureFixture
) -> None:
    inbox, _ = await asyncio.to_thread(smtp)
    inbox.refuse = "550 5.1.1 mailbox unavailable"
    outbox = Outbox(tmp_path, SmtpSettings(port=smtp.port))  # type: ignore[attr-defined]
    await outbox.start()
    try:
        job = await outbox.submit(message(), mailbox="bob@lab.example", call_id="c4")
        await eventually(lambda: outbox.pending() == [])
    finally:
        await outbox.stop()
    assert (tmp_path / "rejected" / f"{job}.eml").exists()
    rejected = Job.from_record((tmp_path / "rejected" / f"{job}.job").read_bytes())
    assert rejected.last_error.startswith("550")
    assert "refused for good (550" in caplog.text


async def test_corrupt_record_is_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "broken.job").write_bytes(b"\xc1\xc1 not msgpack")
    (tmp_path / "broken.eml").write_bytes(b"Subject: x\r\n\r\nbody")
    outbox = Outbox(tmp_path, SmtpSettings(port=free_port()))
    await outbox.start()
    try:
        await eventually(lambda: (tmp_path / "corrupt" / "broken.job").exists())
    finally:
        await outbox.stop()
    assert (tmp_path / "corrupt" / "broken.eml").exists()
    assert "outbox record broken.job is unreadable" in caplog.text


async def test_a_stop_waits_for_the_record_being_written() -> None:
    """Cancelled mid-write (the outbox stopping), a record update still completes before
    the cancellation goes on, so the job file never lags behind the log."""
    started, release = threading.Event(), threading.Event()
    written: list[str] = []

    def slow_write(text: str) -> None:
        started.set()
        release.wait(5)
        written.append(text)

    task = asyncio.create_task(Outbox._durably(slow_write, "record"))
    await asyncio.to_thread(started.wait, 5)
    task.cancel()
    await asyncio.sleep(0.05)
    assert not task.done()  # still waiting for the write
    release.set()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert written == ["record"]
