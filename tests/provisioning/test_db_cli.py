"""`voicemail db init` and `voicemail user ...` on SQLite and on a private PostgreSQL."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from media_worker.cli import main
from tests.support.postgres import PostgresServer
from tests.support.procs import free_port

_databases = itertools.count()


@dataclass
class Db:
    url: str
    query: Callable[[str], list[str]]  # rows as "a|b|c", as psql -A prints them


def _sqlite_query(path: Path) -> Callable[[str], list[str]]:
    def query(sql: str) -> list[str]:
        with closing(sqlite3.connect(path)) as conn, conn:
            return ["|".join("" if v is None else str(v) for v in row) for row in conn.execute(sql)]

    return query


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """An empty database of either kind (not initialised)."""
    if request.param == "sqlite":
        path = tmp_path / "kamailio.sqlite"
        yield Db(f"sqlite://{path}", _sqlite_query(path))
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"kamailio_cli_{next(_databases)}"
    server.psql(f"CREATE DATABASE {name}")

    def query(sql: str) -> list[str]:
        out = server.psql(sql, name)
        return out.splitlines() if out else []

    yield Db(server.url(name), query)
    server.psql(f"DROP DATABASE {name}")


@pytest.fixture
def ready(db: Db) -> Db:
    assert main(["db", "init", db.url]) == 0
    return db


def run(monkeypatch: pytest.MonkeyPatch, *argv: str, stdin: str = "") -> int:
    monkeypatch.setattr("sys.stdin", io.StringIO(stdin))
    return main(list(argv))


def test_init_creates_the_tables_once(db: Db, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["db", "init", db.url]) == 0
    assert "created 11 tables: version, subscriber, location," in capsys.readouterr().out
    versions = db.query("SELECT table_name, table_version FROM version ORDER BY table_name")
    assert "location|9" in versions
    assert "subscriber|7" in versions
    assert len(versions) == 11
    assert main(["db", "init", db.url]) == 0
    assert "all 11 Kamailio tables already present, nothing to do" in capsys.readouterr().out
    assert db.query("SELECT table_name, table_version FROM version ORDER BY table_name") == versions


def test_init_keeps_tables_and_refuses_a_wrong_version(
    db: Db, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "init", db.url]) == 0
    db.query("UPDATE version SET table_version = 8 WHERE table_name = 'location'")
    db.query("DROP TABLE pua")
    capsys.readouterr()
    assert main(["db", "init", db.url]) == 1
    assert "table location has version 8, Kamailio 5.6 expects 9" in capsys.readouterr().err
    assert db.query("SELECT count(*) FROM version WHERE table_name = 'pua'") == ["1"]
    db.query("UPDATE version SET table_version = 9 WHERE table_name = 'location'")
    db.query("DELETE FROM version WHERE table_name = 'pua'")
    db.query("INSERT INTO subscriber (username, domain) VALUES ('kept', 'lab.example')")
    assert main(["db", "init", db.url]) == 0
    out = capsys.readouterr().out
    assert "created 1 tables: pua" in out
    assert "already present (kept): version, subscriber," in out
    assert db.query("SELECT username FROM subscriber") == ["kept"]


def test_user_lifecycle(
    ready: Db, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = ready.url
    assert run(monkeypatch, "user", "add", "bob@lab.example", "--db", url, "--mode", "both",
               "--email", "bob@mail.example", "--lang", "de", stdin="s3cret\n") == 0  # fmt: skip
    assert ready.query("SELECT username, domain, password, ha1, ha1b FROM subscriber") == [
        "bob|lab.example||"
        + hashlib.md5(b"bob:lab.example:s3cret", usedforsecurity=False).hexdigest()
        + "|"
        + hashlib.md5(b"bob@lab.example:lab.example:s3cret", usedforsecurity=False).hexdigest()
    ]
    assert sorted(
        ready.query("SELECT uuid, username, domain, attribute, type, value FROM usr_preferences")
    ) == [
        "|bob|lab.example|email|0|bob@mail.example",
        "|bob|lab.example|lang|0|de",
        "|bob|lab.example|voicemail|0|both",
    ]
    assert run(monkeypatch, "user", "add", "bob@lab.example", "--db", url, "--password", "x") == 1
    assert "user bob@lab.example already exists" in capsys.readouterr().err

    # An attribute the operator keeps for other purposes survives `set`.
    ready.query(
        "INSERT INTO usr_preferences (username, domain, attribute, value) VALUES ('bob', 'lab.example', 'fwd', 'sip:x@y')"
    )
    assert run(monkeypatch, "user", "set", "bob@lab.example", "--db", url, "--mode", "box",
               "--email", "", "--uid", "u-7", "--greeting-type", "busy") == 0  # fmt: skip
    assert sorted(ready.query("SELECT uuid, attribute, value FROM usr_preferences")) == sorted(
        [
            "u-7|lang|de",
            "u-7|uid|u-7",
            "u-7|vm_greeting_type|busy",
            "u-7|voicemail|box",
            "|fwd|sip:x@y",
        ]
    )
    assert (
        run(
            monkeypatch,
            "user",
            "set",
            "bob@lab.example",
            "--db",
            url,
            "--password",
            "-",
            stdin="n3w\n",
        )
        == 0
    )
    assert ready.query("SELECT ha1 FROM subscriber") == [
        hashlib.md5(b"bob:lab.example:n3w", usedforsecurity=False).hexdigest()
    ]

    capsys.readouterr()
    assert run(monkeypatch, "user", "show", "bob@lab.example", "--db", url, "--json") == 0
    assert json.loads(capsys.readouterr().out) == {
        "user": "bob",
        "domain": "lab.example",
        "password_set": True,
        "uuid": "u-7",
        "registrations": 0,
        "preferences": {
            "voicemail": "box",
            "lang": "de",
            "uid": "u-7",
            "vm_greeting_type": "busy",
            "fwd": "sip:x@y",
        },
    }
    monkeypatch.setenv("VOICEMAIL_DB", url)
    assert run(monkeypatch, "user", "show", "bob@lab.example") == 0
    text = capsys.readouterr().out
    assert "user:          bob@lab.example" in text
    assert "  voicemail         box" in text
    assert "s3cret" not in text
    assert "n3w" not in text

    ready.query(
        "INSERT INTO location (ruid, username, domain, contact) VALUES ('r1', 'bob', 'lab.example', 'sip:bob@192.0.2.1')"
    )
    ready.query(
        "INSERT INTO location (ruid, username, domain, contact) VALUES ('r2', 'alice', 'lab.example', 'sip:alice@192.0.2.2')"
    )
    assert run(monkeypatch, "user", "del", "bob@lab.example") == 0
    assert ready.query("SELECT count(*) FROM subscriber") == ["0"]
    assert ready.query("SELECT count(*) FROM usr_preferences") == ["0"]
    assert ready.query("SELECT username FROM location") == ["alice"]
    assert run(monkeypatch, "user", "del", "bob@lab.example") == 1
    assert run(monkeypatch, "user", "show", "bob@lab.example") == 1
    assert run(monkeypatch, "user", "set", "bob@lab.example", "--mode", "ann") == 1
    assert capsys.readouterr().err.count("voicemail: no user bob@lab.example") == 3


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--mode", "mail"], "bad mode 'mail'"),
        (["--email", "nobody"], "bad email 'nobody'"),
        (["--email", ""], 'an empty value ("") only removes a preference'),
        (["--uid", "../x"], "bad uid '../x'"),
        (["--password", ""], "bad password: must not be empty"),
    ],
)
def test_add_refuses_bad_values(
    ready: Db,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    argv: list[str],
    message: str,
) -> None:
    assert (
        run(monkeypatch, "user", "add", "bob@lab.example", "--db", ready.url, *argv, stdin="pw\n")
        == 1
    )
    assert message in capsys.readouterr().err
    assert ready.query("SELECT count(*) FROM subscriber") == ["0"]


def test_uninitialised_database_is_unavailable(
    db: Db, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    if db.url.startswith("sqlite"):
        sqlite3.connect(db.url.removeprefix("sqlite://")).close()  # an empty file
    assert run(monkeypatch, "user", "show", "bob@lab.example", "--db", db.url) == 3
    assert "run `voicemail db init` first" in capsys.readouterr().err


def test_unreachable_and_missing_databases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = f"sqlite://{tmp_path}/none.sqlite"
    assert run(monkeypatch, "user", "show", "bob@lab.example", "--db", missing) == 3
    assert "cannot open sqlite://" in capsys.readouterr().err
    assert not (tmp_path / "none.sqlite").exists()
    assert run(monkeypatch, "db", "init", f"sqlite://{tmp_path}/no/dir/k.sqlite") == 3
    closed = f"postgresql://k:topsecret@127.0.0.1:{free_port()}/kamailio"
    assert run(monkeypatch, "user", "show", "bob@lab.example", "--db", closed) == 3
    err = capsys.readouterr().err
    assert "cannot connect to postgresql://k:***@127.0.0.1:" in err
    assert "topsecret" not in err


def test_usage_errors(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("VOICEMAIL_DB", raising=False)
    assert run(monkeypatch, "user", "show", "bob@lab.example") == 2
    assert "no database given" in capsys.readouterr().err
    assert run(monkeypatch, "db", "init") == 2
    assert run(monkeypatch, "user", "show", "bob", "--db", "sqlite:///x") == 1
    assert "expected USER@DOMAIN" in capsys.readouterr().err
    assert run(monkeypatch, "user", "set", "bob@lab.example", "--db", "sqlite:///x") == 2
    assert "nothing to change" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["user", "frob", "bob@lab.example"])
    assert exit_.value.code == 2


@pytest.mark.parametrize(
    "command", [["db", "--help"], ["db", "init", "--help"], ["user", "add", "--help"]]
)
def test_help_reads_like_a_man_page(command: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(command)
    out = capsys.readouterr().out
    for section in ("examples:", "environment:", "exit status:", "VOICEMAIL_DB"):
        assert section in out
