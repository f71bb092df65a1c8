"""bench.audio runs and reports each format and upload."""

from __future__ import annotations

import pytest

from bench import audio


def test_the_audio_benchmark_reports_each_format(capsys: pytest.CaptureFixture[str]) -> None:
    assert audio.main(["--seconds", "2", "--rounds", "1", "--source", "synthetic"]) == 0
    out = capsys.readouterr().out
    rows = {
        line.split()[0]: line.split()
        for line in out.splitlines()
        if line[:4] in ("wav ", "mp3 ", "opus")
    }
    assert set(rows) == {"wav", "mp3", "opus"}
    assert int(rows["wav"][1]) == 2 * 8000 * 2 + 44  # the stored WAV: header and 2 s of samples
    assert 0 < int(rows["opus"][1]) < int(rows["mp3"][1]) < int(rows["wav"][1])
    for upload in ("WAV 44.1 kHz stereo", "MP3 48 kHz mono", "Ogg/Opus 48 kHz mono"):
        assert upload in out


def test_a_message_is_cut_or_looped_to_its_length() -> None:
    assert len(audio._fit(b"\x01\x00" * 10, 0.001)) == 16
    assert audio._fit(b"ab", 0.0005) == b"abababab"
