"""Message-waiting indication in the KEMI home proxy (WITH_MWI), with the fake KSR and
its presence: workers PUBLISH, authenticated local users SUBSCRIBE to their own mailbox,
a REGISTER refreshes the watchers; plus the pure decisions of kemi/mwi.py."""

from __future__ import annotations

import time
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from kemi.mwi import (
    MWI_EVENT,
    MwiVerdict,
    event_package,
    publication_fields,
    publish_verdict,
    relayed_notify_refused,
    same_address,
    subscribe_verdict,
)
from kemi.signing import sign
from tests.kemi.fake_ksr import (
    ACTIVE,
    TERMINATED,
    Contact,
    Credentials,
    FakeKamailio,
    Notify,
    Reply,
    Request,
    sip_request,
)
from tests.kemi.script import load_script

DOMAIN = "lab.example"
ALICE, BOB = f"sip:alice@{DOMAIN}", f"sip:bob@{DOMAIN}"
WORKER = ("127.0.0.1", 5080)
ALL_ON = {
    "WITH_AUTH": "",
    "WITH_VOICEMAIL": "",
    "WITH_RTPENGINE": "",
    "WITH_MWI": "",
    "MWI_REFRESH_ON_REGISTER": "1",
}
SUMMARY = "Messages-Waiting: yes\r\nMessage-Account: sip:bob@lab.example\r\n"
PRESENCE_OK = Reply(200, "OK", "presence")


def make_kam(defines: dict[str, str]) -> FakeKamailio:
    fake = FakeKamailio(defines=defines)
    for user in ("alice", "bob"):
        fake.add_subscriber(f"{user}@{DOMAIN}", f"{user}-pw")
    fake.add_worker(f"sip:{WORKER[0]}:{WORKER[1]};transport=udp")
    return fake


@pytest.fixture
def kam() -> FakeKamailio:
    return make_kam(ALL_ON)


def load_proxy(kam: FakeKamailio, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return load_script(kam, monkeypatch)


@pytest.fixture
def proxy(kam: FakeKamailio, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    module = load_proxy(kam, monkeypatch)
    yield module.mod_init()
    for name in kam.armed():
        assert hasattr(module.HomeProxy, name), f"the script armed a missing route {name}"


def route(kam: FakeKamailio, proxy: Any, request: Request) -> None:
    kam.script = proxy
    kam.receive(request)
    assert proxy.ksr_request_route(None) == 1


def publish(
    *,
    event: str = MWI_EVENT,
    source: tuple[str, int] = WORKER,
    etag: str | None = None,
    body: str = SUMMARY,
) -> Request:
    """A worker's PUBLISH of bob's mailbox state; ``etag``: a refresh or change of it."""
    return sip_request(
        "PUBLISH",
        BOB,
        from_=BOB,
        to=BOB,
        headers=(
            ("Event", event),
            ("Expires", "3600"),
            *((("SIP-If-Match", etag),) if etag else ()),
        ),
        body=body,
        content_type="application/simple-message-summary",
        src_ip=source[0],
        src_port=source[1],
    )


def subscribe(
    mailbox: str = BOB,
    *,
    subscriber: str = BOB,
    event: str = MWI_EVENT,
    auth: bool = True,
    **fields: Any,
) -> Request:
    return sip_request(
        "SUBSCRIBE",
        mailbox,
        from_=subscriber,
        to=mailbox,
        headers=(
            ("Event", event),
            ("Expires", "3600"),
            ("Accept", "application/simple-message-summary"),
        ),
        credentials=Credentials(subscriber.removeprefix("sip:")) if auth else None,
        **fields,
    )


# ----- PUBLISH -----


def test_a_worker_publishes_without_a_password(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, publish())
    [publication] = kam.presence.publications
    assert (publication.presentity, publication.event, publication.body) == (
        BOB,
        MWI_EVENT,
        SUMMARY,
    )
    assert kam.replies == [PRESENCE_OK]
    assert kam.challenges == []
    assert kam.relays == []


def test_a_workers_publish_reaches_bobs_phone(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, subscribe())
    route(kam, proxy, publish())
    etag = kam.presence.publications[0].etag
    route(kam, proxy, publish(etag=etag, body="Messages-Waiting: no\r\n"))
    assert [n.body for n in kam.presence.notifies] == ["", SUMMARY, "Messages-Waiting: no\r\n"]
    assert [p.body for p in kam.presence.publications] == ["Messages-Waiting: no\r\n"]


def test_nobody_else_publishes_mailbox_state(kam: FakeKamailio, proxy: Any) -> None:
    request = publish(source=("192.0.2.10", 5060))
    request.credentials = Credentials(f"bob@{DOMAIN}")  # not even bob himself
    route(kam, proxy, request)
    assert kam.replies == [Reply(403, "Only media workers publish mailbox state", "sl")]
    assert kam.presence.publications == []


def test_a_worker_on_another_port_is_not_a_worker(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, publish(source=(WORKER[0], WORKER[1] + 1)))
    assert kam.replies == [Reply(403, "Only media workers publish mailbox state", "sl")]
    assert kam.presence.publications == []


def test_only_message_summary_is_published(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, publish(event="presence"))
    assert kam.replies == [Reply(489, "Bad Event", "sl")]
    assert kam.presence.publications == []


# ----- SUBSCRIBE -----


def test_bob_subscribes_to_his_mailbox(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, subscribe())
    [subscription] = kam.presence.subscriptions
    assert (subscription.presentity, subscription.watcher) == (BOB, BOB)
    assert kam.replies == [PRESENCE_OK]
    assert kam.presence.notifies == [Notify(BOB, BOB, MWI_EVENT, "call-1@192.0.2.10", ACTIVE, "")]
    assert kam.relays == []


def test_a_subscriber_gets_the_published_state_at_once(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, publish())
    route(kam, proxy, subscribe())
    assert [n.body for n in kam.presence.notifies] == [SUMMARY]


def test_an_event_parameter_passes_the_script_but_presence_refuses_it(
    kam: FakeKamailio, proxy: Any
) -> None:
    """presence_mwi registers message-summary without parameters; presence matches
    the parameters too (the real Kamailio answers 489 as well)."""
    route(kam, proxy, subscribe(event="message-summary;id=1"))
    assert kam.replies == [Reply(489, "Bad Event", "presence")]
    assert kam.presence.subscriptions == []


def test_a_subscribe_without_credentials_is_challenged(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, subscribe(auth=False))
    assert kam.challenges == [DOMAIN]
    assert [r.status for r in kam.replies] == [407]
    assert kam.presence.subscriptions == []


def test_alice_cannot_watch_bobs_mailbox(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, subscribe(BOB, subscriber=ALICE))
    assert kam.replies == [Reply(403, "Not your mailbox", "sl")]
    assert kam.presence.subscriptions == []


def test_a_foreign_user_cannot_watch_a_mailbox(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, subscribe(BOB, subscriber="sip:mallory@evil.example", auth=False))
    assert kam.replies == [Reply(403, "Mailbox state needs authentication", "sl")]
    assert kam.presence.subscriptions == []


def test_other_event_packages_are_refused_without_a_challenge(
    kam: FakeKamailio, proxy: Any
) -> None:
    route(kam, proxy, subscribe(event="presence", auth=False))
    assert kam.replies == [Reply(489, "Bad Event", "sl")]
    assert kam.challenges == []
    assert kam.presence.subscriptions == []


def refresh(expires: str, to_tag: str) -> Request:
    """bob's phone re-SUBSCRIBEs in the dialog, to the Contact presence gave it."""
    request = subscribe("sip:voicemail@127.0.0.1:5060", to_tag=to_tag, auth=False)
    request.headers = [(n, expires if n == "Expires" else v) for n, v in request.headers]
    return request


def test_a_subscription_is_refreshed_and_ended_in_its_dialog(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, subscribe())
    to_tag = kam.presence.subscriptions[0].to_tag
    route(kam, proxy, refresh("1800", to_tag))
    assert kam.replies == [PRESENCE_OK]
    assert [s.expires for s in kam.presence.subscriptions] == [1800]
    route(kam, proxy, refresh("0", to_tag))
    assert kam.replies == [PRESENCE_OK]
    assert kam.presence.subscriptions == []
    assert [n.state for n in kam.presence.notifies] == [ACTIVE, ACTIVE, TERMINATED]


def test_a_refresh_of_an_unknown_subscription_is_refused_by_presence(
    kam: FakeKamailio, proxy: Any
) -> None:
    route(kam, proxy, refresh("3600", "pres-unknown"))
    assert kam.replies == [Reply(481, "Subscription does not exist", "presence")]


def test_without_auth_nobody_subscribes(monkeypatch: pytest.MonkeyPatch) -> None:
    kam = make_kam({"WITH_VOICEMAIL": "", "WITH_MWI": ""})
    proxy = load_proxy(kam, monkeypatch).mod_init()
    route(kam, proxy, subscribe())
    assert kam.replies == [Reply(403, "Mailbox state needs authentication", "sl")]
    assert kam.presence.subscriptions == []


def test_without_mwi_presence_is_never_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    kam = make_kam({"WITH_AUTH": "", "WITH_VOICEMAIL": ""})
    proxy = load_proxy(kam, monkeypatch).mod_init()
    route(kam, proxy, publish())
    assert PRESENCE_OK not in kam.replies
    route(kam, proxy, subscribe())
    assert PRESENCE_OK not in kam.replies
    assert kam.presence.publications == []
    assert kam.presence.subscriptions == []


# ----- REGISTER -----


def register(user: str) -> Request:
    uri = f"sip:{user}@{DOMAIN}"
    return sip_request(
        "REGISTER",
        f"sip:{DOMAIN}",
        from_=uri,
        to=uri,
        headers=(("Expires", "3600"),),
        credentials=Credentials(f"{user}@{DOMAIN}"),
    )


def test_a_registering_phone_gets_its_mailbox_state_again(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, publish())
    route(kam, proxy, subscribe())
    route(kam, proxy, register("bob"))
    assert kam.replies == [Reply(200, "OK", "registrar")]
    assert [n.body for n in kam.presence.notifies] == [SUMMARY, SUMMARY]


def test_no_refresh_without_watchers(kam: FakeKamailio, proxy: Any) -> None:
    route(kam, proxy, subscribe())
    route(kam, proxy, register("alice"))
    assert kam.replies == [Reply(200, "OK", "registrar")]
    assert len(kam.presence.notifies) == 1  # bob's subscription's first NOTIFY only


def test_the_refresh_on_register_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    kam = make_kam({**ALL_ON, "MWI_REFRESH_ON_REGISTER": "0"})
    proxy = load_proxy(kam, monkeypatch).mod_init()
    route(kam, proxy, subscribe())
    route(kam, proxy, register("bob"))
    assert len(kam.presence.notifies) == 1


# ----- pure decisions -----


@pytest.mark.parametrize(
    ("header", "package"),
    [("message-summary", "message-summary"), (" Message-Summary ;id=7", "message-summary"),
     ("", ""), (None, "")],
)  # fmt: skip
def test_event_package(header: str | None, package: str) -> None:
    assert event_package(header) == package


def test_addresses_compare_users_exactly_and_hosts_in_any_case() -> None:
    assert same_address("bob", "Lab.Example", "bob", "lab.example")
    assert not same_address("Bob", "lab.example", "bob", "lab.example")


def test_verdicts() -> None:
    assert publish_verdict(MWI_EVENT, from_worker=True) is MwiVerdict.PUBLISH
    assert publish_verdict(MWI_EVENT, from_worker=False) is MwiVerdict.NOT_A_WORKER
    assert publish_verdict("dialog", from_worker=True) is MwiVerdict.BAD_EVENT
    own = {"subscriber": ("bob", DOMAIN), "mailbox": ("bob", DOMAIN)}
    assert subscribe_verdict(MWI_EVENT, authenticated=True, **own) is MwiVerdict.SUBSCRIBE
    assert subscribe_verdict(MWI_EVENT, authenticated=False, **own) is MwiVerdict.NOT_AUTHENTICATED
    assert (
        subscribe_verdict(
            MWI_EVENT, authenticated=True, subscriber=("alice", DOMAIN), mailbox=("bob", DOMAIN)
        )
        is MwiVerdict.NOT_OWN_MAILBOX
    )


# ----- signed PUBLISH (VM_SECRET) and forged NOTIFY -----

SECRET = "lab-secret-0123456789"


@pytest.fixture
def signing_kam() -> FakeKamailio:
    return make_kam({**ALL_ON, "VM_SECRET": f'"{SECRET}"'})


@pytest.fixture
def signing_proxy(signing_kam: FakeKamailio, monkeypatch: pytest.MonkeyPatch) -> Any:
    return load_proxy(signing_kam, monkeypatch).mod_init()


def signed(request: Request, *, at: float | None = None, secret: str = SECRET) -> Request:
    fields = publication_fields(request.header("Call-ID") or "", request.ruri, request.body)
    value = sign(secret, int(time.time() if at is None else at), fields)
    request.headers.insert(-1, ("P-App-Signature", value))
    return request


def test_with_a_secret_a_signed_publish_is_taken(
    signing_kam: FakeKamailio, signing_proxy: Any
) -> None:
    route(signing_kam, signing_proxy, signed(publish()))
    assert signing_kam.replies == [PRESENCE_OK]
    assert [p.body for p in signing_kam.presence.publications] == [SUMMARY]


@pytest.mark.parametrize(
    ("make", "error"),
    [
        (lambda: publish(), "unsigned request"),
        (lambda: signed(publish(), at=time.time() - 120), "stale signature"),
        (lambda: signed(publish(), secret="another-secret-0123456"), "bad signature"),
        (lambda: signed(publish(body="Messages-Waiting: no\r\n")), None),
    ],
    ids=["unsigned", "stale", "other-secret", "body-after-signing"],
)
def test_with_a_secret_the_workers_address_alone_publishes_nothing(
    signing_kam: FakeKamailio, signing_proxy: Any, make: Any, error: str | None
) -> None:
    request = make()
    if error is None:  # signed, then the body changed on the way (a forged body)
        request.body = "Messages-Waiting: yes\r\nVoice-Message: 99/0\r\n"
        error = "bad signature"
    route(signing_kam, signing_proxy, request)
    assert signing_kam.replies == [Reply(403, "Mailbox state needs a valid signature", "sl")]
    assert signing_kam.presence.publications == []
    assert any(error in text for _, text in signing_kam.logs)


def test_with_a_secret_a_signed_publish_from_elsewhere_is_taken(
    signing_kam: FakeKamailio, signing_proxy: Any
) -> None:
    """The signature, not the address, is what counts (a worker on another host)."""
    route(signing_kam, signing_proxy, signed(publish(source=("192.0.2.80", 5080))))
    assert signing_kam.replies == [PRESENCE_OK]


def test_without_a_secret_a_warning_is_logged_at_start(kam: FakeKamailio, proxy: Any) -> None:
    assert any(level == "warn" and "VM_SECRET" in text for level, text in kam.logs)


@pytest.mark.parametrize("to_tag", [None, "phone-tag"])
def test_a_message_summary_notify_from_outside_never_reaches_a_phone(
    kam: FakeKamailio, proxy: Any, to_tag: str | None
) -> None:
    kam.register(f"bob@{DOMAIN}", Contact("sip:bob@192.0.2.20:5060"))
    notify = sip_request(
        "NOTIFY",
        BOB,
        from_=ALICE,
        to=BOB,
        to_tag=to_tag,
        headers=(
            ("Event", MWI_EVENT),
            ("Subscription-State", "active"),
            *((("Route", "<sip:127.0.0.1;lr>"),) if to_tag else ()),
        ),
        body="Messages-Waiting: yes\r\nVoice-Message: 99/0\r\n",
        content_type="application/simple-message-summary",
        credentials=Credentials(f"alice@{DOMAIN}"),
    )
    route(kam, proxy, notify)
    assert kam.relays == []
    assert kam.replies == [Reply(403, "Mailbox state comes from this proxy", "sl")]
    assert any("forged message-summary" in text for _, text in kam.logs)


def test_publish_verdicts_with_signing() -> None:
    ok = publish_verdict(MWI_EVENT, from_worker=False, signing=True, signature_error=None)
    assert ok is MwiVerdict.PUBLISH
    bad = publish_verdict(MWI_EVENT, from_worker=True, signing=True, signature_error="bad")
    assert bad is MwiVerdict.NOT_SIGNED
    assert relayed_notify_refused("NOTIFY", "message-summary;id=1")
    assert not relayed_notify_refused("NOTIFY", "dialog")
    assert not relayed_notify_refused("PUBLISH", "message-summary")
    assert same_address("bob", "lab.example.", "bob", "LAB.example")


def test_with_a_secret_a_publish_body_that_is_not_text_is_refused(
    signing_kam: FakeKamailio, signing_proxy: Any
) -> None:
    request = signed(publish())
    request.binary_body = True
    route(signing_kam, signing_proxy, request)
    assert signing_kam.replies == [Reply(403, "Mailbox state needs a valid signature", "sl")]
    assert any("unreadable body" in text for _, text in signing_kam.logs)
