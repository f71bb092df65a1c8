"""Audio files: the worker's media is 8 kHz mono, 16-bit linear PCM in memory.

WAV files may hold 16-bit PCM, µ-law or A-law at 8 kHz mono (Asterisk's sound packages
and SEMS spools do); anything else is refused with a message saying how to convert it.
"""

from __future__ import annotations

import io
import struct
import wave
from dataclasses import dataclass

from media_worker import g711

RATE = 8000
BYTES_PER_SAMPLE = 2
WAVE_FORMAT_PCM = 1
WAVE_FORMAT_ALAW = 6
WAVE_FORMAT_MULAW = 7
WAVE_FORMAT_EXTENSIBLE = 0xFFFE
_FORMAT_NAMES = {WAVE_FORMAT_PCM: "PCM", WAVE_FORMAT_ALAW: "A-law", WAVE_FORMAT_MULAW: "µ-law"}
CONVERT_HINT = "convert with: sox IN.wav -r 8000 -c 1 -b 16 -e signed-integer OUT.wav"


class AudioFormatError(ValueError):
    """A file that is not audio the worker can play."""


@dataclass(frozen=True)
class Pcm:
    """8 kHz mono 16-bit little-endian samples."""

    data: bytes

    @property
    def duration(self) -> float:
        return len(self.data) / (RATE * BYTES_PER_SAMPLE)


def read_wav(data: bytes, name: str = "audio") -> Pcm:
    """Decode a WAV file to PCM, or raise AudioFormatError naming ``name`` and the fix."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        raise AudioFormatError(f"{name}: not a WAV file")
    fmt: tuple[int, int, int, int] | None = None
    offset = 12
    while offset + 8 <= len(data):
        chunk_id, size = struct.unpack_from("<4sI", data, offset)
        body = data[offset + 8 : offset + 8 + size]
        if chunk_id == b"fmt ":
            if len(body) < 16:
                raise AudioFormatError(f"{name}: truncated fmt chunk")
            tag, channels, rate, _, _, bits = struct.unpack_from("<HHIIHH", body)
            if tag == WAVE_FORMAT_EXTENSIBLE and len(body) >= 26:
                tag = struct.unpack_from("<H", body, 24)[0]  # the sub-format GUID's first word
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise AudioFormatError(f"{name}: data chunk before the fmt chunk")
            return Pcm(_decode(fmt, body, name))
        offset += 8 + size + (size & 1)  # chunks are word aligned
    raise AudioFormatError(f"{name}: no audio data in the WAV file")


def _decode(fmt: tuple[int, int, int, int], body: bytes, name: str) -> bytes:
    tag, channels, rate, bits = fmt
    accepted = (tag == WAVE_FORMAT_PCM and bits == 16) or (
        tag in (WAVE_FORMAT_ALAW, WAVE_FORMAT_MULAW) and bits == 8
    )
    if not accepted or channels != 1 or rate != RATE:
        kind = _FORMAT_NAMES.get(tag, f"format {tag}")
        layout = "mono" if channels == 1 else f"{channels} channels"
        raise AudioFormatError(
            f"{name}: {rate} Hz {layout} {bits}-bit {kind}; the worker plays 8000 Hz mono "
            f"16-bit PCM, µ-law or A-law WAV files; {CONVERT_HINT}"
        )
    if tag == WAVE_FORMAT_MULAW:
        return g711.ulaw_decode(body)
    if tag == WAVE_FORMAT_ALAW:
        return g711.alaw_decode(body)
    return body[: len(body) // 2 * 2]


def write_wav(pcm: bytes) -> bytes:
    """A 16-bit PCM 8 kHz mono WAV file holding ``pcm``."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(BYTES_PER_SAMPLE)
        wav.setframerate(RATE)
        wav.writeframes(pcm)
    return buf.getvalue()


# Quieter than this (RMS of 16-bit samples, about -50 dBFS) counts as silence.
SILENCE_RMS = 100
FRAME = 320  # 20 ms


def trim_trailing_silence(pcm: bytes, threshold: int = SILENCE_RMS) -> bytes:
    """``pcm`` without the silence at its end (a caller pausing before hanging up)."""
    end = len(pcm) // FRAME * FRAME
    while end > 0 and g711.rms(pcm[end - FRAME : end]) < threshold:
        end -= FRAME
    return pcm[:end]


def is_silent(pcm: bytes, threshold: int = SILENCE_RMS) -> bool:
    """No 20 ms frame of ``pcm`` rises above the silence threshold."""
    return all(g711.rms(pcm[i : i + FRAME]) < threshold for i in range(0, len(pcm), FRAME))
