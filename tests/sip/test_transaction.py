"""Transaction state machines and RFC 3261 timers, driven by a fake clock."""

from __future__ import annotations

import pytest

from media_worker.sip.errors import LocalProtocolError
from media_worker.sip.headers import Headers
from media_worker.sip.message import Request, Response, response_to
from media_worker.sip.transaction import (
    AckTimeout,
    Action,
    FinalResponse,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    RequestTimeout,
    Send,
    State,
    Transaction,
)


def request(method: str = "INVITE") -> Request:
    return Request(
        method,
        "sip:vm@127.0.0.1",
        Headers(
            [
                ("Via", "SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bK1"),
                ("From", "<sip:a@h>;tag=1"),
                ("To", "<sip:vm@h>"),
                ("Call-ID", "c1"),
                ("CSeq", f"1 {method}"),
            ]
        ),
    )


def drive(txn: Transaction, until: float) -> list[tuple[float, Action]]:
    """Fire the transaction's timers at their deadlines up to ``until``."""
    fired: list[tuple[float, Action]] = []
    while txn.deadline is not None and txn.deadline <= until:
        now = txn.deadline
        fired += [(now, action) for action in txn.on_timer(now)]  # type: ignore[attr-defined]
    return fired


def sends(fired: list[tuple[float, Action]]) -> list[float]:
    return [round(t, 3) for t, action in fired if isinstance(action, Send)]


def test_2xx_is_retransmitted_t1_doubling_to_t2_until_timer_h() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, reliable=False)
    assert txn.respond(response_to(invite, 100), 0.0) == [Send(response_to(invite, 100))]
    ok = response_to(invite, 200, to_tag="t")
    assert txn.respond(ok, 0.0) == [Send(ok)]
    assert txn.state is State.ACCEPTED
    fired = drive(txn, 100)
    assert sends(fired) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert fired[-1] == (32.0, AckTimeout())
    assert txn.terminated
    assert txn.deadline is None


def test_2xx_is_retransmitted_over_tcp_too() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, reliable=True)
    txn.respond(response_to(invite, 200, to_tag="t"), 0.0)
    assert sends(drive(txn, 4)) == [0.5, 1.5, 3.5]


def test_ack_stops_the_2xx() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, reliable=False)
    txn.respond(response_to(invite, 200, to_tag="t"), 0.0)
    assert sends(drive(txn, 2.0)) == [0.5, 1.5]
    assert txn.on_ack(2.2) == []
    assert txn.terminated
    assert drive(txn, 100) == []


def test_retransmitted_invite_gets_the_last_response() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, reliable=False)
    trying = response_to(invite, 100)
    txn.respond(trying, 0.0)
    assert txn.on_retransmission(0.3) == [Send(trying)]
    ok = response_to(invite, 200, to_tag="t")
    txn.respond(ok, 0.4)
    assert txn.on_retransmission(0.5) == [Send(ok)]


def test_failure_over_udp_timer_g_then_ack_and_timer_i() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, reliable=False)
    busy = response_to(invite, 486, to_tag="t")
    txn.respond(busy, 0.0)
    assert sends(drive(txn, 4.0)) == [0.5, 1.5, 3.5]
    txn.on_ack(4.0)
    assert txn.state is State.CONFIRMED
    assert txn.on_ack(4.1) == []  # a retransmitted ACK is absorbed
    assert txn.deadline == 9.0  # timer I = T4
    drive(txn, 9.0)
    assert txn.terminated


def test_failure_over_tcp_is_sent_once_and_times_out_without_ack() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, reliable=True)
    txn.respond(response_to(invite, 487, to_tag="t"), 0.0)
    fired = drive(txn, 100)
    assert sends(fired) == []
    assert txn.terminated  # timer H, no ACK: no AckTimeout for a failure
    assert not any(isinstance(a, AckTimeout) for _, a in fired)


def test_non_invite_server() -> None:
    bye = request("BYE")
    txn = NonInviteServerTransaction(bye, reliable=False)
    assert txn.on_retransmission(0.1) == []  # nothing sent yet
    ok = response_to(bye, 200)
    assert txn.respond(ok, 0.2) == [Send(ok)]
    assert txn.on_retransmission(1.0) == [Send(ok)]
    assert txn.deadline == pytest.approx(32.2)  # timer J
    drive(txn, 40)
    assert txn.terminated
    tcp = NonInviteServerTransaction(bye, reliable=True)
    tcp.respond(ok, 0.0)
    assert tcp.terminated  # timer J is 0 on reliable transports


def test_client_timer_e_and_f() -> None:
    bye = request("BYE")
    txn = NonInviteClientTransaction(bye, reliable=False)
    assert txn.start(0.0) == [Send(bye)]
    fired = drive(txn, 100)
    assert sends(fired) == [0.5, 1.5, 3.5, 7.5, 11.5, 15.5, 19.5, 23.5, 27.5, 31.5]
    assert fired[-1] == (32.0, RequestTimeout())
    assert txn.terminated


def test_client_provisional_then_final() -> None:
    bye = request("BYE")
    txn = NonInviteClientTransaction(bye, reliable=False)
    txn.start(0.0)
    assert sends(drive(txn, 0.6)) == [0.5]
    txn.on_response(Response(100, "Trying", bye.headers.copy()), 0.7)
    # The retransmission already due stays; then every T2 while proceeding.
    assert sends(drive(txn, 6.0)) == [1.5, 5.5]
    ok = Response(200, "OK", bye.headers.copy())
    assert txn.on_response(ok, 6.0) == [FinalResponse(ok)]
    assert txn.on_response(ok, 6.1) == []  # retransmitted final response
    assert txn.deadline == 11.0  # timer K
    drive(txn, 11)
    assert txn.terminated


def test_client_over_tcp_never_retransmits() -> None:
    txn = NonInviteClientTransaction(request("OPTIONS"), reliable=True)
    txn.start(0.0)
    fired = drive(txn, 100)
    assert fired == [(32.0, RequestTimeout())]


def test_misuse_names_state_and_event() -> None:
    invite = request()
    txn = InviteServerTransaction(invite, reliable=False)
    txn.respond(response_to(invite, 200, to_tag="t"), 0.0)
    with pytest.raises(LocalProtocolError) as caught:
        txn.respond(response_to(invite, 486, to_tag="t"), 0.1)
    assert str(caught.value) == (
        "InviteServerTransaction: 3xx-6xx from the TU is not allowed in state accepted"
    )
