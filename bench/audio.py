"""Audio conversion benchmark: sizes and conversion times of a 60 s message.

    .venv/bin/python -m bench.audio [--seconds 60] [--rounds 5] [--source speech|synthetic]

The message is what the worker stores, 8 kHz 16-bit mono WAV. ``speech`` (the default)
is espeak-ng reading a text, normalised by ``transcode.normalise`` as an upload would be
(so its time is measured too); ``synthetic`` is the load generator's syllables
(``bench.load``), for a machine without espeak-ng. For each format: bytes, bit rate,
share of the WAV, and the median time of ``transcode.encode``. Then the time of
``transcode.normalise`` on uploads of the same length: 44.1 kHz stereo WAV, 48 kHz MP3,
48 kHz Ogg/Opus. Times are one thread's CPU work; the API and email run them in a
worker thread.
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import soundfile

from media_worker import g711, transcode
from media_worker.audio import read_wav, write_wav

TEXT = (
    "Hello Bob, this is Alice. I am calling about the meeting on Thursday afternoon. "
    "The room has changed: we are now on the third floor, next to the kitchen. "
    "Could you bring the printed figures for the second quarter, and the notes from "
    "last week? If anything gets in the way, please call me back, my number is five "
    "five five, one two three, four five six seven. Thanks, and talk to you soon. "
)


def speech_message(seconds: float) -> bytes:
    """espeak-ng reading TEXT (repeated) as the worker would store it."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "speech.wav"
        words = TEXT * max(1, round(seconds / 25))
        subprocess.run(["espeak-ng", "-w", str(out), words], check=True, timeout=120)
        spoken = out.read_bytes()
    pcm = read_wav(transcode.normalise(spoken, max_seconds=3600)).data
    return write_wav(_fit(pcm, seconds))


def synthetic_message(seconds: float) -> bytes:
    from bench.load import SPEECH

    pcm = b"".join(g711.ulaw_decode(frame) for frame in SPEECH)
    return write_wav(_fit(pcm, seconds))


def _fit(pcm: bytes, seconds: float) -> bytes:
    """Exactly ``seconds``: cut, or looped to length."""
    wanted = round(seconds * 8000) * 2
    while len(pcm) < wanted:
        pcm += pcm
    return pcm[:wanted]


def median_ms(action: Callable[[], object], rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.process_time()
        action()
        times.append(time.process_time() - start)
    return statistics.median(times) * 1000


def upload(wav: bytes, rate: int, channels: int, fmt: str, subtype: str) -> bytes:
    """The message as a user's file: resampled (linear interpolation is enough to make a
    test file) and written in another format."""
    pcm = np.frombuffer(read_wav(wav).data, "<i2").astype(np.float32) / 32768
    times = np.arange(round(len(pcm) * rate / 8000)) * 8000 / rate
    resampled = np.interp(times, np.arange(len(pcm)), pcm).astype(np.float32)
    data = np.stack([resampled] * channels, axis=1) if channels > 1 else resampled
    buffer = io.BytesIO()
    soundfile.write(buffer, data, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the message")
    parser.add_argument("--rounds", type=int, default=5, help="timings per figure (median)")
    parser.add_argument("--source", choices=("speech", "synthetic"), default="speech")
    args = parser.parse_args(argv)
    wav = (speech_message if args.source == "speech" else synthetic_message)(args.seconds)
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"{args.seconds:g} s message ({args.source}), load average {load}")
    print(f"{'format':<8} {'bytes':>9} {'kbit/s':>7} {'of wav':>7} {'encode ms':>10}")
    for fmt in ("wav", "mp3", "opus"):
        data = transcode.encode(wav, fmt)
        kbit_s = len(data) * 8 / args.seconds / 1000
        ms = median_ms(partial(transcode.encode, wav, fmt), args.rounds)
        print(f"{fmt:<8} {len(data):>9} {kbit_s:>7.1f} {len(data) / len(wav):>6.0%} {ms:>10.0f}")
    print(f"\n{'upload':<24} {'bytes':>9} {'normalise ms':>13}")
    uploads = [
        ("WAV 44.1 kHz stereo", upload(wav, 44100, 2, "WAV", "PCM_16")),
        ("MP3 48 kHz mono", upload(wav, 48000, 1, "MP3", "MPEG_LAYER_III")),
        ("Ogg/Opus 48 kHz mono", upload(wav, 48000, 1, "OGG", "OPUS")),
    ]
    limit = args.seconds + 1
    for label, data in uploads:
        ms = median_ms(partial(transcode.normalise, data, max_seconds=limit), args.rounds)
        print(f"{label:<24} {len(data):>9} {ms:>13.0f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
