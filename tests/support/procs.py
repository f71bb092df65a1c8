"""Process helpers: waiting for a condition, and servers that stop whatever they started.
Free ports, starting and stopping by PID are the lab's (media_worker.lab.procs)."""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from media_worker.lab.procs import free_port, free_udp_tcp_port, start_process, stop_process

__all__ = [
    "Managed",
    "eventually",
    "free_port",
    "free_udp_tcp_port",
    "start_process",
    "stop_process",
    "wait_until",
]


def wait_until(condition: Callable[[], bool], within: float, describe: Callable[[], str]) -> None:
    """Poll ``condition`` until it holds; give up after ``within`` seconds with
    ``describe()`` (a log, say) in the failure. A bound on waiting, not a measurement."""
    deadline = time.monotonic() + within
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {within} s:\n{describe()}")
        time.sleep(0.05)


async def eventually(
    condition: Callable[[], bool | Awaitable[bool]],
    within: float = 10.0,
    describe: Callable[[], str] = lambda: "",
) -> None:
    """wait_until for async tests: the loop keeps running (the worker with it), and the
    condition may be a coroutine function (a store query)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError(f"gave up after {within} s:\n{describe()}")
        await asyncio.sleep(0.05)


class Managed(abc.ABC):
    """``with Thing() as thing:`` for a helper that starts a process: a failed start still
    stops whatever it had started, and leaving the block always stops it."""

    @abc.abstractmethod
    def start(self) -> None: ...

    @abc.abstractmethod
    def stop(self) -> None: ...

    def __enter__(self) -> Self:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
