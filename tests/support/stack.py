"""The whole product on loopback for end-to-end tests: Kamailio with the KEMI script,
rtpengine (userspace), media workers (the ``voicemail worker`` command), an SMTP
server and, when asked, the HTTP API (``voicemail api``), each on free ports in a
temporary directory, each stopped by its PID."""

from __future__ import annotations

import abc
import random
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import IO

from aiosmtpd.controller import Controller

from media_worker.lab.layout import (
    DOMAIN,
    LAB_BAN_TIME,
    USERS,
    account,
    dispatcher_list,
    install_cfg,
    kamailio_command,
    kamailio_local_cfg,
    lab_secret,
    rtpengine_command,
    worker_yaml,
)
from media_worker.lab.probes import API_PROBE, answers_http, answers_ng, answers_options
from media_worker.lab.sites import ApiSite
from tests.support.procs import (
    Managed,
    free_port,
    free_udp_tcp_port,
    start_process,
    stop_process,
    wait_until,
)
from tests.support.smtp import Inbox

VOICEMAIL = str(Path(sys.executable).parent / "voicemail")


class LoggedProcess(Managed):
    """A server process whose output goes to a log file."""

    name = "process"

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.log_path = directory / f"{self.name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @abc.abstractmethod
    def command(self) -> list[str]: ...

    @abc.abstractmethod
    def ready(self) -> bool: ...

    def start(self) -> None:
        out: IO[bytes] = open(self.log_path, "ab")  # noqa: SIM115 - the child keeps it
        self.proc = start_process(self.command(), out)
        out.close()

        def up() -> bool:
            assert self.proc is not None
            assert self.proc.poll() is None, f"{self.name} exited:\n{self.log()[-4000:]}"
            return self.ready()

        wait_until(up, 20, lambda: self.log()[-4000:])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None


class Rtpengine(LoggedProcess):
    name = "rtpengine"

    def __init__(self, directory: Path) -> None:
        super().__init__(directory)
        self.ng_port = free_port(kind=socket.SOCK_DGRAM)
        # A block of media ports away from the workers' and the phones' ranges.
        self.port_min = random.randrange(40000, 58000, 200)

    def command(self) -> list[str]:
        return [
            *rtpengine_command("127.0.0.1", self.ng_port, (self.port_min, self.port_min + 199)),
            f"--pidfile={self.dir / 'rtpengine.pid'}",
            "--log-level=6",
        ]

    def ready(self) -> bool:
        return answers_ng("127.0.0.1", self.ng_port)


class MediaWorker(LoggedProcess):
    """``voicemail worker --config`` on a fixed port (the dispatcher list names it)."""

    def __init__(
        self,
        directory: Path,
        index: int,
        smtp_port: int,
        spool: Path,
        prompts: Path | None,
        mwi_proxy: str | None = None,
        secret: str | None = None,
        api: ApiSite | None = None,
    ) -> None:
        self.name = f"worker{index}"
        super().__init__(directory)
        self.port = free_udp_tcp_port()
        rtp = 30000 + 1000 * index + random.randrange(0, 900, 100)
        self.config = directory / f"{self.name}.yaml"
        self.config.write_text(
            worker_yaml(
                data_dir=directory / self.name,
                host="127.0.0.1",
                port=self.port,
                rtp_ports=(rtp, rtp + 99),
                spool=spool,
                smtp_port=smtp_port,
                smtp_timeout=5,
                prompts=prompts,
                mwi_proxy=mwi_proxy,
                secret=secret,
                api=api,
                # The end-to-end tests compare the emailed recording with the stored one
                # sample by sample: the lab's MP3 has the encoder's delay and padding.
                attachment="wav",
            )
        )

    def command(self) -> list[str]:
        return [VOICEMAIL, "worker", "--processes", "1", "--config", str(self.config)]

    def ready(self) -> bool:
        return "worker listening on" in self.log()


class ApiServer(LoggedProcess):
    """``voicemail api`` with a worker's configuration file (its ``api:`` section): the
    same store and the same change spool as that worker, so its changes reach MWI."""

    name = "api"

    def __init__(self, directory: Path, worker: MediaWorker, site: ApiSite) -> None:
        super().__init__(directory)
        self.worker = worker
        self.site = site

    @property
    def url(self) -> str:
        return self.site.url

    def command(self) -> list[str]:
        return [VOICEMAIL, "api", "--config", str(self.worker.config)]

    def ready(self) -> bool:
        return answers_http(self.site.host, self.site.port, API_PROBE, ok=200)


class Kamailio(LoggedProcess):
    """Kamailio running the repository's kamailio.cfg and KEMI script; the site part
    (ports, database, rtpengine, workers) is a generated kamailio-local.cfg."""

    name = "kamailio"

    def __init__(
        self,
        directory: Path,
        *,
        db_url: str,
        workers: Iterable[MediaWorker],
        rtpengine: Rtpengine | None,
        switches: Iterable[str] = ("WITH_AUTH", "WITH_VOICEMAIL", "WITH_RTPENGINE"),
        settings: dict[str, str] | None = None,
        port: int | None = None,
        secret: str | None = None,
    ) -> None:
        super().__init__(directory)
        self.port = port or free_udp_tcp_port()
        self.ctl = directory / "kamailio_ctl"
        install_cfg(directory)
        dispatcher = directory / "dispatcher.list"
        dispatcher.write_text(dispatcher_list("127.0.0.1", (w.port for w in workers)))
        (directory / "kamailio-local.cfg").write_text(
            kamailio_local_cfg(
                host="127.0.0.1",
                sip_port=self.port,
                db_url=db_url,
                dispatcher_list=dispatcher,
                run_dir=directory,
                rtpengine_ng=rtpengine.ng_port if rtpengine is not None else None,
                switches=switches,
                defines={"VM_PROBE_INTERVAL": "1", **(settings or {})},
                secret=secret,
            )
        )

    def define(self, name: str, value: str) -> None:
        """One more define in kamailio-local.cfg (before the start)."""
        with (self.dir / "kamailio-local.cfg").open("a") as local:
            local.write(f"#!define {name} {value}\n")

    def command(self) -> list[str]:
        return kamailio_command(self.dir / "kamailio.cfg", self.dir)

    def ready(self) -> bool:
        return answers_options("127.0.0.1", self.port)

    def kamcmd(self, *args: str) -> str:
        return subprocess.run(
            ["kamcmd", "-s", f"unix:{self.ctl}", *args],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout


class SmtpCatcher(Managed):
    """aiosmtpd on a free port, keeping every message it accepts."""

    def __init__(self) -> None:
        self.port = free_port()
        self.inbox = Inbox()
        self.controller = Controller(self.inbox, hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def messages(self) -> list[Message]:
        return [message_from_bytes(raw) for raw in self.inbox.messages]


def voicemail(*args: str, stdin: str | None = None) -> str:
    """Run the ``voicemail`` command; fail the test with its output if it fails."""
    result = subprocess.run(
        [VOICEMAIL, *args], input=stdin, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, f"voicemail {' '.join(args)}: {result.stdout}{result.stderr}"
    return result.stdout


def user_database(db_url: str, users: dict[str, tuple[str, str]], *extra: str) -> str:
    """Kamailio's tables at ``db_url`` with ``users`` (user -> (password, voicemail
    mode)), each with the email <user>@DOMAIN; ``extra``: more ``voicemail user add``
    options for all of them. Returns ``db_url``."""
    voicemail("db", "init", db_url)
    for user, (password, mode) in users.items():
        voicemail(
            "user", "add", f"{user}@{DOMAIN}", "--db", db_url,
            "--email", f"{user}@{DOMAIN}", "--mode", mode, *extra,
            stdin=password + "\n",
        )  # fmt: skip
    return db_url


class Stack(Managed):
    """Database with the lab's users, SMTP, rtpengine, ``workers`` workers and Kamailio."""

    def __init__(
        self,
        *,
        workers: int = 1,
        prompts: Path | None = None,
        kamailio_settings: dict[str, str] | None = None,
        mwi: bool = False,
        signing: bool = True,
        api: bool = False,
    ) -> None:
        """``prompts``: a directory `voicemail prompts build` filled (the menu prompts
        Debian's English set lacks); ``mwi``: Kamailio WITH_MWI, workers publishing;
        ``signing``: a secret for the proxy<->worker hop on both sides (False: an unsigned
        hop, as a site without VM_SECRET runs). Kamailio runs WITH_ANTIFLOOD with the lab's ban
        time; the phones and workers come from 127.0.0.1, an address of Kamailio's own,
        which is never banned. ``api``: ``voicemail api`` on a free port with the first
        worker's configuration (``self.api``)."""
        self.dir = Path(tempfile.mkdtemp(prefix="vm-stack-"))
        self.secret = lab_secret(self.dir) if signing else None
        self.db_url = f"sqlite://{self.dir / 'kamailio.sqlite'}"
        self.spool = self.dir / "spool"
        self.smtp = SmtpCatcher()
        self.rtpengine = Rtpengine(self.dir)
        sip_port = free_udp_tcp_port()
        mwi_proxy = f"sip:127.0.0.1:{sip_port}" if mwi else None
        site = ApiSite("127.0.0.1", free_port(), self.db_url) if api else None
        self.workers = [
            MediaWorker(
                self.dir, i + 1, self.smtp.port, self.spool, prompts, mwi_proxy, self.secret,
                api=site if i == 0 else None,
            )
            for i in range(workers)
        ]  # fmt: skip
        self.api = ApiServer(self.dir, self.workers[0], site) if site else None
        self.kamailio = Kamailio(
            self.dir,
            port=sip_port,
            db_url=self.db_url,
            workers=self.workers,
            rtpengine=self.rtpengine,
            switches=(
                "WITH_AUTH",
                "WITH_VOICEMAIL",
                "WITH_RTPENGINE",
                "WITH_ANTIFLOOD",
                *(("WITH_MWI",) if mwi else ()),
            ),
            secret=self.secret,
            settings={
                "VM_NO_ANSWER_TIMEOUT": "4",
                "VM_BAN_TIME": str(LAB_BAN_TIME),
                **({"MWI_SERVER_ADDRESS": f'"sip:voicemail@127.0.0.1:{sip_port}"'} if mwi else {}),
                **(kamailio_settings or {}),
            },
        )
        self._started: list[Managed] = []

    def start(self) -> None:
        user_database(self.db_url, USERS)
        api = (self.api,) if self.api else ()
        for part in (self.smtp, self.rtpengine, *self.workers, self.kamailio, *api):
            part.start()
            self._started.append(part)

    def stop(self) -> None:
        for part in reversed(self._started):
            part.stop()
        self._started.clear()

    def logs(self) -> str:
        parts: list[LoggedProcess] = [self.kamailio, self.rtpengine, *self.workers]
        if self.api:
            parts.append(self.api)
        return "\n".join(f"----- {p.name}\n{p.log()[-6000:]}" for p in parts)

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def phone_account(self, user: str, *, codecs: str = "PCMU,PCMA", register: bool = True) -> str:
        return account(
            user, host="127.0.0.1", sip_port=self.kamailio.port, register=register, codecs=codecs
        )
