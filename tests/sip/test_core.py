"""The UA core: call set-up, teardown, CANCEL, re-INVITE, refusals, timers."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from media_worker.sip.actions import (
    CallCancelled,
    CallConfirmed,
    CallEnded,
    IncomingCall,
    ReInvite,
    RequestDone,
    Transmit,
)
from media_worker.sip.address import Peer
from media_worker.sip.call import CALL, CallState
from media_worker.sip.core import SipCore
from media_worker.sip.errors import LocalProtocolError
from media_worker.sip.message import Request, Response, SipParseError, parse_message, serialize

DATA = Path(__file__).parent.parent / "data" / "sip"
PHONE = Peer("udp", "127.0.0.1", 5071)


def core(**kwargs: object) -> SipCore:
    counter = itertools.count(1)
    return SipCore("127.0.0.1", 5080, new_id=lambda: f"id{next(counter)}", **kwargs)  # type: ignore[arg-type]


def invite() -> Request:
    message = parse_message((DATA / "baresip-invite.txt").read_bytes())
    assert isinstance(message, Request)
    return message


def in_dialog(method: str, seq: int, to_tag: str, branch: str, body: bytes = b"") -> Request:
    text = (
        f"{method} sip:vm@127.0.0.1:5080 SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP 127.0.0.1:5071;branch={branch};rport\r\n"
        "Contact: <sip:alice-0x559d930e5a70@127.0.0.1:5071>\r\n"
        "Max-Forwards: 70\r\n"
        f"To: <sip:vm@127.0.0.1:5099>;tag={to_tag}\r\n"
        "From: <sip:alice@127.0.0.1>;tag=a7e00d47591c7e40\r\n"
        "Call-ID: 3d556aa832d9b617\r\n"
        f"CSeq: {seq} {method}\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    message = parse_message(text.encode() + body)
    assert isinstance(message, Request)
    return message


def sent(actions: Sequence[object]) -> list[Request | Response]:
    return [a.message for a in actions if isinstance(a, Transmit)]


def statuses(actions: Sequence[object]) -> list[int | str]:
    return [m.status if isinstance(m, Response) else m.method for m in sent(actions)]


def test_a_whole_call() -> None:
    sip = core()
    actions = sip.receive(invite(), PHONE, 0.0)
    assert statuses(actions) == [100]
    [event] = [a for a in actions if isinstance(a, IncomingCall)]
    call = event.call
    ok = sip.respond(call, 200, 0.1, body=b"v=0\r\n")
    [response] = sent(ok)
    assert isinstance(response, Response)
    assert response.headers.get("To") == "<sip:vm@127.0.0.1:5099>;tag=id1"
    assert response.headers.get("Contact") == "<sip:127.0.0.1:5080>"
    assert response.headers.get("Content-Type") == "application/sdp"
    assert parse_message(serialize(response)) == response
    ack = in_dialog("ACK", 20151, "id1", "z9hG4bKack1")
    assert [type(a) for a in sip.receive(ack, PHONE, 0.2)] == [CallConfirmed]
    assert call.state is CallState.CONFIRMED
    assert sip.on_timer(5.0) == []  # the 2xx is not retransmitted after the ACK
    bye = sip.receive(in_dialog("BYE", 20152, "id1", "z9hG4bKbye1"), PHONE, 3.0)
    assert statuses(bye) == [200]
    assert [a.reason for a in bye if isinstance(a, CallEnded)] == ["bye"]
    assert sip.calls == {}


def test_response_goes_to_rport_and_received() -> None:
    sip = core()
    actions = sip.receive(invite(), Peer("udp", "10.0.0.9", 40000), 0.0)
    [transmit] = [a for a in actions if isinstance(a, Transmit)]
    assert transmit.destination == Peer("udp", "10.0.0.9", 40000)
    via = transmit.message.headers.get("Via")
    assert via is not None
    assert via.endswith(";rport=40000;received=10.0.0.9")


def test_untrusted_source_is_refused_without_state() -> None:
    sip = core(trusted=lambda host: host == "127.0.0.1")
    actions = sip.receive(invite(), Peer("udp", "192.0.2.66", 5060), 0.0)
    [response] = sent(actions)
    assert isinstance(response, Response)
    assert (response.status, response.reason) == (403, "Forbidden (untrusted source)")
    assert sip.calls == {}
    assert sip.next_deadline() is None


def test_the_untrusted_refusal_goes_to_the_packet_source_not_the_via() -> None:
    sip = core(trusted=lambda host: host == "127.0.0.1")
    request = invite()
    request.headers.set("Via", "SIP/2.0/UDP 198.51.100.7:5060;branch=z9hG4bK-victim;rport=9")
    [transmit] = [a for a in sip.receive(request, Peer("udp", "192.0.2.66", 5070), 0.0)]
    assert isinstance(transmit, Transmit)
    assert transmit.destination == Peer("udp", "192.0.2.66", 5070)
    assert sip.receive(in_dialog("ACK", 1, "x", "z9hG4bK-a"), Peer("udp", "192.0.2.66", 1), 0) == []


def test_max_forwards_is_ascii_digits() -> None:
    sip = core()
    for value, status in (("1\u00b2", 400), ("\u0660", 400), ("256", 400), ("00", 483)):
        request = invite()
        request.headers.set("Max-Forwards", value)
        request.headers.set("Via", f"SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK-{status}{value}")
        [response] = sent(sip.receive(request, PHONE, 0.0))
        assert isinstance(response, Response)
        assert response.status == status, value
    assert sip.calls == {}


def test_an_invite_whose_record_route_we_could_not_use_is_refused() -> None:
    sip = core()
    request = invite()
    request.headers.add("Record-Route", "<mailto:x@y>")
    [response] = sent(sip.receive(request, PHONE, 0.0))
    assert isinstance(response, Response)
    assert (response.status, response.reason) == (400, "not a SIP URI: 'mailto:x@y'")
    assert sip.calls == {}


def test_retransmitted_invite_is_not_a_new_call() -> None:
    sip = core()
    sip.receive(invite(), PHONE, 0.0)
    again = sip.receive(invite(), PHONE, 0.2)
    assert statuses(again) == [100]
    assert not any(isinstance(a, IncomingCall) for a in again)
    assert len(sip.calls) == 1


def test_cancel_before_answer() -> None:
    sip = core()
    sip.receive(invite(), PHONE, 0.0)
    cancel = in_dialog("CANCEL", 20151, "", "z9hG4bK3c8dbf29019d15b9")
    cancel.headers.set("To", "<sip:vm@127.0.0.1:5099>")
    actions = sip.receive(cancel, PHONE, 0.5)
    assert statuses(actions) == [200, 487]
    [cancelled] = [a for a in actions if isinstance(a, CallCancelled)]
    assert cancelled.call.state is CallState.ENDED
    ack = in_dialog("ACK", 20151, "id1", "z9hG4bK3c8dbf29019d15b9")
    assert sip.receive(ack, PHONE, 0.6) == []  # absorbed by the INVITE transaction


def test_cancel_of_nothing_is_481() -> None:
    sip = core()
    cancel = in_dialog("CANCEL", 1, "", "z9hG4bKnothing")
    assert statuses(sip.receive(cancel, PHONE, 0.0)) == [481]


def test_unknown_dialog_bye_is_481() -> None:
    sip = core()
    assert statuses(sip.receive(in_dialog("BYE", 2, "nope", "z9hG4bKb"), PHONE, 0.0)) == [481]


def test_options_and_unsupported_methods() -> None:
    sip = core()
    options = in_dialog("OPTIONS", 1, "", "z9hG4bKo1")
    [ok] = sent(sip.receive(options, PHONE, 0.0))
    assert isinstance(ok, Response)
    assert (ok.status, ok.headers.get("Allow")) == (200, "INVITE, ACK, CANCEL, BYE, OPTIONS")
    [refused] = sent(sip.receive(in_dialog("SUBSCRIBE", 1, "", "z9hG4bKs1"), PHONE, 0.0))
    assert isinstance(refused, Response)
    assert (refused.status, refused.headers.get("Allow")) == (
        405,
        "INVITE, ACK, CANCEL, BYE, OPTIONS",
    )
    [unknown] = sent(sip.receive(in_dialog("FROBNICATE", 1, "", "z9hG4bKf1"), PHONE, 0.0))
    assert isinstance(unknown, Response)
    assert unknown.status == 501
    assert unknown.headers.get("Allow") is not None


def test_max_forwards_zero() -> None:
    sip = core()
    request = invite()
    request.headers.set("Max-Forwards", "0")
    assert statuses(sip.receive(request, PHONE, 0.0)) == [483]


def test_missing_ack_ends_the_call_with_bye() -> None:
    sip = core()
    [event] = [a for a in sip.receive(invite(), PHONE, 0.0) if isinstance(a, IncomingCall)]
    sip.respond(event.call, 200, 0.0, body=b"v=0\r\n")
    fired: list[object] = []
    while (deadline := sip.next_deadline()) is not None and deadline <= 40:
        fired += sip.on_timer(deadline)
    assert statuses(fired)[:10] == [200] * 10  # the 2xx retransmissions
    assert "BYE" in statuses(fired)
    assert [a.reason for a in fired if isinstance(a, CallEnded)] == ["ack-timeout"]


def test_we_hang_up_through_the_route_set() -> None:
    sip = core()
    request = invite()
    request.headers.add("Record-Route", "<sip:10.1.1.1:5060;lr>")
    [event] = [a for a in sip.receive(request, PHONE, 0.0) if isinstance(a, IncomingCall)]
    call = event.call
    [ok] = sent(sip.respond(call, 200, 0.0, body=b"v=0\r\n"))
    assert ok.headers.get("Record-Route") == "<sip:10.1.1.1:5060;lr>"
    sip.receive(in_dialog("ACK", 20151, "id1", "z9hG4bKa"), PHONE, 0.1)
    actions = sip.hangup(call, 1.0)
    [transmit] = [a for a in actions if isinstance(a, Transmit)]
    bye = transmit.message
    assert isinstance(bye, Request)
    assert transmit.destination == Peer("udp", "10.1.1.1", 5060)
    assert (bye.method, bye.uri) == ("BYE", "sip:alice-0x559d930e5a70@127.0.0.1:5071")
    assert bye.headers.get("Route") == "<sip:10.1.1.1:5060;lr>"
    assert bye.headers.get("From") == "<sip:vm@127.0.0.1:5099>;tag=id1"
    assert bye.headers.get("To") == "<sip:alice@127.0.0.1>;tag=a7e00d47591c7e40"
    ok_bye = Response(200, "OK", bye.headers.copy())
    done = sip.receive(ok_bye, PHONE, 1.1)
    assert done == [RequestDone(bye, ok_bye)]


def test_reinvite_for_hold() -> None:
    sip = core()
    [event] = [a for a in sip.receive(invite(), PHONE, 0.0) if isinstance(a, IncomingCall)]
    call = event.call
    sip.respond(call, 200, 0.0, body=b"v=0\r\n")
    sip.receive(in_dialog("ACK", 20151, "id1", "z9hG4bKa"), PHONE, 0.1)
    reinvite = in_dialog("INVITE", 20152, "id1", "z9hG4bKre1", b"v=0\r\na=sendonly\r\n")
    actions = sip.receive(reinvite, PHONE, 1.0)
    assert statuses(actions) == [100]
    assert [type(a) for a in actions if not isinstance(a, Transmit)] == [ReInvite]
    assert statuses(sip.answer_reinvite(call, 200, 1.1, body=b"v=0\r\na=recvonly\r\n")) == [200]
    assert sip.receive(in_dialog("ACK", 20152, "id1", "z9hG4bKa2"), PHONE, 1.2) == []
    assert call.reinvite is None
    # An old CSeq is refused.
    stale = in_dialog("INVITE", 20150, "id1", "z9hG4bKre2")
    [refused] = sent(sip.receive(stale, PHONE, 2.0))
    assert isinstance(refused, Response)
    assert refused.status == 500


def test_bye_before_answer_ends_the_call() -> None:
    sip = core()
    [event] = [a for a in sip.receive(invite(), PHONE, 0.0) if isinstance(a, IncomingCall)]
    actions = sip.hangup(event.call, 0.5)
    assert statuses(actions) == [480]
    assert sip.calls == {}


def test_call_through_kamailio_uses_its_record_route() -> None:
    message = parse_message((DATA / "kamailio-invite-p-app.txt").read_bytes())
    assert isinstance(message, Request)
    kamailio = Peer("udp", "127.0.0.1", 5262)
    sip = core()
    actions = sip.receive(message, kamailio, 0.0)
    [trying] = [a for a in actions if isinstance(a, Transmit)]
    assert trying.destination == Peer("udp", "127.0.0.1", 5262)
    assert len(trying.message.headers.get_all("Via")) == 2  # both Vias go back
    [event] = [a for a in actions if isinstance(a, IncomingCall)]
    [ok] = sent(sip.respond(event.call, 200, 0.0, body=b"v=0\r\n"))
    assert ok.headers.get("Record-Route") == "<sip:127.0.0.1:5262;lr;ftag=6bb99402658f6253>"
    ack = parse_message(
        b"ACK sip:127.0.0.1:5080 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5262;branch=z9hG4bKk1\r\n"
        b"From: <sip:alice@127.0.0.1>;tag=6bb99402658f6253\r\nTo: <sip:vm@127.0.0.1:5262>;tag=id1\r\n"
        b"Call-ID: 386cc9f2438a9184\r\nCSeq: 20621 ACK\r\nContent-Length: 0\r\n\r\n"
    )
    assert [type(a) for a in sip.receive(ack, kamailio, 0.1)] == [CallConfirmed]
    [bye] = [a for a in sip.hangup(event.call, 1.0) if isinstance(a, Transmit)]
    assert bye.destination == Peer("udp", "127.0.0.1", 5262)
    assert bye.message.headers.get("Route") == "<sip:127.0.0.1:5262;lr;ftag=6bb99402658f6253>"


_odd_text = st.lists(
    st.sampled_from(
        [*'0123456789 ;:=<>@.,"/-', "sip:", "tag", "\u00b2", "\u0663", "\udcff", "a", "[", "]"]
    ),
    max_size=12,
).map("".join)


@given(
    method=st.sampled_from(["INVITE", "ACK", "BYE", "CANCEL", "OPTIONS", "INFO", "REFER"]),
    to=st.one_of(st.just("<sip:vm@127.0.0.1>"), _odd_text),
    sender=st.one_of(st.just("<sip:a@h>;tag=1"), _odd_text),
    contact=st.one_of(st.just("<sip:a@127.0.0.1:5071>"), _odd_text),
    record_route=st.one_of(st.none(), _odd_text),
    max_forwards=st.one_of(st.just("70"), _odd_text),
    rport=st.one_of(st.just(";rport"), _odd_text.map(lambda t: ";rport=" + t)),
    trusted=st.booleans(),
)
def test_fuzz_every_framed_request_is_answered(
    method: str,
    to: str,
    sender: str,
    contact: str,
    record_route: str | None,
    max_forwards: str,
    rport: str,
    trusted: bool,
) -> None:
    """Whatever the header values, the core never raises on a parsed request and answers
    every one but ACK (a new INVITE with 100 Trying, for the application to finish)."""
    lines = [
        f"{method} sip:vm@127.0.0.1:5080 SIP/2.0",
        f"Via: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bK-f{rport}",
        f"From: {sender}",
        f"To: {to}",
        "Call-ID: fuzz",
        f"CSeq: 1 {method}",
        f"Max-Forwards: {max_forwards}",
        f"Contact: {contact}",
        *([f"Record-Route: {record_route}"] if record_route is not None else []),
        "Content-Length: 0",
    ]
    try:
        message = parse_message(
            ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape")
        )
    except SipParseError:
        return
    assert isinstance(message, Request)
    sip = core(trusted=lambda host: trusted)
    actions = sip.receive(message, PHONE, 0.0)
    answers = [m for m in sent(actions) if isinstance(m, Response)]
    if method == "ACK":
        assert answers == []
    else:
        assert answers, actions
        for answer in answers:
            serialize(answer)
    assert all(call.state is not CallState.ENDED for call in sip.calls.values())


def test_a_call_state_change_the_table_lacks_names_the_state_and_input() -> None:
    sip = core()
    [call] = [a.call for a in sip.receive(invite(), PHONE, 0.0) if isinstance(a, IncomingCall)]
    sip.respond(call, 200, 0.1)
    message = "call 3d556aa832d9b617: 2xx to the INVITE is not allowed in state answered"
    with pytest.raises(LocalProtocolError, match=message):
        sip.respond(call, 200, 0.2)
    assert call.state is CallState.ANSWERED


def test_every_call_state_has_its_row_and_an_ended_call_stays_ended() -> None:
    assert set(CALL) == set(CallState)
    assert all(isinstance(s, CallState) for row in CALL.values() for s in row.values())
    assert CALL[CallState.ENDED] == {}
