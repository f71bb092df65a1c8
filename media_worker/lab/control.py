"""``voicemail lab up|down|status``: start the lab's parts in the background, each with
a PID file and a log, stop them by PID, and say what runs."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

from media_worker.lab.layout import DOMAIN, USERS, Lab
from media_worker.lab.probes import (
    API_PROBE,
    answers_http,
    answers_ng,
    answers_options,
    answers_smtp,
)
from media_worker.lab.procs import start_process, stop_pid
from media_worker.provisioning import kamdb
from media_worker.provisioning.provision import Preferences, UserNotFound, parse_db_url


class LabError(Exception):
    """A part did not start or answer; the message says which and where its log is."""


class Controller:
    """Starts, stops and reports the parts of one lab."""

    def __init__(self, lab: Lab) -> None:
        self.lab = lab

    def checks(self) -> dict[str, Callable[[], bool]]:
        lab, host = self.lab, self.lab.host
        # In start order: what a part sends to (mail, webhooks, the proxy's database) is
        # up before it.
        checks: dict[str, Callable[[], bool]] = {
            "smtp": lambda: answers_smtp(host, lab.ports.smtp),
            "webhooks": lambda: answers_http(host, lab.ports.webhooks),
            "rtpengine": lambda: answers_ng(host, lab.ports.rtpengine_ng),
        }
        checks["worker1"] = lambda: all(answers_options(host, p) for p in lab.worker_ports())
        checks["kamailio"] = lambda: answers_options(host, lab.ports.sip)
        checks["api"] = lambda: answers_http(host, lab.ports.api, API_PROBE, ok=200)
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
        for part, check in self.checks().items():
            if self.pid(part) is not None:
                say(f"{part}: already running (pid {self.pid(part)})")
            else:
                self._spawn(part, self.lab.command(part))
            self._wait(part, check, timeout)
            say(f"{part}: up (pid {self.pid(part)}, log {self.logfile(part)})")

    def _spawn(self, part: str, command: list[str]) -> None:
        with open(self.logfile(part), "ab") as log:
            proc = start_process(command, log)  # outlives `voicemail lab up`; see `down`
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
            stop_pid(pid, timeout=timeout)
            self.pidfile(part).unlink(missing_ok=True)
            say(f"{part}: stopped (pid {pid})")

    def status(self) -> list[tuple[str, int | None, bool]]:
        """(part, pid or None, answers) for each part."""
        return [(part, self.pid(part), check()) for part, check in self.checks().items()]
