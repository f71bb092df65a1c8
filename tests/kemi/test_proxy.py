"""The KEMI routes of kemi/proxy.py driven with the fake KSR: what the home proxy does
with REGISTER, calls to registered and unregistered users, the access numbers, client
P-App-* headers, and the failure routes toward phones and media workers."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from types import ModuleType
from typing import Any

import pytest

from kemi.names import ANSWER_FROM_WORKER, OFFER_TO_WORKER, VM_FLT_OFFERED
from tests.kemi.fake_ksr import (
    SDP,
    Contact,
    Credentials,
    FakeKamailio,
    Relay,
    Reply,
    Request,
    sip_request,
)
from tests.kemi.script import load_script

DOMAIN = "lab.example"
ALICE, BOB = f"sip:alice@{DOMAIN}", f"sip:bob@{DOMAIN}"
WORKER1, WORKER2 = "sip:127.0.0.1:5080;transport=udp", "sip:127.0.0.1:5081;transport=udp"
ALL_ON = {"WITH_AUTH": "", "WITH_VOICEMAIL": "", "WITH_RTPENGINE": "", "WITH_MWI": ""}
CALL_ID = "call-1@192.0.2.10"  # sip_request's default


@pytest.fixture
def kam() -> FakeKamailio:
    """Users alice (box, no email) and bob (both, with email), two media workers."""
    fake = FakeKamailio(defines={**ALL_ON, "VM_NO_ANSWER_TIMEOUT": "25"})
    for user in ("alice", "bob"):
        fake.add_subscriber(f"{user}@{DOMAIN}", f"{user}-pw")
    fake.add_preference(f"alice@{DOMAIN}", "voicemail", "box")
    fake.add_preference(f"bob@{DOMAIN}", "voicemail", "both")
    fake.add_preference(f"bob@{DOMAIN}", "email", "bob@mail.example")
    fake.add_preference(f"bob@{DOMAIN}", "lang", "de")
    fake.add_worker(WORKER1)
    fake.add_worker(WORKER2)
    return fake


@pytest.fixture
def proxy_module(kam: FakeKamailio, monkeypatch: pytest.MonkeyPatch) -> Iterator[ModuleType]:
    """kemi.proxy imported against this test's fake KSR (reloaded, so nothing leaks)."""
    module = load_script(kam, monkeypatch)
    yield module
    for name in kam.armed():
        assert hasattr(module.HomeProxy, name), f"the script armed a missing route {name}"


@pytest.fixture
def proxy(proxy_module: ModuleType) -> Any:
    return proxy_module.mod_init()


def invite(
    to: str,
    *,
    caller: str = ALICE,
    auth: bool = True,
    headers: tuple[tuple[str, str], ...] = (),
    **fields: Any,
) -> Request:
    user = caller.removeprefix("sip:")
    return sip_request(
        "INVITE",
        to,
        from_=caller,
        body=SDP,
        headers=headers,
        credentials=Credentials(user) if auth else None,
        **fields,
    )


def route(kam: FakeKamailio, proxy: Any, request: Request) -> None:
    kam.script = proxy  # tm runs the branch routes of its t_relay
    kam.receive(request)
    assert proxy.ksr_request_route(None) == 1


def failure(kam: FakeKamailio, proxy: Any, status: int, **context: Any) -> str:
    kam.script = proxy
    name = kam.failure(status, **context)
    assert getattr(proxy, name)(None) == 1
    return name


def reply(kam: FakeKamailio, proxy: Any, status: int, **fields: Any) -> str:
    name = kam.reply(status, **fields)
    assert getattr(proxy, name)(None) == 1
    return name


def only_relay(kam: FakeKamailio) -> Relay:
    assert kam.replies == []
    [relay] = kam.relays
    return relay


def p_app_headers(headers: Iterable[tuple[str, str]]) -> list[str]:
    return [n for n, _ in headers if n.lower().startswith("p-app-")]


def assert_to_worker(relay: Relay, dst_uri: str, *, app: str = "voicemail") -> None:
    """A branch toward a worker: headers, Record-Route param and offer, once each."""
    assert relay.dst_uri == dst_uri
    assert relay.on_branch == "ksr_branch_worker"
    assert relay.header_values("P-App-Name") == [app]
    assert len(relay.header_values("P-App-Param")) == 1
    assert relay.record_route
    assert relay.rr_params == (";vm=1",)
    assert [c.operation for c in relay.rtpengine] == ["offer"]
    assert VM_FLT_OFFERED in relay.flags
    assert relay.on_reply == "ksr_onreply_worker"
    assert relay.on_failure == "ksr_failure_worker"
    assert relay.fr_timers == (60_000, 2_000)


def assert_to_phone(relay: Relay) -> None:
    assert p_app_headers(relay.headers) == []
    assert relay.rr_params == ()
    assert relay.rtpengine == ()
    assert relay.on_branch is None


def app_param(relay: Relay) -> dict[str, str]:
    from media_worker.apps.params import parse_app_param

    [value] = relay.header_values("P-App-Param")
    known, extras = parse_app_param(value)
    assert extras == {}
    return known


# ----- REGISTER -----


def register(user: str, *, credentials: Credentials | None) -> Request:
    uri = f"sip:{user}@{DOMAIN}"
    return sip_request(
        "REGISTER",
        f"sip:{DOMAIN}",
        from_=uri,
        to=uri,
        headers=(("Expires", "3600"),),
        credentials=credentials,
    )


def test_register_without_credentials_is_challenged(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, register("alice", credentials=None))
    assert kam.replies == [Reply(401, "Unauthorized", "auth")]
    assert kam.challenges == [DOMAIN]
    assert kam.location == {}


def test_register_with_a_wrong_password_is_challenged(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, register("alice", credentials=Credentials(f"alice@{DOMAIN}", valid=False)))
    assert kam.replies == [Reply(401, "Unauthorized", "auth")]
    assert kam.location == {}


def test_register_as_someone_else_is_challenged(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, register("bob", credentials=Credentials(f"alice@{DOMAIN}")))
    assert kam.replies == [Reply(401, "Unauthorized", "auth")]


def test_authenticated_register_saves_the_contact(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, register("alice", credentials=Credentials(f"alice@{DOMAIN}")))
    assert kam.replies == [Reply(200, "OK", "registrar")]
    assert [c.uri for c in kam.location[f"alice@{DOMAIN}"]] == ["sip:alice@192.0.2.10:5060"]
    assert kam.relays == []


def test_register_behind_nat_is_fixed_and_flagged(kam: FakeKamailio, proxy: Any) -> None:
    request = register("alice", credentials=Credentials(f"alice@{DOMAIN}"))
    request.behind_nat = True
    route(kam, proxy, request)
    assert "fix_nated_register" in kam.nat_calls
    [contact] = kam.location[f"alice@{DOMAIN}"]
    assert contact.received == "sip:192.0.2.10:5060"


# ----- client P-App-* headers -----


@pytest.mark.parametrize("name", ["P-App-Param", "p-app-param", "P-APP-NAME", "P-App-Whatever"])
def test_client_p_app_headers_are_removed_from_a_relayed_call(
    kam: FakeKamailio, proxy: Any, name: str
) -> None:
    kam.register(f"bob@{DOMAIN}", Contact("sip:bob@192.0.2.20:5060"))
    route(kam, proxy, invite(BOB, headers=((name, "usr=carol"),)))
    relay = only_relay(kam)
    assert not [n for n, _ in relay.headers if n.lower().startswith("p-app-")]


@pytest.mark.parametrize("name", ["P-App-Param", "p-app-param", "P-app-NAME"])
def test_client_p_app_headers_are_removed_in_dialog(
    kam: FakeKamailio, proxy: Any, name: str
) -> None:
    request = sip_request(
        "BYE",
        "sip:voicemail@127.0.0.1:5080",
        from_=ALICE,
        to=BOB,
        to_tag="worker-tag",
        headers=(("Route", "<sip:127.0.0.1;lr;vm=1>"), (name, "usr=carol")),
    )
    kam.add_dialog(CALL_ID)
    route(kam, proxy, request)
    relay = only_relay(kam)
    assert not [n for n, _ in relay.headers if n.lower().startswith("p-app-")]
    assert [c.operation for c in kam.rtpengine] == ["delete"]


def test_in_dialog_request_without_our_route_is_refused(kam: FakeKamailio, proxy: Any) -> None:
    request = sip_request("BYE", "sip:bob@192.0.2.20", from_=ALICE, to=BOB, to_tag="t")
    route(kam, proxy, request)
    assert kam.replies == [Reply(404, "Not here", "sl")]
    assert kam.relays == []


# ----- calls to registered and unregistered users -----


def test_invite_to_an_unregistered_subscriber_goes_to_voicemail(
    kam: FakeKamailio, proxy_module: Any
) -> None:
    proxy = proxy_module.mod_init()
    route(kam, proxy, invite(BOB))
    relay = only_relay(kam)
    assert_to_worker(relay, WORKER1)
    assert relay.ruri == BOB
    assert app_param(relay) == {
        "user": "bob",
        "domain": DOMAIN,
        "sender": ALICE,
        "email": "bob@mail.example",
        "mode": "both",
        "language": "de",
        "typ": "vm",
    }
    assert [(c.operation, c.flags) for c in relay.rtpengine] == [("offer", OFFER_TO_WORKER)]
    assert "codec-mask-all" in relay.rtpengine[0].flags
    assert "codec-transcode-PCMU" in relay.rtpengine[0].flags
    assert kam.rtpengine == list(relay.rtpengine)
    # The branch route added them to the branch: the request tm keeps has none of them.
    assert p_app_headers(kam.transaction_headers()) == []


def test_voicemail_without_an_email_address_stores_in_the_box(
    kam: FakeKamailio, proxy: Any
) -> None:
    kam.add_subscriber(f"carol@{DOMAIN}", "carol-pw")
    kam.add_preference(f"carol@{DOMAIN}", "voicemail", "voicemail")
    route(kam, proxy, invite(f"sip:carol@{DOMAIN}"))
    assert app_param(only_relay(kam))["mode"] == "box"


def test_invite_to_an_unknown_user_is_not_found(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, invite(f"sip:nobody@{DOMAIN}"))
    assert kam.replies == [Reply(404, "Not Found", "tm")]
    assert kam.relays == []
    assert kam.sql_queries == []


def test_invite_to_a_registered_user_rings_with_a_no_answer_timer(
    kam: FakeKamailio, proxy: Any
) -> None:
    kam.register(f"bob@{DOMAIN}", Contact("sip:bob@192.0.2.20:5060"))
    route(kam, proxy, invite(BOB))
    relay = only_relay(kam)
    assert relay.ruri == "sip:bob@192.0.2.20:5060"
    assert relay.on_failure == "ksr_failure_phone"
    assert relay.fr_timers == (25_000, 0)
    assert_to_phone(relay)
    assert kam.rtpengine == []


def test_the_worker_timers_are_the_defines(
    kam: FakeKamailio, monkeypatch: pytest.MonkeyPatch
) -> None:
    """VM_WORKER_ANSWER_MS and VM_WORKER_FIRST_RESPONSE_MS, as on the native routes."""
    kam.defines.update(VM_WORKER_ANSWER_MS="30000", VM_WORKER_FIRST_RESPONSE_MS="500")
    proxy = load_script(kam, monkeypatch).mod_init()
    route(kam, proxy, invite(BOB))  # bob is not registered: voicemail
    assert only_relay(kam).fr_timers == (30_000, 500)


def test_no_phone_branch_carries_worker_headers(kam: FakeKamailio, proxy: Any) -> None:
    kam.register(
        f"bob@{DOMAIN}", Contact("sip:bob@192.0.2.20:5060"), Contact("sip:bob@192.0.2.21:5060")
    )
    route(kam, proxy, invite(BOB, headers=(("P-App-Name", "voicebox"),)))
    assert [r.ruri for r in kam.relays] == ["sip:bob@192.0.2.20:5060", "sip:bob@192.0.2.21:5060"]
    for relay in kam.relays:
        assert_to_phone(relay)


def test_a_caller_from_elsewhere_may_call_a_local_user(kam: FakeKamailio, proxy: Any) -> None:
    kam.register(f"bob@{DOMAIN}", Contact("sip:bob@192.0.2.20:5060"))
    route(kam, proxy, invite(BOB, caller="sip:eve@elsewhere.example", auth=False))
    assert only_relay(kam).ruri == "sip:bob@192.0.2.20:5060"


def test_a_local_caller_without_credentials_is_challenged(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, invite(BOB, auth=False))
    assert kam.replies == [Reply(407, "Proxy Authentication Required", "auth")]
    assert kam.relays == []


def test_relaying_for_strangers_is_refused(kam: FakeKamailio, proxy: Any) -> None:
    route(
        kam,
        proxy,
        invite("sip:x@elsewhere.example", caller="sip:eve@elsewhere.example", auth=False),
    )
    assert kam.replies == [Reply(403, "Not relaying", "sl")]


# ----- failure route toward the phones -----


def ring_bob(kam: FakeKamailio, proxy: Any, **invite_fields: Any) -> None:
    kam.register(f"bob@{DOMAIN}", Contact("sip:bob@192.0.2.20:5060"))
    route(kam, proxy, invite(BOB, **invite_fields))
    assert only_relay(kam).on_failure == "ksr_failure_phone"


@pytest.mark.parametrize(
    ("status", "timed_out"), [(486, False), (408, False), (480, False), (408, True)]
)
def test_busy_or_no_answer_goes_to_the_callees_voicemail(
    kam: FakeKamailio, proxy: Any, status: int, timed_out: bool
) -> None:
    ring_bob(kam, proxy)
    assert failure(kam, proxy, status, timed_out=timed_out) == "ksr_failure_phone"
    relay = only_relay(kam)
    assert relay.route_type == "failure"
    assert relay.ruri == BOB  # not the contact lookup() put in the R-URI
    assert_to_worker(relay, WORKER1)
    param = app_param(relay)
    assert (param["user"], param["domain"], param["mode"]) == ("bob", DOMAIN, "both")
    assert param["email"] == "bob@mail.example"
    assert [c.operation for c in kam.rtpengine] == ["offer"]


@pytest.mark.parametrize("status", [603, 604, 488])
def test_a_declined_call_does_not_go_to_voicemail(
    kam: FakeKamailio, proxy: Any, status: int
) -> None:
    ring_bob(kam, proxy)
    failure(kam, proxy, status)
    assert kam.relays == []
    assert kam.replies == []  # tm forwards the phone's own reply


def test_a_canceled_call_does_not_go_to_voicemail(kam: FakeKamailio, proxy: Any) -> None:
    ring_bob(kam, proxy)
    failure(kam, proxy, 487, canceled=True)
    assert kam.relays == []
    assert kam.sql_queries == []


def test_configured_statuses_replace_the_defaults(kam: FakeKamailio, proxy_module: Any) -> None:
    kam.defines["VM_ON_STATUS"] = '"486"'
    proxy = proxy_module.mod_init()
    ring_bob(kam, proxy)
    failure(kam, proxy, 480)
    assert kam.relays == []


# ----- access numbers -----


@pytest.mark.parametrize(("number", "app"), [("1000", "voicebox"), ("1001", "annrecorder")])
def test_access_numbers_use_the_callers_own_profile(
    kam: FakeKamailio, proxy: Any, number: str, app: str
) -> None:
    route(kam, proxy, invite(f"sip:{number}@{DOMAIN}"))
    relay = only_relay(kam)
    assert_to_worker(relay, WORKER1, app=app)
    assert relay.ruri == ALICE
    param = app_param(relay)
    assert (param["user"], param["domain"]) == ("alice", DOMAIN)
    assert "sender" not in param
    assert "email" not in param


@pytest.mark.parametrize("number", ["1000", "1001"])
def test_access_numbers_refuse_unauthenticated_callers(
    kam: FakeKamailio, proxy: Any, number: str
) -> None:
    route(
        kam,
        proxy,
        invite(f"sip:{number}@{DOMAIN}", caller="sip:alice@elsewhere.example", auth=False),
    )
    assert kam.replies == [Reply(403, "Mailbox access needs authentication", "sl")]
    assert kam.relays == []


def test_access_number_without_auth_switch_refuses(kam: FakeKamailio, proxy_module: Any) -> None:
    del kam.defines["WITH_AUTH"]
    proxy = proxy_module.mod_init()
    route(kam, proxy, invite(f"sip:1000@{DOMAIN}", auth=False))
    assert kam.replies == [Reply(403, "Mailbox access needs authentication", "sl")]


def test_without_auth_switch_nothing_is_relayed_to_a_foreign_domain(
    kam: FakeKamailio, proxy_module: Any
) -> None:
    del kam.defines["WITH_AUTH"]
    proxy = proxy_module.mod_init()
    route(kam, proxy, invite("sip:someone@elsewhere.example", auth=False))
    assert kam.replies == [Reply(403, "Not relaying", "sl")]
    assert kam.relays == []


def test_a_forged_p_app_param_gives_the_callers_own_mailbox(kam: FakeKamailio, proxy: Any) -> None:
    forged = (("P-App-Name", "voicebox"), ("P-App-Param", "usr=bob;dom=lab.example"))
    route(kam, proxy, invite(f"sip:1000@{DOMAIN}", headers=forged))
    relay = only_relay(kam)
    assert_to_worker(relay, WORKER1, app="voicebox")
    [param] = relay.header_values("P-App-Param")
    assert param.startswith("usr=alice;dom=lab.example")
    assert app_param(relay)["user"] == "alice"


def test_access_numbers_only_take_invites(kam: FakeKamailio, proxy: Any) -> None:
    request = sip_request(
        "MESSAGE", f"sip:1000@{DOMAIN}", from_=ALICE, credentials=Credentials(f"alice@{DOMAIN}")
    )
    route(kam, proxy, request)
    assert kam.replies == [Reply(405, "Method Not Allowed", "sl")]


# ----- the media workers -----


def call_unregistered_bob(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, invite(BOB))
    assert only_relay(kam).dst_uri == WORKER1


@pytest.mark.parametrize(("status", "timed_out"), [(500, False), (503, False), (408, True)])
def test_a_failed_worker_is_left_in_service_and_the_next_one_tried(
    kam: FakeKamailio, proxy: Any, status: int, timed_out: bool
) -> None:
    """One call's timeout or 5xx (a busy worker's 503) marks nothing: only the OPTIONS
    probes take a worker out."""
    call_unregistered_bob(kam, proxy)
    first = app_param(only_relay(kam))
    assert failure(kam, proxy, status, timed_out=timed_out) == "ksr_failure_worker"
    assert kam.ds_marks == []
    assert all(d.active for d in kam.dispatcher[1])
    assert [c.operation for c in kam.rtpengine] == ["offer"]  # the next branch's, no delete
    relay = only_relay(kam)
    assert relay.route_type == "failure"
    assert_to_worker(relay, WORKER2)  # the branch route added them again
    assert app_param(relay) == first
    assert relay.ruri == BOB


def test_a_failover_after_the_phone_did_not_answer_keeps_the_worker_headers(
    kam: FakeKamailio, proxy: Any
) -> None:
    """Phone (request route), worker 1 (failure route), worker 2 (the next failure
    route, which Kamailio starts without what the first one added)."""
    ring_bob(kam, proxy)
    assert_to_phone(only_relay(kam))
    failure(kam, proxy, 408, timed_out=True)
    to_worker1 = only_relay(kam)
    assert_to_worker(to_worker1, WORKER1)
    assert failure(kam, proxy, 503) == "ksr_failure_worker"
    assert p_app_headers(kam.current_headers()) == []  # failure route 2 starts clean
    to_worker2 = only_relay(kam)
    assert_to_worker(to_worker2, WORKER2)
    assert to_worker2.header_values("P-App-Param") == to_worker1.header_values("P-App-Param")
    assert to_worker2.ruri == BOB  # the mailbox, not the contact tm created the call with
    assert [(c.operation, c.flags) for c in to_worker2.rtpengine] == [
        (c.operation, c.flags) for c in to_worker1.rtpengine
    ]
    assert reply(kam, proxy, 200, body=SDP) == "ksr_onreply_worker"
    assert [c.operation for c in kam.rtpengine] == ["answer"]  # VM_FLT_OFFERED survived


def test_when_every_worker_failed_the_failure_passes_through(kam: FakeKamailio, proxy: Any) -> None:
    call_unregistered_bob(kam, proxy)
    failure(kam, proxy, 503)
    failure(kam, proxy, 503)
    assert kam.relays == []
    assert kam.ds_marks == []
    assert [c.operation for c in kam.rtpengine] == ["delete"]  # its ports are free now


@pytest.mark.parametrize("status", [400, 404, 486])
def test_a_workers_own_4xx_passes_through(kam: FakeKamailio, proxy: Any, status: int) -> None:
    call_unregistered_bob(kam, proxy)
    failure(kam, proxy, status)
    assert kam.relays == []
    assert kam.ds_marks == []
    assert [c.operation for c in kam.rtpengine] == ["delete"]


def test_no_worker_available_is_503(kam: FakeKamailio, proxy: Any) -> None:
    kam.dispatcher[1] = []
    route(kam, proxy, invite(BOB))
    assert kam.replies == [Reply(503, "Voicemail unavailable", "tm")]
    assert kam.relays == []


def test_an_inactive_worker_is_skipped(kam: FakeKamailio, proxy: Any) -> None:
    kam.dispatcher[1][0].active = False
    route(kam, proxy, invite(BOB))
    assert only_relay(kam).dst_uri == WORKER2


def test_rtpengine_refusing_the_offer_drops_the_branch(kam: FakeKamailio, proxy: Any) -> None:
    kam.rtpengine_available = False
    route(kam, proxy, invite(BOB))
    assert kam.relays == []
    [dropped] = kam.dropped_branches
    assert dropped.dst_uri == WORKER1
    assert [c.operation for c in dropped.rtpengine] == ["offer"]
    assert kam.replies == [Reply(503, "Voicemail unavailable", "tm")]  # t_relay failed
    assert any("rtpengine refused the offer" in text for _, text in kam.logs)


def test_rtpengine_refusing_the_failovers_offer_drops_that_branch(
    kam: FakeKamailio, proxy: Any
) -> None:
    call_unregistered_bob(kam, proxy)
    kam.rtpengine_available = False
    failure(kam, proxy, 503)
    assert kam.relays == []
    assert [r.dst_uri for r in kam.dropped_branches] == [WORKER2]


def test_without_rtpengine_switch_no_offer(kam: FakeKamailio, proxy_module: Any) -> None:
    del kam.defines["WITH_RTPENGINE"]
    proxy = proxy_module.mod_init()
    route(kam, proxy, invite(BOB))
    relay = only_relay(kam)
    assert relay.dst_uri == WORKER1
    assert relay.header_values("P-App-Name") == ["voicemail"]
    assert relay.rr_params == (";vm=1",)
    assert VM_FLT_OFFERED not in relay.flags
    assert kam.rtpengine == []
    reply(kam, proxy, 200, body=SDP)
    assert kam.rtpengine == []


def test_the_workers_answer_goes_to_rtpengine(kam: FakeKamailio, proxy_module: Any) -> None:
    proxy = proxy_module.mod_init()
    call_unregistered_bob(kam, proxy)
    reply(kam, proxy, 200, body=SDP)
    assert [(c.operation, c.flags) for c in kam.rtpengine] == [("answer", ANSWER_FROM_WORKER)]


def test_a_late_offer_from_the_worker_is_offered_to_rtpengine(
    kam: FakeKamailio, proxy: Any
) -> None:
    route(
        kam,
        proxy,
        sip_request("INVITE", BOB, from_=ALICE, credentials=Credentials(f"alice@{DOMAIN}")),
    )
    relay = only_relay(kam)
    assert relay.dst_uri == WORKER1
    assert relay.header_values("P-App-Name") == ["voicemail"]
    assert VM_FLT_OFFERED not in relay.flags
    assert relay.rtpengine == ()
    assert kam.rtpengine == []
    reply(kam, proxy, 200, body=SDP)
    assert [c.operation for c in kam.rtpengine] == ["offer"]


def test_a_provisional_reply_without_sdp_leaves_rtpengine_alone(
    kam: FakeKamailio, proxy: Any
) -> None:
    call_unregistered_bob(kam, proxy)
    reply(kam, proxy, 180)
    assert kam.rtpengine == []


def reinvite_to_worker(*, body: str = "") -> Request:
    return sip_request(
        "INVITE",
        WORKER1.replace("sip:", "sip:voicemail@"),
        from_=ALICE,
        to=BOB,
        to_tag="worker-tag",
        body=body,
        headers=(("Route", "<sip:127.0.0.1;lr;vm=1>"),),
    )


def test_a_reinvite_toward_a_worker_is_offered(kam: FakeKamailio, proxy: Any) -> None:
    kam.add_dialog(CALL_ID)
    route(kam, proxy, reinvite_to_worker(body=SDP))
    relay = only_relay(kam)
    assert [c.operation for c in kam.rtpengine] == ["offer"]
    assert VM_FLT_OFFERED in relay.flags
    assert relay.on_reply == "ksr_onreply_worker"
    assert p_app_headers(relay.headers) == []
    reply(kam, proxy, 200, body=SDP)
    assert [c.operation for c in kam.rtpengine] == ["answer"]


def test_a_reinvite_rtpengine_refuses_is_not_marked_offered(kam: FakeKamailio, proxy: Any) -> None:
    kam.add_dialog(CALL_ID)
    kam.rtpengine_available = False
    route(kam, proxy, reinvite_to_worker(body=SDP))
    relay = only_relay(kam)
    assert [c.operation for c in kam.rtpengine] == ["offer"]
    assert VM_FLT_OFFERED not in relay.flags


def test_a_reinvite_without_sdp_gets_the_workers_offer(kam: FakeKamailio, proxy: Any) -> None:
    kam.add_dialog(CALL_ID)
    route(kam, proxy, reinvite_to_worker())
    relay = only_relay(kam)
    assert kam.rtpengine == []
    assert VM_FLT_OFFERED not in relay.flags
    assert relay.on_reply == "ksr_onreply_worker"
    reply(kam, proxy, 200, body=SDP)
    assert [c.operation for c in kam.rtpengine] == ["offer"]


def test_an_ack_toward_a_worker_with_sdp_is_the_answer(kam: FakeKamailio, proxy: Any) -> None:
    kam.add_dialog(CALL_ID)
    ack = sip_request(
        "ACK",
        "sip:voicemail@127.0.0.1:5080",
        from_=ALICE,
        to=BOB,
        to_tag="worker-tag",
        body=SDP,
        headers=(("Route", "<sip:127.0.0.1;lr;vm=1>"),),
    )
    route(kam, proxy, ack)
    assert only_relay(kam).ruri == "sip:voicemail@127.0.0.1:5080"
    assert [c.operation for c in kam.rtpengine] == ["answer"]


@pytest.mark.parametrize(
    "user", ["bo'b", "bob' OR '1'='1", "bob\\", "bo b", 'bo"b', "bob;x=1"], ids=repr
)
def test_a_user_with_sql_characters_never_reaches_sql(
    kam: FakeKamailio, proxy: Any, user: str
) -> None:
    """The R-URI user is the caller's choice; say the subscriber check let it pass."""
    kam.add_subscriber(f"{user}@{DOMAIN}", "pw")
    route(kam, proxy, invite(f"sip:{user}@{DOMAIN}"))
    assert kam.sql_queries == []
    assert kam.replies == [Reply(500, "Voicemail profile unusable", "tm")]
    assert kam.relays == []


# ----- keepalives and plumbing -----


def test_options_to_the_proxy_is_answered(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, sip_request("OPTIONS", f"sip:{DOMAIN}", from_="sip:probe@127.0.0.1"))
    assert kam.replies == [Reply(200, "OK", "siputils")]


def test_too_many_hops(kam: FakeKamailio, proxy: Any) -> None:
    request = invite(BOB)
    request.headers = [(n, "0" if n == "Max-Forwards" else v) for n, v in request.headers]
    route(kam, proxy, request)
    assert kam.replies == [Reply(483, "Too Many Hops", "sl")]


def test_a_cancel_follows_its_transaction(kam: FakeKamailio, proxy: Any) -> None:
    cancel = sip_request("CANCEL", BOB, from_=ALICE, known_transaction=True)
    route(kam, proxy, cancel)
    assert only_relay(kam).ruri == BOB


@pytest.mark.parametrize("known", ["known_transaction", "in_process"])
def test_a_retransmitted_invite_is_not_routed_again(
    kam: FakeKamailio, proxy: Any, known: str
) -> None:
    """Known to tm (t_check_trans: 0), or still routed by another process (tmx
    t_precheck_trans: 1)."""
    request = invite(BOB)
    setattr(request, known, True)
    route(kam, proxy, request)
    assert kam.rtpengine == []
    assert kam.sql_queries == []
    assert kam.relays == []
    assert kam.replies == []
