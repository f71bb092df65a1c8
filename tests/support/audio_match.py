"""Does a recording contain a reference signal? Normalised cross-correlation, in pure Python.

The lag is found coarsely on 10 ms energy envelopes, then refined sample by sample, and
the answer is the normalised correlation of the samples at the best lag (1.0 = identical
up to gain; G.711 round trips stay above 0.95).
"""

from __future__ import annotations

import math
import struct
import wave
from pathlib import Path

RATE = 8000
WINDOW = 80  # samples per envelope step (10 ms)


def read_pcm(path: Path) -> list[int]:
    with wave.open(str(path)) as wav:
        assert wav.getframerate() == RATE, f"{path}: {wav.getframerate()} Hz"
        assert wav.getsampwidth() == 2, path
        assert wav.getnchannels() == 1, path
        frames = wav.readframes(wav.getnframes())
    return list(struct.unpack(f"<{len(frames) // 2}h", frames))


def pcm_samples(pcm: bytes) -> list[int]:
    return list(struct.unpack(f"<{len(pcm) // 2}h", pcm[: len(pcm) // 2 * 2]))


def _envelope(samples: list[int]) -> list[float]:
    return [
        math.sqrt(sum(x * x for x in samples[i : i + WINDOW]) / WINDOW)
        for i in range(0, len(samples) - WINDOW + 1, WINDOW)
    ]


def _ncc(a: list[float] | list[int], b: list[float] | list[int]) -> float:
    n = min(len(a), len(b))
    if n == 0:
        return 0.0
    a, b = a[:n], b[:n]
    ma, mb = sum(a) / n, sum(b) / n
    num = sum((x - ma) * (y - mb) for x, y in zip(a, b, strict=True))
    den = math.sqrt(sum((x - ma) ** 2 for x in a) * sum((y - mb) ** 2 for y in b))
    return num / den if den else 0.0


def match(
    reference: list[int], recording: list[int], max_lag_s: float = 3.0
) -> tuple[float, float]:
    """(lag in seconds of the reference inside the recording, correlation at that lag)."""
    ref_env, rec_env = _envelope(reference), _envelope(recording)
    max_lag = int(max_lag_s * RATE / WINDOW)
    overlap = len(ref_env)
    best = max(
        range(0, min(max_lag, max(len(rec_env) - overlap // 2, 0)) + 1),
        key=lambda lag: _ncc(ref_env, rec_env[lag : lag + overlap]),
    )
    coarse = best * WINDOW
    span = min(len(reference), RATE)  # a second of samples is plenty to compare
    start = len(reference) // 4 if len(reference) > 2 * span else 0
    piece = reference[start : start + span]
    scores = {
        lag: _ncc(piece, recording[lag + start : lag + start + span])
        for lag in range(max(coarse - WINDOW, 0), coarse + WINDOW + 1)
    }
    lag = max(scores, key=lambda k: scores[k])
    return lag / RATE, scores[lag]
