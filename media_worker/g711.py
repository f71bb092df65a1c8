"""G.711 µ-law and A-law to and from 16-bit linear PCM (little endian, as in WAV files)."""

from __future__ import annotations

import sys
import warnings

# audioop is deprecated since 3.11 and gone in 3.13, where the audioop-lts package
# provides the same module; it is still the fastest G.711 codec at hand.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import audioop

SAMPLE_WIDTH = 2
RATE = 8000
# One 20 ms frame: 160 samples, 160 bytes of G.711, 320 bytes of PCM.
FRAME_SAMPLES = 160

if sys.byteorder != "little":  # pragma: no cover - every platform we ship on is little endian
    raise ImportError("the G.711 codec assumes a little-endian machine")


def ulaw_decode(data: bytes) -> bytes:
    return audioop.ulaw2lin(data, SAMPLE_WIDTH)


def ulaw_encode(pcm: bytes) -> bytes:
    return audioop.lin2ulaw(pcm, SAMPLE_WIDTH)


def alaw_decode(data: bytes) -> bytes:
    return audioop.alaw2lin(data, SAMPLE_WIDTH)


def alaw_encode(pcm: bytes) -> bytes:
    return audioop.lin2alaw(pcm, SAMPLE_WIDTH)


DECODERS = {"PCMU": ulaw_decode, "PCMA": alaw_decode}
ENCODERS = {"PCMU": ulaw_encode, "PCMA": alaw_encode}
# Encoded silence: what a stream sends while there is nothing to say.
SILENCE = {"PCMU": b"\xff" * FRAME_SAMPLES, "PCMA": b"\xd5" * FRAME_SAMPLES}


def rms(pcm: bytes) -> int:
    """Root-mean-square level of 16-bit PCM (0-32767)."""
    return int(audioop.rms(pcm, SAMPLE_WIDTH))
