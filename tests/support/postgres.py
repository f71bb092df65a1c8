"""A private, throwaway PostgreSQL server: its own data directory, socket dir and port.

Uses Debian's server binaries (package postgresql). As root, the server runs as the
``postgres`` system user, since PostgreSQL refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import IO

from tests.support.procs import Managed, free_port, stop_process

SUPERUSER = "voicemail"


def server_bindir() -> Path:
    """Directory of Debian's PostgreSQL server binaries (newest installed version)."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/postgres"),
        key=lambda p: int(Path(p).parent.parent.name),
    )
    if not candidates:
        found = shutil.which("postgres")
        if found is None:
            raise RuntimeError(
                "PostgreSQL server binaries not found: apt-get install postgresql "
                "(bash .ci/run installs it)"
            )
        return Path(found).parent
    return Path(candidates[-1]).parent


class PostgresServer(Managed):
    """Start with ``with PostgresServer() as pg:``; ``pg.url(db)`` gives a DSN."""

    def __init__(self) -> None:
        self.bindir = server_bindir()
        self.port = free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="vm-pg-"))
        self.datadir = self.tmp / "data"
        self.sockdir = self.tmp / "sock"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._run_as: str | None = "postgres" if os.geteuid() == 0 else None

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def _chown(self, *paths: Path) -> None:
        if self._run_as is not None:
            pw = pwd.getpwnam(self._run_as)
            for path in paths:
                os.chown(path, pw.pw_uid, pw.pw_gid)

    def start(self) -> None:
        self.sockdir.mkdir()
        self._chown(self.tmp, self.sockdir)
        log = self.tmp / "initdb.log"
        with open(log, "wb") as out:
            subprocess.run(
                [
                    str(self.bindir / "initdb"),
                    "-D", str(self.datadir),
                    "-U", SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                    "--no-sync",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
                user=self._run_as,
                check=True,
            )  # fmt: skip
        self._launch()

    def _launch(self) -> None:
        self._log = open(self.tmp / "server.log", "ab")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                str(self.bindir / "postgres"),
                "-D", str(self.datadir),
                "-p", str(self.port),
                "-k", str(self.sockdir),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "fsync=off",
                "-c", "full_page_writes=off",
                "-c", "synchronous_commit=off",
                "-c", "max_connections=100",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self._log,
            user=self._run_as,
            start_new_session=True,  # its backends form one group with it: see stop_process
        )  # fmt: skip
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"PostgreSQL exited: {self.log_tail()}")
            ready = subprocess.run(
                [str(self.bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                capture_output=True,
            )
            if ready.returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"PostgreSQL did not become ready: {self.log_tail()}")

    def log_tail(self) -> str:
        path = self.tmp / "server.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL through psql as the superuser and return its unaligned output."""
        out = subprocess.run(
            [
                "psql",
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                self.url(database),
                "-c",
                sql,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return out.stdout.strip()

    def pause(self) -> None:
        """Stop the server (fast shutdown), keeping its data, port and directories."""
        if self.proc is not None:
            # SIGINT is PostgreSQL's "fast shutdown".
            stop_process(self.proc, signal.SIGINT, timeout=20)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def resume(self) -> None:
        """Start a paused server again, on the same port with the same data."""
        assert self.proc is None, "not paused"
        self._launch()

    def stop(self) -> None:
        self.pause()
        shutil.rmtree(self.tmp, ignore_errors=True)
