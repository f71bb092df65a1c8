"""RTP packets and G.711, with real packets and fuzzing."""

from __future__ import annotations

import contextlib
import math
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media_worker import g711
from media_worker.dtmf import EventReceiver, parse_event
from media_worker.rtp import RtpPacket, is_rtcp, parse_rtp
from tests.support.captures import load_capture

CAPTURE = load_capture("baresip-pcmu-dtmf-5-hash.hex")
PCMU_PACKET = CAPTURE[0]


def test_parses_baresip_audio_packet() -> None:
    packet = parse_rtp(PCMU_PACKET)
    assert (packet.payload_type, packet.marker, packet.sequence) == (0, True, 0x0E2A)
    assert (packet.timestamp, packet.ssrc, len(packet.payload)) == (0x2F84, 0xA784DC86, 160)
    assert packet.serialize() == PCMU_PACKET


def test_parses_baresip_event_packets() -> None:
    events = [parse_rtp(p) for p in CAPTURE if parse_rtp(p).payload_type == 101]
    first, end = events[0], events[50]
    assert (first.marker, first.sequence, first.timestamp) == (True, 0x0E5E, 0x5004)
    assert first.payload == bytes.fromhex("050a00a0")  # digit 5, volume 10, 160 samples
    assert end.payload == bytes.fromhex("058a1f40")  # end bit, 8000 samples


def test_every_captured_packet_round_trips() -> None:
    for data in CAPTURE:
        assert parse_rtp(data).serialize() == data


def test_csrc_extension_and_padding() -> None:
    packet = RtpPacket(8, 65535, 2**32 - 1, 7, b"abc", csrcs=(1, 2), extension=(0xBEDE, b"xyz"))
    assert parse_rtp(packet.serialize()) == RtpPacket(
        8, 65535, 2**32 - 1, 7, b"abc", csrcs=(1, 2), extension=(0xBEDE, b"xyz\0")
    )
    padded = bytearray(RtpPacket(0, 1, 2, 3, b"pay").serialize() + b"\0\0\x03")
    padded[0] |= 0x20
    assert parse_rtp(bytes(padded)).payload == b"pay"


@pytest.mark.parametrize(
    ("data", "error"),
    [
        (b"\x80\x00", "RTP packet of 2 bytes is shorter than its header"),
        (b"\x40" + b"\0" * 11, "RTP version 1 is not 2"),
        (b"\x83" + b"\0" * 11 + b"\0\0\0\1", "RTP CSRC list runs past the end of the packet"),
        (b"\x90" + b"\0" * 11 + b"\0\0", "RTP header extension runs past the end of the packet"),
        (
            b"\x90" + b"\0" * 11 + b"\0\0\0\5",
            "RTP header extension runs past the end of the packet",
        ),
        (b"\xa0" + b"\0" * 11 + b"\x09", "RTP padding of 9 bytes does not fit the packet"),
    ],
)
def test_malformed(data: bytes, error: str) -> None:
    with pytest.raises(ValueError, match="RTP") as caught:
        parse_rtp(data)
    assert str(caught.value) == error


def test_rtcp_is_recognised() -> None:
    assert is_rtcp(bytes.fromhex("80c80006"))  # sender report
    assert not is_rtcp(PCMU_PACKET)


@given(st.binary(max_size=400))
def test_fuzz(data: bytes) -> None:
    with contextlib.suppress(ValueError):
        packet = parse_rtp(data)
        assert len(packet.payload) <= len(data)


@given(
    st.binary(min_size=2, max_size=2).map(lambda h: bytes([0x80 | h[0] & 0x3F, h[1]])),
    st.binary(max_size=100),
)
def test_fuzz_rtcp_shaped_packets(head: bytes, rest: bytes) -> None:
    """What arrives on the RTP port with rtcp-mux: RTCP is recognised, the rest parsed as RTP
    or refused with ValueError."""
    data = head + rest
    if is_rtcp(data):
        assert 192 <= data[1] <= 223
        return
    with contextlib.suppress(ValueError):
        parse_rtp(data)


@given(st.binary(max_size=64), st.integers(0, 127))
def test_fuzz_telephone_events(payload: bytes, pt: int) -> None:
    """RFC 4733 payloads of any bytes: parse_event raises only ValueError; the receiver
    never raises and yields a keypad digit or nothing."""
    with contextlib.suppress(ValueError):
        event = parse_event(payload)
        assert event.digit is None or event.digit in "0123456789*#ABCD"
    receiver = EventReceiver(101)
    digit = receiver.feed(RtpPacket(pt, 1, 160, 7, payload))
    assert digit is None or (pt == 101 and digit in "0123456789*#ABCD")


@given(
    st.integers(0, 127),
    st.integers(0, 65535),
    st.integers(0, 2**32 - 1),
    st.integers(0, 2**32 - 1),
    st.binary(max_size=200),
    st.booleans(),
)
def test_round_trip(pt: int, seq: int, ts: int, ssrc: int, payload: bytes, marker: bool) -> None:
    packet = RtpPacket(pt, seq, ts, ssrc, payload, marker)
    assert parse_rtp(packet.serialize()) == packet


def _tone(freq: float, samples: int, level: int = 8000) -> bytes:
    return b"".join(
        struct.pack("<h", int(level * math.sin(2 * math.pi * freq * i / 8000)))
        for i in range(samples)
    )


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_g711_round_trip_is_close(codec: str) -> None:
    pcm = _tone(440, 160)
    encoded = g711.ENCODERS[codec](pcm)
    assert len(encoded) == 160
    decoded = g711.DECODERS[codec](encoded)
    original = struct.unpack("<160h", pcm)
    back = struct.unpack("<160h", decoded)
    assert max(abs(a - b) for a, b in zip(original, back, strict=True)) < 300


@pytest.mark.parametrize("codec", ["PCMU", "PCMA"])
def test_g711_silence_decodes_to_near_zero(codec: str) -> None:
    decoded = struct.unpack("<160h", g711.DECODERS[codec](g711.SILENCE[codec]))
    assert max(abs(s) for s in decoded) <= 8
