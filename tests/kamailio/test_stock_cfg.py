"""docs/kamailio-native.md's steps, applied to a fresh copy of Debian's stock
/etc/kamailio/kamailio.cfg: the edits are the doc's ``diff`` blocks and the site files
its ``cfg`` blocks (with this run's ports and paths in place of the doc's examples), so
the doc and what is tested cannot part. The result passes ``kamailio -c`` and, in front
of rtpengine and a real media worker, takes a call that leaves bob a message."""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from media_worker.audio import write_wav
from media_worker.lab.demo import mailbox_listing
from media_worker.lab.layout import DOMAIN, USERS, account, kamailio_command
from media_worker.lab.probes import answers_options
from storage import open_storage
from tests.integration.conftest import caller_speech
from tests.kamailio.native import VOICEMAIL_CFG
from tests.support.baresip import Baresip
from tests.support.procs import free_udp_tcp_port, wait_until
from tests.support.secure_stack import tone
from tests.support.source import SOURCE_TREE
from tests.support.stack import (
    LoggedProcess,
    MediaWorker,
    Rtpengine,
    SmtpCatcher,
    user_database,
)

pytestmark = pytest.mark.integration
__all__ = ["caller_speech"]

DOC = SOURCE_TREE / "docs" / "kamailio-native.md"
STOCK_CFG = Path("/etc/kamailio/kamailio.cfg")
SECRET = "stock-cfg-test-secret-0123456789"
_FENCE = re.compile(
    r"^(?P<indent>[ ]*)```(?P<lang>\w+)\n(?P<body>.*?)^(?P=indent)```$", re.M | re.S
)


def blocks(lang: str) -> list[str]:
    """The doc's fenced blocks of ``lang``, without the indentation of their list item."""
    found = []
    for match in _FENCE.finditer(DOC.read_text()):
        if match.group("lang") == lang:
            width = len(match.group("indent"))
            found.append("\n".join(line[width:] for line in match.group("body").splitlines()))
    return found


def edits() -> list[tuple[str, str]]:
    """(old, new) text of each hunk of the doc's diffs: context and '-' lines, context
    and '+' lines."""
    hunks: list[tuple[list[str], list[str]]] = []
    for block in blocks("diff"):
        for line in block.splitlines():
            if line.startswith(("--- ", "+++ ")):
                continue
            if line.startswith("@@"):
                hunks.append(([], []))
                continue
            old, new = hunks[-1]
            mark, text = (line[:1], line[1:]) if line else (" ", "")
            if mark in " -":
                old.append(text)
            if mark in " +":
                new.append(text)
    return [("\n".join(old) + "\n", "\n".join(new) + "\n") for old, new in hunks]


def apply_edits(text: str) -> str:
    for old, new in edits():
        assert text.count(old) == 1, f"the stock cfg holds {text.count(old)} of:\n{old}"
        text = text.replace(old, new)
    return text


def site_file(name: str, values: dict[str, str]) -> str:
    """The doc's block of /etc/kamailio/``name``, each example value replaced."""
    [text] = [b for b in blocks("cfg") if b.startswith(f"# /etc/kamailio/{name}\n")]
    for example, value in values.items():
        assert example in text, f"{name} in the doc has no {example!r}"
        text = text.replace(example, value)
    return text + "\n"


def stock_cfg() -> str:
    """Debian's /etc/kamailio/kamailio.cfg, checked against the md5 dpkg recorded for the
    kamailio package's conffile: an edited copy would test the doc against another cfg."""
    assert shutil.which("dpkg-query"), (
        "dpkg-query is absent: cannot tell that the stock cfg is Debian's"
    )
    conffiles = subprocess.run(
        ["dpkg-query", "-W", "-f=${Conffiles}", "kamailio"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    recorded = {
        fields[0]: fields[1]
        for fields in (line.split() for line in conffiles.splitlines())
        if len(fields) >= 2
    }
    assert str(STOCK_CFG) in recorded, f"dpkg lists no conffile {STOCK_CFG}: {conffiles!r}"
    data = STOCK_CFG.read_bytes()
    assert hashlib.md5(data, usedforsecurity=False).hexdigest() == recorded[str(STOCK_CFG)], (
        f"{STOCK_CFG} is not the kamailio package's file (edited?)"
    )
    return data.decode()


class StockKamailio(LoggedProcess):
    name = "kamailio"

    def __init__(self, directory: Path, port: int) -> None:
        super().__init__(directory)
        self.port = port
        self.cfg = directory / "kamailio.cfg"

    def command(self) -> list[str]:
        return kamailio_command(self.cfg, self.dir)

    def ready(self) -> bool:
        return answers_options("127.0.0.1", self.port)


def test_the_doc_covers_the_stock_routes_it_names() -> None:
    """Each stock route the fragment's header says to change has a hunk in the doc."""
    doc = DOC.read_text()
    for command in ("voicemail db init", "voicemail user add", "include_file"):
        assert command in doc
    hunks = "".join(new for _, new in edits())
    for call in ("VMSTRIP", "VMHOP", "VMACCESS", "VMRING", "VMTOVOICEMAIL", "VMDIALOG"):
        assert f"route({call});" in hunks
        assert f"route({call})" in VOICEMAIL_CFG.read_text().split("#!ifndef")[0]
    assert "setflag(VM_FLT_AUTH);" in hunks
    assert "dlg_manage();" in hunks


def test_the_fragment_leaves_the_module_parameters_to_the_doc() -> None:
    """The fragment's header points at the doc's tested steps for the modparam lines
    rather than keeping a copy that could drift from them."""
    header = VOICEMAIL_CFG.read_text().split("\n#!ifndef", 1)[0]
    assert "steps 7 and 8 of docs/kamailio-native.md" in header
    assert re.search(r"modparamx?\(", header) is None
    hunks = "".join(new for _, new in edits())
    assert 'modparam("dispatcher", "list_file", VM_DISPATCHER_LIST)' in hunks
    assert 'modparam("rtpengine", "rtpengine_sock", RTPENGINE_SOCKET)' in hunks


@pytest.fixture
def stock() -> Iterator[Path]:
    directory = Path(tempfile.mkdtemp(prefix="vm-stock-"))
    try:
        yield directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_the_doc_steps_on_the_stock_cfg_leave_a_message(stock: Path, caller_speech: Path) -> None:
    # steps 2, 6-13: the stock cfg with the doc's edits and the fragment next to it
    (stock / "kamailio.cfg").write_text(apply_edits(stock_cfg()))
    shutil.copy(VOICEMAIL_CFG, stock / "voicemail.cfg")
    # step 3: database and users
    database = stock / "kamailio.sqlite"
    user_database(f"sqlite://{database}", USERS)
    smtp, rtpengine = SmtpCatcher(), Rtpengine(stock)
    spool = stock / "spool"
    worker = MediaWorker(stock, 1, smtp.port, spool, None, secret=SECRET)
    port = free_udp_tcp_port()
    # steps 4 and 5: kamailio-local.cfg and dispatcher.list
    (stock / "kamailio-local.cfg").write_text(
        site_file(
            "kamailio-local.cfg",
            {
                "127.0.0.1:5060": f"127.0.0.1:{port}",
                "sip.example.com": DOMAIN,
                "/var/lib/kamailio/kamailio.sqlite": str(database),
                "/etc/kamailio/dispatcher.list": str(stock / "dispatcher.list"),
                "udp:127.0.0.1:2223": f"udp:127.0.0.1:{rtpengine.ng_port}",
                "change-me-to-a-long-random-string": SECRET,
            },
        )
    )
    (stock / "dispatcher.list").write_text(
        site_file("dispatcher.list", {"127.0.0.1:5080": f"127.0.0.1:{worker.port}"})
    )
    # step 15
    checked = subprocess.run(
        ["kamailio", "-c", "-f", str(stock / "kamailio.cfg")],
        capture_output=True, text=True, timeout=30, cwd="/",
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr
    assert "config file ok" in checked.stderr

    async def greeting() -> None:  # a short one: the message follows at once
        async with open_storage(f"fs://{spool}") as store:
            await store.put_greeting(DOMAIN, "bob", "vm", write_wav(tone(0.4)))

    asyncio.run(greeting())
    kamailio = StockKamailio(stock, port)

    def logs() -> str:
        return "\n".join(
            f"----- {p.name}\n{p.log()[-5000:]}" for p in (rtpengine, worker, kamailio)
        )

    with smtp, rtpengine, worker, kamailio:
        phone = Baresip(
            caller_speech, account=account("alice", host="127.0.0.1", sip_port=port, register=False)
        )
        try:
            with phone:
                phone.dial(f"sip:bob@{DOMAIN}")
                wait_until(
                    lambda: len(mailbox_listing(spool, "bob")) == 1,
                    30,
                    lambda: f"{logs()}\n----- phone\n{phone.log()[-3000:]}",
                )
        finally:
            phone.cleanup()
    [message] = mailbox_listing(spool, "bob")
    assert "alice" in message.sender  # through the signed hop: the worker has the secret
    log = kamailio.log()
    assert not [line for line in log.splitlines() if " ERROR: " in line], log[-4000:]
    assert f"to voicemail at sip:127.0.0.1:{worker.port}" in log, log[-4000:]
    assert "Received command 'offer'" in rtpengine.log()
