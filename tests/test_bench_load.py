"""The load generator against a worker it starts itself: a few real calls, every
recording stored in full, no call failed (no timing is asserted)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from bench import load

pytestmark = pytest.mark.integration


def test_three_calls_against_its_own_worker(capsys: pytest.CaptureFixture[str]) -> None:
    # Two voicemail calls and one annrecorder call: three recordings.
    status = load.main(["--calls", "3", "--seconds", "3", "--app", "voicemail,annrecorder"])
    out = capsys.readouterr().out
    header, row = out.strip().splitlines()[-2:]
    assert header.split("  ")[0] == "calls", out
    assert " 3/3 complete " in f" {row} ", out
    # Every cell is right-aligned under its header: the "failed" cell ends where it does.
    end = header.index("failed") + len("failed")
    assert row[:end].split()[-1] == "0", out
    assert status == 0, out


def test_calls_dealt_over_two_processes_on_the_standard_loop(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # `voicemail worker --processes 2`, each process on asyncio's own loop (uvloop is
    # optional): four calls, two on each process's port, four recordings in full.
    monkeypatch.setenv("VOICEMAIL_EVENT_LOOP", "asyncio")
    status = load.main(["--calls", "4", "--seconds", "2", "--processes", "2", "--keep"])
    out = capsys.readouterr().out
    kept = Path(out.split("worker directory kept: ")[1].split()[0])
    try:
        log = (kept / "worker.log").read_text()
    finally:
        shutil.rmtree(kept)
    row = out.strip().splitlines()[-1]
    assert " 4/4 complete " in f" {row} ", out
    assert status == 0, out
    assert log.count("event loop: asyncio") == 2, log
    assert log.count("worker listening on") == 2, log
    assert "uvloop" not in log, log
