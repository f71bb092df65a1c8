"""media_worker.lab.procs: a stopped part takes its children with it, and only groups
we started are ever signalled as a group."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from media_worker.lab.procs import free_udp_tcp_port, start_process, stop_pid, stop_process
from tests.support.procs import wait_until

pytestmark = pytest.mark.integration

# A parent that prints its child's PID, then waits; ``trap`` decides how it takes SIGTERM.
PARENT = "trap {trap} TERM; sleep 60 & echo $!; wait; wait"


def alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by whoever adopted it, does not count)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


def child_of(proc: subprocess.Popen[bytes]) -> int:
    assert proc.stdout is not None
    with proc.stdout:
        return int(proc.stdout.readline())


def parent(trap: str, *, own_session: bool = True) -> subprocess.Popen[bytes]:
    command = ["sh", "-c", PARENT.format(trap=trap)]
    if own_session:
        return start_process(command, subprocess.PIPE)
    return subprocess.Popen(command, stdout=subprocess.PIPE)


def test_a_parent_that_ignores_sigterm_is_killed_with_its_children() -> None:
    proc = parent("''")  # SIGTERM ignored, by the child too
    child = child_of(proc)
    stop_process(proc, timeout=0.5)
    assert proc.returncode == -signal.SIGKILL
    wait_until(lambda: not alive(child), 5, lambda: f"child {child} still runs")


def test_children_that_outlive_their_parent_are_killed() -> None:
    proc = parent("'exit 0'")  # exits on SIGTERM, its child never sees one
    child = child_of(proc)
    stop_process(proc)
    assert proc.returncode == 0
    wait_until(lambda: not alive(child), 5, lambda: f"child {child} still runs")


def test_a_pid_from_a_file_stops_the_same_way() -> None:
    proc = parent("''")
    child = child_of(proc)
    stop_pid(proc.pid, timeout=0.5)
    wait_until(lambda: not alive(child), 5, lambda: f"child {child} still runs")
    proc.wait(5)


def test_a_process_in_our_own_group_is_signalled_alone() -> None:
    """Never killpg a group we did not start: here it is the test runner's own."""
    proc = parent("'exit 0'", own_session=False)
    child = child_of(proc)
    try:
        stop_process(proc)
        assert proc.returncode == 0
        assert alive(child)  # not ours to kill as a group
    finally:
        os.kill(child, signal.SIGKILL)


def test_a_udp_tcp_port_is_free_for_both() -> None:
    port = free_udp_tcp_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp, socket.socket() as tcp:
        udp.bind(("127.0.0.1", port))
        tcp.bind(("127.0.0.1", port))


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_process_that_exited_is_left_alone(sig: int) -> None:
    proc = start_process(["true"])
    proc.wait(5)
    stop_process(proc, sig)  # its PID may be another process's by now
    assert proc.returncode == 0
