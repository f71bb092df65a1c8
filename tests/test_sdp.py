"""SDP parsing, serialization and the worker's offer/answer."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media_worker.sdp import (
    PCMA,
    PCMU,
    TELEPHONE_EVENT,
    Codec,
    Direction,
    LocalMedia,
    SdpError,
    SessionDescription,
    negotiate,
)
from media_worker.sip.message import parse_message

DATA = Path(__file__).parent / "data"
LOCAL = LocalMedia("127.0.0.1", 40000, session_id=42)


def sdp(name: str) -> SessionDescription:
    return SessionDescription.parse((DATA / "sdp" / name).read_bytes())


def baresip_offer() -> SessionDescription:
    return SessionDescription.parse(
        parse_message((DATA / "sip" / "baresip-invite.txt").read_bytes()).body
    )


def test_parses_rtpengine_offer() -> None:
    offer = sdp("rtpengine-offer.sdp")
    [audio] = offer.media
    assert (audio.kind, audio.port, audio.proto, audio.formats) == (
        "audio",
        30000,
        "RTP/AVP",
        ["0", "8", "101"],
    )
    assert audio.codecs() == [PCMU, PCMA, TELEPHONE_EVENT]
    assert audio.direction is Direction.SENDRECV
    assert audio.attributes("rtcp") == ["30001"]
    assert offer.session_value("c") == "IN IP4 127.0.0.1"


@pytest.mark.parametrize("name", ["rtpengine-offer.sdp", "rtpengine-offer-transcoding.sdp"])
def test_round_trip(name: str) -> None:
    raw = (DATA / "sdp" / name).read_bytes()
    assert SessionDescription.parse(raw).serialize() == raw


def test_answer_to_rtpengine_offer() -> None:
    answer, params = LOCAL.answer(sdp("rtpengine-offer.sdp"))
    assert (params.remote_host, params.remote_port) == ("127.0.0.1", 30000)
    assert (params.codec, params.dtmf, params.direction) == (
        PCMU,
        TELEPHONE_EVENT,
        Direction.SENDRECV,
    )
    assert answer.serialize().decode() == (
        "v=0\r\n"
        "o=voicemail 42 1 IN IP4 127.0.0.1\r\n"
        "s=voicemail\r\n"
        "c=IN IP4 127.0.0.1\r\n"
        "t=0 0\r\n"
        "m=audio 40000 RTP/AVP 0 101\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\n"
        "a=fmtp:101 0-16\r\n"
        "a=ptime:20\r\n"
        "a=sendrecv\r\n"
    )


def test_transcoding_offer_leads_with_g722_but_we_take_g711() -> None:
    _, params = LOCAL.answer(sdp("rtpengine-offer-transcoding.sdp"))
    assert params.codec == PCMU


def test_offerers_order_wins() -> None:
    offer = baresip_offer()
    offer.media[0].formats = ["8", "0", "101"]
    _, params = LOCAL.answer(offer)
    assert params.codec == PCMA
    _, params = LocalMedia("127.0.0.1", 1, 1, preferences=("PCMU",)).answer(offer)
    assert params.codec == PCMU


def test_dynamic_g711_payload_type() -> None:
    offer = SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        "m=audio 5000 RTP/AVP 96\r\na=rtpmap:96 PCMA/8000\r\n"
    )
    answer, params = LOCAL.answer(offer)
    assert params.codec == Codec(96, "PCMA")
    assert params.dtmf is None
    assert answer.media[0].formats == ["96"]


@pytest.mark.parametrize(
    ("direction", "ours", "remote_host"),
    [
        ("sendonly", Direction.RECVONLY, None),
        ("recvonly", Direction.SENDONLY, "10.0.0.1"),
        ("inactive", Direction.INACTIVE, None),
        ("sendrecv", Direction.SENDRECV, "10.0.0.1"),
    ],
)
def test_directions(direction: str, ours: Direction, remote_host: str | None) -> None:
    offer = SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        f"m=audio 5000 RTP/AVP 0\r\na={direction}\r\n"
    )
    answer, params = LOCAL.answer(offer)
    assert params.direction is ours
    assert params.remote_host == remote_host
    assert answer.media[0].direction is ours


def test_old_style_hold() -> None:
    offer = SessionDescription.parse(
        "v=0\r\no=- 1 2 IN IP4 h\r\ns=-\r\nc=IN IP4 0.0.0.0\r\nt=0 0\r\nm=audio 5000 RTP/AVP 0\r\n"
    )
    _, params = LOCAL.answer(offer)
    assert params.remote_host is None
    assert params.direction is Direction.RECVONLY


def test_other_streams_are_refused_with_port_zero() -> None:
    offer = SessionDescription.parse(
        "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 10.0.0.1\r\nt=0 0\r\n"
        "m=video 6000 RTP/AVP 96\r\na=rtpmap:96 VP8/90000\r\n"
        "m=audio 5000 RTP/AVP 0\r\n"
    )
    answer, _ = LOCAL.answer(offer)
    assert [(m.kind, m.port) for m in answer.media] == [("video", 0), ("audio", 40000)]


@pytest.mark.parametrize(
    ("body", "message", "status"),
    [
        ("v=0\r\nm=audio 5000 RTP/AVP 9\r\na=rtpmap:9 G722/8000\r\nc=IN IP4 h\r\n",
         "no common codec (offered: G722; we take PCMU, PCMA)", 488),
        ("v=0\r\nc=IN IP4 h\r\nm=audio 5000 RTP/SAVP 0\r\n", "unsupported media transport RTP/SAVP", 488),
        ("v=0\r\nc=IN IP4 h\r\nm=video 5000 RTP/AVP 96\r\n", "no audio stream in the SDP", 488),
        ("v=0\r\nm=audio 5000 RTP/AVP 0\r\n", "audio stream without a connection address (c=)", 400),
        ("v=0\r\nc=IN IP4\r\nm=audio 5000 RTP/AVP 0\r\n", "malformed connection line 'IN IP4'", 400),
        ("v=1\r\n", "SDP does not start with v=0", 400),
        ("v=0\r\nbogus\r\n", "SDP line 2 is not <type>=<value>: 'bogus'", 400),
        ("v=0\r\nm=audio x RTP/AVP 0\r\n", "SDP line 2: malformed media port 'x'", 400),
        ("v=0\r\nm=audio 5000\r\n", "SDP line 2: malformed m= line 'audio 5000'", 400),
        ("v=0\r\nm=audio 5\u00b2 RTP/AVP 0\r\n", "SDP line 2: malformed media port '5\u00b2'", 400),
        ("v=0\r\nm=audio \u0665000 RTP/AVP 0\r\n", "SDP line 2: malformed media port "
         "'\u0665000'", 400),
        ("v=0\r\nm=audio 65536 RTP/AVP 0\r\n", "SDP line 2: malformed media port '65536'", 400),
        ("v=0\r\nm=audio 5000/\u00b2 RTP/AVP 0\r\n", "SDP line 2: malformed media port "
         "'5000/\u00b2'", 400),
        ("v=0\r\nm=audio 5000 RTP/AVP " + "9" * 5000 + "\r\nc=IN IP4 h\r\n",
         "no common codec (offered: none; we take PCMU, PCMA)", 488),
        ("v=0\r\n\u00e9=x\r\n", "SDP line 2 is not <type>=<value>: '\u00e9=x'", 400),
    ],
)  # fmt: skip
def test_refusals(body: str, message: str, status: int) -> None:
    with pytest.raises(SdpError) as caught:
        negotiate(SessionDescription.parse(body))
    assert str(caught.value) == message
    assert caught.value.status == status


def test_late_offer() -> None:
    offer = LOCAL.offer()
    assert offer.media[0].codecs() == [PCMU, PCMA, TELEPHONE_EVENT]
    # The phone's answer to our offer settles the stream the same way.
    params, _ = negotiate(sdp("rtpengine-offer.sdp"))
    assert params.codec == PCMU


@pytest.mark.parametrize("digit", ["\u0660", "\u00b2", "\uff10", "\u2070"])
def test_non_ascii_digits_are_no_payload_types(digit: str) -> None:
    """'\u0660' is int() 0 (PCMU) and '\u00b2' passes isdigit(): neither is a payload type."""
    offer = SessionDescription.parse(
        f"v=0\r\nc=IN IP4 h\r\nm=audio 5000 RTP/AVP {digit} 8 9{digit}\r\n"
        f"a=rtpmap:9{digit} PCMU/8000\r\na=rtpmap:8 PCMA/8{digit}00\r\n"
        f"a=ptime:2{digit}\r\n"
    )
    assert offer.media[0].codecs() == [PCMA]  # static 8; its odd rtpmap is ignored
    params, _ = negotiate(offer)
    assert (params.codec, params.ptime) == (PCMA, 20)


@given(st.text(max_size=300))
def test_fuzz_parse_raises_only_sdp_errors(text: str) -> None:
    with contextlib.suppress(SdpError):
        negotiate(SessionDescription.parse(text))


_odd = st.sampled_from(
    ["0", "8", "101", "5000", "\u00b2", "\u0663", "\uff18", "99999", "", "/", " "]
)
_field = st.lists(_odd, min_size=1, max_size=3).map("".join)


@given(
    port=_field,
    formats=st.lists(_field, min_size=1, max_size=4),
    rtpmap=st.tuples(_field, st.sampled_from(["PCMU", "PCMA", "telephone-event"]), _field),
    ptime=_field,
    raw=st.booleans(),
)
def test_fuzz_numbers_in_an_offer(
    port: str, formats: list[str], rtpmap: tuple[str, str, str], ptime: str, raw: bool
) -> None:
    """Offers shaped like real ones whose numbers hold odd digits: only SdpError escapes,
    and whatever is accepted can be answered and serialized."""
    text = (
        f"v=0\r\nc=IN IP4 192.0.2.1\r\nm=audio {port} RTP/AVP {' '.join(formats)}\r\n"
        f"a=rtpmap:{rtpmap[0]} {rtpmap[1]}/{rtpmap[2]}\r\na=ptime:{ptime}\r\n"
        f"a=fmtp:{rtpmap[0]} 0-{ptime}\r\n"
    )
    try:
        offer = SessionDescription.parse(text.encode() if raw else text)
        answer, params = LOCAL.answer(offer)
    except SdpError:
        return
    assert 0 < params.remote_port <= 65535
    assert 1 <= params.ptime <= 1000
    assert SessionDescription.parse(answer.serialize()).media[0].port == LOCAL.port
