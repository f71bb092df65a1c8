"""The load generator against a worker it starts itself: a few real calls, every
recording stored in full, no call failed (no timing is asserted)."""

from __future__ import annotations

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
