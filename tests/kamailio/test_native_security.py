"""The defences of the native cfg (kamailio-cfg/native/) against the attacks found on the
lab, each tried on the real Kamailio with rtpengine: UDP sockets play the media workers
of the dispatcher set (they answer the OPTIONS probes and whatever status a test asks
for), raw UAC sockets the callers. Attackers send from other loopback addresses than
127.0.0.1, so that a ban of one leaves the others alone."""

from __future__ import annotations

import contextlib
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kemi import signing
from media_worker.lab.layout import DOMAIN
from tests.kamailio.native import use_native
from tests.kamailio.test_cfg import COMBINATIONS, install, label
from tests.kamailio.uac import Message, Uac, digest
from tests.support.procs import wait_until
from tests.support.stack import Kamailio, Rtpengine, user_database

pytestmark = pytest.mark.integration

SECRET = "native-test-secret-0123456789"
ALICE, BOB = f"sip:alice@{DOMAIN}", f"sip:bob@{DOMAIN}"
CAROL = "sip:carol@example.net"  # a caller from elsewhere: no authentication asked
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "dave": "dave-pw"}
MAX_CALLS_PER_SOURCE = 2
AUTH_FAIL_LIMIT = 3
SUMMARY = f"Messages-Waiting: yes\r\nMessage-Account: {BOB}\r\nVoice-Message: 1/0\r\n"


def sdp(media: int = 1) -> str:
    lines = ["v=0", "o=- 1 1 IN IP4 127.0.0.1", "s=-", "c=IN IP4 127.0.0.1", "t=0 0"]
    for index in range(media):
        lines += [f"m=audio {40000 + 2 * index} RTP/AVP 0", "a=rtpmap:0 PCMU/8000"]
    return "\r\n".join(lines) + "\r\n"


SDP_HEADERS = (("Content-Type", "application/sdp"),)


class FakeWorker:
    """A worker's UDP socket: 200 to OPTIONS, ``answer`` to each INVITE (None: silence;
    180: ringing until CANCEL, then 487), and a list of the INVITEs received."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port: int = self.sock.getsockname()[1]
        self.answer: int | None = 404
        self.invites: list[Message] = []
        self._ringing: dict[str, Message] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, source = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            message = Message.parse(data)
            if message.status:
                continue
            if message.method == "INVITE":
                self.invites.append(message)
                if self.answer == 180:
                    self._ringing[message.header("Call-ID") or ""] = message
                if self.answer is not None:
                    self._reply(message, self.answer, source)
            elif message.method == "CANCEL":
                self._reply(message, 200, source)
                invite = self._ringing.pop(message.header("Call-ID") or "", None)
                if invite is not None:
                    self._reply(invite, 487, source)
            elif message.method != "ACK":
                self._reply(message, 200, source)

    def _reply(self, request: Message, status: int, source: tuple[str, int]) -> None:
        answer(self.sock, request, status, source)


def answer(sock: socket.socket, request: Message, status: int, source: tuple[str, int]) -> None:
    """A response without body to ``request``, with a To-tag."""
    copied = [
        f"{n}: {v}"
        for n, v in request.headers
        if n.lower() in ("via", "from", "to", "call-id", "cseq")
    ]
    copied = [
        line + ";tag=uas" if line.lower().startswith("to:") and ";tag=" not in line else line
        for line in copied
    ]
    reason = {180: "Ringing", 200: "OK", 404: "Not Found", 486: "Busy Here", 487: "Terminated"}
    head = f"SIP/2.0 {status} {reason.get(status, 'Service Unavailable')}\r\n"
    sock.sendto((head + "\r\n".join(copied) + "\r\nContent-Length: 0\r\n\r\n").encode(), source)


def bdecode(data: bytes, at: int = 0) -> tuple[object, int]:
    """One bencoded value of rtpengine's ng protocol from ``data[at:]`` and its end."""
    kind = data[at : at + 1]
    if kind == b"i":
        end = data.index(b"e", at)
        return int(data[at + 1 : end]), end + 1
    if kind in (b"l", b"d"):
        items: list[object] = []
        at += 1
        while data[at : at + 1] != b"e":
            item, at = bdecode(data, at)
            items.append(item)
        if kind == b"l":
            return items, at + 1
        return dict(zip(items[::2], items[1::2], strict=True)), at + 1
    colon = data.index(b":", at)
    length = int(data[at:colon])
    return data[colon + 1 : colon + 1 + length], colon + 1 + length


class NativeProxy:
    """Kamailio on the native cfg with every defence on, rtpengine, two fake workers
    (the first by priority: VM_WORKER_ALGORITHM 8), and alice, bob and dave."""

    def __init__(self, directory: Path) -> None:
        self.dir = directory
        db_url = user_database(
            f"sqlite://{directory / 'kamailio.sqlite'}",
            {user: (password, "box") for user, password in PASSWORDS.items()},
        )
        self.rtpengine = Rtpengine(directory)
        self.kamailio = Kamailio(
            directory,
            db_url=db_url,
            workers=[],
            rtpengine=self.rtpengine,
            switches=(
                "WITH_AUTH",
                "WITH_VOICEMAIL",
                "WITH_RTPENGINE",
                "WITH_MWI",
                "WITH_ANTIFLOOD",
            ),
            settings={
                "VM_SECRET": f'"{SECRET}"',
                "VM_WORKER_ALGORITHM": "8",
                "VM_MAX_CALLS_PER_SOURCE": str(MAX_CALLS_PER_SOURCE),
                "VM_AUTH_FAIL_LIMIT": str(AUTH_FAIL_LIMIT),
                "VM_BAN_TIME": "60",
            },
        )
        self.kamailio.define(
            "MWI_SERVER_ADDRESS", f'"sip:voicemail@127.0.0.1:{self.kamailio.port}"'
        )
        use_native(directory)
        self.workers = [FakeWorker(), FakeWorker()]
        (directory / "dispatcher.list").write_text(
            f"1 sip:127.0.0.1:{self.workers[0].port};transport=udp 0 10\n"
            f"1 sip:127.0.0.1:{self.workers[1].port};transport=udp 0 0\n"
        )

    def uac(self, host: str = "127.0.0.1") -> Uac:
        return Uac(self.kamailio.port, host=host)

    def log(self) -> str:
        return self.kamailio.log()[-6000:]

    def rtpengine_calls(self) -> list[object]:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(2)
            # a new cookie each time: rtpengine answers a repeated one from its cache
            cookie = secrets.token_hex(6).encode()
            sock.sendto(cookie + b" d7:command4:liste", ("127.0.0.1", self.rtpengine.ng_port))
            reply = sock.recv(65535)
        answer, _ = bdecode(reply.split(b" ", 1)[1])
        assert isinstance(answer, dict), reply
        calls = answer[b"calls"]
        assert isinstance(calls, list), reply
        return calls

    def worker_flags(self) -> list[str]:
        """The dispatcher's FLAGS of each worker (AP: active, probed)."""
        return re.findall(r"FLAGS: (\S+)", self.kamailio.kamcmd("dispatcher.list"))


@pytest.fixture(scope="module")
def proxy() -> Iterator[NativeProxy]:
    directory = Path(tempfile.mkdtemp(prefix="vm-native-sec-"))
    started = NativeProxy(directory)
    try:
        with started.rtpengine, started.kamailio:
            wait_until(lambda: started.worker_flags() == ["AP", "AP"], 10, started.log)
            yield started
    finally:
        for worker in started.workers:
            worker.close()
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture
def workers(proxy: NativeProxy) -> Iterator[list[FakeWorker]]:
    """The fake workers, reset to answer 404 and with no INVITE received."""
    for worker in proxy.workers:
        worker.answer = 404
        worker.invites.clear()
    yield proxy.workers
    # every call of a test is over, however it ended: rtpengine holds nothing
    wait_until(lambda: proxy.rtpengine_calls() == [], 5, proxy.log)


def call_id() -> str:
    return f"{secrets.token_hex(8)}@test"


def signed_fields(invite: Message) -> tuple[str, str, str]:
    return (
        invite.header("Call-ID") or "",
        invite.header("P-App-Name") or "",
        invite.header("P-App-Param") or "",
    )


def test_the_invite_to_a_worker_is_signed(proxy: NativeProxy, workers: list[FakeWorker]) -> None:
    """kemi.signing verifies what the native cfg computed; the caller's own
    P-App-Signature is gone, and the worker's 404 goes back to the caller."""
    with proxy.uac() as uac:
        response = uac.request(
            "INVITE",
            BOB,
            from_=CAROL,
            headers=(*SDP_HEADERS, ("P-App-Signature", "t=1; sig=" + "0" * 64)),
            body=sdp(),
        )
    assert response.status == 404, proxy.log()
    [invite] = workers[0].invites
    assert [n for n, _ in invite.headers].count("P-App-Signature") == 1
    assert invite.header("P-App-Name") == "voicemail"
    signature = signing.verify(
        SECRET, invite.header("P-App-Signature"), signed_fields(invite), time.time()
    )
    assert abs(signature.timestamp - time.time()) < 5


@pytest.mark.parametrize("failure", [503, None], ids=["503", "timeout"])
def test_a_failed_worker_passes_the_call_on_and_stays_in_the_set(
    proxy: NativeProxy, workers: list[FakeWorker], failure: int | None
) -> None:
    """A worker's 503 (its max_calls) or silence moves the call to the next worker,
    signed again; the dispatcher marks nobody down."""
    workers[0].answer = failure
    with proxy.uac() as uac:
        call = call_id()
        response = uac.request(
            "INVITE", BOB, from_=CAROL, headers=SDP_HEADERS, body=sdp(), call_id=call
        )
    assert response.status == 404, proxy.log()
    # (tm retransmits to a silent worker)
    assert {i.header("Call-ID") for w in workers for i in w.invites} == {call}
    assert workers[0].invites
    assert len(workers[1].invites) == 1
    for worker in workers:
        invite = worker.invites[0]
        signing.verify(SECRET, invite.header("P-App-Signature"), signed_fields(invite), time.time())
    assert f"worker failed ({failure or 408}); trying" in proxy.log()
    assert proxy.worker_flags() == ["AP", "AP"], proxy.kamailio.kamcmd("dispatcher.list")


def test_a_busy_phone_sends_a_stranger_to_voicemail_signed(
    proxy: NativeProxy, workers: list[FakeWorker]
) -> None:
    """bob's phone answers 486: failure_route[VMPHONE] sends the unauthenticated call
    to a worker (the per-source count and the signed branch in a failure route)."""
    with proxy.uac() as phone:
        registered = phone.request(
            "REGISTER", f"sip:{DOMAIN}", from_=BOB, to=BOB, password=PASSWORDS["bob"]
        )
        assert registered.status == 200, proxy.log()

        def busy() -> None:
            phone.sock.settimeout(5)
            data, source = phone.sock.recvfrom(65535)
            answer(phone.sock, Message.parse(data), 486, source)

        ringing = threading.Thread(target=busy)
        ringing.start()
        try:
            with proxy.uac("127.0.0.12") as caller:
                response = caller.request(
                    "INVITE", BOB, from_=CAROL, headers=SDP_HEADERS, body=sdp()
                )
        finally:
            ringing.join()
            phone.request(
                "REGISTER",
                f"sip:{DOMAIN}",
                from_=BOB,
                to=BOB,
                headers=(("Expires", "0"),),
                password=PASSWORDS["bob"],
            )
    assert response.status == 404, proxy.log()
    [invite] = workers[0].invites
    signing.verify(SECRET, invite.header("P-App-Signature"), signed_fields(invite), time.time())
    assert "bob@lab.example unavailable (486): voicemail" in proxy.log()


def test_a_cancelled_call_releases_its_rtpengine_session(
    proxy: NativeProxy, workers: list[FakeWorker]
) -> None:
    workers[0].answer = 180
    ringing = Ringing(proxy, "127.0.0.1")
    wait_until(lambda: len(proxy.rtpengine_calls()) == 1, 5, proxy.log)
    assert ringing.cancel() == 487
    wait_until(lambda: proxy.rtpengine_calls() == [], 5, proxy.log)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (sdp() + "a=x-padding:" + "x" * 9000 + "\r\n", "Body too large"),
        (sdp(media=5), "Too many media streams"),
    ],
    ids=["oversize", "five-m-lines"],
)
def test_what_would_take_rtpengine_ports_is_refused(
    proxy: NativeProxy, workers: list[FakeWorker], body: str, reason: str
) -> None:
    offers = proxy.rtpengine.log().count("Received command 'offer'")
    with proxy.uac("127.0.0.3") as uac:
        response = uac.request("INVITE", BOB, from_=CAROL, headers=SDP_HEADERS, body=body)
    assert (response.status, response.reason) == (488, reason), proxy.log()
    assert workers[0].invites == []
    assert proxy.rtpengine.log().count("Received command 'offer'") == offers


def test_four_m_lines_still_pass(proxy: NativeProxy, workers: list[FakeWorker]) -> None:
    with proxy.uac() as uac:
        response = uac.request("INVITE", BOB, from_=CAROL, headers=SDP_HEADERS, body=sdp(4))
    assert response.status == 404, proxy.log()
    assert len(workers[0].invites) == 1


def test_a_forged_in_dialog_invite_is_not_relayed(proxy: NativeProxy) -> None:
    """Any To-tag with a Route to the proxy: no dialog of this proxy, so no relay."""
    with proxy.uac("127.0.0.4") as uac:
        response = uac.request(
            "INVITE",
            "sip:0049301234567@198.51.100.7",
            from_=ALICE,
            to="sip:0049301234567@198.51.100.7",
            to_tag="forged",
            headers=(("Route", f"<sip:127.0.0.1:{proxy.kamailio.port};lr>"), *SDP_HEADERS),
            body=sdp(),
        )
    assert response.status == 404, proxy.log()
    assert "in no dialog of this proxy: 404" in proxy.log()


def test_a_request_toward_a_worker_from_outside_is_refused(
    proxy: NativeProxy, workers: list[FakeWorker]
) -> None:
    worker = f"127.0.0.1:{workers[0].port}"
    with proxy.uac() as uac:
        # alice is authenticated, and still may not make the proxy call a worker
        by_uri = uac.request(
            "INVITE", f"sip:bob@{worker}", from_=ALICE, password=PASSWORDS["alice"]
        )
        by_route = uac.request(
            "INVITE",
            "sip:bob@198.51.100.7",
            from_=ALICE,
            headers=(("Route", f"<sip:127.0.0.1:{proxy.kamailio.port};lr>, <sip:{worker};lr>"),),
            password=PASSWORDS["alice"],
        )
    assert by_uri.status == 403, proxy.log()
    assert by_route.status == 403, proxy.log()
    assert workers[0].invites == []
    assert proxy.log().count(f"to sip:{worker}") == 1
    assert proxy.log().count(f"to sip:{worker};lr, a media worker: 403") == 1


def test_unauthenticated_voicemail_calls_per_source_are_limited(
    proxy: NativeProxy, workers: list[FakeWorker]
) -> None:
    workers[0].answer = 180
    calls = [Ringing(proxy, "127.0.0.5") for _ in range(MAX_CALLS_PER_SOURCE)]
    with proxy.uac("127.0.0.5") as uac:
        refused = uac.request("INVITE", BOB, from_=CAROL, headers=SDP_HEADERS, body=sdp())
    assert refused.status == 486, proxy.log()
    other = Ringing(proxy, "127.0.0.6")  # another source is not counted with it
    for call in [*calls, other]:
        assert call.cancel() == 487
    # the ended calls no longer count
    again = Ringing(proxy, "127.0.0.5")
    assert again.cancel() == 487


def test_authentication_failures_ban_the_source(proxy: NativeProxy) -> None:
    """VM_AUTH_FAIL_LIMIT wrong passwords: the source is banned (one log line), bob's
    own phone on 127.0.0.1 still registers."""
    with proxy.uac("127.0.0.7") as attacker:
        statuses = [
            attacker.request(
                "REGISTER", f"sip:{DOMAIN}", from_=BOB, to=BOB, password="guess"
            ).status
            for _ in range(AUTH_FAIL_LIMIT)
        ]
        assert statuses == [401] * (AUTH_FAIL_LIMIT - 1) + [403], proxy.log()
        with pytest.raises(TimeoutError):
            attacker.request("OPTIONS", f"sip:{DOMAIN}", from_=CAROL)
    assert proxy.log().count("authentication: banning 127.0.0.7 for 60 s") == 1
    with proxy.uac() as phone:
        # (Expires 0: bob stays unregistered, so that calls to him go to voicemail)
        registered = phone.request(
            "REGISTER",
            f"sip:{DOMAIN}",
            from_=BOB,
            to=BOB,
            headers=(("Expires", "0"),),
            password=PASSWORDS["bob"],
        )
    assert registered.status == 200, proxy.log()


def test_a_flood_bans_its_source(proxy: NativeProxy) -> None:
    """WITH_ANTIFLOOD: pike bans a source that sends more than 16 requests in 2 s; the
    phones on 127.0.0.1 (this proxy's own address: exempt) still get answers."""
    options = f"OPTIONS sip:{DOMAIN} SIP/2.0\r\nFrom: <{CAROL}>;tag=f\r\nTo: <sip:{DOMAIN}>\r\n"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as flood:
        flood.bind(("127.0.0.13", 0))
        port = flood.getsockname()[1]
        for index in range(40):
            flood.sendto(
                (
                    f"{options}Via: SIP/2.0/UDP 127.0.0.13:{port};branch=z9hG4bKflood{index}\r\n"
                    f"Call-ID: flood-{index}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
                    "Content-Length: 0\r\n\r\n"
                ).encode(),
                ("127.0.0.1", proxy.kamailio.port),
            )
        answered = 0
        flood.settimeout(1)
        with contextlib.suppress(TimeoutError):
            while flood.recv(65535):
                answered += 1
    assert 0 < answered < 40
    assert proxy.log().count("pike bans 127.0.0.13 for 60 s") == 1, proxy.log()
    with proxy.uac() as phone:
        assert phone.request("OPTIONS", f"sip:{DOMAIN}", from_=CAROL).status == 200


def test_failures_for_one_user_ban_the_next_source_that_fails(proxy: NativeProxy) -> None:
    for host, tries in (("127.0.0.8", AUTH_FAIL_LIMIT - 1), ("127.0.0.9", 1)):
        with proxy.uac(host) as attacker:
            for _ in range(tries):
                attacker.request(
                    "REGISTER", f"sip:{DOMAIN}", from_=f"sip:dave@{DOMAIN}", password="guess"
                )
    assert "authentication: banning 127.0.0.9" in proxy.log()
    assert "banning 127.0.0.8" not in proxy.log()


def test_a_replayed_credential_fails(proxy: NativeProxy, workers: list[FakeWorker]) -> None:
    """alice's Proxy-Authorization, captured, opens nothing in a new call."""
    with proxy.uac() as uac:
        challenge = uac.request("INVITE", BOB, from_=ALICE)
        assert challenge.status == 407
        assert "qop" in (challenge.header("Proxy-Authenticate") or "")
        credential = digest(
            challenge.header("Proxy-Authenticate") or "",
            user="alice",
            password=PASSWORDS["alice"],
            method="INVITE",
            uri=BOB,
        )
        first = uac.request(
            "INVITE", BOB, from_=ALICE, headers=(("Proxy-Authorization", credential),)
        )
        assert first.status == 404, proxy.log()  # the worker's answer: it was let through
        replayed = uac.request(
            "INVITE", BOB, from_=ALICE, headers=(("Proxy-Authorization", credential),)
        )
    assert replayed.status == 407, proxy.log()
    assert len(workers[0].invites) == 1


def test_a_trailing_dot_domain_is_the_local_domain(
    proxy: NativeProxy, workers: list[FakeWorker]
) -> None:
    """alice@lab.example. must authenticate as alice, and the worker is told
    sip:alice@lab.example sent the message."""
    with proxy.uac() as uac:
        assert uac.request("INVITE", f"{BOB}.", from_=f"{ALICE}.").status == 407
        response = uac.request("INVITE", f"{BOB}.", from_=f"{ALICE}.", password=PASSWORDS["alice"])
    assert response.status == 404, proxy.log()
    [invite] = workers[0].invites
    assert f"snd={ALICE};" in (invite.header("P-App-Param") or ""), invite.header("P-App-Param")
    assert f"dom={DOMAIN};" in (invite.header("P-App-Param") or "")


def publish(uac: Uac, *, signature: str | None, call: str) -> Message:
    headers = [
        ("Event", "message-summary"),
        ("Expires", "600"),
        ("Content-Type", "application/simple-message-summary"),
    ]
    if signature is not None:
        headers.append(("P-App-Signature", signature))
    return uac.request(
        "PUBLISH", BOB, from_=BOB, headers=tuple(headers), body=SUMMARY, call_id=call
    )


def test_a_message_summary_publish_needs_the_workers_signature(proxy: NativeProxy) -> None:
    now = int(time.time())
    with proxy.uac("127.0.0.10") as uac:
        good = call_id()
        accepted = publish(
            uac, signature=signing.sign(SECRET, now, (good, BOB, SUMMARY)), call=good
        )
        assert accepted.status == 200, proxy.log()
        refused = {
            "Unsigned request": None,
            "Bad signature": signing.sign("not-the-secret-0123", now, (good, BOB, SUMMARY)),
            "Stale signature": signing.sign(SECRET, now - 100, (good, BOB, SUMMARY)),
        }
        for reason, signature in refused.items():
            response = publish(uac, signature=signature, call=good)
            assert (response.status, response.reason) == (403, reason), proxy.log()
        # the signature covers the Call-ID: a captured one does not sign another
        other = call_id()
        response = publish(
            uac, signature=signing.sign(SECRET, now, (good, BOB, SUMMARY)), call=other
        )
        assert (response.status, response.reason) == (403, "Bad signature"), proxy.log()


@pytest.mark.parametrize("to_tag", [None, "lamp"], ids=["out-of-dialog", "in-dialog"])
def test_a_message_summary_notify_from_outside_is_refused(
    proxy: NativeProxy, to_tag: str | None
) -> None:
    with proxy.uac("127.0.0.11") as uac:
        response = uac.request(
            "NOTIFY",
            f"sip:carol@127.0.0.1:{proxy.kamailio.port}",
            from_=BOB,
            to=BOB,
            to_tag=to_tag,
            headers=(
                ("Event", "message-summary"),
                ("Subscription-State", "active"),
                ("Route", f"<sip:127.0.0.1:{proxy.kamailio.port};lr>"),
                ("Content-Type", "application/simple-message-summary"),
            ),
            body=SUMMARY,
        )
    assert response.status == 403, proxy.log()


class Ringing:
    """An INVITE from ``host`` to bob that the worker rings; ``cancel`` ends it."""

    def __init__(self, proxy: NativeProxy, host: str) -> None:
        self.uac = proxy.uac(host)
        self.call_id = call_id()
        self.branch = f"z9hG4bK{secrets.token_hex(8)}"
        body = sdp()
        self.common = [
            f"Via: SIP/2.0/UDP {host}:{self.uac.port};branch={self.branch};rport",
            f"From: <{CAROL}>;tag=caller",
            f"To: <{BOB}>",
            f"Call-ID: {self.call_id}",
            "Max-Forwards: 70",
        ]
        self._send(
            f"INVITE {BOB} SIP/2.0",
            "CSeq: 1 INVITE",
            f"Contact: <sip:carol@{host}:{self.uac.port}>",
            "Content-Type: application/sdp",
            body=body,
        )
        assert self._wait(lambda m: m.status == 180) is not None, proxy.log()

    def _send(self, first: str, *lines: str, body: str = "") -> None:
        text = "\r\n".join([first, *self.common, *lines, f"Content-Length: {len(body)}"])
        self.uac.sock.sendto(
            (text + "\r\n\r\n" + body).encode(), ("127.0.0.1", self.uac.proxy_port)
        )

    def _wait(self, matches: Callable[[Message], bool]) -> Message | None:
        deadline = time.monotonic() + 5
        while (remaining := deadline - time.monotonic()) > 0:
            self.uac.sock.settimeout(remaining)
            try:
                message = Message.parse(self.uac.sock.recv(65535))
            except TimeoutError:
                return None
            if matches(message):
                return message
        return None

    def cancel(self) -> int:
        """The final status of the INVITE after a CANCEL (ACKed)."""
        self._send(f"CANCEL {BOB} SIP/2.0", "CSeq: 1 CANCEL")
        final = self._wait(lambda m: m.status >= 300 and "INVITE" in (m.header("CSeq") or ""))
        assert final is not None
        to = final.header("To") or ""
        self.common[2] = f"To: {to}"
        self._send(f"ACK {BOB} SIP/2.0", "CSeq: 1 ACK")
        self.uac.close()
        return final.status


@pytest.mark.parametrize("switches", COMBINATIONS, ids=label)
def test_kamailio_checks_the_native_cfg_with_every_defence(
    tmp_path: Path, switches: tuple[str, ...]
) -> None:
    """test_cfg.py's combinations (WITH_ANTIFLOOD among them), with VM_SECRET on too."""
    cfg = install(tmp_path, "native", switches)
    with (tmp_path / "kamailio-local.cfg").open("a") as local:
        local.write(f'#!define VM_SECRET "{SECRET}"\n')
    result = subprocess.run(
        ["kamailio", "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30, cwd="/"
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert not [line for line in output.splitlines() if "ERROR" in line or "CRITICAL" in line]
