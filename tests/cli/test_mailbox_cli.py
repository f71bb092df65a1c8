"""`voicemail mailbox ...` and `voicemail storage init` against real stores."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from media_worker.cli import main
from storage import open_storage
from storage.testing import DOMAIN, TS, USER, make_wav
from tests.support.postgres import PostgresServer


def _seed(url: str) -> tuple[str, str]:
    async def seed() -> tuple[str, str]:
        async with open_storage(url) as store:
            old = await store.put_message(
                DOMAIN, USER, make_wav(2), sender='"Alice" <sip:alice@example.com>', received_at=TS
            )
            new = await store.put_message(
                DOMAIN, USER, make_wav(1), sender="carol", received_at=TS + 90
            )
            await store.mark_read(DOMAIN, USER, old)
            return old, new

    return asyncio.run(seed())


@pytest.fixture
def spool(tmp_path: Path) -> str:
    return f"fs://{tmp_path}/spool"


def test_list_human(spool: str, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = _seed(spool)
    assert main(["mailbox", "list", "--storage", spool, DOMAIN, USER]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"mailbox {USER}@{DOMAIN}: 1 new, 1 saved"
    assert lines[1].split() == ["NAME", "STATUS", "RECEIVED", "LENGTH", "SIZE", "FROM"]
    assert lines[2].startswith(old)
    assert "saved" in lines[2]
    assert lines[2].endswith('"Alice" <sip:alice@example.com>')
    assert "  0:02  " in lines[2]
    assert lines[3].startswith(new)
    assert " new " in lines[3]


def test_list_json(spool: str, capsys: pytest.CaptureFixture[str]) -> None:
    old, new = _seed(spool)
    assert main(["mailbox", "list", "--json", "--storage", spool, DOMAIN, USER]) == 0
    data = json.loads(capsys.readouterr().out)
    assert (data["new"], data["saved"]) == (1, 1)
    assert [(m["name"], m["new"], m["received_at"]) for m in data["messages"]] == [
        (old, False, TS),
        (new, True, TS + 90),
    ]
    assert data["messages"][0]["received"] == "2023-11-14T22:13:20Z"
    assert data["messages"][0]["sender"] == '"Alice" <sip:alice@example.com>'


def test_export_mark_read_delete(
    spool: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _old, new = _seed(spool)
    out = tmp_path / "copy.wav"
    assert main(["mailbox", "export", "--storage", spool, DOMAIN, USER, new, "-o", str(out)]) == 0
    assert out.read_bytes() == make_wav(1)
    assert capsys.readouterr().out == f"wrote {len(make_wav(1))} bytes to {out}\n"
    assert main(["mailbox", "mark-read", "--json", "--storage", spool, DOMAIN, USER, new]) == 0
    assert json.loads(capsys.readouterr().out) == {"read": new}
    assert main(["mailbox", "delete", "--storage", spool, DOMAIN, USER, new]) == 0
    assert capsys.readouterr().out == f"deleted {new}\n"
    assert main(["mailbox", "delete", "--storage", spool, DOMAIN, USER, new]) == 1
    assert f"no message {new!r}" in capsys.readouterr().err


def test_import(spool: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wav = tmp_path / "hello.wav"
    wav.write_bytes(make_wav(1.2))
    argv = ["mailbox", "import", "--storage", spool, "--sender", "sip:a@x", "--received-at"]
    assert main([*argv, str(TS), DOMAIN, USER, str(wav)]) == 0
    assert capsys.readouterr().out == f"stored {wav} as {TS}+sip:a@x\n"
    assert main(["mailbox", "list", "--json", "--storage", spool, DOMAIN, USER]) == 0
    [message] = json.loads(capsys.readouterr().out)["messages"]
    assert (message["sender"], message["new"]) == ("sip:a@x", True)
    not_wav = tmp_path / "notes.txt"
    not_wav.write_text("hello")
    assert main(["mailbox", "import", "--storage", spool, DOMAIN, USER, str(not_wav)]) == 1
    assert "not a readable WAV file" in capsys.readouterr().err
    assert main(["mailbox", "import", "--storage", spool, DOMAIN, USER, "/nonexistent.wav"]) == 1
    assert "/nonexistent.wav: No such file or directory" in capsys.readouterr().err


def test_export_to_stdout_and_play(spool: str, tmp_path: Path) -> None:
    _old, new = _seed(spool)
    env = {**os.environ, "VOICEMAIL_STORAGE": spool}
    exported = subprocess.run(
        [
            sys.executable,
            "-m",
            "media_worker.cli",
            "mailbox",
            "export",
            DOMAIN,
            USER,
            new,
            "-o",
            "-",
        ],
        capture_output=True,
        env=env,
        check=True,
    )
    assert exported.stdout == make_wav(1)
    played = tmp_path / "played.wav"
    player = f"{sys.executable} -c 'import shutil,sys; shutil.copy(sys.argv[1], \"{played}\")'"
    subprocess.run(
        ["voicemail", "mailbox", "play", "--player", player, DOMAIN, USER, new],
        env={**env, "PATH": f"{Path(sys.executable).parent}:{env['PATH']}"},
        check=True,
        capture_output=True,
    )
    assert played.read_bytes() == make_wav(1)


def test_refusals_and_usage(
    spool: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["mailbox", "list", "--storage", spool, "..", USER]) == 1
    assert "bad domain '..'" in capsys.readouterr().err
    monkeypatch.delenv("VOICEMAIL_STORAGE", raising=False)
    assert main(["mailbox", "list", DOMAIN, USER]) == 2
    assert "--storage URL" in capsys.readouterr().err
    with pytest.raises(SystemExit) as usage:
        main(["mailbox", "frobnicate"])
    assert usage.value.code == 2


def test_help_reads_like_a_manual() -> None:
    result = subprocess.run(
        ["voicemail", "mailbox", "list", "--help"],
        env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"},
        capture_output=True,
        text=True,
        check=True,
    )
    for section in ("usage:", "mailbox identity:", "examples:", "exit status:"):
        assert section in result.stdout


@pytest.mark.postgres
def test_storage_init_and_list_on_postgres(
    postgres_server: PostgresServer, capsys: pytest.CaptureFixture[str]
) -> None:
    postgres_server.psql("CREATE DATABASE voicemail_cli")
    url = postgres_server.url("voicemail_cli")
    assert main(["mailbox", "list", "--storage", url, DOMAIN, USER]) == 3
    assert "voicemail storage init" in capsys.readouterr().err
    assert main(["storage", "init", url]) == 0
    assert main(["storage", "init", url]) == 0
    assert "storage ready: postgresql://voicemail@127.0.0.1" in capsys.readouterr().out
    old, new = _seed(url)
    assert main(["mailbox", "list", "--json", "--storage", url, DOMAIN, USER]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [m["name"] for m in data["messages"]] == [old, new]
