"""Audio conversion for email and the HTTP API: stored WAV to MP3 or Ogg/Opus, and any
uploaded WAV, MP3 or Ogg (Opus, Vorbis) to the 8 kHz 16-bit mono WAV the worker plays.

soundfile's bundled libsndfile does the coding (LAME and mpg123 for MP3, libopus and
libvorbis in Ogg), so no system package is needed. Everything here is blocking CPU work:
callers in the event loop use ``asyncio.to_thread``.

Choices, measured on a 60 s spoken message (docs/operator.md has the figures):

- MP3 is written at 16 kHz (MPEG-2), 24 kbit/s constant bit rate. 8 kHz MP3 exists only
  as the unofficial MPEG-2.5 extension, which some players refuse; a constant rate lets
  players seek from byte offsets (HTTP Range) without an index. Its frames are too small
  for LAME's gapless tag, so decoders play the encoder's delay (69 ms) before the message.
- Opus is written at 8 kHz (narrowband, what a phone call carries), about 16 kbit/s.
- Resampling is a windowed-sinc (Kaiser) polyphase filter in numpy: flat to 3.2 kHz
  (-1.3 dB at 3.4 kHz), 70 dB down just below 4 kHz and 80 dB or more above, so nothing
  above the new Nyquist frequency folds back into the voice band.

Uploads are hostile input: only WAV, MP3 and Ogg are handed to libsndfile (recognised by
their first bytes, then checked against what libsndfile found), audio is refused from
its header's length when that is over the duration limit, else decoded no further than
the limit (a block at a time; MP3 in one read), and every failure is
an ``AudioFormatError`` whose message says why.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from typing import Any

import numpy as np
import numpy.typing as npt
import soundfile
from numpy.lib.stride_tricks import sliding_window_view

from media_worker.audio import write_wav

CONTENT_TYPES = {"wav": "audio/wav", "mp3": "audio/mpeg", "opus": "audio/ogg"}
EXTENSIONS = {"wav": "wav", "mp3": "mp3", "opus": "opus"}

RATE = 8000  # what the worker plays and records
MP3_RATE = 16000
# libsndfile maps compression_level linearly onto a bit rate: for 16 kHz MP3 constant
# rate, 1 - (kbit/s - 8) / 152, rounded to the next allowed rate (0.9 gives 24 kbit/s);
# for Opus, 1 - (bit/s - 6000) / 250000 (0.96 gives 16 kbit/s).
MP3_LEVEL = 0.9
OPUS_LEVEL = 0.96

MAX_CHANNELS = 8
MIN_INPUT_RATE = 4000
MAX_INPUT_RATE = 192000
# Frames decoded at a time. MP3 is read in one go (up to the limit): libsndfile 1.2's MP3
# reader, asked for part of a file, garbles samples at some read boundaries.
BLOCK = 65536
# The length a header states may be an estimate (MP3 without an index): refused at once
# only when clearly over the limit; the count of decoded frames decides.
HEADER_MARGIN = 1.05

# The resampling filter; see _kernel().
ZERO_CROSSINGS = 24  # each side, in samples of the lower rate
CUTOFF = 0.89  # of the lower rate's Nyquist frequency: -6 dB at 3.56 kHz for 8 kHz
KAISER_BETA = 7.86  # about 80 dB stop band
MAX_PHASES = 512  # above, fractional positions are rounded to 1/512 sample
CHUNK = 4096  # output samples computed at a time (bounds the memory of one call)

_FloatArray = npt.NDArray[np.float32]


class AudioFormatError(ValueError):
    """Audio that cannot be read or is not of a supported kind; the message says why."""


class AudioTooLong(AudioFormatError):
    """Audio longer than the limit it was given."""


# What each accepted container starts with, and the libsndfile formats it may turn out to be.
_WAV_FORMATS = frozenset({"WAV", "WAVEX"})
_WAV_SUBTYPES = frozenset(
    {"PCM_U8", "PCM_16", "PCM_24", "PCM_32", "FLOAT", "DOUBLE", "ULAW", "ALAW"}
)
_OGG_SUBTYPES = frozenset({"OPUS", "VORBIS"})
SUPPORTED = "WAV (PCM, float, µ-law, A-law), MP3, Ogg Opus or Ogg Vorbis"


def unwritable(formats: Iterable[str]) -> list[str]:
    """Those of ``formats`` that the libsndfile soundfile loaded cannot write (a system
    libsndfile older than 1.1 has no MP3)."""
    can = {"wav"}
    if "MP3" in soundfile.available_formats():
        can.add("mp3")
    if "OPUS" in soundfile.available_subtypes("OGG"):
        can.add("opus")
    return [fmt for fmt in formats if fmt not in can]


def library_version() -> str:
    return str(soundfile.__libsndfile_version__)


def encode(wav: bytes, fmt: str) -> bytes:
    """A stored message or greeting (a WAV file) as ``fmt``: wav (unchanged), mp3 or opus."""
    if fmt not in CONTENT_TYPES:
        raise ValueError(f"unknown audio format {fmt!r} (known: {', '.join(CONTENT_TYPES)})")
    if fmt == "wav":
        return wav
    samples, rate = _decode(wav, max_seconds=None)
    if fmt == "mp3":
        return _write(_resample(samples, rate, MP3_RATE), MP3_RATE, "MP3", "MPEG_LAYER_III",
                      compression_level=MP3_LEVEL, bitrate_mode="CONSTANT")  # fmt: skip
    return _write(_resample(samples, rate, RATE), RATE, "OGG", "OPUS",
                  compression_level=OPUS_LEVEL)  # fmt: skip


def normalise(data: bytes, *, max_seconds: float) -> bytes:
    """WAV, MP3, Ogg Opus or Ogg Vorbis of any rate and channel count as an 8 kHz 16-bit
    mono PCM WAV; longer than ``max_seconds``: ``AudioTooLong``."""
    samples, rate = _decode(data, max_seconds=max_seconds)
    return write_wav(_to_pcm16(_resample(samples, rate, RATE)))


# ----- decoding -----


def _sniff(data: bytes) -> str:
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return "WAV"
    if data[:4] == b"OggS":
        return "OGG"
    if data[:3] == b"ID3" or (len(data) >= 2 and data[0] == 0xFF and data[1] & 0xE0 == 0xE0):
        return "MP3"
    raise AudioFormatError(f"not a file of a supported kind: expected {SUPPORTED}")


def _decode(data: bytes, *, max_seconds: float | None) -> tuple[_FloatArray, int]:
    """Mono float samples in [-1, 1] and their rate."""
    kind = _sniff(data)
    try:
        with soundfile.SoundFile(io.BytesIO(data)) as audio:
            rate, channels = audio.samplerate, audio.channels
            _check_kind(kind, audio.format, audio.subtype, rate, channels)
            limit = None if max_seconds is None else math.floor(max_seconds * rate)
            if limit is not None and audio.frames > limit * HEADER_MARGIN:
                raise AudioTooLong(
                    f"the audio lasts {audio.frames / rate:.1f} s, over the limit of "
                    f"{max_seconds:g} s"
                )
            step = BLOCK
            if kind == "MP3":
                step = -1 if limit is None else limit + 1
            blocks: list[_FloatArray] = []
            frames = 0
            while True:
                # soundfile reads no further than the length in the header
                block = audio.read(step, dtype="float32", always_2d=True)
                if not len(block):
                    break
                frames += len(block)
                if limit is not None and frames > limit:
                    raise AudioTooLong(f"the audio is longer than the limit of {max_seconds:g} s")
                blocks.append(block.mean(axis=1, dtype=np.float32))
    except AudioFormatError:
        raise
    except (soundfile.LibsndfileError, RuntimeError, ValueError, TypeError, OSError) as exc:
        raise AudioFormatError(f"unreadable {kind} audio: {_reason(exc)}") from exc
    if not frames:
        raise AudioFormatError(f"the {kind} file holds no audio")
    samples = np.concatenate(blocks)
    if not np.isfinite(samples).all():
        raise AudioFormatError(f"the {kind} file holds samples that are not numbers")
    return np.clip(samples, -1.0, 1.0), rate


def _check_kind(kind: str, fmt: str, subtype: str, rate: int, channels: int) -> None:
    if kind == "WAV":
        accepted = fmt in _WAV_FORMATS and subtype in _WAV_SUBTYPES
    elif kind == "OGG":
        accepted = fmt == "OGG" and subtype in _OGG_SUBTYPES
    else:
        accepted = fmt == "MP3"
    if not accepted:
        raise AudioFormatError(f"{fmt} {subtype} audio is not supported: expected {SUPPORTED}")
    if not MIN_INPUT_RATE <= rate <= MAX_INPUT_RATE:
        raise AudioFormatError(
            f"a sample rate of {rate} Hz is outside {MIN_INPUT_RATE}..{MAX_INPUT_RATE} Hz"
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise AudioFormatError(f"{channels} channels is outside 1..{MAX_CHANNELS}")


def _reason(exc: Exception) -> str:
    # libsndfile's own words, without soundfile's prefix (which names a Python object)
    said = exc.error_string if isinstance(exc, soundfile.LibsndfileError) else str(exc)
    text = str(said).strip() or type(exc).__name__
    return text.splitlines()[0][:200]


# ----- resampling -----


def _kernel(up: int, down: int) -> tuple[_FloatArray, int, int]:
    """The polyphase filter for resampling by ``up / down``: one row of taps per
    fractional input position, the number of taps each side, and the number of phases."""
    scale = min(1.0, up / down)  # below 1: lower the cut-off to the output's band
    half = math.ceil(ZERO_CROSSINGS / scale)
    phases = min(up, MAX_PHASES)
    offsets = np.arange(-half + 1, half + 1, dtype=np.float64)  # taps around a position
    fractions = np.arange(phases, dtype=np.float64)[:, None] / phases
    t = offsets[None, :] - fractions  # distance of each tap from the exact position
    cutoff = CUTOFF * scale
    window = np.i0(KAISER_BETA * np.sqrt(np.clip(1.0 - (t / half) ** 2, 0.0, 1.0)))
    taps = cutoff * np.sinc(cutoff * t) * window / np.i0(KAISER_BETA)
    return taps.astype(np.float32), half, phases


def _resample(samples: _FloatArray, rate: int, target: int) -> _FloatArray:
    if rate == target:
        return samples
    g = math.gcd(rate, target)
    up, down = target // g, rate // g
    taps, half, phases = _kernel(up, down)
    count = len(samples) * up // down
    padded = np.concatenate(
        [np.zeros(half, np.float32), samples, np.zeros(half + 1 + down, np.float32)]
    )
    if phases == up:
        return _by_phase(padded, taps, up, down, count)
    return _by_position(padded, taps, half, up, down, count)


def _by_phase(
    padded: _FloatArray, taps: _FloatArray, up: int, down: int, count: int
) -> _FloatArray:
    """Every phase's outputs at once: output p + m * up starts ``down`` input samples after
    output p + (m - 1) * up, with the same taps, so each phase is one product of a strided
    view (no copy) and its taps. Several times faster than _by_position."""
    windows = sliding_window_view(padded, taps.shape[1])
    out = np.empty(count, np.float32)
    for first in range(min(up, count)):
        base, phase = divmod(first * down, up)
        outputs = (count - 1 - first) // up + 1
        rows = windows[base + 1 : base + 1 + outputs * down : down]  # taps from base - half + 1
        out[first::up] = rows @ taps[phase]
    return out


def _by_position(
    padded: _FloatArray, taps: _FloatArray, half: int, up: int, down: int, count: int
) -> _FloatArray:
    """For ratios with more phases than the table holds (odd rates such as 44101 Hz): each
    output's position rounded to the nearest phase, a chunk of outputs at a time."""
    phases = len(taps)
    span = np.arange(2 * half)
    out = np.empty(count, np.float32)
    for start in range(0, count, CHUNK):
        n = np.arange(start, min(start + CHUNK, count), dtype=np.int64)
        position = n * down  # in units of 1/up input samples
        base = position // up
        phase = (position % up) * phases * 2 // up  # rounded to the nearest phase
        phase = (phase + 1) // 2
        base += phase // phases
        phase %= phases
        windows = padded[base[:, None] + span[None, :] + 1]  # taps from base - half + 1
        out[start : start + len(n)] = np.einsum("ij,ij->i", windows, taps[phase])
    return out


def _to_pcm16(samples: _FloatArray) -> bytes:
    scaled = np.clip(np.rint(samples * 32767.0), -32768, 32767).astype("<i2")
    return bytes(scaled.tobytes())


# ----- encoding -----


def _write(samples: _FloatArray, rate: int, fmt: str, subtype: str, **options: Any) -> bytes:
    buffer = io.BytesIO()
    with soundfile.SoundFile(
        buffer, "w", samplerate=rate, channels=1, format=fmt, subtype=subtype, **options
    ) as out:
        out.write(np.clip(samples, -1.0, 1.0))
    return bytes(buffer.getvalue())
