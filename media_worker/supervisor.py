"""``voicemail worker --processes N``: N worker processes from one configuration, and the
parent that keeps them running.

Process ``i`` of ``N`` listens on ``sip.port + i`` and takes the ``i``-th of ``N`` equal
slices of ``rtp.ports``; all serve the same store. What a process must not share with
another (its recording journal, which it recovers at start-up; its email outbox) lives in
its own data directory: ``data_dir`` for process 0, as with one process, and
``data_dir/process<i>`` for the others. Process 0 alone publishes MWI and sends webhooks;
the others write their changes to its change spool (media_worker/change_hub.py). A
restarted process recovers the journal of the one it replaces, so each journal is
recovered once, by its only owner."""

from __future__ import annotations

import contextlib
import ctypes
import dataclasses
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from media_worker.config import ConfigError, WorkerConfig

log = logging.getLogger("voicemail.supervisor")

BACKOFF = (1.0, 2.0, 5.0, 10.0, 30.0)  # seconds before restarting a process that died
STEADY = 60.0  # a process that ran this long before dying restarts without delay history
STOP_WAIT = 20.0  # seconds the processes get to hang up their calls after SIGTERM
MIN_RTP_SLICE = 4  # ports: two RTP/RTCP pairs


def process_config(config: WorkerConfig, index: int, count: int) -> WorkerConfig:
    """The configuration of process ``index`` (0-based) of ``count``."""
    if not 0 <= index < count:
        raise ValueError(f"process {index} of {count}")
    if count == 1:
        return config
    low, high = config.rtp.ports
    span = (high - low + 1) // count // 2 * 2  # even: each slice starts on an RTP port
    if span < MIN_RTP_SLICE:
        raise ConfigError(
            f"rtp.ports: {low}-{high} gives {count} processes {span} port(s) each; "
            f"each needs at least {MIN_RTP_SLICE}"
        )
    port = config.sip.port + index if config.sip.port else 0
    if port > 65535:
        raise ConfigError(f"sip.port: {config.sip.port} + {count - 1} processes passes 65535")
    first = low + index * span
    data_dir = Path(config.data_dir) / f"process{index}" if index else Path(config.data_dir)
    return dataclasses.replace(
        config,
        data_dir=str(data_dir),
        sip=dataclasses.replace(config.sip, port=port),
        rtp=dataclasses.replace(config.rtp, ports=(first, first + span - 1)),
    )


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the supervisor dies (Linux prctl)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class _Child:
    index: int
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    failures: int = 0
    restart_at: float | None = None


@dataclass
class Supervisor:
    """Starts ``count`` children, restarts those that die, stops them all on a signal."""

    config_path: Path
    count: int
    log_level: str = "info"
    children: list[_Child] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)

    def command(self, index: int) -> list[str]:
        return [
            sys.executable, "-m", "media_worker.cli", "worker",
            "--config", str(self.config_path), "--log-level", self.log_level,
            "--process", f"{index}/{self.count}",
        ]  # fmt: skip

    def _spawn(self, child: _Child) -> None:
        child.proc = subprocess.Popen(self.command(child.index), preexec_fn=_die_with_parent)
        child.started = time.monotonic()
        child.restart_at = None
        log.info("process %d started (pid %d)", child.index, child.proc.pid)

    def _signalled(self, signum: int, frame: FrameType | None) -> None:
        self._stop.set()

    def run(self, poll: float = 0.2) -> int:
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._signalled)
        self.children = [_Child(i) for i in range(self.count)]
        for child in self.children:
            self._spawn(child)
        while not self._stop.wait(poll):
            self._tend(time.monotonic())
        log.info("stopping %d process(es)", self.count)
        self.stop()
        return 0

    def _tend(self, now: float) -> None:
        for child in self.children:
            if child.restart_at is not None:
                if now >= child.restart_at:
                    self._spawn(child)
                continue
            assert child.proc is not None
            code = child.proc.poll()
            if code is None:
                continue
            child.failures = 1 if now - child.started >= STEADY else child.failures + 1
            delay = BACKOFF[min(child.failures, len(BACKOFF)) - 1]
            log.warning(
                "process %d (pid %d) exited with status %d; restarting in %g s",
                child.index, child.proc.pid, code, delay,
            )  # fmt: skip
            child.restart_at = now + delay

    def stop(self) -> None:
        """SIGTERM to each child by PID, then wait; SIGKILL to any still there."""
        running = [c.proc for c in self.children if c.proc is not None and c.proc.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_WAIT
        for proc in running:
            try:
                proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("process pid %d did not stop; killing it", proc.pid)
                proc.kill()
                proc.wait()


def default_processes() -> int:
    return os.cpu_count() or 1


def run_supervisor(config_path: Path, count: int, log_level: str) -> int:
    logging.basicConfig(
        level=getattr(logging, log_level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    return Supervisor(config_path.resolve(), count, log_level).run()
