"""The CPU-bound audio work of the API (MP3/Opus encodings, greeting normalisation):
a few at once in threads, a bounded queue behind them, and one encoding for all the
requests that ask for the same audio at the same time."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

T = TypeVar("T")
# Requests that may wait for a conversion, per conversion running: beyond, 503 at once
# rather than a queue (each entry holds its audio in memory) that one client can grow.
WAITING_PER_RUNNING = 8


class Busy(Exception):
    """Too many conversions are queued: answer 503 with Retry-After."""


class Conversions:
    def __init__(self, running: int, waiting: int | None = None) -> None:
        self.running = running
        self.waiting = running * WAITING_PER_RUNNING if waiting is None else waiting
        self._slots = asyncio.Semaphore(running)
        self._queued = 0  # conversions running or waiting for a slot
        self._shared: dict[Hashable, asyncio.Task[Any]] = {}

    @property
    def queued(self) -> int:
        return self._queued

    async def run(self, key: Hashable | None, work: Callable[[], T]) -> T:
        """``work()`` in a thread once a slot is free; with ``key``, requests for the
        same key made while it runs share its result (and its error). Busy when
        ``running + waiting`` conversions are already queued."""
        shared = self._shared.get(key) if key is not None else None
        if shared is not None:
            result: T = await asyncio.shield(shared)
            return result
        if self._queued >= self.running + self.waiting:
            raise Busy(f"{self._queued} audio conversions are queued; try again shortly")
        self._queued += 1
        if key is None:
            try:
                return await self._convert(work)
            finally:
                self._queued -= 1
        # A task of its own: a client that goes away does not cancel the others' result.
        task = asyncio.get_running_loop().create_task(self._convert(work))
        self._shared[key] = task

        def done(finished: asyncio.Task[Any]) -> None:
            self._queued -= 1
            self._shared.pop(key, None)
            if not finished.cancelled():
                finished.exception()  # retrieved: every asker may have gone

        task.add_done_callback(done)
        return await asyncio.shield(task)

    async def _convert(self, work: Callable[[], T]) -> T:
        async with self._slots:
            return await asyncio.to_thread(work)
