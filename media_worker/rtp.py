"""RTP packets (RFC 3550): parse and serialize. Parsing raises ValueError with exact text."""

from __future__ import annotations

import struct
from typing import NamedTuple

RTP_VERSION = 2
_HEADER = struct.Struct("!BBHII")
HEADER_SIZE = _HEADER.size
# (first byte, second byte, sequence, timestamp, SSRC) of a packet of >= 12 bytes.
header_fields = _HEADER.unpack_from


class RtpPacket(NamedTuple):
    """One packet; a named tuple because the media path builds a hundred a second a call."""

    payload_type: int
    sequence: int
    timestamp: int
    ssrc: int
    payload: bytes
    marker: bool = False
    csrcs: tuple[int, ...] = ()
    extension: tuple[int, bytes] | None = None  # (profile, data) of a header extension

    def serialize(self) -> bytes:
        first = RTP_VERSION << 6 | len(self.csrcs)
        if self.extension is not None:
            first |= 0x10
        header = _HEADER.pack(
            first,
            (0x80 if self.marker else 0) | self.payload_type,
            self.sequence,
            self.timestamp,
            self.ssrc,
        )
        parts = [header]
        parts.extend(struct.pack("!I", csrc) for csrc in self.csrcs)
        if self.extension is not None:
            profile, data = self.extension
            padded = data + b"\0" * (-len(data) % 4)
            parts.append(struct.pack("!HH", profile, len(padded) // 4) + padded)
        parts.append(self.payload)
        return b"".join(parts)


def is_rtcp(data: bytes) -> bool:
    """RTCP sent on the RTP port (rtcp-mux, RFC 5761): packet types 192-223."""
    return len(data) >= 2 and 192 <= data[1] <= 223


def pack_header(payload_type: int, marker: bool, sequence: int, timestamp: int, ssrc: int) -> bytes:
    """The 12-byte header of a packet without CSRCs or extension (the sending hot path)."""
    return _HEADER.pack(0x80, (0x80 if marker else 0) | payload_type, sequence, timestamp, ssrc)


def parse_rtp(data: bytes) -> RtpPacket:
    if len(data) < HEADER_SIZE:
        raise ValueError(f"RTP packet of {len(data)} bytes is shorter than its header")
    first, second, sequence, timestamp, ssrc = _HEADER.unpack_from(data)
    if first == 0x80:  # version 2 and nothing optional: the common case, kept short
        return RtpPacket(second & 0x7F, sequence, timestamp, ssrc, data[12:], second > 0x7F)
    if first >> 6 != RTP_VERSION:
        raise ValueError(f"RTP version {first >> 6} is not 2")
    offset = HEADER_SIZE
    csrc_count = first & 0x0F
    end = len(data)
    if first & 0x20:  # padding: the last byte says how much
        padding = data[-1]
        if padding == 0 or padding > end - offset:
            raise ValueError(f"RTP padding of {padding} bytes does not fit the packet")
        end -= padding
    if offset + 4 * csrc_count > end:
        raise ValueError("RTP CSRC list runs past the end of the packet")
    csrcs = struct.unpack_from(f"!{csrc_count}I", data, offset) if csrc_count else ()
    offset += 4 * csrc_count
    extension = None
    if first & 0x10:
        if offset + 4 > end:
            raise ValueError("RTP header extension runs past the end of the packet")
        profile, words = struct.unpack_from("!HH", data, offset)
        offset += 4
        if offset + 4 * words > end:
            raise ValueError("RTP header extension runs past the end of the packet")
        extension = (profile, data[offset : offset + 4 * words])
        offset += 4 * words
    return RtpPacket(
        payload_type=second & 0x7F,
        sequence=sequence,
        timestamp=timestamp,
        ssrc=ssrc,
        payload=data[offset:end],
        marker=bool(second & 0x80),
        csrcs=tuple(csrcs),
        extension=extension,
    )
