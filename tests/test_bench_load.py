"""The load generator against a worker it starts itself: a few real calls of each app,
every recording stored in full, no call failed (no timing is asserted)."""

from __future__ import annotations

import pytest

from bench import load

pytestmark = pytest.mark.integration


def test_three_calls_against_its_own_worker(capsys: pytest.CaptureFixture[str]) -> None:
    status = load.main(
        ["--calls", "3", "--seconds", "3", "--app", "voicemail,annrecorder"]
    )  # 3 recordings
    out = capsys.readouterr().out
    header, row = out.strip().splitlines()[-2:]
    assert "recordings" in header
    assert " 3/3 complete " in f" {row} ", out
    assert row.split()[-1] == "0", out  # calls failed
    assert status == 0, out
