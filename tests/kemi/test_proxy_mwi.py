"""Message-waiting indication in the KEMI home proxy (WITH_MWI), with the fake KSR:
workers PUBLISH, authenticated local users SUBSCRIBE to their own mailbox, a REGISTER
refreshes the watchers; plus the pure decisions of kemi/mwi.py.

The fake implements neither the presence module nor dispatcher.ds_is_from_list, so this
file adds both to its KSR object, each call checked against the KEMI API file."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from kemi.mwi import (
    MWI_EVENT,
    MwiVerdict,
    event_package,
    publish_verdict,
    same_address,
    subscribe_verdict,
)
from tests.kemi.fake_ksr import (
    Credentials,
    FakeKamailio,
    Reply,
    Request,
    load_api,
    sip_request,
    uri_of,
    uri_user_host,
)

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
API = load_api()
TYPES = {"str": str, "int": int}


def kemi(module: str, func: Callable[..., int]) -> Callable[..., int]:
    """``func`` as KSR.<module>.<name>: positional arguments of the API file's types."""
    params, _ = API[(module, func.__name__)]
    types = [] if params == "none" else [TYPES[p.strip()] for p in params.split(",")]

    def call(*args: Any) -> int:
        assert [type(a) for a in args] == types, f"KSR.{module}.{func.__name__}{args}"
        return func(*args)

    return call


@dataclass
class Presence:
    """What the script asked of presence (each would answer the request itself)."""

    kam: FakeKamailio
    handled: list[tuple[str, str]] = field(default_factory=list)  # (function, R-URI)
    refreshed: list[tuple[str, str, int]] = field(default_factory=list)
    watched: set[tuple[str, str]] = field(default_factory=set)  # (presentity, event)

    def install(self) -> None:
        def handle_publish() -> int:
            self.handled.append(("handle_publish", self.kam.ruri))
            return 1

        def handle_subscribe() -> int:
            self.handled.append(("handle_subscribe", self.kam.ruri))
            return 1

        def pres_has_subscribers(uri: str, event: str) -> int:
            return 1 if (uri, event) in self.watched else -1

        def pres_refresh_watchers(uri: str, event: str, kind: int) -> int:
            self.refreshed.append((uri, event, kind))
            return 1

        def ds_is_from_list(set_id: int) -> int:
            source = (self.kam.request.src_ip, self.kam.request.src_port)
            for destination in self.kam.dispatcher.get(set_id, []):
                _, host = uri_user_host(uri_of(destination.uri))
                port = int(destination.uri.split(":")[2].split(";")[0])
                if (host, port) == source:
                    return 1
            return -1

        functions = (handle_publish, handle_subscribe, pres_has_subscribers, pres_refresh_watchers)
        presence = SimpleNamespace(**{f.__name__: kemi("presence", f) for f in functions})
        setattr(self.kam.ksr, "presence", presence)  # noqa: B010 - not in the fake's type
        setattr(self.kam.ksr.dispatcher, "ds_is_from_list", kemi("dispatcher", ds_is_from_list))  # noqa: B010


def make_kam(defines: dict[str, str]) -> tuple[FakeKamailio, Presence]:
    fake = FakeKamailio(defines=defines)
    for user in ("alice", "bob"):
        fake.add_subscriber(f"{user}@{DOMAIN}", f"{user}-pw")
    fake.add_worker(f"sip:{WORKER[0]}:{WORKER[1]};transport=udp")
    presence = Presence(fake)
    presence.install()
    return fake, presence


@pytest.fixture
def world() -> tuple[FakeKamailio, Presence]:
    return make_kam(ALL_ON)


@pytest.fixture
def kam(world: tuple[FakeKamailio, Presence]) -> FakeKamailio:
    return world[0]


@pytest.fixture
def presence(world: tuple[FakeKamailio, Presence]) -> Presence:
    return world[1]


def load_proxy(kam: FakeKamailio, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.setitem(sys.modules, "KSR", kam.ksr)
    monkeypatch.setattr(sys, "path", list(sys.path))  # the script prepends its directory
    return importlib.reload(importlib.import_module("kemi.proxy"))


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


def publish(*, event: str = MWI_EVENT, source: tuple[str, int] = WORKER) -> Request:
    return sip_request(
        "PUBLISH",
        BOB,
        from_=BOB,
        to=BOB,
        headers=(("Event", event), ("Expires", "3600"), ("SIP-If-Match", "e1")),
        body="Messages-Waiting: yes\r\nMessage-Account: sip:bob@lab.example\r\n",
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


def test_a_worker_publishes_without_a_password(
    kam: FakeKamailio, proxy: Any, presence: Presence
) -> None:
    route(kam, proxy, publish())
    assert presence.handled == [("handle_publish", BOB)]
    assert kam.replies == []
    assert kam.challenges == []
    assert kam.relays == []


def test_nobody_else_publishes_mailbox_state(
    kam: FakeKamailio, proxy: Any, presence: Presence
) -> None:
    request = publish(source=("192.0.2.10", 5060))
    request.credentials = Credentials(f"bob@{DOMAIN}")  # not even bob himself
    route(kam, proxy, request)
    assert kam.replies == [Reply(403, "Only media workers publish mailbox state", "sl")]
    assert presence.handled == []


def test_a_worker_on_another_port_is_not_a_worker(
    kam: FakeKamailio, proxy: Any, presence: Presence
) -> None:
    route(kam, proxy, publish(source=(WORKER[0], WORKER[1] + 1)))
    assert kam.replies == [Reply(403, "Only media workers publish mailbox state", "sl")]
    assert presence.handled == []


def test_only_message_summary_is_published(
    kam: FakeKamailio, proxy: Any, presence: Presence
) -> None:
    route(kam, proxy, publish(event="presence"))
    assert kam.replies == [Reply(489, "Bad Event", "sl")]
    assert presence.handled == []


# ----- SUBSCRIBE -----


def test_bob_subscribes_to_his_mailbox(kam: FakeKamailio, proxy: Any, presence: Presence) -> None:
    route(kam, proxy, subscribe())
    assert presence.handled == [("handle_subscribe", BOB)]
    assert kam.replies == []
    assert kam.relays == []


def test_an_event_parameter_is_fine(kam: FakeKamailio, proxy: Any, presence: Presence) -> None:
    route(kam, proxy, subscribe(event="message-summary;id=1"))
    assert presence.handled == [("handle_subscribe", BOB)]


def test_a_subscribe_without_credentials_is_challenged(
    kam: FakeKamailio, proxy: Any, presence: Presence
) -> None:
    route(kam, proxy, subscribe(auth=False))
    assert kam.challenges == [DOMAIN]
    assert [r.status for r in kam.replies] == [407]
    assert presence.handled == []


def test_alice_cannot_watch_bobs_mailbox(kam: FakeKamailio, proxy: Any, presence: Presence) -> None:
    route(kam, proxy, subscribe(BOB, subscriber=ALICE))
    assert kam.replies == [Reply(403, "Not your mailbox", "sl")]
    assert presence.handled == []


def test_a_foreign_user_cannot_watch_a_mailbox(
    kam: FakeKamailio, proxy: Any, presence: Presence
) -> None:
    route(kam, proxy, subscribe(BOB, subscriber="sip:mallory@evil.example", auth=False))
    assert kam.replies == [Reply(403, "Mailbox state needs authentication", "sl")]
    assert presence.handled == []


def test_other_event_packages_are_refused_without_a_challenge(
    kam: FakeKamailio, proxy: Any, presence: Presence
) -> None:
    route(kam, proxy, subscribe(event="presence", auth=False))
    assert kam.replies == [Reply(489, "Bad Event", "sl")]
    assert kam.challenges == []
    assert presence.handled == []


def test_a_subscription_refresh_goes_to_presence(
    kam: FakeKamailio, proxy: Any, presence: Presence
) -> None:
    server = "sip:voicemail@127.0.0.1:5060"
    route(kam, proxy, subscribe(server, to_tag="pres-1", auth=False))
    assert presence.handled == [("handle_subscribe", server)]
    assert kam.replies == []


def test_without_auth_nobody_subscribes(monkeypatch: pytest.MonkeyPatch) -> None:
    kam, presence = make_kam({"WITH_VOICEMAIL": "", "WITH_MWI": ""})
    proxy = load_proxy(kam, monkeypatch).mod_init()
    route(kam, proxy, subscribe())
    assert kam.replies == [Reply(403, "Mailbox state needs authentication", "sl")]
    assert presence.handled == []


def test_without_mwi_presence_is_never_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    kam, presence = make_kam({"WITH_AUTH": "", "WITH_VOICEMAIL": ""})
    proxy = load_proxy(kam, monkeypatch).mod_init()
    route(kam, proxy, publish())
    route(kam, proxy, subscribe())
    assert presence.handled == []


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


def test_a_registering_phone_gets_its_mailbox_state_again(
    kam: FakeKamailio, proxy: Any, presence: Presence
) -> None:
    presence.watched.add((BOB, MWI_EVENT))
    route(kam, proxy, register("bob"))
    assert kam.replies == [Reply(200, "OK", "registrar")]
    assert presence.refreshed == [(BOB, MWI_EVENT, 1)]


def test_no_refresh_without_watchers(kam: FakeKamailio, proxy: Any, presence: Presence) -> None:
    route(kam, proxy, register("alice"))
    assert kam.replies == [Reply(200, "OK", "registrar")]
    assert presence.refreshed == []


def test_the_refresh_on_register_can_be_turned_off(monkeypatch: pytest.MonkeyPatch) -> None:
    kam, presence = make_kam({**ALL_ON, "MWI_REFRESH_ON_REGISTER": "0"})
    proxy = load_proxy(kam, monkeypatch).mod_init()
    presence.watched.add((BOB, MWI_EVENT))
    route(kam, proxy, register("bob"))
    assert presence.refreshed == []


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
