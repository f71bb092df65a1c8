"""The MWI publisher: storage changes become PUBLISHes of the mailbox counts, entity tags
are kept and refreshed, a 412 starts over, the publication table survives a restart;
and Worker.request carries a PUBLISH over UDP to a presence server and back."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import cast

import pytest

from kemi import signing
from media_worker.application import ActiveCall
from media_worker.apps.params import AppRequest
from media_worker.config import ConfigError, MwiConfig, SipConfig, parse_config
from media_worker.mwi import MailboxRecord, MessageSummary
from media_worker.mwi_publisher import (
    MAX_IN_FLIGHT,
    LearningApplication,
    MwiPublisher,
    PublicationTable,
)
from media_worker.sip.actions import Rejection
from media_worker.sip.address import Peer
from media_worker.sip.headers import Headers
from media_worker.sip.message import Request, Response, parse_message, response_to, serialize
from media_worker.worker import Worker, WorkerSettings
from storage import Storage, open_storage

PROXY = Peer("udp", "127.0.0.1", 5060)
MWI = MwiConfig(proxy="sip:127.0.0.1:5060", expires=3600)
DOMAIN = "lab.example"
WAV = b"RIFF-not-really-a-wav"
UID_CALL = AppRequest(
    app="voicemail", user="u-42", domain="d-7", sender="alice", mode="box",
    email=None, language=None, typ="vm", pin=None,
    uid="u-42", did="d-7", usr="bob", dom=DOMAIN,
)  # fmt: skip


class PresenceServer:
    """Answers PUBLISHes like Kamailio's presence: a new entity tag per accepted request,
    412 for an unknown SIP-If-Match; ``answers`` overrides the next statuses."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self.etags: set[str] = set()
        self.answers: list[int | None] = []  # None: no answer (timeout)
        self.expires = 3600
        self._counter = itertools.count(1)
        self.arrived = asyncio.Event()  # set on each request

    async def wait_for_requests(self, count: int) -> None:
        async with asyncio.timeout(30):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()

    def answer(self, request: Request) -> Response | None:
        self.requests.append(request)
        self.arrived.set()
        match = request.headers.get("SIP-If-Match")
        if self.answers:
            scripted = self.answers.pop(0)
            if scripted is None:
                return None
            status = scripted
        else:
            status = 412 if match is not None and match not in self.etags else 200
        response = response_to(request, status, to_tag="srv")
        if status == 200:
            etag = f"e{next(self._counter)}"
            self.etags.discard(match or "")
            self.etags.add(etag)
            response.headers.add("SIP-ETag", etag)
            response.headers.add("Expires", str(self.expires))
        return response

    async def send(self, request: Request, destination: Peer) -> Response | None:
        assert destination == PROXY
        return self.answer(request)

    def summaries(self) -> list[MessageSummary]:
        return [MessageSummary.parse(r.body) for r in self.requests]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Storage]:
    async with open_storage(f"fs://{tmp_path / 'spool'}") as opened:
        yield opened


@pytest.fixture
async def server_and_publisher(
    store: Storage,
) -> AsyncIterator[tuple[PresenceServer, MwiPublisher]]:
    server = PresenceServer()
    publisher = MwiPublisher(MWI, store, server.send)
    await publisher.start()
    yield server, publisher
    await publisher.stop()


async def test_each_change_publishes_the_counts(
    store: Storage, server_and_publisher: tuple[PresenceServer, MwiPublisher]
) -> None:
    server, publisher = server_and_publisher
    name = await store.put_message(DOMAIN, "bob", WAV, sender="alice", received_at=1)
    await publisher.idle()
    await store.mark_read(DOMAIN, "bob", name)
    await publisher.idle()
    await store.put_greeting(DOMAIN, "bob", "vm", WAV)  # not a message: no PUBLISH
    await store.delete_message(DOMAIN, "bob", name)
    await publisher.idle()
    account = f"sip:bob@{DOMAIN}"
    assert server.summaries() == [
        MessageSummary(account, 1, 0),
        MessageSummary(account, 0, 1),
        MessageSummary(account, 0, 0),
    ]
    matches = [r.headers.get("SIP-If-Match") for r in server.requests]
    assert matches == [None, "e1", "e2"]
    assert {r.uri for r in server.requests} == {account}


SECRET = "mwi-test-secret-0123456789"


async def test_with_a_secret_every_publish_is_signed(store: Storage) -> None:
    server = PresenceServer()
    now = 1_764_625_504.0
    publisher = MwiPublisher(MWI, store, server.send, secret=SECRET, clock=lambda: now)
    await publisher.start()
    try:
        name = await store.put_message(DOMAIN, "bob", WAV, sender="alice", received_at=1)
        await publisher.idle()
        await store.delete_message(DOMAIN, "bob", name)
        await publisher.idle()
    finally:
        await publisher.stop()
    assert len(server.requests) == 2
    for sent in server.requests:
        sent.headers.prepend("Via", "SIP/2.0/UDP 127.0.0.1:5080;branch=z9hG4bK-1")
        wire = parse_message(serialize(sent))  # as the proxy reads it
        assert isinstance(wire, Request)
        value = wire.headers.get(signing.HEADER)
        fields = (wire.call_id, wire.uri, wire.body.decode())
        assert signing.verify(SECRET, value, fields, now).timestamp == int(now)
        forged = wire.body.decode().replace("Voice-Message: ", "Voice-Message: 9")
        with pytest.raises(signing.SignatureError, match="bad signature"):
            signing.verify(SECRET, value, (wire.call_id, wire.uri, forged), now)
        with pytest.raises(signing.SignatureError, match="stale signature"):
            signing.verify(SECRET, value, fields, now + 31)


async def test_without_a_secret_publishes_are_unsigned(
    server_and_publisher: tuple[PresenceServer, MwiPublisher], store: Storage
) -> None:
    server, publisher = server_and_publisher
    await store.put_message(DOMAIN, "bob", WAV, sender="alice", received_at=1)
    await publisher.idle()
    assert [r.headers.get(signing.HEADER) for r in server.requests] == [None]


async def test_a_burst_of_mailboxes_is_published_a_few_at_a_time(store: Storage) -> None:
    server = PresenceServer()
    in_flight, most = 0, 0
    answering = asyncio.Event()  # the proxy answers once every change is in

    async def slow_send(request: Request, destination: Peer) -> Response | None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await answering.wait()
        in_flight -= 1
        return server.answer(request)

    publisher = MwiPublisher(MWI, store, slow_send)
    await publisher.start()
    try:
        for number in range(3 * MAX_IN_FLIGHT):
            await store.put_message(DOMAIN, f"user{number}", WAV, sender="a", received_at=1)
        await asyncio.sleep(0.1)  # let every publishing task reach the proxy or wait
        answering.set()
        await publisher.idle()
    finally:
        await publisher.stop()
    assert len(server.requests) == 3 * MAX_IN_FLIGHT  # every mailbox published once
    assert most == MAX_IN_FLIGHT


async def test_changes_during_a_publish_end_in_the_latest_state(
    store: Storage, server_and_publisher: tuple[PresenceServer, MwiPublisher]
) -> None:
    server, publisher = server_and_publisher
    for second in range(3):
        await store.put_message(DOMAIN, "bob", WAV, sender="alice", received_at=second + 1)
    await publisher.idle()
    assert server.summaries()[-1].new == 3
    assert len(server.requests) <= 3


async def test_a_412_publishes_again_from_scratch(
    store: Storage, server_and_publisher: tuple[PresenceServer, MwiPublisher]
) -> None:
    server, publisher = server_and_publisher
    await store.put_message(DOMAIN, "bob", WAV, sender="alice", received_at=1)
    await publisher.idle()
    server.etags.clear()  # the presence server restarted and forgot us
    await store.put_message(DOMAIN, "bob", WAV, sender="alice", received_at=2)
    await publisher.idle()
    matches = [r.headers.get("SIP-If-Match") for r in server.requests]
    assert matches == [None, "e1", None]
    assert server.summaries()[-1].new == 2


async def test_a_timeout_is_given_up_until_the_next_change(
    store: Storage, server_and_publisher: tuple[PresenceServer, MwiPublisher]
) -> None:
    server, publisher = server_and_publisher
    server.answers = [None]
    await store.put_message(DOMAIN, "bob", WAV, sender="alice", received_at=1)
    await publisher.idle()
    await store.put_message(DOMAIN, "bob", WAV, sender="alice", received_at=2)
    await publisher.idle()
    assert [r.headers.get("SIP-If-Match") for r in server.requests] == [None, None]


async def test_publications_are_refreshed_before_they_expire(
    store: Storage, server_and_publisher: tuple[PresenceServer, MwiPublisher]
) -> None:
    server, _ = server_and_publisher
    server.expires = 1  # refreshed after refresh_delay(1): 1 s
    await store.put_message(DOMAIN, "bob", WAV, sender="alice", received_at=1)
    await server.wait_for_requests(3)
    server.expires = 3600
    refresh = server.requests[1]
    assert refresh.headers.get("SIP-If-Match") == "e1"
    assert MessageSummary.parse(refresh.body).new == 1  # refreshes carry the current state


async def test_uid_mailboxes_are_published_under_the_sip_address(
    store: Storage, server_and_publisher: tuple[PresenceServer, MwiPublisher]
) -> None:
    server, publisher = server_and_publisher
    publisher.learn(UID_CALL)
    await store.put_message("d-7", "u-42", WAV, sender="alice", received_at=1)
    await store.put_message("d-8", "u-43", WAV, sender="alice", received_at=1)
    await publisher.idle()
    assert sorted(s.account for s in server.summaries()) == [
        f"sip:bob@{DOMAIN}",
        "sip:u-43@d-8",  # not learnt: published under its storage key
    ]


# ----- the publication table survives a restart -----


def later(seconds: float) -> Callable[[], float]:
    """The wall clock of a worker restarted ``seconds`` from now."""
    return lambda: time.time() + seconds


@asynccontextmanager
async def running(
    store: Storage, server: PresenceServer, state_dir: Path, clock: Callable[[], float] = time.time
) -> AsyncIterator[MwiPublisher]:
    publisher = MwiPublisher(MWI, store, server.send, state_dir=state_dir, clock=clock)
    await publisher.start()
    try:
        yield publisher
    finally:
        await publisher.stop()


async def test_a_restarted_publisher_refreshes_the_saved_publication(
    store: Storage, tmp_path: Path
) -> None:
    server, state_dir = PresenceServer(), tmp_path / "mwi"
    async with running(store, server, state_dir) as publisher:
        await store.put_message(DOMAIN, "bob", WAV, sender="alice", received_at=1)
        await publisher.idle()
    assert [r.headers.get("SIP-If-Match") for r in server.requests] == [None]
    # Started again well before its refresh is due: nothing to send yet.
    async with running(store, server, state_dir, later(60)) as publisher:
        await publisher.idle()
        await asyncio.sleep(0.05)
        assert len(server.requests) == 1
    # Started again past the refresh time (3540 s of 3600): it refreshes at once.
    async with running(store, server, state_dir, later(3550)):
        await server.wait_for_requests(2)
    refresh = server.requests[1]
    assert refresh.headers.get("SIP-If-Match") == "e1"
    assert refresh.headers.get("Call-ID") == server.requests[0].headers.get("Call-ID")
    assert refresh.cseq()[0] == 2
    assert MessageSummary.parse(refresh.body) == MessageSummary(f"sip:bob@{DOMAIN}", 1, 0)


async def test_an_expired_saved_publication_is_published_from_scratch(
    store: Storage, tmp_path: Path
) -> None:
    server, state_dir = PresenceServer(), tmp_path / "mwi"
    async with running(store, server, state_dir) as publisher:
        name = await store.put_message(DOMAIN, "bob", WAV, sender="alice", received_at=1)
        await publisher.idle()
    await store.mark_read(DOMAIN, "bob", name)  # while no publisher runs
    await store.put_message(DOMAIN, "bob", WAV, sender="alice", received_at=2)
    server.etags.clear()  # its lifetime is over: the presence server forgot it
    async with running(store, server, state_dir, later(3601)) as publisher:
        await server.wait_for_requests(2)
        await publisher.idle()
    fresh = server.requests[1]
    assert fresh.headers.get("SIP-If-Match") is None
    assert MessageSummary.parse(fresh.body) == MessageSummary(f"sip:bob@{DOMAIN}", 1, 1)
    # and the new publication is the one refreshed after the next restart
    async with running(store, server, state_dir, later(3601 + 3550)):
        await server.wait_for_requests(3)
    assert server.requests[2].headers.get("SIP-If-Match") == "e2"


async def test_the_learnt_sip_address_survives_a_restart(store: Storage, tmp_path: Path) -> None:
    server, state_dir = PresenceServer(), tmp_path / "mwi"
    async with running(store, server, state_dir) as publisher:
        publisher.learn(UID_CALL)  # a call, but nothing changed in the mailbox
    async with running(store, server, state_dir) as publisher:
        await store.put_message("d-7", "u-42", WAV, sender="alice", received_at=1)
        await publisher.idle()
    assert [s.account for s in server.summaries()] == [f"sip:bob@{DOMAIN}"]


async def test_unreadable_records_are_set_aside(
    store: Storage, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server, state_dir = PresenceServer(), tmp_path / "mwi"
    table = PublicationTable(state_dir)
    state_dir.mkdir()
    (state_dir / "truncated.mwi").write_bytes(MailboxRecord(DOMAIN, "bob").serialize()[:-4])
    misfiled = table.path((DOMAIN, "carol"))
    misfiled.write_bytes(MailboxRecord(DOMAIN, "dave").serialize())
    caplog.set_level(logging.ERROR, "voicemail.mwi")
    async with running(store, server, state_dir) as publisher:
        await store.put_message(DOMAIN, "bob", WAV, sender="alice", received_at=1)
        await publisher.idle()
    assert server.summaries() == [MessageSummary(f"sip:bob@{DOMAIN}", 1, 0)]
    assert sorted(p.name for p in (state_dir / "corrupt").iterdir()) == [
        misfiled.name,
        "truncated.mwi",
    ]
    assert [r.getMessage() for r in caplog.records] == [
        f"mwi record {misfiled.name} is unreadable (the record of dave@{DOMAIN}): moved to corrupt/",
        "mwi record truncated.mwi is unreadable (MWI record is not msgpack: Unpack failed: "
        "incomplete input): moved to corrupt/",
    ]
    assert table.path((DOMAIN, "bob")).exists()


def test_record_file_names() -> None:
    table = PublicationTable(Path("/data/mwi"))
    assert table.path(("lab.example", "bob")) == Path("/data/mwi/bob@lab.example.mwi")
    assert table.path(("d/7", "u@42")) == Path("/data/mwi/u%4042@d%2F7.mwi")
    long = table.path(("lab.example", "x" * 300))
    assert len(long.name) == 64 + len(".mwi")


def test_mwi_configuration() -> None:
    assert parse_config({}).mwi is None
    config = parse_config({"mwi": {"proxy": "sip:10.0.0.1:5070"}})
    assert config.mwi is not None
    assert config.mwi.expires == 3600
    assert config.mwi.destination() == Peer("udp", "10.0.0.1", 5070)


@pytest.mark.parametrize(
    ("data", "error"),
    [
        ({"proxy": "kamailio"}, "mwi.proxy: not a SIP URI: 'kamailio'"),
        ({"proxy": "sip:proxy.example"}, "mwi.proxy: not an IP address: 'proxy.example'"),
        (
            {"proxy": "sip:127.0.0.1;transport=tcp"},
            "mwi.proxy: only UDP is supported, got 'sip:127.0.0.1;transport=tcp'",
        ),
        ({"expires": 10}, "mwi.expires: 10 is outside 60..86400"),
        ({"expire": 10}, "mwi.expire: unknown key (known: proxy, expires)"),
    ],
)
def test_mwi_configuration_errors(data: dict[str, object], error: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse_config({"mwi": data})
    assert str(raised.value) == error


class _Admits:
    """An application that admits every call with the same answer."""

    def __init__(self, answer: AppRequest | Rejection) -> None:
        self.answer = answer
        self.ran: list[AppRequest] = []

    def admit(self, invite: Request) -> AppRequest | Rejection:
        return self.answer

    async def run(self, call: object, request: AppRequest) -> None:
        self.ran.append(request)


async def test_the_learning_application_learns_from_the_request_admitted(store: Storage) -> None:
    publisher = MwiPublisher(MWI, store, PresenceServer().send)
    inner = _Admits(UID_CALL)
    app = LearningApplication(inner, publisher)
    bare = Request("INVITE", f"sip:u-42@{DOMAIN}", Headers())  # no P-App-*: not parsed again
    assert app.admit(bare) is UID_CALL
    assert publisher._accounts == {("d-7", "u-42"): ("bob", DOMAIN)}
    await app.run(cast(ActiveCall, None), UID_CALL)
    assert inner.ran == [UID_CALL]
    other = MwiPublisher(MWI, store, PresenceServer().send)
    refusing = LearningApplication(_Admits(Rejection(404, "no")), other)
    assert refusing.admit(bare) == Rejection(404, "no")
    assert other._accounts == {}


class _NoCalls:
    def admit(self, invite: Request) -> None:
        raise AssertionError("no calls here")

    async def run(self, call: object, admitted: None) -> None:
        raise AssertionError("no calls here")


@pytest.mark.integration
async def test_worker_request_carries_a_publish_over_udp() -> None:
    loop = asyncio.get_running_loop()
    server = PresenceServer()
    received: asyncio.Queue[Request] = asyncio.Queue()

    class Udp(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport = cast(asyncio.DatagramTransport, transport)

        def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
            request = parse_message(data)
            assert isinstance(request, Request)
            received.put_nowait(request)
            response = server.answer(request)
            assert response is not None
            self.transport.sendto(serialize(response), addr)

    transport, _ = await loop.create_datagram_endpoint(Udp, local_addr=("127.0.0.1", 0))
    port = transport.get_extra_info("sockname")[1]
    worker = Worker(WorkerSettings(SipConfig(port=0)), _NoCalls())
    await worker.start()
    try:
        request = Request(
            "PUBLISH",
            f"sip:bob@{DOMAIN}",
            Headers(
                [
                    ("From", f"<sip:bob@{DOMAIN}>;tag=1"),
                    ("To", f"<sip:bob@{DOMAIN}>"),
                    ("Call-ID", "publish-1"),
                    ("CSeq", "1 PUBLISH"),
                    ("Event", "message-summary"),
                ]
            ),
        )
        response = await worker.request(request, Peer("udp", "127.0.0.1", port))
        assert response is not None
        assert response.status == 200
        assert response.headers.get("SIP-ETag") == "e1"
        sent = await received.get()
        via = sent.headers.get("Via") or ""
        assert via.startswith(f"SIP/2.0/UDP 127.0.0.1:{worker.port};branch=z9hG4bK")
    finally:
        await worker.stop()
        transport.close()
