"""The home proxy's defences, driven with the fake KSR: body and media limits before
rtpengine, calls per source, in-dialog requests only for known dialogs, signed requests
to the workers, routes aimed at the workers, bans (pike, failed authentications), replay
protection, strict-source, trailing-dot domains, and rtpengine sessions released however
a call toward a worker ends."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from kemi.signing import verify
from tests.kemi.fake_ksr import (
    SDP,
    Contact,
    Credentials,
    FakeKamailio,
    Reply,
    Request,
    sip_request,
)
from tests.kemi.script import load_script
from tests.kemi.test_proxy import (
    ALICE,
    ALL_ON,
    BOB,
    CALL_ID,
    DOMAIN,
    WORKER1,
    WORKER2,
    app_param,
    failure,
    invite,
    only_relay,
    reply,
    route,
)

SECRET = "lab-secret-0123456789"
EVE = "sip:eve@elsewhere.example"
ATTACKER = "192.0.2.66"


def make_kam(**defines: str) -> FakeKamailio:
    fake = FakeKamailio(defines={**ALL_ON, **defines})
    for user in ("alice", "bob"):
        fake.add_subscriber(f"{user}@{DOMAIN}", f"{user}-pw")
    fake.add_preference(f"bob@{DOMAIN}", "voicemail", "box")
    fake.add_worker(WORKER1)
    fake.add_worker(WORKER2)
    return fake


@pytest.fixture
def kam() -> FakeKamailio:
    return make_kam(VM_SECRET=f'"{SECRET}"', WITH_ANTIFLOOD="", VM_AUTH_FAIL_LIMIT="3")


def load(kam: FakeKamailio, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_script(kam, monkeypatch)


@pytest.fixture
def proxy_module(kam: FakeKamailio, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    module = load(kam, monkeypatch)
    yield module
    for name in kam.armed():
        assert hasattr(module.HomeProxy, name), f"the script armed a missing route {name}"


@pytest.fixture
def proxy(proxy_module: ModuleType) -> Any:
    return proxy_module.mod_init()


def logged(kam: FakeKamailio, text: str) -> list[str]:
    return [line for _, line in kam.logs if text in line]


def sdp_with_streams(count: int) -> str:
    head = "v=0\r\no=- 1 1 IN IP4 192.0.2.10\r\ns=-\r\nc=IN IP4 192.0.2.10\r\nt=0 0\r\n"
    return head + "".join(f"m=audio {4000 + 2 * i} RTP/AVP 0\r\n" for i in range(count))


# ----- point 3: what rtpengine is asked to hold -----


def test_an_invite_with_more_media_streams_than_allowed_is_refused_before_rtpengine(
    kam: FakeKamailio, proxy: Any
) -> None:
    request = invite(BOB, caller=EVE, auth=False)
    request.body = sdp_with_streams(248)
    route(kam, proxy, request)
    assert kam.replies == [Reply(488, "Too many media streams", "tm")]
    assert kam.relays == []
    assert kam.rtpengine == []
    assert logged(kam, "refused 488 Too many media streams")


def test_an_oversized_invite_body_is_refused_before_rtpengine(
    kam: FakeKamailio, proxy: Any
) -> None:
    request = invite(BOB, caller=EVE, auth=False)
    request.body_padding = 8192  # $bs: SDP plus 8 KB
    route(kam, proxy, request)
    assert kam.replies == [Reply(488, "Body too large", "tm")]
    assert kam.rtpengine == []


def test_a_body_that_is_not_text_is_refused(kam: FakeKamailio, proxy: Any) -> None:
    request = invite(BOB, caller=EVE, auth=False)
    request.binary_body = True
    route(kam, proxy, request)
    assert kam.replies == [Reply(488, "Unreadable body", "tm")]


def test_four_streams_pass_and_the_limits_are_defines(
    kam: FakeKamailio, monkeypatch: pytest.MonkeyPatch
) -> None:
    request = invite(BOB, caller=EVE, auth=False)
    request.body = sdp_with_streams(4)
    proxy = load(kam, monkeypatch).mod_init()
    route(kam, proxy, request)
    assert only_relay(kam).dst_uri == WORKER1
    strict = make_kam(VM_MAX_MEDIA="1")
    strict_proxy = load(strict, monkeypatch).mod_init()
    request.body = sdp_with_streams(2)
    route(strict, strict_proxy, request)
    assert strict.replies == [Reply(488, "Too many media streams", "tm")]


def test_a_reinvite_with_too_many_streams_is_refused_too(kam: FakeKamailio, proxy: Any) -> None:
    kam.add_dialog(CALL_ID)
    request = sip_request(
        "INVITE",
        "sip:voicemail@127.0.0.1:5080",
        from_=ALICE,
        to=BOB,
        to_tag="worker-tag",
        body=sdp_with_streams(9),
        headers=(("Route", "<sip:127.0.0.1;lr;vm=1>"),),
    )
    route(kam, proxy, request)
    assert kam.replies == [Reply(488, "Too many media streams", "sl")]
    assert kam.rtpengine == []


def test_unauthenticated_calls_per_source_are_limited(kam: FakeKamailio, proxy: Any) -> None:
    for n in range(9):
        kam.add_dialog(f"earlier-{n}", ("vm_source", "192.0.2.10"))
    route(kam, proxy, invite(BOB, caller=EVE, auth=False))  # the tenth: taken
    assert only_relay(kam).dst_uri == WORKER1
    assert ("vm_source", "192.0.2.10") in kam.dialogs[CALL_ID].profiles
    route(kam, proxy, invite(BOB, caller=EVE, auth=False, call_id="eleventh@192.0.2.10"))
    assert kam.replies == [Reply(486, "Too many calls from your address", "tm")]
    assert kam.relays == []
    assert kam.rtpengine == []
    assert logged(kam, "10 calls from 192.0.2.10")
    # another address, an authenticated caller, and a call after one ended all pass
    other = invite(BOB, caller=EVE, auth=False, call_id="other@192.0.2.11", src_ip="192.0.2.11")
    route(kam, proxy, other)
    assert only_relay(kam).dst_uri is not None
    route(kam, proxy, invite(BOB, call_id="alice@192.0.2.10"))
    assert kam.relays
    assert kam.dialogs["alice@192.0.2.10"].profiles == []
    kam.end_dialog("earlier-0")
    route(kam, proxy, invite(BOB, caller=EVE, auth=False, call_id="later@192.0.2.10"))
    assert kam.relays


def test_every_relayed_initial_invite_is_a_tracked_dialog(kam: FakeKamailio, proxy: Any) -> None:
    kam.register(f"bob@{DOMAIN}", Contact("sip:bob@192.0.2.20:5060"))
    route(kam, proxy, invite(BOB))
    assert kam.relays
    assert CALL_ID in kam.dialogs
    route(kam, proxy, invite("sip:x@elsewhere.example", call_id="out@192.0.2.10"))
    assert kam.relays
    assert "out@192.0.2.10" in kam.dialogs
    route(kam, proxy, invite(f"sip:1000@{DOMAIN}", call_id="box@192.0.2.10"))
    assert kam.relays
    assert "box@192.0.2.10" in kam.dialogs


# ----- rtpengine sessions released however the call ends -----


def test_a_cancelled_call_to_a_worker_releases_its_rtpengine_session(
    kam: FakeKamailio, proxy: Any
) -> None:
    route(kam, proxy, invite(BOB))
    failure(kam, proxy, 487, canceled=True)
    assert [c.operation for c in kam.rtpengine] == ["delete"]


def test_a_refused_or_timed_out_call_to_a_worker_releases_its_rtpengine_session(
    kam: FakeKamailio, proxy: Any
) -> None:
    route(kam, proxy, invite(BOB))
    failure(kam, proxy, 408, timed_out=True)  # worker 1 silent: worker 2 is offered
    assert [c.operation for c in kam.rtpengine] == ["offer"]
    failure(kam, proxy, 408, timed_out=True)  # worker 2 silent too: the call ends
    assert [c.operation for c in kam.rtpengine] == ["delete"]


def test_a_call_whose_every_branch_was_dropped_releases_its_session(
    kam: FakeKamailio, proxy: Any
) -> None:
    kam.rtpengine_available = False
    route(kam, proxy, invite(BOB))
    assert kam.replies == [Reply(503, "Voicemail unavailable", "tm")]
    assert [c.operation for c in kam.rtpengine] == ["offer", "delete"]


def test_a_phone_call_that_fails_without_voicemail_asks_nothing_of_rtpengine(
    kam: FakeKamailio, proxy: Any
) -> None:
    kam.register(f"bob@{DOMAIN}", Contact("sip:bob@192.0.2.20:5060"))
    route(kam, proxy, invite(BOB))
    failure(kam, proxy, 603)
    assert kam.rtpengine == []


# ----- point 4: in-dialog requests only for known dialogs -----


@pytest.mark.parametrize("caller", [ALICE, EVE])
def test_a_forged_in_dialog_invite_is_not_relayed(
    kam: FakeKamailio, proxy: Any, caller: str
) -> None:
    forged = sip_request(
        "INVITE",
        "sip:+4930123456@gateway.example",
        from_=caller,
        to="sip:+4930123456@gateway.example",
        to_tag="any-tag",
        body=SDP,
        headers=(("Route", "<sip:127.0.0.1;lr>"),),
        src_ip=ATTACKER,
    )
    route(kam, proxy, forged)
    assert kam.relays == []
    assert kam.rtpengine == []
    assert kam.replies == [Reply(404, "Not here", "sl")]
    assert logged(kam, f"from {ATTACKER}:5060 refused 404 Not here: in-dialog request")


def test_a_bye_of_a_known_dialog_is_relayed_and_one_of_an_ended_dialog_is_not(
    kam: FakeKamailio, proxy: Any
) -> None:
    bye = sip_request(
        "BYE",
        "sip:bob@192.0.2.20:5060",
        from_=ALICE,
        to=BOB,
        to_tag="bob-tag",
        headers=(("Route", "<sip:127.0.0.1;lr>"),),
    )
    kam.add_dialog(CALL_ID, vm_peer="sip:bob@192.0.2.20:5060")
    route(kam, proxy, bye)
    assert only_relay(kam).ruri == "sip:bob@192.0.2.20:5060"
    kam.end_dialog(CALL_ID)
    route(kam, proxy, bye)
    assert kam.replies == [Reply(404, "Not here", "sl")]


def test_an_ack_of_an_unknown_dialog_is_left_to_tm(kam: FakeKamailio, proxy: Any) -> None:
    ack = sip_request(
        "ACK",
        "sip:bob@192.0.2.20:5060",
        from_=ALICE,
        to=BOB,
        to_tag="t",
        headers=(("Route", "<sip:127.0.0.1;lr>"),),
    )
    route(kam, proxy, ack)  # no transaction either: dropped, no reply to an ACK
    assert kam.relays == []
    assert kam.replies == []
    ack.known_transaction = True
    route(kam, proxy, ack)
    assert len(kam.relays) == 1


# ----- point 5: strict-source -----


def test_the_offer_toward_a_worker_is_strict_source(
    kam: FakeKamailio, proxy_module: Any, proxy: Any
) -> None:
    route(kam, proxy, invite(BOB))
    [offer] = only_relay(kam).rtpengine
    assert "strict-source" in offer.flags.split()
    assert "media-handover" not in offer.flags


# ----- point 6: signed requests to the workers, routes aimed at them -----


def signature_fields(relay: Any) -> tuple[str, str, str]:
    return (
        CALL_ID,
        relay.header("P-App-Name").strip(),
        relay.header("P-App-Param").strip(),
    )


def test_every_branch_toward_a_worker_is_signed(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, invite(BOB, headers=(("P-App-Signature", "t=1; sig=" + "0" * 64),)))
    first = only_relay(kam)
    [value] = first.header_values("P-App-Signature")  # the client's is gone
    verify(SECRET, value, signature_fields(first), time.time())
    failure(kam, proxy, 503)
    second = only_relay(kam)
    assert second.dst_uri == WORKER2
    [again] = second.header_values("P-App-Signature")
    verify(SECRET, again, signature_fields(second), time.time())
    assert app_param(second)["user"] == "bob"


def test_without_a_secret_nothing_is_signed(monkeypatch: pytest.MonkeyPatch) -> None:
    kam = make_kam()
    proxy = load(kam, monkeypatch).mod_init()
    route(kam, proxy, invite(BOB, headers=(("P-App-Signature", "t=1; sig=" + "0" * 64),)))
    assert only_relay(kam).header_values("P-App-Signature") == []
    assert logged(kam, "VM_SECRET is not set")


def test_a_call_id_that_cannot_be_signed_is_not_sent(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, invite(BOB, call_id="a|b@192.0.2.10"))
    assert kam.relays == []
    assert kam.replies == [Reply(503, "Voicemail unavailable", "tm")]


@pytest.mark.parametrize(
    ("ruri", "routes", "reason"),
    [
        ("sip:voicemail@127.0.0.1:5080", (), "No route to a media worker"),
        ("sip:voicemail@127.0.0.1:5081;transport=tcp", (), "No route to a media worker"),
        (BOB, ("<sip:127.0.0.1:5080;lr>",), "No route to a media worker"),
        (BOB, ("<sip:127.0.0.1;lr>, <sip:127.0.0.1:5081;lr>",), "No route to a media worker"),
        (BOB, ("<sip:127.0.0.1;lr>", "<sip:gw.example;lr>"), "No relaying through this proxy"),
        (BOB, ("<sip:lab.example;lr>,<sip:gw.example;lr>",), "No relaying through this proxy"),
    ],
)
def test_requests_aimed_at_a_worker_or_through_this_proxy_are_refused(
    kam: FakeKamailio, proxy: Any, ruri: str, routes: tuple[str, ...], reason: str
) -> None:
    request = invite(ruri, headers=tuple(("Route", r) for r in routes))
    route(kam, proxy, request)  # alice, authenticated
    assert kam.replies == [Reply(403, reason, "sl")]
    assert kam.relays == []
    assert kam.rtpengine == []
    assert logged(kam, f"refused 403 {reason}")


def test_a_route_to_this_proxy_alone_is_followed_and_removed(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, invite(BOB, headers=(("Route", "<sip:127.0.0.1;lr>"),)))
    relay = only_relay(kam)
    assert relay.dst_uri == WORKER1
    assert relay.header_values("Route") == []


def test_the_workers_may_address_each_other(kam: FakeKamailio, proxy: Any) -> None:
    request = sip_request(
        "OPTIONS",
        "sip:127.0.0.1:5081",
        from_="sip:probe@127.0.0.1",
        src_ip="127.0.0.1",
        src_port=5080,
    )
    route(kam, proxy, request)
    assert not [r for r in kam.replies if r.status == 403 and "worker" in r.reason]


# ----- point 8: bans -----


def test_a_banned_source_is_dropped_without_an_answer(kam: FakeKamailio, proxy: Any) -> None:
    kam.htables["ipban"][ATTACKER] = 1
    route(kam, proxy, invite(BOB, caller=EVE, auth=False, src_ip=ATTACKER))
    assert kam.replies == []
    assert kam.relays == []
    assert kam.rtpengine == []


def test_a_flooding_source_is_banned_once_with_a_log_line(kam: FakeKamailio, proxy: Any) -> None:
    kam.flooding.add(ATTACKER)
    for n in range(3):
        route(kam, proxy, invite(BOB, caller=EVE, auth=False, src_ip=ATTACKER, call_id=f"f{n}"))
        assert kam.replies == []
        assert kam.relays == []
    assert kam.htables["ipban"] == {ATTACKER: 1}
    assert len(logged(kam, f"banning {ATTACKER} for 300 s: request flood")) == 1


def test_this_proxy_and_the_workers_are_never_banned(kam: FakeKamailio, proxy: Any) -> None:
    kam.flooding.update({"127.0.0.1"})
    kam.htables["ipban"]["127.0.0.1"] = 1
    route(kam, proxy, invite(BOB, src_ip="127.0.0.1"))
    assert only_relay(kam).dst_uri == WORKER1


def test_without_antiflood_pike_is_not_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    kam = make_kam()
    kam.flooding.add(ATTACKER)
    proxy = load(kam, monkeypatch).mod_init()
    route(kam, proxy, invite(BOB, caller=EVE, auth=False, src_ip=ATTACKER))
    assert kam.relays


def wrong_password(user: str, source: str, n: int) -> Any:
    request = invite(BOB, caller=f"sip:{user}", src_ip=source, call_id=f"guess-{n}@{source}")
    request.credentials = Credentials(user, valid=False)
    return request


def test_failed_authentications_from_one_source_ban_it(kam: FakeKamailio, proxy: Any) -> None:
    for n in range(2):
        route(kam, proxy, wrong_password(f"alice@{DOMAIN}", ATTACKER, n))
        assert kam.replies == [Reply(407, "Proxy Authentication Required", "auth")]
    route(kam, proxy, wrong_password(f"bob@{DOMAIN}", ATTACKER, 2))  # the third: banned
    assert kam.replies == []
    assert kam.htables["ipban"] == {ATTACKER: 1}
    [line] = logged(kam, f"banning {ATTACKER}")
    assert f"3 failed authentications from it, 1 as bob@{DOMAIN}" in line
    route(kam, proxy, invite(BOB, src_ip=ATTACKER, call_id="right@x"))  # even a right one
    assert kam.replies == []
    assert kam.relays == []
    route(kam, proxy, invite(BOB, call_id="elsewhere@x"))  # other phones keep working
    assert kam.relays


def test_failed_authentications_as_one_user_ban_each_source_past_the_limit(
    kam: FakeKamailio, proxy: Any
) -> None:
    sources = [f"192.0.2.{100 + n}" for n in range(4)]
    for n, source in enumerate(sources):
        route(kam, proxy, wrong_password(f"alice@{DOMAIN}", source, n))
    assert sorted(kam.htables["ipban"]) == sources[2:]
    assert logged(kam, f"3 as alice@{DOMAIN}")
    assert logged(kam, f"4 as alice@{DOMAIN}")


def test_a_replayed_credential_is_challenged_and_not_counted(kam: FakeKamailio, proxy: Any) -> None:
    for n in range(5):
        request = invite(f"sip:1000@{DOMAIN}", call_id=f"replay-{n}@x", src_ip=ATTACKER)
        request.credentials = Credentials(f"alice@{DOMAIN}", replayed=True)
        route(kam, proxy, request)
        assert kam.replies == [Reply(407, "Proxy Authentication Required", "auth")]
        assert kam.relays == []
    assert kam.htables["ipban"] == {}


def test_challenges_offer_qop_auth(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, invite(BOB, auth=False))
    assert kam.challenge_flags == [1]


# ----- point 9: a domain with a trailing dot is the same domain -----


def test_a_from_domain_with_a_trailing_dot_is_local_and_challenged(
    kam: FakeKamailio, proxy: Any
) -> None:
    route(kam, proxy, invite(BOB, caller=f"sip:alice@{DOMAIN}.", auth=False))
    assert kam.replies == [Reply(407, "Proxy Authentication Required", "auth")]
    assert kam.challenges == [DOMAIN]


def test_a_request_uri_with_a_trailing_dot_reaches_the_same_mailbox(
    kam: FakeKamailio, proxy: Any
) -> None:
    route(kam, proxy, invite(f"sip:bob@{DOMAIN}.", caller=EVE, auth=False))
    relay = only_relay(kam)
    assert relay.ruri == BOB
    assert (app_param(relay)["user"], app_param(relay)["domain"]) == ("bob", DOMAIN)


# ----- the limits guard the workers and rtpengine, not calls between phones -----


def test_a_call_between_phones_with_many_streams_is_relayed(kam: FakeKamailio, proxy: Any) -> None:
    """A video call (audio, two videos, BFCP, data) to a registered phone: rtpengine and
    the workers see nothing of it, so no media or body limit applies."""
    kam.register(f"bob@{DOMAIN}", Contact("sip:bob@192.0.2.20:5060"))
    request = invite(BOB)
    request.body = sdp_with_streams(5)
    request.body_padding = 9000
    route(kam, proxy, request)
    assert only_relay(kam).dst_uri is None
    assert kam.rtpengine == []


def test_a_phone_reinvite_with_many_streams_is_relayed(kam: FakeKamailio, proxy: Any) -> None:
    kam.add_dialog(CALL_ID, vm_peer="sip:bob@192.0.2.20:5060")
    request = sip_request(
        "INVITE",
        "sip:bob@192.0.2.20:5060",
        from_=ALICE,
        to=BOB,
        to_tag="bob-tag",
        body=sdp_with_streams(6),
        headers=(("Route", "<sip:127.0.0.1;lr>"),),
    )
    route(kam, proxy, request)
    assert kam.replies == []
    assert kam.relays


def test_calls_per_source_count_only_calls_to_voicemail(kam: FakeKamailio, proxy: Any) -> None:
    """A gateway delivers every inbound call from one address: its calls to phones are
    not limited (nor counted); the VM_MAX_CALLS_PER_SOURCE-th to voicemail is."""
    kam.register(f"alice@{DOMAIN}", Contact("sip:alice@192.0.2.21:5060"))
    for n in range(12):
        route(kam, proxy, invite(ALICE, caller=EVE, auth=False, call_id=f"phone-{n}@gw"))
        assert only_relay(kam).dst_uri is None
        assert kam.dialogs[f"phone-{n}@gw"].profiles == []
    for n in range(10):
        kam.add_dialog(f"earlier-{n}", ("vm_source", "192.0.2.10"))
    route(kam, proxy, invite(BOB, caller=EVE, auth=False, call_id="vm@gw"))
    assert [(r.status, r.reason) for r in kam.replies] == [
        (486, "Too many calls from your address")
    ]
    assert kam.relays == []
    assert kam.rtpengine == []


@pytest.mark.parametrize("method", ["INVITE", "MESSAGE", "BYE", "ACK"])
def test_a_callers_request_in_a_call_to_a_worker_goes_only_to_a_worker(
    kam: FakeKamailio, proxy: Any, method: str
) -> None:
    """The caller's own voicemail call is a known dialog; a request in it aimed at a
    gateway is refused (an ACK only dropped), one to the worker relayed."""
    kam.add_dialog(CALL_ID)
    fields: dict[str, Any] = {
        "from_": EVE, "to": BOB, "to_tag": "worker-tag",
        "headers": (("Route", "<sip:127.0.0.1;lr;vm=1>"),),
    }  # fmt: skip
    route(kam, proxy, sip_request(method, "sip:+4930123@198.51.100.7:5060", **fields))
    assert kam.relays == []
    assert kam.replies == ([] if method == "ACK" else [Reply(403, "Not in this dialog", "sl")])
    assert logged(kam, "not a worker")
    route(kam, proxy, sip_request(method, "sip:voicemail@127.0.0.1:5080", **fields))
    assert only_relay(kam).ruri == "sip:voicemail@127.0.0.1:5080"


def test_a_workers_request_goes_to_the_caller(kam: FakeKamailio, proxy: Any) -> None:
    kam.add_dialog(CALL_ID)
    bye = sip_request(
        "BYE",
        "sip:eve@198.51.100.7:5060",
        from_=BOB,
        to=EVE,
        to_tag="phone-tag",
        headers=(("Route", "<sip:127.0.0.1;lr;vm=1>"),),
        src_ip="127.0.0.1",
        src_port=5080,
    )
    route(kam, proxy, bye)
    assert only_relay(kam).ruri == "sip:eve@198.51.100.7:5060"
    assert [c.operation for c in kam.rtpengine] == ["delete"]


@pytest.mark.parametrize("reason", ["Bad signature", "Stale signature", "Unsigned request"])
def test_a_worker_refusing_the_signature_passes_the_call_to_the_next(
    kam: FakeKamailio, proxy: Any, reason: str
) -> None:
    """A worker with another secret or a clock far off answers every call 403 while its
    probes pass: the call goes on to the next worker, and the log says what to check."""
    route(kam, proxy, invite(BOB))
    failure(kam, proxy, 403, reason=reason)
    assert only_relay(kam).dst_uri == WORKER2
    assert [line for _, line in kam.logs if f"refused the signature ({reason})" in line]
    failure(kam, proxy, 403, reason=reason)  # the last worker too: its 403 goes back
    assert kam.relays == []
    assert [c.operation for c in kam.rtpengine] == ["delete"]


def test_a_workers_other_403_goes_back_to_the_caller(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, invite(BOB))
    failure(kam, proxy, 403, reason="Forbidden")
    assert kam.relays == []
    assert [c.operation for c in kam.rtpengine] == ["delete"]


# ----- in-dialog requests of a call to a phone go to the callee's Contact -----

GATEWAY = "sip:+4930123@198.51.100.7:5060"
ALICE_PHONE = "sip:alice@192.0.2.21:5060"


def in_dialog(method: str, ruri: str, *routes: str, from_: str = EVE, to: str = ALICE) -> Request:
    return sip_request(
        method,
        ruri,
        from_=from_,
        to=to,
        to_tag="alice-tag",
        headers=tuple(("Route", r) for r in ("<sip:127.0.0.1;lr>", *routes)),
    )


def ringing_call(kam: FakeKamailio, proxy: Any, *contacts: str) -> None:
    """A stranger's call to alice, each of ``contacts`` ringing (180 with a To-tag)."""
    kam.register(f"alice@{DOMAIN}", Contact(ALICE_PHONE))
    route(kam, proxy, invite(ALICE, caller=EVE, auth=False))
    assert only_relay(kam).on_reply == "ksr_onreply_peer"
    for contact in contacts:
        reply(kam, proxy, 180, to_tag="alice-tag", contact=f"<{contact}>;+sip.instance=x")


def refused(kam: FakeKamailio, method: str = "MESSAGE") -> bool:
    expected = [] if method == "ACK" else [Reply(403, "Not in this dialog", "sl")]
    return kam.relays == [] and kam.replies == expected and bool(logged(kam, "not ["))


@pytest.mark.parametrize("method", ["MESSAGE", "INVITE", "ACK", "BYE"])
def test_a_strangers_request_in_a_ringing_call_goes_only_to_the_phone(
    kam: FakeKamailio, proxy: Any, method: str
) -> None:
    ringing_call(kam, proxy, ALICE_PHONE)
    route(kam, proxy, in_dialog(method, GATEWAY))
    assert refused(kam, method)
    route(kam, proxy, in_dialog(method, ALICE_PHONE))
    assert only_relay(kam).ruri == ALICE_PHONE


def test_an_alias_or_a_further_route_toward_a_gateway_is_refused(
    kam: FakeKamailio, proxy: Any
) -> None:
    ringing_call(kam, proxy, ALICE_PHONE)
    route(kam, proxy, in_dialog("MESSAGE", ALICE_PHONE + ";alias=198.51.100.7~5060~1"))
    assert refused(kam)
    route(kam, proxy, in_dialog("MESSAGE", ALICE_PHONE, "<sip:198.51.100.7;lr>"))
    assert refused(kam)
    # an alias naming the phone's own address is what handle_ruri_alias follows
    route(kam, proxy, in_dialog("MESSAGE", ALICE_PHONE + ";alias=192.0.2.21~5060~1"))
    assert only_relay(kam).dst_uri == "sip:192.0.2.21:5060"


def test_no_contact_stored_no_relay(kam: FakeKamailio, proxy: Any) -> None:
    """A 180 without a Contact (or To-tag) names nobody: nothing goes anywhere."""
    kam.register(f"alice@{DOMAIN}", Contact(ALICE_PHONE))
    route(kam, proxy, invite(ALICE, caller=EVE, auth=False))
    reply(kam, proxy, 180, to_tag="alice-tag")
    reply(kam, proxy, 183, contact=f"<{ALICE_PHONE}>")
    route(kam, proxy, in_dialog("MESSAGE", ALICE_PHONE))
    assert refused(kam)


def test_forked_phones_any_ringing_one_then_only_the_answering_one(
    kam: FakeKamailio, proxy: Any
) -> None:
    desk = "sip:alice@192.0.2.22:5062;transport=udp"
    ringing_call(kam, proxy, ALICE_PHONE, desk)
    for contact in (ALICE_PHONE, desk):
        route(kam, proxy, in_dialog("MESSAGE", contact))
        assert only_relay(kam).ruri == contact
    assert kam.dialogs[CALL_ID].variables["vm_early"] == f"{ALICE_PHONE} {desk}"


def test_the_answer_and_a_reinvites_answer_move_the_target(kam: FakeKamailio, proxy: Any) -> None:
    desk = "sip:alice@192.0.2.22:5062"
    ringing_call(kam, proxy, ALICE_PHONE, desk)
    reply(kam, proxy, 200, to_tag="alice-tag", contact=f"<{desk}>")
    assert kam.dialogs[CALL_ID].variables["vm_peer"] == desk
    route(kam, proxy, in_dialog("ACK", ALICE_PHONE))
    assert refused(kam, "ACK")
    reinvite = in_dialog("INVITE", desk)
    route(kam, proxy, reinvite)
    assert only_relay(kam).on_reply == "ksr_onreply_refresh"
    moved = "sip:alice@192.0.2.23:5064"
    reply(kam, proxy, 200, to_tag="alice-tag", contact=f"<{moved}>")
    route(kam, proxy, in_dialog("BYE", desk))
    assert refused(kam, "BYE")
    route(kam, proxy, in_dialog("BYE", moved))
    assert only_relay(kam).ruri == moved


def test_the_callees_requests_go_back_to_the_caller(kam: FakeKamailio, proxy: Any) -> None:
    ringing_call(kam, proxy, ALICE_PHONE)
    bye = in_dialog("BYE", "sip:eve@192.0.2.10:5060", from_=ALICE, to=EVE)
    bye.headers = [
        (n, v.replace("from-tag-1", "alice-tag") if n == "From" else v) for n, v in bye.headers
    ]
    route(kam, proxy, bye)
    assert only_relay(kam).ruri == "sip:eve@192.0.2.10:5060"
    # the caller's source address, as a NAT alias of its Contact names it
    bye.ruri = "sip:eve@192.0.2.10:5060;alias=192.0.2.10~5060~1"
    route(kam, proxy, bye)
    assert only_relay(kam).dst_uri == "sip:192.0.2.10:5060"
    for target in (GATEWAY, "sip:eve@192.0.2.10:5060;alias=198.51.100.7~5060~1"):
        bye.ruri = target
        route(kam, proxy, bye)
        assert refused(kam, "BYE")


def test_a_proxy_on_the_callees_side_is_a_next_hop_of_the_callers_requests(
    kam: FakeKamailio, proxy: Any
) -> None:
    """alice calls another domain whose proxy record-routes: her ACK and BYE carry its
    Route (the next hop); a Route to anywhere else is refused."""
    remote = "sip:dave@203.0.113.9:5060"
    route(kam, proxy, invite("sip:dave@remote.example"))
    assert only_relay(kam).on_reply == "ksr_onreply_peer"
    record_route = ("<sip:203.0.113.1;lr>, <sip:127.0.0.1;lr>",)
    reply(kam, proxy, 200, to_tag="dave-tag", contact=f"<{remote}>", record_route=record_route)
    fields: dict[str, Any] = {"from_": ALICE, "to": "sip:dave@remote.example", "to_tag": "x"}
    for method in ("ACK", "BYE"):
        routes = (("Route", "<sip:127.0.0.1;lr>"), ("Route", "<sip:203.0.113.1;lr>"))
        route(kam, proxy, sip_request(method, remote, headers=routes, **fields))
        assert only_relay(kam).dst_uri == "sip:203.0.113.1;lr"
    routes = (("Route", "<sip:127.0.0.1;lr>"), ("Route", "<sip:198.51.100.7;lr>"))
    route(kam, proxy, sip_request("BYE", remote, headers=routes, **fields))
    assert refused(kam, "BYE")
