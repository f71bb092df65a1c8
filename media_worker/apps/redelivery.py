"""Messages whose delivery failed are tried again while the worker runs.

A recording whose store or email step fails when the call ends (database unreachable,
disk full) stays in the journal. This loop delivers such journals, and those a crash
left behind, with backoff: ``first`` seconds, doubling up to ``cap``, one log line per
attempt naming the Call-ID and mailbox. Journals of calls in progress are never touched.
A journal that cannot be read, or whose record cannot be delivered as it is, goes to
corrupt/ at once: it is never retried forever. The attempts are counted in memory: after
a restart every leftover is tried at once, as a crash's leftovers always were.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Set
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from media_worker.apps.journal import Leftover, forget, load, pending, set_aside

log = logging.getLogger("voicemail.journal")


class CorruptJournal(ValueError):
    """A journal whose record cannot be delivered as it is (missing or bad fields)."""


@dataclass
class _Retry:
    attempts: int
    due: float


def describe(meta: dict[str, Any]) -> tuple[str, str]:
    """(Call-ID, mailbox) of a journal record, for log lines; '?' where it lacks them."""
    request = meta.get("request")
    request = request if isinstance(request, dict) else {}
    return str(meta.get("call_id", "?")), f"{request.get('user', '?')}@{request.get('domain', '?')}"


class Redelivery:
    def __init__(
        self,
        directory: Path,
        deliver: Callable[[Leftover], Awaitable[str]],
        in_use: Set[str],
        *,
        first: float = 5.0,
        cap: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``deliver`` stores/emails a leftover and says what it did, or raises;
        ``in_use``: ids of the journals that calls in progress are writing."""
        self.directory = directory
        self.deliver = deliver
        self.in_use = in_use
        self.first = first
        self.cap = cap
        self.clock = clock
        self._retry: dict[str, _Retry] = {}
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.delivered = 0

    # ----- life cycle -----

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="redelivery")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    def failed(self, journal_id: str) -> None:
        """A call's own delivery of ``journal_id`` failed: its first retry is due later."""
        self._retry[journal_id] = _Retry(1, self.clock() + self.delay(1))
        self._wake.set()

    def delay(self, attempts: int) -> float:
        return min(self.first * 2.0 ** min(attempts - 1, 30), self.cap)

    # ----- delivering -----

    async def attempt_due(self) -> int:
        """Try each leftover journal that is due; returns how many were delivered."""
        skip = frozenset(self.in_use)
        ids = await asyncio.to_thread(pending, self.directory, skip)
        for gone in set(self._retry) - set(ids):
            del self._retry[gone]
        delivered = 0
        for journal_id in ids:
            retry = self._retry.get(journal_id, _Retry(0, 0.0))
            if retry.due > self.clock() or journal_id in self.in_use:
                continue
            if await self._attempt(journal_id, retry.attempts + 1):
                delivered += 1
        return delivered

    async def _attempt(self, journal_id: str, attempt: int) -> bool:
        leftover = await asyncio.to_thread(load, self.directory, journal_id)
        if leftover is None:  # gone, or set aside as unreadable
            self._retry.pop(journal_id, None)
            return False
        call_id, mailbox = describe(leftover.meta)
        try:
            outcome = await self.deliver(leftover)
        except CorruptJournal as exc:
            self._retry.pop(journal_id, None)
            await asyncio.to_thread(set_aside, self.directory, journal_id, str(exc))
            return False
        except Exception as exc:  # noqa: BLE001 - a store or disk failure: try again later
            delay = self.delay(attempt)
            self._retry[journal_id] = _Retry(attempt, self.clock() + delay)
            log.warning(
                "[%s] message for %s not delivered (attempt %d: %s); next try in %.3g s",
                call_id, mailbox, attempt, str(exc) or type(exc).__name__, delay,
            )  # fmt: skip
            return False
        self._retry.pop(journal_id, None)
        await asyncio.to_thread(forget, self.directory, journal_id)
        self.delivered += 1
        log.info(
            "[%s] recovered recording for %s: %s (attempt %d)", call_id, mailbox, outcome, attempt
        )
        return True

    async def _run(self) -> None:
        while True:
            self._wake.clear()  # a failure reported from here on wakes the wait below
            await self.attempt_due()
            upcoming = [retry.due for retry in self._retry.values()]
            delay = max(min(upcoming) - self.clock(), 0.05) if upcoming else None
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), delay)
