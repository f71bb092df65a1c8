"""The durable outbox: an email is on disk before the first attempt and leaves only once the
server took it.

Each job is two files in the outbox directory: ``<id>.eml`` (the message) and ``<id>.job``
(msgpack metadata: mailbox, Call-ID, attempts, next attempt, last error), both written
atomically; the .job file is written last, so a job exists only when complete. Transient
failures (no server, 4xx, timeouts, and authentication failures, which a corrected
password ends) retry with backoff, across restarts; a message the server refuses for good
(any other 5xx) moves to ``rejected/`` with a log line; a record that cannot be read moves
to ``corrupt/``. Nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import default as default_policy
from pathlib import Path
from typing import Any

import aiosmtplib
import msgpack

from media_worker.files import write_atomic

log = logging.getLogger("voicemail.mail")

JOB_VERSION = 1
DEFAULT_BACKOFF = (10.0, 30.0, 120.0, 600.0, 1800.0, 3600.0)
# 5xx replies about our credentials (RFC 4954): a configuration fault an operator fixes,
# not a refusal of the message, so the job waits for the fix instead of being set aside.
AUTH_FAULTS = frozenset({530, 534, 535, 538})


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how the outbox sends: the worker configuration's ``email.smtp``."""

    host: str = "127.0.0.1"
    port: int = 25
    username: str | None = None
    password: str | None = None
    starttls: bool = False  # upgrade with STARTTLS (required when True)
    tls: bool = False  # implicit TLS (port 465)
    timeout: float = 30.0
    ca_file: str | None = None  # PEM CA certificates to trust; None: the system's


@dataclass
class Job:
    id: str
    mailbox: str
    call_id: str
    created: float
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str = ""

    def record(self) -> bytes:
        return bytes(
            msgpack.packb(
                {
                    "v": JOB_VERSION,
                    "id": self.id,
                    "mailbox": self.mailbox,
                    "call_id": self.call_id,
                    "created": self.created,
                    "attempts": self.attempts,
                    "next_attempt": self.next_attempt,
                    "last_error": self.last_error,
                }
            )
        )

    @classmethod
    def from_record(cls, data: bytes) -> Job:
        fields: Any = msgpack.unpackb(data)
        if not isinstance(fields, dict) or fields.get("v") != JOB_VERSION:
            raise ValueError("not a version 1 outbox record")
        return cls(
            id=str(fields["id"]),
            mailbox=str(fields["mailbox"]),
            call_id=str(fields["call_id"]),
            created=float(fields["created"]),
            attempts=int(fields["attempts"]),
            next_attempt=float(fields["next_attempt"]),
            last_error=str(fields["last_error"]),
        )


class Outbox:
    def __init__(
        self,
        directory: Path,
        smtp: SmtpSettings,
        *,
        backoff: tuple[float, ...] = DEFAULT_BACKOFF,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.smtp = smtp
        self.backoff = backoff
        self.clock = clock
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0

    # ----- life cycle -----

    async def start(self) -> None:
        await asyncio.to_thread(self._prepare)
        self._task = asyncio.create_task(self._run(), name="outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def _prepare(self) -> None:
        for sub in ("", "rejected", "corrupt"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)

    # ----- submitting -----

    async def submit(self, message: EmailMessage, *, mailbox: str, call_id: str) -> str:
        """Queue ``message``; it is on disk when this returns."""
        job = Job(f"{int(self.clock())}-{secrets.token_hex(6)}", mailbox, call_id, self.clock())
        data = message.as_bytes()
        await asyncio.to_thread(self._write_job, job, data)
        log.info("[%s] email for %s queued as %s", call_id, mailbox, job.id)
        self._wake.set()
        return job.id

    def _write_job(self, job: Job, data: bytes) -> None:
        write_atomic(self.directory / f"{job.id}.eml", data)
        write_atomic(self.directory / f"{job.id}.job", job.record())

    def pending(self) -> list[str]:
        """Ids of the jobs waiting to be sent."""
        return sorted(p.stem for p in self.directory.glob("*.job"))

    # ----- sending -----

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # a job submitted from here on wakes the wait below
            jobs = await asyncio.to_thread(self._load_jobs)
            now = self.clock()
            for job in jobs:
                if job.next_attempt <= now:
                    await self._attempt(job)
            jobs = await asyncio.to_thread(self._load_jobs)
            upcoming = [j.next_attempt for j in jobs]
            delay = max(min(upcoming) - self.clock(), 0.05) if upcoming else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)

    def _load_jobs(self) -> list[Job]:
        jobs = []
        for path in sorted(self.directory.glob("*.job")):
            try:
                job = Job.from_record(path.read_bytes())
                if not (self.directory / f"{job.id}.eml").exists():
                    raise ValueError("its message file is missing")
            except FileNotFoundError:
                continue  # sent meanwhile
            except Exception as exc:  # noqa: BLE001 - any damage: set aside, never crash
                log.error("outbox record %s is unreadable (%s): moved to corrupt/", path.name, exc)
                self._set_aside(path.stem, "corrupt")
                continue
            jobs.append(job)
        return jobs

    def _set_aside(self, job_id: str, where: str) -> None:
        for suffix in (".eml", ".job"):
            source = self.directory / f"{job_id}{suffix}"
            if source.exists():
                os.replace(source, self.directory / where / source.name)

    async def _attempt(self, job: Job) -> None:
        try:
            data = await asyncio.to_thread((self.directory / f"{job.id}.eml").read_bytes)
        except FileNotFoundError:
            return  # handled meanwhile
        message = BytesParser(policy=default_policy).parsebytes(data)
        job.attempts += 1
        try:
            await aiosmtplib.send(
                message,
                hostname=self.smtp.host,
                port=self.smtp.port,
                username=self.smtp.username,
                password=self.smtp.password,
                start_tls=self.smtp.starttls,
                use_tls=self.smtp.tls,
                timeout=self.smtp.timeout,
                cert_bundle=self.smtp.ca_file,
            )
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600 and exc.code not in AUTH_FAULTS:
                job.last_error = f"{exc.code} {exc.message}"
                await self._durably(self._reject, job)
                log.error(
                    "[%s] email %s for %s refused for good (%s): moved to rejected/",
                    job.call_id, job.id, job.mailbox, job.last_error,
                )  # fmt: skip
                return
            await self._retry_later(job, f"{exc.code} {exc.message}")
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            await self._retry_later(job, str(exc) or type(exc).__name__)
        else:
            await asyncio.to_thread(self._remove, job)
            self.delivered += 1
            log.info("[%s] email %s for %s delivered", job.call_id, job.id, job.mailbox)

    async def _retry_later(self, job: Job, error: str) -> None:
        delay = self.backoff[min(job.attempts - 1, len(self.backoff) - 1)]
        job.next_attempt = self.clock() + delay
        job.last_error = error
        await self._durably(write_atomic, self.directory / f"{job.id}.job", job.record())
        log.warning(
            "[%s] email %s for %s not sent (attempt %d: %s); next try in %.0f s",
            job.call_id, job.id, job.mailbox, job.attempts, error, delay,
        )  # fmt: skip

    @staticmethod
    async def _durably(write: Callable[..., None], *args: Any) -> None:
        """Run a file update in a thread to its end, even when the outbox is stopped
        meanwhile: a job's record never lags behind what its log lines said."""
        done = asyncio.ensure_future(asyncio.to_thread(write, *args))
        try:
            await asyncio.shield(done)
        except asyncio.CancelledError:
            await done
            raise

    def _reject(self, job: Job) -> None:
        write_atomic(self.directory / f"{job.id}.job", job.record())
        self._set_aside(job.id, "rejected")

    def _remove(self, job: Job) -> None:
        (self.directory / f"{job.id}.job").unlink(missing_ok=True)  # the job ends first
        (self.directory / f"{job.id}.eml").unlink(missing_ok=True)
