"""The receive side of a stream: RTP packets in, ordered PCM and digits out.

Tolerates what networks do: reordering (a small window), duplicates, loss (filled with
silence so the recording keeps its timing), sequence-number wrap, timestamp jumps and
SSRC changes. Sans-IO: no clock, no socket.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from media_worker import g711
from media_worker.dtmf import EventReceiver
from media_worker.rtp import HEADER_SIZE, RtpPacket, header_fields

SEQ_MOD = 1 << 16
TS_MOD = 1 << 32
COMFORT_NOISE_PT = 13


def _signed(delta: int, modulus: int) -> int:
    delta %= modulus
    return delta - modulus if delta >= modulus // 2 else delta


@dataclass
class ReceiveStats:
    packets: int = 0
    duplicates: int = 0
    late: int = 0  # arrived after their place was filled with silence
    lost: int = 0  # never arrived (sequence gaps)
    ssrc_changes: int = 0
    filled_samples: int = 0  # silence inserted for loss and pauses


@dataclass
class Received:
    pcm: bytes = b""
    digits: list[str] = field(default_factory=list)


class ReceiveStream:
    """Reorders, de-duplicates and decodes one call's incoming RTP."""

    def __init__(
        self,
        codec: str,
        audio_pt: int,
        dtmf_pt: int | None = None,
        *,
        window: int = 4,
        max_fill_s: float = 10.0,
    ) -> None:
        self._decode = g711.DECODERS[codec]
        self.audio_pt = audio_pt
        self._events = EventReceiver(dtmf_pt) if dtmf_pt is not None else None
        self.window = window
        self.max_fill = int(max_fill_s * g711.RATE)
        self.stats = ReceiveStats()
        self._ssrc: int | None = None
        self._max_ext = -1  # highest extended sequence number seen
        self._next = -1  # next extended sequence number to release
        self._started = False  # released anything of this SSRC yet
        self._buffer: dict[int, RtpPacket] = {}
        self._next_ts: int | None = None  # RTP timestamp where the next audio belongs

    def feed_next(self, data: bytes) -> bytes | None:
        """The decoded audio of ``data`` if it is the plain next audio packet of the stream
        with nothing held (most packets), without building a packet or a result; None
        when it is anything else, which ``feed`` (with the parsed packet) then takes."""
        if len(data) <= HEADER_SIZE:
            return None
        first, second, sequence, timestamp, ssrc = header_fields(data)
        if (
            first != 0x80  # version 2, no padding, extension or CSRCs
            or second != self.audio_pt  # no marker bit (a talk-spurt start goes to feed)
            or sequence != self._next & 0xFFFF
            or timestamp != self._next_ts
            or ssrc != self._ssrc
            or self._buffer
        ):
            return None
        self.stats.packets += 1
        self._next += 1
        if self._next > self._max_ext:
            self._max_ext = self._next - 1
        pcm = self._decode(data[HEADER_SIZE:])
        self._next_ts = (timestamp + len(pcm) // 2) % TS_MOD
        return pcm

    def feed(self, packet: RtpPacket) -> Received:
        self.stats.packets += 1
        if (
            packet.sequence == self._next & 0xFFFF
            and packet.timestamp == self._next_ts
            and packet.payload_type == self.audio_pt
            and packet.ssrc == self._ssrc
            and not self._buffer
        ):
            # The next audio packet, on time, nothing held: straight through (most packets).
            self._next += 1
            if self._next > self._max_ext:
                self._max_ext = self._next - 1
            pcm = self._decode(packet.payload)
            self._next_ts = (packet.timestamp + len(pcm) // 2) % TS_MOD
            return Received(pcm)
        out = Received()
        if (
            packet.sequence == self._next & 0xFFFF
            and packet.ssrc == self._ssrc
            and self._started
            and not self._buffer
        ):
            # In order with nothing held (an event, a gap in time): emitted at once.
            self._next += 1
            self._max_ext = max(self._max_ext, self._next - 1)
            buffer = bytearray()
            self._emit(packet, buffer, out)
            out.pcm = bytes(buffer)
            return out
        if packet.ssrc != self._ssrc:
            if self._ssrc is not None:
                self.stats.ssrc_changes += 1
                self._drain(out, everything=True)
            self._ssrc = packet.ssrc
            self._max_ext = packet.sequence
            self._next = packet.sequence
            self._started = False
            self._next_ts = None
        ext = self._max_ext + _signed(packet.sequence - self._max_ext, SEQ_MOD)
        if not self._started:
            # Until the window first fills, an earlier packet moves the start back.
            self._next = min(self._next, ext)
        elif ext < self._next:
            self.stats.late += 1
            return out
        if ext in self._buffer:
            self.stats.duplicates += 1
            return out
        self._max_ext = max(self._max_ext, ext)
        self._buffer[ext] = packet
        self._drain(out, everything=False)
        return out

    def flush(self) -> Received:
        """Release whatever is still held (the call ended)."""
        out = Received()
        self._drain(out, everything=True)
        return out

    def _drain(self, out: Received, *, everything: bool) -> None:
        if not self._started:
            if not everything and len(self._buffer) <= self.window:
                return
            self._started = True
        pcm = bytearray(out.pcm)
        while self._buffer:
            packet = self._buffer.pop(self._next, None)
            if packet is None:
                if not everything and len(self._buffer) <= self.window:
                    break
                skipped = min(self._buffer) - self._next
                self.stats.lost += skipped
                self._next += skipped
                continue
            self._next += 1
            self._emit(packet, pcm, out)
        out.pcm = bytes(pcm)

    def _emit(self, packet: RtpPacket, pcm: bytearray, out: Received) -> None:
        if self._events is not None and packet.payload_type == self._events.payload_type:
            digit = self._events.feed(packet)
            if digit is not None:
                out.digits.append(digit)
            return
        if packet.payload_type not in (self.audio_pt, COMFORT_NOISE_PT):
            return
        samples = (
            self._decode(packet.payload)
            if packet.payload_type == self.audio_pt
            else bytes(2 * g711.FRAME_SAMPLES)  # comfort noise: keep time with silence
        )
        count = len(samples) // 2
        if self._next_ts is not None:
            gap = _signed(packet.timestamp - self._next_ts, TS_MOD)
            if 0 < gap <= self.max_fill:
                pcm += bytes(2 * gap)
                self.stats.filled_samples += gap
            elif gap < 0:  # overlaps audio already written: keep only the new part
                samples = samples[-2 * gap :] if -gap < count else b""
        pcm += samples
        self._next_ts = (packet.timestamp + count) % TS_MOD
