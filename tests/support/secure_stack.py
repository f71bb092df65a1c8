"""The test stack (tests/support/stack.py) configured as an operator hardens it: a signing
secret shared by Kamailio (VM_SECRET) and the workers (sip.secret), WITH_ANTIFLOOD with
a short ban, workers that trust only the proxy's address (127.0.0.1/32), and a short
personal greeting for bob so that a call that leaves him a message takes seconds.

Options the stack's current code may not know yet are set only where they exist (the
worker refuses unknown YAML keys); ``missing_options`` names the ones left out, so a test
that depends on one fails saying so."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import math
import re
import secrets
import sqlite3
import struct
from pathlib import Path
from typing import Any

import yaml

from media_worker.audio import write_wav
from media_worker.config import SipConfig
from media_worker.lab.demo import mailbox_listing
from media_worker.lab.layout import DOMAIN
from storage import MessageInfo, open_storage
from tests.kamailio.native import use_native
from tests.support.baresip import Baresip
from tests.support.procs import wait_until
from tests.support.stack import MediaWorker, Stack, voicemail

PROXY_ADDRESS = "127.0.0.1"  # Kamailio, the workers, rtpengine and the phones
_REFUSED = re.compile(r"session closed: [3-6][0-9][0-9][^\n]*")  # baresip: call refused
_SECRET_DEFINE = re.compile(r'^#!(?:define|trydef|redefine)\s+VM_SECRET\s+"([^"]*)"', re.M)


def worker_supports(option: str) -> bool:
    """Whether the worker's YAML ``sip`` section has ``option`` (sip.secret, sip.max_calls)."""
    return option in {f.name for f in dataclasses.fields(SipConfig)}


def tone(seconds: float, frequency: float = 660.0) -> bytes:
    """A sine tone as 8 kHz 16-bit PCM."""
    count = int(8000 * seconds)
    return b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * frequency * n / 8000)))
        for n in range(count)
    )


class SecureStack(Stack):
    def __init__(
        self,
        *,
        native: bool = False,
        worker_sip: dict[str, Any] | None = None,
        kamailio_settings: dict[str, str] | None = None,
        extra_users: dict[str, tuple[str, ...]] | None = None,
        mwi: bool = False,
        workers: int = 1,
    ) -> None:
        """``worker_sip``: more keys of the workers' ``sip`` section (ring_time, ...);
        ``extra_users``: user -> extra ``voicemail user add`` arguments."""
        super().__init__(workers=workers, kamailio_settings=kamailio_settings, mwi=mwi)
        self.native = native
        self.extra_users = extra_users or {}
        self.missing_options: list[str] = []
        if native:
            use_native(self.kamailio.dir)
        local = self.kamailio.dir / "kamailio-local.cfg"
        found = _SECRET_DEFINE.search(local.read_text())
        self.hop_secret = found.group(1) if found else secrets.token_hex(20)
        # trydef: whatever the stack itself already defines stays as it is.
        self.trydef("VM_SECRET", f'"{self.hop_secret}"')
        self.trydef("WITH_ANTIFLOOD")
        self.trydef("VM_BAN_TIME", "60")
        for worker in self.workers:
            self._configure(worker, worker_sip or {})

    def trydef(self, name: str, value: str = "") -> None:
        with (self.kamailio.dir / "kamailio-local.cfg").open("a") as local:
            local.write(f"#!trydef {name} {value}".rstrip() + "\n")

    def _configure(self, worker: MediaWorker, extra: dict[str, Any]) -> None:
        config = yaml.safe_load(worker.config.read_text())
        sip = config.setdefault("sip", {})
        sip["trusted"] = [f"{PROXY_ADDRESS}/32"]
        wanted = {"secret": self.hop_secret, **extra}
        for key, value in wanted.items():
            if key in sip:
                continue
            if worker_supports(key):
                sip[key] = value
            elif f"sip.{key}" not in self.missing_options:
                self.missing_options.append(f"sip.{key}")
        if isinstance(sip.get("secret"), str):
            self.hop_secret = sip["secret"]
        worker.config.write_text(yaml.safe_dump(config))

    def start(self) -> None:
        super().start()
        for user, arguments in self.extra_users.items():
            voicemail(
                "user", "add", f"{user}@{DOMAIN}", "--db", self.db_url, *arguments,
                stdin="secret-pw\n",
            )  # fmt: skip

        async def greeting() -> None:
            async with open_storage(f"fs://{self.spool}") as store:
                await store.put_greeting(DOMAIN, "bob", "vm", write_wav(tone(0.4)))

        asyncio.run(greeting())

    def set_preference(self, user: str, attribute: str, value: str) -> None:
        """A usr_preferences row written straight into the stack's database (values the
        user CLI refuses, as a careless provisioning system might write them)."""
        with contextlib.closing(sqlite3.connect(self.dir / "kamailio.sqlite")) as db, db:
            db.execute(
                "INSERT INTO usr_preferences (username, domain, attribute, type, value) "
                "VALUES (?, ?, ?, 2, ?)",
                (user, DOMAIN, attribute, value),
            )

    def require(self, *options: str) -> None:
        """Fail (not skip) when the worker cannot be given an option a defence needs."""
        missing = [o for o in options if o in self.missing_options]
        assert not missing, f"the worker has no option {', '.join(missing)} (config.SipConfig)"

    @property
    def proxy(self) -> tuple[str, int]:
        return (PROXY_ADDRESS, self.kamailio.port)

    def worker_address(self, index: int = 0) -> tuple[str, int]:
        return (PROXY_ADDRESS, self.workers[index].port)

    def worker_pid(self, index: int = 0) -> int:
        proc = self.workers[index].proc
        assert proc is not None, self.logs()
        assert proc.poll() is None, self.logs()
        return proc.pid

    def mailbox(self, user: str = "bob") -> list[MessageInfo]:
        return mailbox_listing(self.spool, user)

    def leave_message(self, speech: Path, caller: str = "alice", callee: str = "bob") -> None:
        """A normal call: ``caller``'s phone (baresip, digest auth, 127.0.0.1) leaves
        ``callee`` a message through the proxy; returns once it is in the box."""
        before = len(self.mailbox(callee))
        phone = self._phone(caller, speech)
        try:
            phone.dial(f"sip:{callee}@{DOMAIN}")

            def stored() -> bool:
                refused = _REFUSED.search(phone.log())
                assert refused is None, (
                    f"the normal call failed: {refused and refused.group(0)}\n"
                    f"{self.logs()}\n----- phone\n{phone.log()[-3000:]}"
                )
                return len(self.mailbox(callee)) > before

            wait_until(stored, 45, lambda: f"{self.logs()}\n----- phone\n{phone.log()[-3000:]}")
        finally:
            phone.stop()
            phone.cleanup()

    def _phone(self, user: str, speech: Path) -> Baresip:
        """A started baresip for ``user`` (it starts again on other ports if the ones it
        picked were taken before it bound them)."""
        phone = Baresip(speech, account=self.phone_account(user, register=False))
        try:
            phone.start()
        except BaseException:
            phone.stop()
            phone.cleanup()
            raise
        return phone

    def dispatcher(self) -> str:
        return self.kamailio.kamcmd("dispatcher.list")
