"""DTMF from RFC 4733 events (captured from baresip) and from in-band tones."""

from __future__ import annotations

import math
import random
import struct
import subprocess
import wave
from pathlib import Path

import pytest

from media_worker import dtmf
from media_worker.dtmf import (
    COLUMNS,
    KEYPAD,
    ROWS,
    EventReceiver,
    InbandDetector,
    TelephoneEvent,
    parse_event,
)
from media_worker.rtp import parse_rtp
from tests.support.captures import load_capture

RATE = 8000


def test_baresip_events_give_each_digit_once() -> None:
    receiver = EventReceiver(101)
    packets = [parse_rtp(p) for p in load_capture("baresip-pcmu-dtmf-5-hash.hex")]
    digits = [d for p in packets if (d := receiver.feed(p)) is not None]
    assert digits == ["5", "#"]


def test_end_retransmissions_and_reordering_do_not_repeat() -> None:
    receiver = EventReceiver(101)
    packets = [parse_rtp(p) for p in load_capture("baresip-pcmu-dtmf-5-hash.hex")]
    events = [p for p in packets if p.payload_type == 101]
    five = events[:53]  # digit 5: 50 updates and 3 end packets
    shuffled = five[:]
    random.Random(7).shuffle(shuffled)
    got = [receiver.feed(p) for p in shuffled + five]  # reordered, then all again
    assert [d for d in got if d] == ["5"]


def test_event_payload() -> None:
    event = parse_event(bytes.fromhex("058a1f40"))
    assert event == TelephoneEvent(5, True, 10, 8000)
    assert event.digit == "5"
    assert event.serialize() == bytes.fromhex("058a1f40")
    assert parse_event(bytes([16, 0, 0, 0])).digit is None  # flash
    with pytest.raises(ValueError, match="shorter than 4"):
        parse_event(b"\x05")


def tone(key: str, seconds: float, level: float = 8000, twist_db: float = 0.0) -> list[float]:
    r = next(i for i, row in enumerate(KEYPAD) if key in row)
    c = KEYPAD[r].index(key)
    high = level * 10 ** (twist_db / 20)
    return [
        level * math.sin(2 * math.pi * ROWS[r] * n / RATE)
        + high * math.sin(2 * math.pi * COLUMNS[c] * n / RATE)
        for n in range(int(seconds * RATE))
    ]


def silence(seconds: float) -> list[float]:
    return [0.0] * int(seconds * RATE)


def pcm(samples: list[float], noise: float = 0.0, seed: int = 1) -> bytes:
    rng = random.Random(seed)
    return b"".join(
        struct.pack("<h", max(-32768, min(32767, int(s + rng.gauss(0, noise))))) for s in samples
    )


def detect(data: bytes, frame: int = 320) -> list[str]:
    detector = InbandDetector()
    found = []
    for i in range(0, len(data), frame):
        found += detector.feed(data[i : i + frame])
    return found


def test_every_key_in_band() -> None:
    signal: list[float] = []
    for key in "0123456789*#ABCD":
        signal += tone(key, 0.08) + silence(0.08)
    assert "".join(detect(pcm(signal, noise=300))) == "0123456789*#ABCD"


def test_a_long_press_is_one_digit_and_a_dropout_is_bridged() -> None:
    signal = tone("7", 0.6) + silence(0.015) + tone("7", 0.3) + silence(0.1) + tone("7", 0.1)
    assert detect(pcm(signal)) == ["7", "7"]


def test_too_short_a_tone_is_ignored() -> None:
    assert detect(pcm(tone("1", 0.03) + silence(0.2))) == []


@pytest.mark.parametrize(
    ("twist", "found"), [(0, ["5"]), (-6, ["5"]), (3, ["5"]), (-12, []), (8, [])]
)
def test_twist_limits(twist: float, found: list[str]) -> None:
    assert detect(pcm(tone("5", 0.2, twist_db=twist) + silence(0.1))) == found


def test_quiet_tones_and_noise_alone() -> None:
    assert detect(pcm(tone("9", 0.2, level=30) + silence(0.1))) == []
    assert detect(pcm(silence(1.0), noise=3000)) == []


def test_speech_is_not_taken_for_digits(tmp_path: Path) -> None:
    wav_path = tmp_path / "speech.wav"
    subprocess.run(
        ["espeak-ng", "-w", str(wav_path), "You have three new messages and two saved messages. "
         "Press one to listen, two to save, three to delete, or pound to hear the menu."],
        check=True,
    )  # fmt: skip
    with wave.open(str(wav_path)) as wav:
        rate, frames = wav.getframerate(), wav.readframes(wav.getnframes())
    samples = struct.unpack(f"<{len(frames) // 2}h", frames)
    step = rate / RATE  # resample to 8 kHz by picking samples (aliasing only adds stress)
    resampled = [float(samples[int(i * step)]) for i in range(int(len(samples) / step))]
    assert detect(pcm(resampled)) == []
    # The same speech with a key press in it still gives exactly that key.
    mixed = resampled[:8000] + tone("3", 0.12, level=6000) + resampled[8000:]
    assert detect(pcm(mixed)) == ["3"]


def test_detector_constants_are_sane() -> None:
    assert dtmf.BLOCK * dtmf.MIN_BLOCKS / RATE >= 0.040  # Q.24 minimum duration
