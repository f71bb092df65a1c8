"""``voicemail api`` as a real process on a free loopback port, for integration tests,
with Kamailio's tables (the real schema, through the provisioning code) for its users."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx
import yaml

from media_worker.provisioning import kamdb
from media_worker.provisioning.provision import Preferences, parse_db_url
from tests.support.procs import Managed, free_port, start_process, stop_process, wait_until

VOICEMAIL = str(Path(sys.executable).parent / "voicemail")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def kamailio_database(path: Path, users: Mapping[str, tuple[str, Preferences]]) -> str:
    """An SQLite file with Kamailio's tables and ``users`` (user@domain -> (password,
    preferences)); returns its URL."""
    url = f"sqlite://{path}"

    async def build() -> None:
        async with kamdb.connect(parse_db_url(url), create=True) as db:
            await kamdb.init_schema(db)
            for address, (password, prefs) in users.items():
                user, _, domain = address.partition("@")
                await kamdb.add_user(db, user, domain, password, prefs)

    asyncio.run(build())
    return url


class ApiServer(Managed):
    """``voicemail api --config`` with ``api`` as its api: section (listen and port are
    set here), the given storage URL and data_dir (under ``directory`` unless given)."""

    def __init__(
        self,
        directory: Path,
        storage_url: str,
        api: dict[str, Any],
        *,
        data_dir: Path | None = None,  # a worker's, to share its change spool
    ) -> None:
        self.directory = directory
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.config_path = directory / "voicemail.yaml"
        self.log_path = directory / "api.log"
        self.config: dict[str, Any] = {
            "data_dir": str(data_dir or directory / "data"),
            "storage": {"url": storage_url},
            "api": {"listen": "127.0.0.1", "port": self.port, **api},
        }
        self.proc: subprocess.Popen[bytes] | None = None
        self.verify: ssl.SSLContext | bool = True  # for an HTTPS base_url

    def start(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        Path(self.config["data_dir"]).mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config))
        with self.log_path.open("ab") as log:
            self.proc = start_process([VOICEMAIL, "api", "--config", str(self.config_path)], log)
        wait_until(self.ready, 30, self.log)

    def ready(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise AssertionError(f"voicemail api exited with {self.proc.returncode}:\n{self.log()}")
        try:
            reply = httpx.get(self.base_url + "/api/v1/openapi.json", timeout=2, verify=self.verify)
            return reply.status_code == 200
        except httpx.TransportError:
            return False

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
