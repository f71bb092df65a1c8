"""`voicemail pin set|clear|unlock` against a real fs store."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from media_worker.apps.pin import verify_pin
from media_worker.cli import main
from storage import PinRecord, open_storage


def record(url: str) -> PinRecord:
    async def read() -> PinRecord:
        async with open_storage(url) as store:
            return await store.get_pin("lab.example", "bob")

    return asyncio.run(read())


def test_set_unlock_clear(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"fs://{tmp_path}/spool"
    monkeypatch.setattr("sys.stdin", io.StringIO("4711\n"))
    assert main(["pin", "set", "--storage", url, "lab.example", "bob"]) == 0
    stored = record(url).hash
    assert stored is not None
    assert verify_pin("4711", stored)
    assert (
        "4711" not in (tmp_path / "spool" / "lab.example-prompts" / "bob" / "pin.json").read_text()
    )

    async def lock() -> None:
        async with open_storage(url) as store:
            await store.update_pin(
                "lab.example", "bob", lambda r: PinRecord(r.hash, (1.0, 2.0), 9e9)
            )

    asyncio.run(lock())
    assert main(["pin", "unlock", "--storage", url, "lab.example", "bob"]) == 0
    assert record(url) == PinRecord(stored)
    assert main(["pin", "clear", "--storage", url, "lab.example", "bob"]) == 0
    assert record(url) == PinRecord()
    assert "clear done" in capsys.readouterr().out


def test_bad_pins_and_identities(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"fs://{tmp_path}/spool"
    monkeypatch.setattr("sys.stdin", io.StringIO("12\n"))
    assert main(["pin", "set", "--storage", url, "lab.example", "bob"]) == 1
    assert "a PIN has 4 to 16 digits" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("1234\n"))
    assert main(["pin", "set", "--storage", url, "lab.example", ".."]) == 1
    assert "bad user '..'" in capsys.readouterr().err
