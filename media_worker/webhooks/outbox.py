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
import functools
import heapq
import logging
import os
import ssl
import time
from collections import Counter
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
    set_aside: bool = False  # written so when moved to rejected/

    def record(self) -> bytes:
        return bytes(
            msgpack.packb(
                {
                    "v": JOB_VERSION, "id": self.id, "endpoint": self.endpoint,
                    "event": self.event, "body": self.body, "created": self.created,
                    "attempts": self.attempts, "next_attempt": self.next_attempt,
                    "last_error": self.last_error, "set_aside": self.set_aside,
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
            set_aside=bool(fields.get("set_aside", False)),
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
        # Per endpoint, a heap of (next attempt, created, delivery id): a wake costs a few
        # heap operations, never a pass over a backlog of thousands.
        self._queues: dict[str, list[tuple[float, float, str]]] = {}
        self._backlog: Counter[str] = Counter()  # deliveries waiting, per endpoint
        self._busy: dict[str, asyncio.Task[None]] = {}  # delivery id -> its POST
        self._in_flight: Counter[str] = Counter()  # POSTs running, per endpoint
        self._overflow_logged: dict[str, float] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._client: httpx.AsyncClient | None = None
        self.delivered = 0

    # ----- life cycle -----

    async def start(self) -> None:
        for job in await asyncio.to_thread(self._load):
            self._add(job)
        if self._jobs:
            log.info("webhooks: %d delivery(ies) waiting from an earlier run", len(self._jobs))
        # Loading the CA store takes a while: not on the event loop.
        tls = await asyncio.to_thread(ssl.create_default_context, cafile=self.config.ca_file)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(self.config.timeout),
            follow_redirects=False,  # a moved endpoint is the operator's to fix
            trust_env=False,  # no proxy or netrc taken from the environment
            transport=self._transport,
            limits=httpx.Limits(max_connections=self.config.max_in_flight),
            verify=tls,
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
        self._in_flight.clear()
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
            if job.set_aside:
                # The operator moved it back from rejected/: a fresh start, so that an
                # expired delivery is not set aside again at once.
                log.info("webhook %s %s to %s: sent again", job.event, job.id, job.endpoint)
                job.set_aside, job.created, job.attempts, job.next_attempt = (
                    False,
                    self.clock(),
                    0,
                    0.0,
                )
                write_atomic(path, job.record())
            if job.endpoint not in self._endpoints:
                log.error(
                    "webhook %s %s to %s: its endpoint is no longer configured: moved to "
                    "rejected/", job.event, job.id, job.endpoint,
                )  # fmt: skip
                job.last_error, job.set_aside = "its endpoint is no longer configured", True
                write_atomic(path, job.record())
                os.replace(path, self.directory / "rejected" / path.name)
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
        full = [job for job in jobs if self._backlog[job.endpoint] >= self.config.max_backlog]
        for job in full:
            job.last_error = f"more than {self.config.max_backlog} deliveries waiting"
            job.set_aside = True
        await _durably(self._write_all, jobs, {job.id for job in full})
        for job in jobs:
            if job in full:
                self._log_overflow(job)
                continue
            if job.id not in self._jobs:  # a re-queued delivery keeps its running attempt
                self._add(job)
            log.info(
                "webhook %s for %s@%s queued for %s as %s",
                event, notice.event.user, notice.event.domain, job.endpoint, job.id,
            )  # fmt: skip
        self._wake.set()
        return [job.id for job in jobs]

    def _write_all(self, jobs: list[Delivery], set_aside: set[str]) -> None:
        for job in jobs:
            path = self.directory / f"{job.id}{SUFFIX}"
            if job.id in set_aside:
                path = self.directory / "rejected" / path.name
            write_atomic(path, job.record())

    def _log_overflow(self, job: Delivery) -> None:
        """An endpoint down for long: one line a minute, not one per event."""
        now = self.clock()
        if now - self._overflow_logged.get(job.endpoint, -3600.0) >= 60:
            self._overflow_logged[job.endpoint] = now
            log.error(
                "webhooks to %s: %d deliveries waiting, new ones go straight to rejected/ "
                "(e.g. %s %s)", job.endpoint, self._backlog[job.endpoint], job.event, job.id,
            )  # fmt: skip

    def _add(self, job: Delivery) -> None:
        self._jobs[job.id] = job
        self._backlog[job.endpoint] += 1
        self._schedule(job)

    def _schedule(self, job: Delivery) -> None:
        heap = self._queues.setdefault(job.endpoint, [])
        heapq.heappush(heap, (job.next_attempt, job.created, job.id))

    def _forget(self, job: Delivery) -> None:
        if self._jobs.pop(job.id, None) is not None:
            self._backlog[job.endpoint] -= 1

    def pending(self) -> list[str]:
        """Ids of the deliveries waiting (in memory; the directory holds the same)."""
        return sorted(self._jobs)

    # ----- sending -----

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            now = self.clock()
            soonest: float | None = None
            for endpoint, heap in list(self._queues.items()):
                while heap and not self._saturated(endpoint):
                    at, _, job_id = heap[0]
                    job = self._jobs.get(job_id)
                    if job is None or job_id in self._busy or job.next_attempt != at:
                        heapq.heappop(heap)  # delivered, set aside or rescheduled meanwhile
                        continue
                    if at > now:
                        soonest = at if soonest is None else min(soonest, at)
                        break
                    heapq.heappop(heap)
                    self._launch(job)
                if not heap:
                    del self._queues[endpoint]
            # A saturated endpoint or outbox wakes this loop when one of its POSTs ends.
            delay = None if soonest is None else max(soonest - now, 0.05)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def _saturated(self, endpoint: str) -> bool:
        return (
            len(self._busy) >= self.config.max_in_flight
            or self._in_flight[endpoint] >= PER_ENDPOINT
        )

    def _launch(self, job: Delivery) -> None:
        post = asyncio.create_task(self._attempt_safely(job), name=f"webhook {job.id}")
        self._busy[job.id] = post
        self._in_flight[job.endpoint] += 1
        post.add_done_callback(functools.partial(self._done, job.id, job.endpoint))

    def _done(self, job_id: str, endpoint: str, post: asyncio.Task[None]) -> None:
        if self._busy.get(job_id) is post:
            del self._busy[job_id]
            self._in_flight[endpoint] -= 1
        self._wake.set()

    async def _attempt_safely(self, job: Delivery) -> None:
        try:
            await self._attempt(job)
        except Exception:  # the disk, most likely: the job stays queued, in memory and on disk
            job.next_attempt = self.clock() + self.config.retry_delay
            if job.id in self._jobs:
                self._schedule(job)
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
            self._forget(job)
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
        self._schedule(job)
        log.warning(
            "webhook %s %s to %s not delivered (attempt %d: %s); next try in %.0f s",
            job.event, job.id, job.endpoint, job.attempts, job.last_error, delay,
        )  # fmt: skip

    async def _set_aside(self, job: Delivery, where: str, why: str) -> None:
        job.last_error, job.set_aside = why, True
        path = self.directory / f"{job.id}{SUFFIX}"

        def move() -> None:
            write_atomic(path, job.record())
            os.replace(path, self.directory / where / path.name)

        await _durably(move)
        self._forget(job)
        log.error(
            "webhook %s %s to %s %s: moved to %s/", job.event, job.id, job.endpoint, why, where
        )


def _retry_after(value: str | None) -> float | None:
    """Retry-After in seconds (the delta form; a date is ignored)."""
    seconds = None if value is None else value.strip()
    # ASCII digits only (str.isdigit() takes "²"), and few: beyond that it is damage.
    if not seconds or not (seconds.isascii() and seconds.isdigit()) or len(seconds) > 9:
        return None
    return float(seconds)


async def _durably(write: Callable[..., object], *args: Any) -> None:
    """Run a file update in a thread to its end, even when the outbox is stopped meanwhile:
    a job's record never lags behind what its log lines said."""
    done = asyncio.ensure_future(asyncio.to_thread(write, *args))
    try:
        await asyncio.shield(done)
    except asyncio.CancelledError:
        await done
        raise
