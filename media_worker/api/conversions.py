"""The CPU-bound audio work of the API (MP3/Opus encodings, greeting normalisation):
a few at once in threads, a bounded queue behind them, and one encoding for all the
requests that ask for the same audio at the same time."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Hashable
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
        if key is None:
            async with self.place():
                return await self.convert(work)
        self._refuse_when_full()
        self._queued += 1
        # A task of its own: a client that goes away does not cancel the others' result.
        task = asyncio.get_running_loop().create_task(self.convert(work))
        self._shared[key] = task

        def done(finished: asyncio.Task[Any]) -> None:
            self._queued -= 1
            self._shared.pop(key, None)
            if not finished.cancelled():
                finished.exception()  # retrieved: every asker may have gone

        task.add_done_callback(done)
        return await asyncio.shield(task)

    @contextlib.asynccontextmanager
    async def place(self) -> AsyncIterator[None]:
        """A place in the queue, held while the caller gathers its input (an upload's
        body) and ``convert``s it: uploads wait in the same bounded queue as encodings
        instead of each holding a body in memory first."""
        self._refuse_when_full()
        self._queued += 1
        try:
            yield
        finally:
            self._queued -= 1

    def _refuse_when_full(self) -> None:
        if self._queued >= self.running + self.waiting:
            raise Busy(f"{self._queued} audio conversions are queued; try again shortly")

    async def convert(self, work: Callable[[], T]) -> T:
        """``work()`` in a thread once a slot is free (a place is the caller's)."""
        async with self._slots:
            return await asyncio.to_thread(work)
