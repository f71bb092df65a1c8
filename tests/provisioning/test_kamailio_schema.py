"""The real Kamailio accepts the tables `voicemail db init` creates and the users
`voicemail user add` provisions: its start-up version checks pass, avpops loads the
preferences, auth_db accepts the digest password and usrloc writes the contact back."""

from __future__ import annotations

import hashlib
import io
import re
import socket
import sqlite3
import subprocess
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import IO

import pytest

from media_worker.cli import main
from tests.support.postgres import PostgresServer
from tests.support.procs import Managed, free_port, start_process, stop_process, wait_until

KAMAILIO = Path("/usr/sbin/kamailio")
MODULES = Path("/usr/lib/x86_64-linux-gnu/kamailio/modules")
DOMAIN = "lab.example"

pytestmark = pytest.mark.integration

# Every module whose start-up checks a table of ours is loaded with db_url; the routes
# use auth_db (its fixup checks subscriber), avpops (usr_preferences) and sqlops.
CFG = """\
#!KAMAILIO
debug=2
log_stderror=yes
children=1
auto_aliases=no
listen=udp:127.0.0.1:{port}
alias="{domain}"
mpath="{modules}/"

loadmodule "{db_module}.so"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "pv.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
loadmodule "auth_db.so"
loadmodule "avpops.so"
loadmodule "sqlops.so"
loadmodule "dispatcher.so"
loadmodule "presence.so"
loadmodule "presence_mwi.so"
loadmodule "pua.so"
loadmodule "presence_xml.so"

modparam("usrloc", "db_url", "{db_url}")
modparam("usrloc", "db_mode", 2)
modparam("usrloc", "use_domain", 1)
modparam("usrloc", "timer_interval", 1)
modparam("auth_db", "db_url", "{db_url}")
modparam("auth_db", "calculate_ha1", 0)
modparam("auth_db", "use_domain", 1)
modparam("avpops", "db_url", "{db_url}")
modparam("avpops", "use_domain", 1)
modparam("avpops", "avp_table", "usr_preferences")
modparam("sqlops", "sqlcon", "kam=>{db_url}")
modparam("dispatcher", "db_url", "{db_url}")
modparam("presence", "db_url", "{db_url}")
modparam("pua", "db_url", "{db_url}")
modparam("presence_xml", "db_url", "{db_url}")
modparam("presence_xml", "integrated_xcap_server", 1)

request_route {{
    if ($rm == "REGISTER") {{
        if (!www_authorize("$fd", "subscriber")) {{
            www_challenge("$fd", "0");
            exit;
        }}
        save("location");
        exit;
    }}
    avp_db_load("$ru", "$avp(voicemail)");
    sql_query("kam", "SELECT count(*) FROM subscriber", "ra");
    sl_send_reply("200", "mode=$avp(voicemail) subscribers=$dbr(ra=>[0,0])");
}}
"""


class Kamailio(Managed):
    """Kamailio in the foreground (-DD) on a free loopback UDP port, stopped by PID."""

    def __init__(self, directory: Path, db_url: str, db_module: str) -> None:
        self.port = free_port(kind=socket.SOCK_DGRAM)
        self.dir = directory
        self.cfg = self.dir / "kamailio.cfg"
        self.cfg.write_text(
            CFG.format(
                port=self.port, domain=DOMAIN, modules=MODULES, db_module=db_module, db_url=db_url
            )
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def log(self) -> str:
        path = self.dir / "kamailio.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def log_tail(self) -> str:
        return self.log()[-4000:]

    def start(self) -> None:
        self._log = open(self.dir / "kamailio.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = start_process(
            [str(KAMAILIO), "-f", str(self.cfg), "-DD", "-E", "-Y", str(self.dir)], self._log
        )

    def wait_serving(self) -> None:
        """Until it answers an OPTIONS; fail at once if it exits (a refused table)."""

        def answered() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(
                    f"kamailio exited with {self.proc.returncode}:\n{self.log_tail()}"
                )
            try:
                self.request("OPTIONS", "bob", timeout=0.2)
            except TimeoutError:
                return False
            return True

        wait_until(answered, 20, self.log_tail)

    def request(self, method: str, user: str, extra: str = "", timeout: float = 5.0) -> str:
        """Send one request from a fresh socket and return the first response."""
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(timeout)
            port = sock.getsockname()[1]
            uri = f"sip:{DOMAIN}" if method == "REGISTER" else f"sip:{user}@{DOMAIN}"
            message = (
                f"{method} {uri} SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{port};branch=z9hG4bK{uuid.uuid4().hex}\r\n"
                f"From: <sip:{user}@{DOMAIN}>;tag=t1\r\n"
                f"To: <sip:{user}@{DOMAIN}>\r\n"
                f"Call-ID: {uuid.uuid4().hex}\r\n"
                f"CSeq: 1 {method}\r\n"
                f"Contact: <sip:{user}@127.0.0.1:{port}>\r\n"
                "Max-Forwards: 70\r\n"
                f"{extra}"
                "Content-Length: 0\r\n\r\n"
            )
            sock.sendto(message.encode(), ("127.0.0.1", self.port))
            return sock.recv(65535).decode()

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None


def _md5(text: str) -> str:
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


def register(kamailio: Kamailio, user: str, password: str) -> str:
    """REGISTER with digest authentication (RFC 2617, with or without qop=auth)."""
    challenge = kamailio.request("REGISTER", user)
    assert challenge.startswith("SIP/2.0 401"), challenge
    header = re.search(r"^WWW-Authenticate: Digest (.*)$", challenge, re.M | re.I)
    assert header is not None, challenge
    params = dict(re.findall(r'(\w+)="?([^",]*)"?', header.group(1)))
    uri = f"sip:{DOMAIN}"
    ha1 = _md5(f"{user}:{params['realm']}:{password}")
    ha2 = _md5(f"REGISTER:{uri}")
    fields = f'username="{user}", realm="{params["realm"]}", nonce="{params["nonce"]}", uri="{uri}"'
    if "auth" in params.get("qop", ""):
        cnonce = uuid.uuid4().hex[:8]
        response = _md5(f"{ha1}:{params['nonce']}:00000001:{cnonce}:auth:{ha2}")
        fields += f', qop=auth, nc=00000001, cnonce="{cnonce}"'
    else:
        response = _md5(f"{ha1}:{params['nonce']}:{ha2}")
    fields += f', response="{response}", algorithm=MD5'
    return kamailio.request("REGISTER", user, f"Authorization: Digest {fields}\r\n")


def provision(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    assert main(["db", "init", url]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret\n"))
    assert (
        main(["user", "add", f"bob@{DOMAIN}", "--db", url, "--mode", "both", "--email", "b@x.y"])
        == 0
    )


def check_proxy(
    directory: Path, kamailio_url: str, db_module: str, count_contacts: Callable[[], str]
) -> None:
    with Kamailio(directory, kamailio_url, db_module) as kamailio:
        kamailio.wait_serving()
        # avpops found the usr_preferences row, sqlops read subscriber.
        assert kamailio.request("OPTIONS", "bob").startswith("SIP/2.0 200 mode=both subscribers=1")
        wrong = register(kamailio, "bob", "wrong")
        assert not wrong.startswith("SIP/2.0 200"), wrong
        ok = register(kamailio, "bob", "s3cret")
        assert ok.startswith("SIP/2.0 200"), ok
        # usrloc (db_mode 2) writes the contact into our location table.
        wait_until(lambda: count_contacts() == "1", 10, kamailio.log_tail)
        assert "ERROR" not in kamailio.log(), kamailio.log_tail()


def test_kamailio_runs_on_the_sqlite_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "kamailio.sqlite"
    url = f"sqlite://{path}"
    provision(url, monkeypatch)

    def contacts() -> str:
        with closing(sqlite3.connect(path)) as conn, conn:
            return str(
                conn.execute("SELECT count(*) FROM location WHERE username = 'bob'").fetchone()[0]
            )

    check_proxy(tmp_path, url, "db_sqlite", contacts)
    capsys.readouterr()
    assert main(["user", "show", f"bob@{DOMAIN}", "--db", url]) == 0
    assert "registrations: 1" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("table", "module"),
    [
        ("subscriber", "auth_db"),
        ("location", "usrloc"),
        ("dispatcher", "dispatcher"),
        ("presentity", "presence"),
        ("active_watchers", "presence"),
        ("watchers", "presence"),
        ("pua", "pua"),
        ("xcap", "presence_xml"),
    ],
)
def test_kamailio_refuses_a_wrong_version_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, table: str, module: str
) -> None:
    """The control for the tests above: Kamailio does check each of these rows."""
    path = tmp_path / "kamailio.sqlite"
    provision(f"sqlite://{path}", monkeypatch)
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute("UPDATE version SET table_version = 99 WHERE table_name = ?", (table,))
    with Kamailio(tmp_path, f"sqlite://{path}", "db_sqlite") as kamailio:
        assert kamailio.proc is not None
        assert kamailio.proc.wait(20) != 0
        # The core's db_check_table_version message, or dispatcher's own.
        refusal = rf"invalid version 99 for table {table} found|invalid table version \(found 99"
        assert re.search(refusal, kamailio.log()), kamailio.log_tail()
        errors = [line for line in kamailio.log().splitlines() if "ERROR:" in line]
        assert any(f"ERROR: {module} [" in line for line in errors), errors


@pytest.mark.postgres
def test_kamailio_runs_on_the_postgres_schema(
    tmp_path: Path, postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_server.psql("CREATE DATABASE kamailio_proxy")
    try:
        url = postgres_server.url("kamailio_proxy")
        provision(url, monkeypatch)
        kamailio_url = url.replace("postgresql://", "postgres://", 1)

        def contacts() -> str:
            return postgres_server.psql(
                "SELECT count(*) FROM location WHERE username = 'bob'", "kamailio_proxy"
            )

        check_proxy(tmp_path, kamailio_url, "db_postgres", contacts)
    finally:
        postgres_server.psql("DROP DATABASE kamailio_proxy WITH (FORCE)")
