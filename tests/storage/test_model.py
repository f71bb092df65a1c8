"""Values of the storage API."""

from __future__ import annotations

import pytest

from storage import Counts, MessageInfo
from storage.model import estimated_duration, wav_duration
from storage.testing import make_wav


def test_counts_of_a_listing() -> None:
    listing = [
        MessageInfo("1+a", True, 10, 1, "a", None),
        MessageInfo("2+b", False, 10, 2, "b", None),
        MessageInfo("3+c", True, 10, 3, "c", None),
    ]
    assert Counts.of(listing) == Counts(new=2, saved=1)
    assert Counts.of(listing).total == 3


def test_wav_duration() -> None:
    assert wav_duration(make_wav(2.5)) == pytest.approx(2.5)
    assert wav_duration(b"not a wav file") is None
    assert wav_duration(b"") is None


def test_duration_estimated_from_size_matches_our_wav_files() -> None:
    audio = make_wav(3)
    assert estimated_duration(len(audio)) == pytest.approx(3)
    assert estimated_duration(10) == 0
