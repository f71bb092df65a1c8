"""Audio formats the API serves and takes.

Stored messages and greetings are 8 kHz 16-bit mono WAV. Without the conversion module
the API serves and accepts WAV only, and refuses other formats with a reason.
"""

from __future__ import annotations

import io
import wave

CONTENT_TYPES = {"wav": "audio/wav"}
EXTENSIONS = {"wav": "wav"}
FORMATS = tuple(CONTENT_TYPES)


class AudioFormatError(ValueError):
    """Audio we cannot read or convert; the message says why."""


class AudioTooLong(AudioFormatError):
    """Audio over the duration limit."""


def encode(wav: bytes, fmt: str) -> bytes:
    """A stored WAV in ``fmt``; blocking (callers use asyncio.to_thread)."""
    if fmt != "wav":
        raise AudioFormatError(f"format {fmt!r} is not available")
    return wav


def normalise(data: bytes, *, max_seconds: float) -> bytes:
    """An uploaded greeting as 8 kHz 16-bit mono PCM WAV."""
    try:
        with wave.open(io.BytesIO(data), "rb") as reader:
            rate, width, channels = (
                reader.getframerate(),
                reader.getsampwidth(),
                reader.getnchannels(),
            )
            frames = reader.getnframes()
            pcm = reader.readframes(frames)
    except (wave.Error, EOFError, ValueError) as exc:
        raise AudioFormatError(f"not a readable WAV file: {exc}") from None
    if (rate, width, channels) != (8000, 2, 1):
        raise AudioFormatError(
            f"WAV of {rate} Hz, {8 * width} bit, {channels} channel(s): "
            "only 8 kHz 16-bit mono is taken"
        )
    if frames / rate > max_seconds:
        raise AudioTooLong(f"{frames / rate:.1f} s is over the limit of {max_seconds:g} s")
    if not pcm:
        raise AudioFormatError("the WAV file holds no audio")
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(8000)
        writer.writeframes(pcm)
    return out.getvalue()
