"""DTMF: RFC 4733 telephone-events and in-band tone detection (ITU-T Q.23/Q.24).

Either source yields one digit per key press: an RFC 4733 event is reported when its first
packet arrives and never again for its retransmitted end packets; an in-band tone is
reported once it has lasted the minimum duration, and re-armed only after a pause.
"""

from __future__ import annotations

import math
import struct
from collections import deque
from dataclasses import dataclass

from media_worker.rtp import RtpPacket

DIGITS = "0123456789*#ABCD"
_EVENT = struct.Struct("!BBH")


@dataclass(frozen=True, slots=True)
class TelephoneEvent:
    event: int
    end: bool
    volume: int
    duration: int  # in timestamp units (1/8000 s)

    @property
    def digit(self) -> str | None:
        return DIGITS[self.event] if self.event < len(DIGITS) else None

    def serialize(self) -> bytes:
        return _EVENT.pack(self.event, (0x80 if self.end else 0) | self.volume, self.duration)


def parse_event(payload: bytes) -> TelephoneEvent:
    if len(payload) < _EVENT.size:
        raise ValueError(f"telephone-event payload of {len(payload)} bytes is shorter than 4")
    event, flags, duration = _EVENT.unpack_from(payload)
    return TelephoneEvent(event, bool(flags & 0x80), flags & 0x3F, duration)


class EventReceiver:
    """Turns RFC 4733 packets into digits, one per event whatever the retransmissions."""

    def __init__(self, payload_type: int) -> None:
        self.payload_type = payload_type
        # An event is identified by its SSRC and RTP timestamp (RFC 4733 2.5.1.5); a few
        # are remembered so that a late packet of the previous event is not a new press.
        self._seen: deque[tuple[int, int]] = deque(maxlen=8)

    def feed(self, packet: RtpPacket) -> str | None:
        if packet.payload_type != self.payload_type:
            return None
        try:
            event = parse_event(packet.payload)
        except ValueError:
            return None
        key = (packet.ssrc, packet.timestamp)
        if key in self._seen:
            return None
        self._seen.append(key)
        return event.digit


# ----- in-band detection -----

ROWS = (697.0, 770.0, 852.0, 941.0)
COLUMNS = (1209.0, 1336.0, 1477.0, 1633.0)
KEYPAD = ("123A", "456B", "789C", "*0#D")
RATE = 8000
BLOCK = 205  # samples: bins 39 Hz apart, the classic size for the DTMF frequencies
_COEFFS = tuple(2 * math.cos(2 * math.pi * f / RATE) for f in ROWS + COLUMNS)

# Q.24-style acceptance, as energy ratios (dB in comments).
MIN_TONE_ENERGY = 4e4  # per tone, Goertzel power / BLOCK**2: about -35 dBFS
NORMAL_TWIST = 6.3  # low (row) tone may be up to 8 dB louder than the high tone
REVERSE_TWIST = 2.5  # high (column) tone may be up to 4 dB louder than the low tone
RELATIVE_PEAK = 6.3  # each tone 8 dB above the other tones of its group
MIN_SHARE = 0.6  # the two tones hold most of the block's energy (no speech, no music)
MIN_BLOCKS = 2  # two blocks (51 ms) >= Q.24's 40 ms minimum tone duration
MIN_PAUSE_BLOCKS = 2  # a shorter drop-out is bridged, not taken for a new key press


def _goertzel(samples: tuple[int, ...]) -> list[float]:
    powers = []
    for coeff in _COEFFS:
        s1 = s2 = 0.0
        for x in samples:
            s1, s2 = x + coeff * s1 - s2, s1
        powers.append(s1 * s1 + s2 * s2 - coeff * s1 * s2)
    return powers


def classify_block(samples: tuple[int, ...]) -> str | None:
    """The key whose tone pair fills this block of BLOCK samples, if any."""
    powers = [p / (BLOCK * BLOCK) for p in _goertzel(samples)]
    rows, cols = powers[:4], powers[4:]
    r = max(range(4), key=rows.__getitem__)
    c = max(range(4), key=cols.__getitem__)
    row, col = rows[r], cols[c]
    if row < MIN_TONE_ENERGY or col < MIN_TONE_ENERGY:
        return None
    if row > col * NORMAL_TWIST or col > row * REVERSE_TWIST:
        return None
    if any(p * RELATIVE_PEAK > row for i, p in enumerate(rows) if i != r):
        return None
    if any(p * RELATIVE_PEAK > col for i, p in enumerate(cols) if i != c):
        return None
    # A pure tone of amplitude A gives a normalised power A**2/4 and an energy A**2/2.
    energy = sum(x * x for x in samples) / BLOCK
    if energy <= 0 or 2 * (row + col) < MIN_SHARE * energy:
        return None
    return KEYPAD[r][c]


class InbandDetector:
    """Finds DTMF key presses in 8 kHz 16-bit PCM, fed in frames of any size."""

    def __init__(self) -> None:
        self._pending: list[int] = []
        self._candidate: str | None = None
        self._count = 0
        self._quiet = 0
        self._reported: str | None = None

    def feed(self, pcm: bytes) -> list[str]:
        self._pending.extend(struct.unpack(f"<{len(pcm) // 2}h", pcm[: len(pcm) // 2 * 2]))
        digits = []
        while len(self._pending) >= BLOCK:
            block = tuple(self._pending[:BLOCK])
            del self._pending[:BLOCK]
            key = classify_block(block)
            if key is not None and key == self._candidate:
                self._count += 1
            else:
                self._candidate, self._count = key, 1
            if key is None:
                self._quiet += 1
                if self._quiet >= MIN_PAUSE_BLOCKS:
                    self._reported = None  # a pause re-arms detection
                continue
            self._quiet = 0
            if self._count >= MIN_BLOCKS and self._reported != key:
                self._reported = key
                digits.append(key)
        return digits
