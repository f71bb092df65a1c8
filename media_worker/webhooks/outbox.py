"""The durable webhook outbox: a delivery is on disk before its first POST and leaves only
once the endpoint took it (2xx) or refused it for good.

One msgpack file per delivery, ``<delivery id>.job`` in ``<data_dir>/webhooks/``, written
atomically (the event body inside it, signed at each attempt with the endpoint's secret
as configured then). Timeouts, connection failures, 3xx, 408, 429 and 5xx are tried again
with doubling waits (429 and 503 may ask for a longer one with Retry-After), across
restarts, until ``give_up_after``; other 4xx answers are a refusal: the job moves to
``rejected/`` with a log line, as does a job whose endpoint is no longer configured or
that ran out of time. An unreadable record moves to ``corrupt/``. A POST is bounded in
time (``timeout``, connect to last byte) and its answer's body is never read, so a slow
or chatty endpoint holds one slot for ``timeout`` seconds at most; POSTs run beside calls
on the event loop and never delay them. At most 2 POSTs per endpoint are in flight, so
one endpoint that hangs leaves the others their slots.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import msgpack

from media_worker import __version__
from media_worker.changes import Notice
from media_worker.config import WebhookEndpoint, WebhooksConfig
from media_worker.files import write_atomic
from media_worker.webhooks.events import (
    DELIVERY_HEADER,
    EVENT_HEADER,
    EVENT_TYPES,
    SIGNATURE_HEADER,
    delivery_id,
    encode,
    event_body,
    signature,
    wanted,
)

log = logging.getLogger("voicemail.webhooks")

JOB_VERSION = 1
SUFFIX = ".job"
PER_ENDPOINT = 2  # POSTs in flight to one endpoint
RETRYABLE = frozenset({408, 429})


@dataclass
class Delivery:
    id: str
    endpoint: str
    event: str
    body: bytes
    created: float
    attempts: int = 0
    next_attempt: float = 0.0
    last_error: str = ""

    def record(self) -> bytes:
        return bytes(
            msgpack.packb(
                {
                    "v": JOB_VERSION, "id": self.id, "endpoint": self.endpoint,
                    "event": self.event, "body": self.body, "created": self.created,
                    "attempts": self.attempts, "next_attempt": self.next_attempt,
                    "last_error": self.last_error,
                }
            )
        )  # fmt: skip

    @classmethod
    def from_record(cls, data: bytes) -> Delivery:
        fields: Any = msgpack.unpackb(data)
        if not isinstance(fields, dict) or fields.get("v") != JOB_VERSION:
            raise ValueError("not a version 1 webhook job")
        body = fields["body"]
        if not isinstance(body, bytes):
            raise ValueError("its body is not bytes")
        return cls(
            id=str(fields["id"]),
            endpoint=str(fields["endpoint"]),
            event=str(fields["event"]),
            body=body,
            created=float(fields["created"]),
            attempts=int(fields["attempts"]),
            next_attempt=float(fields["next_attempt"]),
            last_error=str(fields["last_error"]),
        )


class WebhookOutbox:
    def __init__(
        self,
        directory: Path,
        config: WebhooksConfig,
        *,
        clock: Callable[[], float] = time.time,
        transport: httpx.AsyncBaseTransport | None = None,  # tests: a mock transport
    ) -> None:
        self.directory = directory
        self.config = config
        self.clock = clock
        self._endpoints = {endpoint.name: endpoint for endpoint in config.endpoints}
        self._transport = transport
        self._jobs: dict[str, Delivery] = {}
        self._busy: dict[str, asyncio.Task[None]] = {}  # delivery id -> its POST
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.delivered = 0

    # ----- life cycle -----

    async def start(self) -> None:
        self._jobs = {job.id: job for job in await asyncio.to_thread(self._load)}
        if self._jobs:
            log.info("webhooks: %d delivery(ies) waiting from an earlier run", len(self._jobs))
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.config.timeout),
            follow_redirects=False,  # a moved endpoint is the operator's to fix
            trust_env=False,  # no proxy or netrc taken from the environment
            transport=self._transport,
            limits=httpx.Limits(max_connections=self.config.max_in_flight),
            headers={"User-Agent": f"kamailio-voicemail/{__version__}"},
        )
        self._task = asyncio.create_task(self._run(), name="webhooks")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
        posts = list(self._busy.values())
        for post in posts:
            post.cancel()
        await asyncio.gather(*posts, return_exceptions=True)
        self._busy.clear()
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    def _load(self) -> list[Delivery]:
        for sub in ("", "rejected", "corrupt"):
            (self.directory / sub).mkdir(parents=True, exist_ok=True)
        jobs = []
        for path in sorted(self.directory.glob(f"*{SUFFIX}")):
            try:
                job = Delivery.from_record(path.read_bytes())
                if f"{job.id}{SUFFIX}" != path.name:
                    raise ValueError(f"it names delivery {job.id!r}")
            except FileNotFoundError:
                continue
            except Exception as exc:  # noqa: BLE001 - any damage: set aside, never crash
                log.error("webhook job %s is unreadable (%s): moved to corrupt/", path.name, exc)
                os.replace(path, self.directory / "corrupt" / path.name)
                continue
            jobs.append(job)
        return jobs

    # ----- queueing -----

    async def enqueue(self, notice: Notice) -> list[str]:
        """Queue the deliveries of ``notice`` to every endpoint that wants its event; they
        are on disk when this returns. Returns their ids."""
        event = EVENT_TYPES[notice.event.kind]
        body = encode(event_body(notice))
        now = self.clock()
        jobs = [
            Delivery(delivery_id(notice.id, endpoint.name), endpoint.name, event, body, now)
            for endpoint in self.config.endpoints
            if wanted(endpoint.events, event)
        ]
        if not jobs:
            return []
        await _durably(self._write_all, jobs)
        for job in jobs:
            # A re-queued delivery (same id) being POSTed now keeps its running attempt.
            self._jobs.setdefault(job.id, job)
            log.info(
                "webhook %s for %s@%s queued for %s as %s",
                event, notice.event.user, notice.event.domain, job.endpoint, job.id,
            )  # fmt: skip
        self._wake.set()
        return [job.id for job in jobs]

    def _write_all(self, jobs: list[Delivery]) -> None:
        for job in jobs:
            write_atomic(self.directory / f"{job.id}{SUFFIX}", job.record())

    def pending(self) -> list[str]:
        """Ids of the deliveries waiting (in memory; the directory holds the same)."""
        return sorted(self._jobs)

    # ----- sending -----

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self.clock()
            per_endpoint: dict[str, int] = {}
            for job in self._busy_jobs():
                per_endpoint[job.endpoint] = per_endpoint.get(job.endpoint, 0) + 1
            waits = []
            for job in sorted(self._jobs.values(), key=lambda j: (j.next_attempt, j.created)):
                if job.id in self._busy:
                    continue
                if job.next_attempt > now:
                    waits.append(job.next_attempt - now)
                    continue
                if len(self._busy) >= self.config.max_in_flight:
                    break
                if per_endpoint.get(job.endpoint, 0) >= PER_ENDPOINT:
                    continue
                per_endpoint[job.endpoint] = per_endpoint.get(job.endpoint, 0) + 1
                post = asyncio.create_task(self._attempt_safely(job), name=f"webhook {job.id}")
                self._busy[job.id] = post
                post.add_done_callback(self._done)
            delay = max(min(waits), 0.05) if waits else None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def _busy_jobs(self) -> list[Delivery]:
        return [self._jobs[job_id] for job_id in self._busy if job_id in self._jobs]

    def _done(self, post: asyncio.Task[None]) -> None:
        for job_id, running in list(self._busy.items()):
            if running is post:
                del self._busy[job_id]
        self._wake.set()

    async def _attempt_safely(self, job: Delivery) -> None:
        try:
            await self._attempt(job)
        except Exception:  # the disk, most likely: the job stays queued, in memory and on disk
            job.next_attempt = self.clock() + self.config.retry_delay
            log.exception("webhook %s %s to %s: attempt failed", job.event, job.id, job.endpoint)

    async def _attempt(self, job: Delivery) -> None:
        endpoint = self._endpoints.get(job.endpoint)
        if endpoint is None:
            await self._set_aside(job, "rejected", "its endpoint is no longer configured")
            return
        if self.clock() - job.created > self.config.give_up_after:
            await self._set_aside(job, "rejected", f"undelivered after {job.attempts} attempts")
            return
        job.attempts += 1
        try:
            status, retry_after = await self._post(endpoint, job)
        except (httpx.HTTPError, OSError, TimeoutError) as exc:
            await self._retry_later(job, f"{type(exc).__name__}: {exc}".rstrip(": "), None)
            return
        if 200 <= status < 300:
            await _durably((self.directory / f"{job.id}{SUFFIX}").unlink, True)
            self._jobs.pop(job.id, None)
            self.delivered += 1
            log.info("webhook %s %s delivered to %s (%d)", job.event, job.id, job.endpoint, status)
        elif 400 <= status < 500 and status not in RETRYABLE:
            await self._set_aside(job, "rejected", f"refused with {status}")
        else:
            await self._retry_later(job, f"answered {status}", retry_after)

    async def _post(self, endpoint: WebhookEndpoint, job: Delivery) -> tuple[int, float | None]:
        assert self._client is not None
        headers = {
            "Content-Type": "application/json",
            SIGNATURE_HEADER: signature(endpoint.secret, job.body),
            EVENT_HEADER: job.event,
            DELIVERY_HEADER: job.id,
        }
        # httpx's timeouts are per read; this one bounds the whole exchange.
        async with (
            asyncio.timeout(self.config.timeout),
            self._client.stream("POST", endpoint.url, content=job.body, headers=headers) as answer,
        ):
            return answer.status_code, _retry_after(answer.headers.get("Retry-After"))

    async def _retry_later(self, job: Delivery, error: str, retry_after: float | None) -> None:
        delay = min(self.config.retry_delay * 2 ** (job.attempts - 1), self.config.retry_max_delay)
        if retry_after is not None:
            delay = min(max(delay, retry_after), self.config.retry_max_delay)
        job.next_attempt = self.clock() + delay
        job.last_error = error[:500]
        await _durably(write_atomic, self.directory / f"{job.id}{SUFFIX}", job.record())
        log.warning(
            "webhook %s %s to %s not delivered (attempt %d: %s); next try in %.0f s",
            job.event, job.id, job.endpoint, job.attempts, job.last_error, delay,
        )  # fmt: skip

    async def _set_aside(self, job: Delivery, where: str, why: str) -> None:
        job.last_error = why
        path = self.directory / f"{job.id}{SUFFIX}"

        def move() -> None:
            write_atomic(path, job.record())
            os.replace(path, self.directory / where / path.name)

        await _durably(move)
        self._jobs.pop(job.id, None)
        log.error(
            "webhook %s %s to %s %s: moved to %s/", job.event, job.id, job.endpoint, why, where
        )


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the delta form; a date is ignored)."""
    if value is None or not value.strip().isdigit():
        return None
    return float(value.strip())


async def _durably(write: Callable[..., object], *args: Any) -> None:
    """Run a file update in a thread to its end, even when the outbox is stopped meanwhile:
    a job's record never lags behind what its log lines said."""
    done = asyncio.ensure_future(asyncio.to_thread(write, *args))
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        await done
        raise
