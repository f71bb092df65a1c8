"""Free ports and the processes the lab starts: each in its own session, so that it and
every child it forks form one process group, and stopping it kills what is left of that
group, so no child (Kamailio's workers, say) outlives its parent. The end-to-end tests
start and stop their servers with the same functions."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Sequence
from typing import IO


def free_port(host: str = "127.0.0.1", kind: socket.SocketKind = socket.SOCK_STREAM) -> int:
    """A port the kernel just handed out and released, for a server we start next."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, kind) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def free_udp_tcp_port(host: str = "127.0.0.1", count: int = 1) -> int:
    """A port free for UDP and for TCP at once (for servers that listen on both); with
    ``count``, the first of that many consecutive such ports (a worker's processes)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    for _ in range(50):
        port = free_port(host, socket.SOCK_DGRAM)
        if port + count > 65536:
            continue
        try:
            with contextlib.ExitStack() as held:
                for candidate in range(port, port + count):
                    for kind in (socket.SOCK_DGRAM, socket.SOCK_STREAM):
                        sock = held.enter_context(socket.socket(family, kind))
                        sock.bind((host, candidate))
        except OSError:
            continue
        return port
    raise RuntimeError(f"no {count} consecutive port(s) free for both UDP and TCP")


def start_process(
    command: Sequence[str], log: IO[bytes] | int | None = subprocess.DEVNULL
) -> subprocess.Popen[bytes]:
    """``command`` in a new session (its own process group), output to ``log``."""
    return subprocess.Popen(
        command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip


def _own_group(pid: int) -> int | None:
    """``pid``'s process group if ``pid`` leads it (we started it in a new session) and
    it is not our own group; None otherwise: then only ``pid`` itself is signalled."""
    try:
        group = os.getpgid(pid)
    except ProcessLookupError:
        return None
    return group if group == pid and group != os.getpgrp() else None


def _signal(pid: int, group: int | None, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        if group is not None:
            os.killpg(group, sig)
        else:
            os.kill(pid, sig)


def _pid_gone(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` for ``pid`` to exit (reaping it if it is our child)."""
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(ChildProcessError):
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


def stop_pid(
    pid: int,
    sig: int = signal.SIGTERM,
    timeout: float = 10.0,
    gone: Callable[[float], bool] | None = None,
) -> None:
    """Stop ``pid`` and its process group as systemd's KillMode=mixed does: ``sig`` to
    ``pid`` (a server stops its own children in order: PostgreSQL's backends, Kamailio's
    workers), SIGKILL to the whole group if it does not exit within ``timeout``, and
    SIGKILL to whatever of the group is left once it has exited. ``gone(timeout)`` waits
    for the exit (default: by polling)."""
    wait = gone or (lambda within: _pid_gone(pid, within))
    group = _own_group(pid)
    _signal(pid, None, sig)
    if not wait(timeout):
        _signal(pid, group, signal.SIGKILL)
        wait(timeout)
    if group is not None:
        _signal(pid, group, signal.SIGKILL)  # children that outlived their parent


def stop_process(
    proc: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10.0
) -> None:
    """stop_pid for a process we hold: it is reaped, and a process that has exited
    already is left alone (its PID may belong to another process by now)."""
    if proc.poll() is not None:
        return

    def gone(within: float) -> bool:
        try:
            proc.wait(within)
        except subprocess.TimeoutExpired:
            return False
        return True

    stop_pid(proc.pid, sig, timeout, gone)
