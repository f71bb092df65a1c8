"""Both engines of kamailio.cfg decide alike: one table of profiles and requests runs
through the real Kamailio on the KEMI script and on the native routes (WITH_NATIVE), and
each must send the same P-App-Name and P-App-Param to the same target, or give the caller
the same reply. A UDP socket stands in for the media worker and records the INVITEs it
gets. kemi/app_param.py's build_app_param is the reference for the parameter, so the one
quoting rule (app_param.py and native/voicemail.cfg route[VMPARAMITEM]) holds in both."""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from kemi.app_param import ANNRECORDER, VOICEBOX, VOICEMAIL, ParamError, Profile, build_app_param
from kemi.settings import DEFAULT_VOICEMAIL_STATUSES
from media_worker.lab.layout import DOMAIN
from tests.kamailio.native import use_native
from tests.kamailio.test_native_security import FakeWorker
from tests.kamailio.uac import Uac
from tests.support.procs import wait_until
from tests.support.stack import Kamailio, user_database

pytestmark = pytest.mark.integration

ENGINES = ("kemi", "native")
PASSWORD = "parity-pw"  # every profile's user, for the access numbers
STRANGER = "sip:carol@example.net"  # a caller from elsewhere: not challenged
WORKER_ANSWER = 486  # below 500: both engines pass the worker's answer to the caller
UNUSABLE = (500, "Voicemail profile unusable")


@dataclass(frozen=True)
class Case:
    """``user``'s usr_preferences ``prefs``; the request: a stranger calls ``user`` (not
    registered: voicemail; registered at a phone that answers ``phone``), or ``user``
    calls an access number (``dial``)."""

    name: str
    prefs: tuple[tuple[str, str], ...] = ()
    dial: str | None = None  # "1000", "1001"; None: the user's own number
    authenticate: bool = True  # the caller of an access number answers the challenge
    headers: tuple[tuple[str, str], ...] = ()
    subscriber: bool = True
    phone: int | None = None

    @property
    def user(self) -> str:
        return f"p-{self.name}"

    @property
    def app(self) -> str:
        return {None: VOICEMAIL, "1000": VOICEBOX, "1001": ANNRECORDER}[self.dial]


CASES = (
    Case("plain", (("voicemail", "both"), ("email", "plain@example.com"), ("lang", "en"))),
    Case("double-quote", (("voicemail", "both"), ("email", 'o"neil@example.com'))),
    Case("single-quote", (("voicemail", "both"), ("email", "o'neil@example.com"))),
    Case("both-quotes", (("voicemail", "both"), ("email", "o'ne\"il@example.com"))),
    Case("space", (("lang", "en us"), ("vm_greeting_type", "my greeting"))),
    Case("padded", (("lang", " fr "), ("email", " padded@example.com "))),
    Case("pv-text", (("lang", "$ru%(x)"), ("uid", "$avp(vm_app)"))),
    Case("non-ascii", (("lang", "español"),)),
    Case("semicolon", (("did", "a;b=c"),)),
    Case("control-tab", (("email", "tab\t@example.com"),)),
    Case("control-bel", (("lang", "en\x07"),)),
    Case("control-del", (("uid", "u\x7f"),)),
    Case("empty-email-voicemail", (("voicemail", "voicemail"), ("email", ""))),
    Case("empty-email-both", (("voicemail", "both"), ("email", ""))),
    Case("no-email-default", ()),
    Case("mode-upper", (("voicemail", "BOX"), ("email", "u@example.com"))),
    Case("mode-unknown", (("voicemail", "fax"), ("email", "u@example.com"))),
    Case("mode-ann", (("voicemail", "ann"),)),
    Case("uid-did", (("uid", "u-42"), ("did", "d-7"), ("email", "x@example.com"))),
    Case("voicebox", (("uid", "u-1"), ("lang", "de"), ("email", "v@example.com")), dial="1000"),
    Case("annrecorder", (("vm_greeting_type", "busy"), ("lang", "it")), dial="1001"),
    Case("voicebox-quoting", (("did", 'd "7"'),), dial="1000"),
    Case("voicebox-unauthenticated", dial="1000", authenticate=False),
    Case("annrecorder-unauthenticated", dial="1001", authenticate=False),
    Case(
        "forged-p-app",
        (("email", "f@example.com"),),
        headers=(
            ("P-App-Name", "voicebox"),
            ("P-App-Param", "usr=alice;dom=lab.example;pin=1"),
            ("p-app-signature", "t=1; sig=00"),
            ("P-APP-Extra", "x"),
        ),
    ),
    Case("forged-p-app-voicebox", dial="1000", headers=(("P-App-Param", "usr=alice"),)),
    Case("not-a-subscriber", subscriber=False),
    Case("phone-busy", (("email", "busy@example.com"),), phone=486),
    Case("phone-not-found", phone=404),
    Case("phone-declines", phone=603),  # not in VM_ON_STATUS: the caller gets it
)


@dataclass(frozen=True)
class Outcome:
    """What the engine did with a request: the caller's final reply, and what reached
    the worker (None: nothing did)."""

    status: int
    reason: str
    ruri: str | None = None
    app_headers: tuple[tuple[str, str], ...] | None = None


def expected(case: Case) -> Outcome:
    """What both must do, from the pure KEMI functions the native routes copy."""
    if not case.subscriber:
        return Outcome(404, "Not Found")
    if case.dial is not None and not case.authenticate:
        return Outcome(403, "Mailbox access needs authentication")
    if case.phone is not None and case.phone not in DEFAULT_VOICEMAIL_STATUSES:
        return Outcome(case.phone, "Service Unavailable")  # FakeWorker's reason
    profile = Profile(case.user, DOMAIN, {k: v.strip() for k, v in case.prefs})
    sender = STRANGER if case.dial is None else f"sip:{case.user}@{DOMAIN}"
    try:
        param = build_app_param(case.app, profile, sender=sender)
    except ParamError:
        return Outcome(*UNUSABLE)
    headers = (("P-App-Name", case.app), ("P-App-Param", param))
    return Outcome(WORKER_ANSWER, "Busy Here", f"sip:{case.user}@{DOMAIN}", headers)


def ha1(user: str) -> str:
    return hashlib.md5(f"{user}:{DOMAIN}:{PASSWORD}".encode()).hexdigest()  # noqa: S324


def write_profiles(database: Path) -> None:
    with contextlib.closing(sqlite3.connect(database)) as db, db:
        for case in CASES:
            if not case.subscriber:
                continue
            db.execute(
                "INSERT INTO subscriber (username, domain, ha1) VALUES (?, ?, ?)",
                (case.user, DOMAIN, ha1(case.user)),
            )
            db.executemany(
                "INSERT INTO usr_preferences (username, domain, attribute, type, value) "
                "VALUES (?, ?, ?, 0, ?)",  # 0: string name, string value (avpops)
                [(case.user, DOMAIN, attribute, value) for attribute, value in case.prefs],
            )


class Engine:
    """Kamailio on one engine with its own stand-in worker (dispatcher set 1)."""

    def __init__(self, directory: Path, engine: str, db_url: str) -> None:
        self.worker = FakeWorker()
        self.worker.answer = WORKER_ANSWER
        self.phone = FakeWorker()  # the phone of the registered users
        self.kamailio = Kamailio(
            directory, db_url=db_url, workers=[], rtpengine=None,
            switches=("WITH_AUTH", "WITH_VOICEMAIL"),
        )  # fmt: skip
        (directory / "dispatcher.list").write_text(
            f"1 sip:127.0.0.1:{self.worker.port};transport=udp\n"
        )
        if engine == "native":
            use_native(directory)

    def register(self, user: str) -> None:
        """``user``'s phone registered (usrloc's RPC: no REGISTER needed)."""
        contact = f"sip:{user}@127.0.0.1:{self.phone.port}"
        # table, AOR, contact, expires, q, path (none), flags, cflags, methods (all)
        args = ("location", user, contact, "3600", "1.0", "s:", "0", "0", "255")
        answer = self.kamailio.kamcmd("ul.add", *args)
        assert "error" not in answer, answer  # kamcmd exits 0 on an RPC error

    def run(self, case: Case) -> Outcome:
        self.phone.answer = case.phone
        with Uac(self.kamailio.port) as uac:
            if case.dial is None:
                ruri, caller, password = f"sip:{case.user}@{DOMAIN}", STRANGER, None
            elif case.authenticate:
                ruri, caller = f"sip:{case.dial}@{DOMAIN}", f"sip:{case.user}@{DOMAIN}"
                password = PASSWORD
            else:  # a From of elsewhere is not challenged, and opens no mailbox
                ruri, caller, password = f"sip:{case.dial}@{DOMAIN}", STRANGER, None
            reply = uac.request(
                "INVITE", ruri, from_=caller, headers=case.headers, password=password
            )
        call_id = reply.header("Call-ID")
        invites = [m for m in self.worker.invites if m.header("Call-ID") == call_id]
        if not invites:
            return Outcome(reply.status, reply.reason)
        invite = invites[-1]
        app_headers = tuple((n, v) for n, v in invite.headers if n.lower().startswith("p-app-"))
        return Outcome(reply.status, reply.reason, invite.first_line.split()[1], app_headers)

    def worker_active(self) -> bool:
        return "FLAGS: AP" in self.kamailio.kamcmd("dispatcher.list")

    def log(self) -> str:
        return self.kamailio.log()[-6000:]


@pytest.fixture(scope="module")
def engines() -> Iterator[dict[str, Engine]]:
    directory = Path(tempfile.mkdtemp(prefix="vm-parity-"))
    database = directory / "kamailio.sqlite"
    db_url = user_database(f"sqlite://{database}", {})
    write_profiles(database)
    started: dict[str, Engine] = {}
    try:
        with contextlib.ExitStack() as stop:
            for name in ENGINES:
                (directory / name).mkdir()
                engine = started[name] = Engine(directory / name, name, db_url)
                stop.callback(engine.worker.close)
                stop.callback(engine.phone.close)
                stop.enter_context(engine.kamailio)
            for engine in started.values():
                wait_until(engine.worker_active, 10, engine.log)
                for case in CASES:
                    if case.phone is not None:
                        engine.register(case.user)
            yield started
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_both_engines_decide_alike(engines: dict[str, Engine], case: Case) -> None:
    outcomes = {name: engine.run(case) for name, engine in engines.items()}
    logs = "\n".join(f"----- {n}\n{e.log()}" for n, e in engines.items())
    assert outcomes["kemi"] == outcomes["native"], logs
    assert outcomes["kemi"] == expected(case), logs
