"""The mailbox commands with the worker's configuration: the store's URL from it, each
change spooled for the worker; a configuration that cannot be used stops them first."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from media_worker.changes import ChangeConsumer, Notice, spool_dir
from media_worker.cli import main
from storage import ChangeKind, open_storage

DOMAIN, USER = "lab.example", "bob"


def write_config(tmp_path: Path, extra: str = "") -> Path:
    (tmp_path / "data").mkdir(exist_ok=True)
    config = tmp_path / "voicemail.yaml"
    config.write_text(
        f"data_dir: {tmp_path}/data\nstorage: {{url: 'fs://{tmp_path}/spool'}}\n" + extra
    )
    return config


def spooled(tmp_path: Path) -> list[Notice]:
    notices: list[Notice] = []

    async def keep(notice: Notice) -> None:
        notices.append(notice)

    asyncio.run(ChangeConsumer(spool_dir(tmp_path / "data"), keep).scan())
    return notices


def put(url: str) -> str:
    async def run() -> str:
        async with open_storage(url) as store:
            return await store.put_message(DOMAIN, USER, b"audio", sender="a", received_at=1)

    return asyncio.run(run())


def listing(url: str) -> list[object]:
    async def run() -> list[object]:
        async with open_storage(url) as store:
            return list(await store.list_mailbox(DOMAIN, USER))

    return asyncio.run(run())


def test_changes_are_spooled_and_reads_are_not(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("VOICEMAIL_STORAGE", raising=False)
    monkeypatch.delenv("VOICEMAIL_CONFIG", raising=False)
    config = write_config(tmp_path)
    name = put(f"fs://{tmp_path}/spool")
    for action in ("list", "mark-read", "mark-new", "delete"):
        args = [action, "--config", str(config), DOMAIN, USER]
        assert main(["mailbox", *args, *([] if action == "list" else [name])]) == 0
    assert capsys.readouterr().err == ""
    kinds = [n.event.kind for n in spooled(tmp_path)]
    assert kinds == [ChangeKind.READ, ChangeKind.UNREAD, ChangeKind.DELETED]


def test_an_unusable_configuration_stops_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("VOICEMAIL_STORAGE", raising=False)
    bad = write_config(tmp_path, "webhooks: {endpoints: [{name: x, url: 'ftp://x'}]}\n")
    monkeypatch.setenv("VOICEMAIL_CONFIG", str(bad))
    assert main(["mailbox", "delete", DOMAIN, USER, "1+a"]) == 2
    assert "webhooks.endpoints[0].url" in capsys.readouterr().err
    assert main(["pin", "clear", DOMAIN, USER]) == 2
    assert "webhooks.endpoints[0].url" in capsys.readouterr().err


def test_without_a_data_dir_the_change_is_made_and_the_command_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("VOICEMAIL_STORAGE", raising=False)
    config = tmp_path / "voicemail.yaml"
    config.write_text(f"data_dir: {tmp_path}/nowhere\nstorage: {{url: 'fs://{tmp_path}/s'}}\n")
    name = put(f"fs://{tmp_path}/s")
    assert main(["mailbox", "delete", "--config", str(config), DOMAIN, USER, name]) == 0
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert "the worker is not told of this change" in err
    assert listing(f"fs://{tmp_path}/s") == []
