"""The receive stream: ordering, loss, duplicates, wrap, SSRC change, events."""

from __future__ import annotations

import random

from hypothesis import given
from hypothesis import strategies as st

from media_worker import g711
from media_worker.jitter import ReceiveStream
from media_worker.rtp import RtpPacket, is_rtcp, parse_rtp
from tests.support.captures import load_capture

FRAME = 160


def frame(value: int) -> bytes:
    """A µ-law frame whose decoded samples are all one recognisable value."""
    return bytes([value]) * FRAME


def packets(count: int, seq0: int = 0, ts0: int = 0, ssrc: int = 1) -> list[RtpPacket]:
    return [
        RtpPacket(0, (seq0 + i) % 65536, (ts0 + i * FRAME) % 2**32, ssrc, frame(i % 100 + 1))
        for i in range(count)
    ]


def decoded(value: int) -> bytes:
    return g711.ulaw_decode(frame(value))


def run(stream: ReceiveStream, items: list[RtpPacket]) -> bytes:
    pcm = b"".join(stream.feed(p).pcm for p in items)
    return pcm + stream.flush().pcm


def expected(count: int) -> bytes:
    return b"".join(decoded(i % 100 + 1) for i in range(count))


def test_in_order() -> None:
    assert run(ReceiveStream("PCMU", 0), packets(10)) == expected(10)


def test_reordering_within_the_window() -> None:
    items = packets(40)
    shuffled = []
    for i in range(0, 40, 4):
        chunk = items[i : i + 4]
        random.Random(i).shuffle(chunk)
        shuffled += chunk
    stream = ReceiveStream("PCMU", 0)
    assert run(stream, shuffled) == expected(40)
    assert stream.stats.lost == stream.stats.late == 0


def test_duplicates_are_dropped() -> None:
    items = packets(10)
    stream = ReceiveStream("PCMU", 0)
    assert run(stream, [p for p in items for _ in range(2)]) == expected(10)
    assert stream.stats.duplicates + stream.stats.late == 10


def test_loss_is_filled_with_silence() -> None:
    items = packets(20)
    del items[5:8]
    stream = ReceiveStream("PCMU", 0)
    pcm = run(stream, items)
    assert len(pcm) == 20 * FRAME * 2
    assert pcm[5 * 320 : 8 * 320] == bytes(3 * 320)
    assert pcm[8 * 320 : 9 * 320] == decoded(9)
    assert stream.stats.lost == 3


def test_a_packet_later_than_the_window_is_dropped() -> None:
    items = packets(20)
    late = items.pop(3)
    stream = ReceiveStream("PCMU", 0, window=4)
    pcm = run(stream, [*items[:12], late, *items[12:]])
    assert len(pcm) == 20 * 320
    assert stream.stats.late == 1


def test_sequence_and_timestamp_wrap() -> None:
    items = packets(10, seq0=65530, ts0=2**32 - 3 * FRAME)
    assert run(ReceiveStream("PCMU", 0), items) == expected(10)


def test_ssrc_change_continues_the_recording() -> None:
    first = packets(5, seq0=100, ts0=1000, ssrc=1)
    second = packets(5, seq0=9, ts0=777_777, ssrc=2)
    stream = ReceiveStream("PCMU", 0)
    assert run(stream, first + second) == expected(5) + expected(5)
    assert stream.stats.ssrc_changes == 1


def test_timestamp_gap_becomes_silence_and_overlap_is_trimmed() -> None:
    a = RtpPacket(0, 1, 0, 1, frame(10))
    b = RtpPacket(0, 2, 2 * FRAME, 1, frame(20))  # 20 ms of silence suppression
    c = RtpPacket(0, 3, 2 * FRAME + 80, 1, frame(30))  # overlaps b by half
    pcm = run(ReceiveStream("PCMU", 0), [a, b, c])
    assert pcm == decoded(10) + bytes(320) + decoded(20) + decoded(30)[160:]


def test_pcma() -> None:
    items = [RtpPacket(8, i, i * FRAME, 1, b"\xd5" * FRAME) for i in range(3)]
    assert run(ReceiveStream("PCMA", 8), items) == g711.alaw_decode(b"\xd5" * FRAME * 3)


def test_baresip_capture_with_events() -> None:
    stream = ReceiveStream("PCMU", 0, 101)
    digits: list[str] = []
    pcm = b""
    for data in load_capture("baresip-pcmu-dtmf-5-hash.hex"):
        got = stream.feed(parse_rtp(data))
        pcm += got.pcm
        digits += got.digits
    pcm += stream.flush().pcm
    assert digits == ["5", "#"]
    audio_packets = sum(1 for d in load_capture("baresip-pcmu-dtmf-5-hash.hex") if d[1] & 0x7F == 0)
    assert len(pcm) == audio_packets * 320
    assert stream.stats.lost == stream.stats.filled_samples == 0


@given(st.data())
def test_property_any_local_shuffle_with_duplicates_keeps_the_audio(data: st.DataObject) -> None:
    count = data.draw(st.integers(5, 60))
    seq0 = data.draw(st.integers(0, 65535))
    items = packets(count, seq0=seq0, ts0=data.draw(st.integers(0, 2**32 - 1)))
    # Displace each packet by at most 3 places, and repeat some of them.
    keys = [i + data.draw(st.floats(0, 3.5)) for i in range(count)]
    order = [p for _, p in sorted(zip(keys, items, strict=True), key=lambda kp: kp[0])]
    dups = data.draw(st.lists(st.integers(0, count - 1), max_size=5))
    arrivals = order + [items[i] for i in dups]
    stream = ReceiveStream("PCMU", 0)
    assert run(stream, arrivals) == expected(count)


def run_wire(stream: ReceiveStream, datagrams: list[bytes]) -> tuple[bytes, list[str], int]:
    """As the endpoint receives: the allocation-free path first, ``feed`` for the rest."""
    pcm, digits, slow = b"", [], 0
    for data in datagrams:
        fast = stream.feed_next(data)
        if fast is not None:
            pcm += fast
            continue
        slow += 1
        got = stream.feed(parse_rtp(data))
        pcm += got.pcm
        digits += got.digits
    return pcm + stream.flush().pcm, digits, slow


def test_the_next_packet_path_takes_the_plain_in_order_ones() -> None:
    datagrams = [p.serialize() for p in packets(50)]
    pcm, _, slow = run_wire(ReceiveStream("PCMU", 0), datagrams)
    assert pcm == expected(50)
    assert slow < 50  # the first packets start the stream in feed; the rest go straight


def test_the_next_packet_path_agrees_with_feed_on_the_capture() -> None:
    datagrams = load_capture("baresip-pcmu-dtmf-5-hash.hex")
    reference = ReceiveStream("PCMU", 0, 101)
    got = [reference.feed(parse_rtp(d)) for d in datagrams]
    pcm = b"".join(g.pcm for g in got) + reference.flush().pcm
    stream = ReceiveStream("PCMU", 0, 101)
    assert run_wire(stream, datagrams)[:2] == (pcm, [d for g in got for d in g.digits])
    assert stream.stats == reference.stats


@given(st.data())
def test_property_the_next_packet_path_changes_nothing(data: st.DataObject) -> None:
    count = data.draw(st.integers(1, 60))
    items = packets(
        count, seq0=data.draw(st.integers(0, 65535)), ts0=data.draw(st.integers(0, 2**32 - 1))
    )
    # Reordered, duplicated, some with the marker bit, an SSRC change, a timestamp jump,
    # odd headers (padding, CSRCs), RTCP and runts among them.
    arrivals: list[bytes] = []
    for packet in items:
        variant = data.draw(
            st.sampled_from(["plain"] * 6 + ["marker", "csrc", "pad", "ssrc", "jump"])
        )
        if variant == "marker":
            packet = packet._replace(marker=True)
        elif variant == "csrc":
            packet = packet._replace(csrcs=(7,))
        elif variant == "ssrc":
            packet = packet._replace(ssrc=2)
        elif variant == "jump":
            packet = packet._replace(timestamp=(packet.timestamp + 800) % 2**32)
        wire = packet.serialize()
        if variant == "pad":
            wire = bytes([wire[0] | 0x20]) + wire[1:] + b"\0\0\x03"
        arrivals.append(wire)
    for _ in range(data.draw(st.integers(0, 3))):
        at = data.draw(st.integers(0, len(arrivals)))
        arrivals.insert(
            at, data.draw(st.sampled_from([b"\x80\xc8" + bytes(26), b"\x80", arrivals[0]]))
        )
    swaps = data.draw(st.lists(st.integers(0, max(0, len(arrivals) - 2)), max_size=6))
    for i in swaps if len(arrivals) > 1 else []:
        arrivals[i], arrivals[i + 1] = arrivals[i + 1], arrivals[i]
    reference = ReceiveStream("PCMU", 0)
    pcm = b""
    for wire in arrivals:
        if is_rtcp(wire):
            continue
        try:
            pcm += reference.feed(parse_rtp(wire)).pcm
        except ValueError:
            continue
    pcm += reference.flush().pcm
    stream = ReceiveStream("PCMU", 0)
    mine = b""
    for wire in arrivals:
        fast = stream.feed_next(wire)
        if fast is not None:
            mine += fast
            continue
        if is_rtcp(wire):
            continue
        try:
            mine += stream.feed(parse_rtp(wire)).pcm
        except ValueError:
            continue
    assert mine + stream.flush().pcm == pcm
    assert stream.stats == reference.stats
