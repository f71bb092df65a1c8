"""Admission of out-of-dialog requests: the proxy's signature, and the core's hook."""

from __future__ import annotations

import pytest

from kemi import signing
from media_worker.signature import (
    SignatureError,
    check_request,
    publish_fields,
    refusal_reason,
    request_fields,
    sign_publish,
)
from media_worker.sip.actions import IncomingCall, Rejection
from media_worker.sip.address import Peer
from media_worker.sip.message import Request, Response
from tests.sip.test_core import PHONE, core, in_dialog, invite, sent, statuses

SECRET = "unit-test-secret-0123456789"
NOW = 1_764_625_504
PARAM = "usr=bob;dom=lab.example;eml=bob@lab.example"


def signed_invite(secret: str = SECRET, t: int = NOW, param: str = PARAM) -> Request:
    request = invite()
    request.headers.add("P-App-Name", "voicemail")
    request.headers.add("P-App-Param", f" {param} ")  # surrounding blanks are not signed
    fields = (request.call_id, "voicemail", param)
    request.headers.add(signing.HEADER, signing.sign(secret, t, fields))
    return request


def problem(request: Request, now: float = NOW) -> str | None:
    try:
        check_request(SECRET, request, now)
    except SignatureError as exc:
        return refusal_reason(exc)
    return None


def test_a_fresh_signature_of_the_proxy_passes() -> None:
    request = signed_invite()
    assert request_fields(request) == (request.call_id, "voicemail", PARAM)
    assert problem(request) is None
    assert problem(request, NOW + 30) is None
    assert problem(request, NOW - 30) is None


def test_what_fails_and_why() -> None:
    unsigned = invite()
    assert problem(unsigned) == "Unsigned request"
    assert problem(signed_invite(), NOW + 31) == "Stale signature"
    assert problem(signed_invite(secret="another-secret-0123456789")) == "Bad signature"
    tampered = signed_invite()
    tampered.headers.set("P-App-Param", "usr=alice;dom=lab.example;eml=mallory@evil.example")
    assert problem(tampered) == "Bad signature"
    renamed = signed_invite()
    renamed.headers.set("P-App-Name", "voicebox")
    assert problem(renamed) == "Bad signature"
    added = invite()
    added.headers.add(signing.HEADER, signing.sign(SECRET, NOW, (added.call_id, "", "")))
    added.headers.add("P-App-Param", "pin=1234")  # a header the signature did not cover
    assert problem(added) == "Bad signature"
    garbage = invite()
    garbage.headers.add(signing.HEADER, "t=now; sig=yes")
    assert problem(garbage) == "Malformed signature"


def test_a_publish_is_signed_over_call_id_uri_and_body() -> None:
    request = Request("PUBLISH", "sip:bob@lab.example", body=b"Messages-Waiting: yes\r\n")
    request.headers.add("Call-ID", "pub-1")
    sign_publish(SECRET, request, NOW)
    sign_publish(SECRET, request, NOW + 1)  # a resend replaces the header
    assert len(request.headers.get_all(signing.HEADER)) == 1
    fields = publish_fields(request)
    assert fields == ("pub-1", "sip:bob@lab.example", "Messages-Waiting: yes\r\n")
    assert signing.verify(SECRET, request.headers.get(signing.HEADER), fields, NOW).timestamp == (
        NOW + 1
    )


def test_the_core_answers_a_rejection_in_a_transaction_before_any_call() -> None:
    seen: list[str] = []

    def admit(request: Request, source: Peer) -> Rejection | None:
        seen.append(request.method)
        return Rejection(503, "Service Unavailable", (("Retry-After", "5"),))

    sip = core(admit=admit)
    actions = sip.receive(invite(), PHONE, 0.0)
    assert statuses(actions) == [503]
    assert not [a for a in actions if isinstance(a, IncomingCall)]
    [response] = sent(actions)
    assert isinstance(response, Response)
    assert response.reason == "Service Unavailable"
    assert response.headers.get("Retry-After") == "5"
    assert sip.calls == {}
    assert statuses(sip.receive(invite(), PHONE, 0.1)) == [503]  # a retransmission
    assert seen == ["INVITE"]  # ... answered by the transaction, not admitted again
    assert statuses(sip.on_timer(0.6)) == [503]  # retransmitted until the ACK
    assert sip.receive(in_dialog("ACK", 20151, "id1", _branch_of(invite())), PHONE, 0.7) == []
    assert statuses(sip.on_timer(2.0)) == []  # the ACK stopped the retransmissions


def out_of_dialog(method: str, branch: str) -> Request:
    request = in_dialog(method, 1, "x", branch)
    request.headers.set("To", "<sip:vm@127.0.0.1:5099>")
    return request


def _branch_of(request: Request) -> str:
    via = request.headers.get("Via") or ""
    return via.split("branch=")[1].split(";")[0]


@pytest.mark.parametrize("method", ["OPTIONS", "CANCEL"])
def test_options_and_cancel_are_not_admitted(method: str) -> None:
    def admit(request: Request, source: Peer) -> Rejection | None:
        raise AssertionError(f"{request.method} must not be admitted")

    sip = core(admit=admit)
    request = out_of_dialog(method, "z9hG4bKoc1")
    assert statuses(sip.receive(request, PHONE, 0.0)) == [200 if method == "OPTIONS" else 481]


def test_in_dialog_requests_are_not_admitted() -> None:
    calls: list[str] = []

    def admit(request: Request, source: Peer) -> Rejection | None:
        calls.append(request.method)
        return None

    sip = core(admit=admit)
    sip.receive(invite(), PHONE, 0.0)
    sip.receive(in_dialog("INFO", 20152, "id1", "z9hG4bKinfo1"), PHONE, 1.0)
    sip.receive(in_dialog("BYE", 20153, "id1", "z9hG4bKbye1"), PHONE, 1.0)
    sip.receive(out_of_dialog("SUBSCRIBE", "z9hG4bKsub1"), PHONE, 1.0)
    assert calls == ["INVITE", "SUBSCRIBE"]
