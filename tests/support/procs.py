"""Process helpers: free ports, and stopping exactly the processes a test started."""

from __future__ import annotations

import abc
import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self


def free_port(host: str = "127.0.0.1", kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port the kernel just handed out and released, for a server we start next."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_udp_tcp_port(host: str = "127.0.0.1") -> int:
    """A port free for UDP and for TCP at once (for servers that listen on both)."""
    for _ in range(50):
        port = free_port(host, socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            try:
                tcp.bind((host, port))
            except OSError:
                continue
        return port
    raise RuntimeError("no port free for both UDP and TCP")


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


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    """Stop ``proc`` (by its PID): ``sig`` first, SIGKILL if it does not exit in time."""
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


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
