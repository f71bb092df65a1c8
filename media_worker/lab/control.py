"""``voicemail lab up|down|status``: start the lab's parts in the background, each with
a PID file and a log, stop them by PID, and say what runs."""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

from media_worker.lab.layout import DOMAIN, USERS, Lab
from media_worker.provisioning import kamdb
from media_worker.provisioning.provision import Preferences, UserNotFound, parse_db_url


class LabError(Exception):
    """A part did not start or answer; the message says which and where its log is."""


def sip_options(port: int, host: str) -> bytes:
    tag = secrets.randbelow(10**9)
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:9;branch=z9hG4bK-lab{tag};rport\r\n"
        f"From: <sip:lab@{host}>;tag={tag}\r\nTo: <sip:{host}>\r\n"
        f"Call-ID: lab-{tag}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def answers_sip(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.sendto(sip_options(port, host), (host, port))
            return sock.recv(65535).startswith(b"SIP/2.0 200")
        except OSError:
            return False


def answers_ng(host: str, port: int) -> bool:
    """rtpengine's ng protocol: a bencoded ping is answered with pong."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        try:
            sock.sendto(b"lab d7:command4:pinge", (host, port))
            return b"pong" in sock.recv(4096)
        except OSError:
            return False


def answers_smtp(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5) as sock:
            return sock.recv(512).startswith(b"220")
    except OSError:
        return False


class Controller:
    """Starts, stops and reports the parts of one lab."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def checks(self) -> dict[str, Callable[[], bool]]:
        lab, host = self.lab, self.lab.host
        checks: dict[str, Callable[[], bool]] = {
            "smtp": lambda: answers_smtp(host, lab.ports.smtp),
            "rtpengine": lambda: answers_ng(host, lab.ports.rtpengine_ng),
        }
        for index, port in enumerate(lab.worker_ports()):
            checks[f"worker{index + 1}"] = lambda port=port: answers_sip(host, port)  # type: ignore[misc]
        checks["kamailio"] = lambda: answers_sip(host, lab.ports.sip)
        return checks

    def pidfile(self, part: str) -> Path:
        return self.lab.run_dir / f"{part}.pid"

    def logfile(self, part: str) -> Path:
        return self.lab.log_dir / f"{part}.log"

    def pid(self, part: str) -> int | None:
        """The part's PID if its PID file names a live process."""
        try:
            pid = int(self.pidfile(part).read_text())
            os.kill(pid, 0)
        except (OSError, ValueError):
            return None
        return pid

    # ----- up -----

    def prepare(self, say: Callable[[str], None], part: str | None = None) -> None:
        """What ``part`` needs before it starts (all parts' needs when None): its
        configuration files; Kamailio the database with the lab users; a worker the
        prompts. Each part prepares only its own, so containers sharing the lab
        directory never write the same file."""
        self.lab.write_configs(part)
        if part in (None, "kamailio"):
            asyncio.run(self._database(say))
        if (part is None or part.startswith("worker")) and not (self.lab.prompts / "en").is_dir():
            from media_worker.prompts import build_prompts

            written = build_prompts("en", self.lab.prompts)
            say(f"prompts: spoke {len(written)} English prompts with espeak-ng")

    async def _database(self, say: Callable[[str], None]) -> None:
        url = parse_db_url(self.lab.db_url)
        async with kamdb.connect(url, create=True) as db:
            report = await kamdb.init_schema(db)
            if report.created:
                say(f"database: created {len(report.created)} Kamailio tables")
            for user, (password, mode) in USERS.items():
                prefs = Preferences(voicemail=mode, email=f"{user}@{DOMAIN}", lang="en")
                try:
                    await kamdb.get_user(db, user, DOMAIN)
                except UserNotFound:
                    await kamdb.add_user(db, user, DOMAIN, password, prefs)
                    say(f"user {user}@{DOMAIN} added (password {password}, mode {mode})")

    def up(self, say: Callable[[str], None], timeout: float = 30.0) -> None:
        """Start what does not run yet; return once every part answers."""
        self.prepare(say)
        commands = self.lab.commands()
        for part, check in self.checks().items():
            if self.pid(part) is not None:
                say(f"{part}: already running (pid {self.pid(part)})")
            else:
                self._spawn(part, commands[part])
            self._wait(part, check, timeout)
            say(f"{part}: up (pid {self.pid(part)}, log {self.logfile(part)})")

    def _spawn(self, part: str, command: list[str]) -> None:
        with open(self.logfile(part), "ab") as log:
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives `voicemail lab up`; stopped by `down`
            )
        self.pidfile(part).write_text(f"{proc.pid}\n")

    def _wait(self, part: str, check: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not check():
            if self.pid(part) is None:
                raise LabError(f"{part} exited; see {self.logfile(part)}:\n{self._tail(part)}")
            if time.monotonic() > deadline:
                raise LabError(f"{part} does not answer; see {self.logfile(part)}")
            time.sleep(0.1)

    def _tail(self, part: str) -> str:
        try:
            return "\n".join(self.logfile(part).read_text(errors="replace").splitlines()[-15:])
        except OSError:
            return ""

    # ----- down / status -----

    def down(self, say: Callable[[str], None], timeout: float = 10.0) -> None:
        """Stop every part, Kamailio first, each by the PID in its file."""
        for part in reversed(list(self.checks())):
            pid = self.pid(part)
            if pid is None:
                self.pidfile(part).unlink(missing_ok=True)
                continue
            self._stop(pid, timeout)
            self.pidfile(part).unlink(missing_ok=True)
            say(f"{part}: stopped (pid {pid})")

    @staticmethod
    def _stop(pid: int, timeout: float) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, os.WNOHANG)
            time.sleep(0.05)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def status(self) -> list[tuple[str, int | None, bool]]:
        """(part, pid or None, answers) for each part."""
        return [(part, self.pid(part), check()) for part, check in self.checks().items()]
