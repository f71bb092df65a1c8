"""SIP message parsing and serialization, with real captures and fuzzing."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media_worker.sip.headers import Headers, canonical_name, split_commas
from media_worker.sip.message import (
    Request,
    Response,
    SipParseError,
    StreamParser,
    parse_message,
    response_to,
    serialize,
)

DATA = Path(__file__).parent.parent / "data" / "sip"


def capture(name: str) -> bytes:
    return (DATA / name).read_bytes()


MINIMAL = (
    b"OPTIONS sip:vm@127.0.0.1:5080 SIP/2.0\r\n"
    b"Via: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1\r\n"
    b"From: <sip:ping@127.0.0.1>;tag=1\r\n"
    b"To: <sip:vm@127.0.0.1>\r\n"
    b"Call-ID: abc\r\n"
    b"CSeq: 1 OPTIONS\r\n"
)


def test_baresip_invite() -> None:
    message = parse_message(capture("baresip-invite.txt"))
    assert isinstance(message, Request)
    assert (message.method, message.uri) == ("INVITE", "sip:vm@127.0.0.1:5099")
    assert message.call_id == "3d556aa832d9b617"
    assert message.cseq() == (20151, "INVITE")
    assert message.headers.get("via") == (
        "SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK3c8dbf29019d15b9;rport"
    )
    assert message.headers.get("Supported") == ""  # baresip sends it empty
    assert message.headers.get_all("Allow")[:3] == ["INVITE", "ACK", "BYE"]
    assert message.body.startswith(b"v=0\r\n")
    assert len(message.body) == 338


def test_round_trip_of_captures() -> None:
    for path in sorted(DATA.glob("*.txt")):
        message = parse_message(path.read_bytes())
        assert parse_message(serialize(message)) == message, path.name


def test_compact_forms_and_case() -> None:
    data = (
        b"INVITE sip:vm@h SIP/2.0\r\n"
        b"v: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/TCP b;branch=z9hG4bK2\r\n"
        b"f: <sip:a@h>;tag=x\r\nt: <sip:vm@h>\r\ni: id1\r\nCSEQ: 7 INVITE\r\n"
        b"m: <sip:a@10.0.0.1>\r\nc: application/sdp\r\nl: 3\r\n\r\nabc"
    )
    message = parse_message(data)
    assert message.headers.get("Call-ID") == "id1"
    assert message.headers.get_all("VIA") == [
        "SIP/2.0/UDP a;branch=z9hG4bK1",
        "SIP/2.0/TCP b;branch=z9hG4bK2",
    ]
    assert message.body == b"abc"
    assert b"Via: SIP/2.0/UDP a" in serialize(message)
    assert b"Call-ID: id1\r\n" in serialize(message)


def test_folded_header_and_tolerant_whitespace() -> None:
    data = (
        b"OPTIONS   sip:vm@h   SIP/2.0\r\n"
        b"Via  :  SIP/2.0/UDP a;branch=z9hG4bK1\r\n"
        b"Subject: one\r\n two\r\n\tthree\r\n"
        b"From:<sip:a@h>;tag=1\r\nTo: <sip:vm@h>\r\nCall-ID: x\r\nCSeq: 1 OPTIONS\r\n\r\n"
    )
    message = parse_message(data)
    assert isinstance(message, Request)
    assert message.uri == "sip:vm@h"
    assert message.headers.get("Subject") == "one two three"
    assert message.headers.get("From") == "<sip:a@h>;tag=1"


def test_response() -> None:
    data = (
        b"SIP/2.0 486 Busy Here\r\nVia: SIP/2.0/UDP a;branch=z9hG4bK1\r\n"
        b"From: <sip:a@h>;tag=1\r\nTo: <sip:b@h>;tag=2\r\nCall-ID: x\r\nCSeq: 5 INVITE\r\n"
        b"Content-Length: 0\r\n\r\n"
    )
    message = parse_message(data)
    assert isinstance(message, Response)
    assert (message.status, message.reason, message.cseq()) == (486, "Busy Here", (5, "INVITE"))


def test_datagram_without_content_length_takes_the_rest() -> None:
    message = parse_message(MINIMAL + b"\r\nbody")
    assert message.body == b"body"


def test_content_length_cuts_extra_bytes() -> None:
    message = parse_message(MINIMAL + b"Content-Length: 2\r\n\r\nbody")
    assert message.body == b"bo"


@pytest.mark.parametrize(
    ("data", "error", "answerable"),
    [
        (b"", "empty message", False),
        (b"\r\n\r\n", "empty message", False),
        (b"HELLO\r\n\r\n", "malformed request line 'HELLO'", False),
        (b"INV@TE sip:a@b SIP/2.0\r\n\r\n", "malformed method 'INV@TE'", False),
        (b"INVITE sip:a@b SIP/3.0\r\n\r\n", "unsupported SIP version 'SIP/3.0'", False),
        (b"INVITE nouri SIP/2.0\r\n\r\n", "malformed Request-URI 'nouri'", False),
        (b"SIP/2.0 99 Odd\r\n\r\n", "malformed status code '99'", False),
        (MINIMAL.replace(b"Call-ID: abc\r\n", b"") + b"\r\n", "missing Call-ID header", True),
        (MINIMAL.replace(b"Via", b"Xia") + b"\r\n", "missing Via header", False),
        (MINIMAL.replace(b"1 OPT", b"one OPT") + b"\r\n", "malformed CSeq 'one OPTIONS'", True),
        (MINIMAL.replace(b"1 OPTIONS", b"1 INVITE") + b"\r\n", "CSeq method INVITE does not match "
         "OPTIONS", True),
        (MINIMAL + b"Content-Length: x\r\n\r\n", "malformed Content-Length 'x'", True),
        (MINIMAL + b"Content-Length: 10\r\n\r\nabc", "Content-Length 10 exceeds the 3 body "
         "bytes received", True),
        (MINIMAL + b"Bad Header\r\n\r\n", "malformed header line 'Bad Header'", True),
        (MINIMAL + b"\xff: x\r\n\r\n", "header section is not UTF-8", True),
        (MINIMAL + b"Subject: caf\xe9\r\n\r\n", "header section is not UTF-8", True),
        (MINIMAL + b"X: 1\r\n" * 200 + b"\r\n", "more than 200 header fields", True),
        (MINIMAL.replace(b"Via: SIP/2.0/UDP", b"Via: SIP/9/UDP") + b"\r\n",
         "malformed Via 'SIP/9/UDP 127.0.0.1:5060;branch=z9hG4bK-1'", False),
        (MINIMAL.replace(b":5060;", b":99999;") + b"\r\n",
         "port out of range in '127.0.0.1:99999'", False),
        (MINIMAL.replace(b"CSeq: 1 ", "CSeq: 1\u00b2 ".encode()) + b"\r\n",
         "malformed CSeq '1\u00b2 OPTIONS'", True),
        (MINIMAL.replace(b"CSeq: 1 ", b"CSeq: 4294967296 ") + b"\r\n",
         "malformed CSeq '4294967296 OPTIONS'", True),
        (MINIMAL + "Content-Length: 5\u00b2\r\n\r\n".encode(), "malformed Content-Length "
         "'5\u00b2'", True),
        (MINIMAL + "Content-Length: \u0663\r\n\r\n".encode(), "malformed Content-Length "
         "'\u0663'", True),
        (MINIMAL + b"Content-Length: 70000\r\n\r\n", "Content-Length 70000 is not in 0-65535",
         True),
        ("SIP/2.0 2\u00b20 OK\r\n\r\n".encode(), "malformed status code '2\u00b20'", False),
        (b"SIP/2.0 700 Odd\r\n\r\n", "status code 700 is not in 100-699", False),
    ],
)  # fmt: skip
def test_malformed_messages(data: bytes, error: str, answerable: bool) -> None:
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    assert str(caught.value) == error
    assert (caught.value.request is not None) == answerable


def test_an_answer_to_non_utf8_bytes_echoes_them() -> None:
    data = MINIMAL.replace(b"Call-ID: abc", b"Call-ID: a\xffc") + b"\r\n"
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    assert caught.value.request is not None
    wire = serialize(response_to(caught.value.request, 400, str(caught.value)))
    assert wire.startswith(b"SIP/2.0 400 header section is not UTF-8\r\n")
    assert b"\r\nCall-ID: a\xffc\r\n" in wire


def test_beyond_the_field_limit_only_what_an_answer_needs_is_kept() -> None:
    data = MINIMAL.replace(b"Via:", b"X: 1\r\n" * 250 + b"Via:") + b"\r\n"
    with pytest.raises(SipParseError) as caught:
        parse_message(data)
    request = caught.value.request
    assert request is not None
    assert caught.value.status == 400
    assert len(request.headers) == 200 + 5
    assert request.headers.get("Via") == "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK-1"


def test_stream_requires_content_length() -> None:
    with pytest.raises(SipParseError, match="missing Content-Length over a stream"):
        parse_message(MINIMAL + b"\r\n", stream=True)


def test_too_large() -> None:
    with pytest.raises(SipParseError) as caught:
        parse_message(MINIMAL + b"X: " + b"a" * 70_000 + b"\r\n\r\n")
    assert caught.value.status == 513


def test_stream_framing_and_keepalive() -> None:
    invite = capture("baresip-invite.txt")
    options = MINIMAL + b"Content-Length: 0\r\n\r\n"
    stream = b"\r\n\r\n" + invite + options + invite
    parser = StreamParser()
    out: list[object] = []
    for i in range(0, len(stream), 7):  # arbitrary chunking
        out.extend(parser.feed(stream[i : i + 7]))
    assert out[0] == b"\r\n\r\n"
    assert [m.method for m in out[1:] if isinstance(m, Request)] == ["INVITE", "OPTIONS", "INVITE"]
    assert len(out) == 4


def test_stream_reports_bad_messages_and_carries_on() -> None:
    parser = StreamParser()
    out = parser.feed(MINIMAL + b"\r\n" + MINIMAL + b"Content-Length: 0\r\n\r\n")
    assert isinstance(out[0], SipParseError)
    assert str(out[0]) == "missing Content-Length over a stream transport"
    assert out[0].framing_lost
    assert isinstance(out[1], Request)


def test_stream_error_in_a_message_framed_by_its_length_keeps_the_framing() -> None:
    bad = MINIMAL + b"Subject: caf\xe9\r\nContent-Length: 0\r\n\r\n"
    out = StreamParser().feed(bad + MINIMAL + b"Content-Length: 0\r\n\r\n")
    assert isinstance(out[0], SipParseError)
    assert not out[0].framing_lost
    assert isinstance(out[1], Request)


def test_response_to_copies_the_right_headers() -> None:
    request = parse_message(capture("baresip-invite.txt"))
    assert isinstance(request, Request)
    response = response_to(request, 200, to_tag="srv1")
    assert response.reason == "OK"
    assert [name for name, _ in response.headers] == ["Via", "From", "To", "Call-ID", "CSeq"]
    assert response.headers.get("To") == "<sip:vm@127.0.0.1:5099>;tag=srv1"
    assert parse_message(serialize(response)) == response


def test_headers_helpers() -> None:
    headers = Headers([("v", "a"), ("Route", "<sip:p1;lr>, <sip:p2;lr>"), ("route", "<sip:p3>")])
    assert headers.get_all("Route") == ["<sip:p1;lr>", "<sip:p2;lr>", "<sip:p3>"]
    headers.set("Route", "<sip:only>")
    assert headers.get_all("route") == ["<sip:only>"]
    assert headers.remove("Route") == 1
    assert "Via" in headers
    assert canonical_name("call-id") == "Call-ID"
    assert canonical_name("X-Custom") == "X-Custom"
    assert split_commas('"Doe, John" <sip:j@h>, <sip:k@h;a="x,y">') == [
        '"Doe, John" <sip:j@h>',
        '<sip:k@h;a="x,y">',
    ]


@given(st.binary(max_size=2000))
def test_fuzz_parser_raises_only_its_error(data: bytes) -> None:
    with contextlib.suppress(SipParseError):
        parse_message(data)


_wire_text = st.text(
    alphabet=st.sampled_from(
        [*"0123456789 ;:=/.,<>@\r\n\t", "\u00b2", "\u0663", "\uff15", "\udcff", "\udc80", "a", "Z"]
    ),
    max_size=40,
)


@given(
    field=st.sampled_from(
        ["Via", "From", "To", "Call-ID", "CSeq", "Content-Length", "Max-Forwards", "Contact"]
    ),
    value=_wire_text,
    stream=st.booleans(),
)
def test_fuzz_field_values_with_odd_digits_and_bytes(field: str, value: str, stream: bool) -> None:
    """Non-ASCII digits and bytes that are not UTF-8 (surrogate-escaped) in each field."""
    lines = [
        line for line in MINIMAL.split(b"\r\n") if line and not line.startswith(field.encode())
    ]
    data = b"\r\n".join([*lines, field.encode() + b": " + value.encode("utf-8", "surrogateescape")])
    data += b"\r\nContent-Length: 0\r\n\r\n" if field != "Content-Length" else b"\r\n\r\n"
    try:
        message = parse_message(data, stream=stream)
    except SipParseError as exc:
        if exc.request is not None:  # whatever is answerable serializes
            serialize(response_to(exc.request, exc.status, str(exc)))
        return
    assert parse_message(serialize(message)) == message


@given(st.lists(st.binary(max_size=200), max_size=8))
def test_fuzz_stream_parser_raises_nothing(chunks: list[bytes]) -> None:
    parser = StreamParser()
    base = capture("baresip-invite.txt")
    for chunk in chunks:
        for item in parser.feed(chunk + base[: len(chunk)]):
            assert isinstance(item, Request | Response | SipParseError | bytes)


@given(st.binary(max_size=300))
def test_fuzz_mutated_capture(noise: bytes) -> None:
    base = capture("baresip-invite.txt")
    cut = len(noise) * 3 % len(base)
    for data in (base[:cut] + noise, noise + base[cut:], base[:cut] + noise + base[cut:]):
        try:
            message = parse_message(data)
        except SipParseError:
            continue
        assert parse_message(serialize(message)) == message


_token = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-.!%*_+`'~", min_size=1, max_size=12)
_value = st.text(
    alphabet=st.characters(blacklist_categories=("Cc", "Cs", "Zl", "Zp")), max_size=40
).map(str.strip)


@given(
    method=_token.map(str.upper),
    extra=st.lists(st.tuples(_token.map(lambda t: "X-" + t), _value), max_size=6),
    body=st.binary(max_size=200),
)
def test_round_trip_generated(method: str, extra: list[tuple[str, str]], body: bytes) -> None:
    headers = Headers(
        [
            ("Via", "SIP/2.0/UDP h;branch=z9hG4bK1"),
            ("From", "<sip:a@h>;tag=1"),
            ("To", "<sip:b@h>"),
            ("Call-ID", "c"),
            ("CSeq", f"1 {method}"),
            *extra,
        ]
    )
    message = Request(method, "sip:b@h", headers, body)
    assert parse_message(serialize(message)) == message
    assert parse_message(serialize(message), stream=True) == message


def test_kamailio_forwarded_invite() -> None:
    """An INVITE as Kamailio relays it to a worker: record-routed, two Vias, P-App-*."""
    message = parse_message(capture("kamailio-invite-p-app.txt"))
    assert isinstance(message, Request)
    assert message.headers.get_all("Via")[0].startswith("SIP/2.0/UDP 127.0.0.1:5262;branch=")
    assert len(message.headers.get_all("Via")) == 2
    assert message.headers.get_all("Record-Route") == [
        "<sip:127.0.0.1:5262;lr;ftag=6bb99402658f6253>"
    ]
    assert message.headers.get("p-app-name") == "voicemail"
    assert message.headers.get("P-App-Param") == (
        "usr=bob;dom=lab.example;mod=both;eml=bob@lab.example;lng=en"
    )
    assert message.headers.get("Max-Forwards") == "69"
    assert len(message.body) == 339
