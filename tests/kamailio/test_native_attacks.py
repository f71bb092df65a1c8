"""Attacks on the native cfg through the real Kamailio and rtpengine (the proxy of
test_native_security: fake workers, callers on other loopback addresses)."""

from __future__ import annotations

import contextlib
import secrets
import socket
import time
from collections.abc import Iterator

import pytest

from media_worker.lab.layout import DOMAIN
from tests.kamailio.dialogs import End, phone_call, receive, request_of
from tests.kamailio.dialogs import response as dialog_response
from tests.kamailio.test_native_security import (
    BOB,
    CAROL,
    PASSWORDS,
    SDP_HEADERS,
    FakeWorker,
    NativeProxy,
    proxy,
    sdp,
    workers,
)
from tests.kamailio.uac import Message, Uac

pytestmark = pytest.mark.integration

__all__ = ["proxy", "workers"]  # the module's fixtures, shared


def answer_with_dialog(worker: FakeWorker) -> None:
    """The worker answers 200 as a UAS does: its Contact, the Record-Route copied."""

    def reply(request: Message, status: int, source: tuple[str, int]) -> None:
        copied = [
            f"{n}: {v}"
            for n, v in request.headers
            if n.lower() in ("via", "from", "to", "call-id", "cseq", "record-route")
        ]
        copied = [
            line + ";tag=uas" if line.lower().startswith("to:") and ";tag=" not in line else line
            for line in copied
        ]
        reason = {200: "OK", 487: "Terminated"}.get(status, "Other")
        lines = [f"SIP/2.0 {status} {reason}", *copied]
        if status == 200 and request.method == "INVITE":
            lines.append(f"Contact: <sip:voicemail@127.0.0.1:{worker.port}>")
        lines.append("Content-Length: 0")
        worker.sock.sendto(("\r\n".join(lines) + "\r\n\r\n").encode(), source)

    worker._reply = reply  # type: ignore[method-assign]


@pytest.fixture
def gateway() -> Iterator[socket.socket]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(2)
    yield sock
    sock.close()


def test_an_in_dialog_request_of_a_known_dialog_goes_nowhere_but_its_worker(
    proxy: NativeProxy, workers: list[FakeWorker], gateway: socket.socket
) -> None:
    """A stranger's own voicemail call is a dialog the proxy knows; requests in it aimed
    at a gateway (by R-URI, a NAT alias on the worker's URI, a further Route) are not
    relayed there."""
    workers[0].answer = 200
    answer_with_dialog(workers[0])
    gw_port = gateway.getsockname()[1]
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as caller:
        caller.bind(("127.0.0.40", 0))
        caller.settimeout(5)
        host, port = caller.getsockname()
        call_id = f"{secrets.token_hex(6)}@x"

        def send(method: str, ruri: str, cseq: int, headers: list[str], body: str = "") -> None:
            lines = [
                f"{method} {ruri} SIP/2.0",
                f"Via: SIP/2.0/UDP {host}:{port};branch=z9hG4bK{secrets.token_hex(6)};rport",
                f"From: <{CAROL}>;tag=caller",
                f"To: <{BOB}>" + (";tag=uas" if method != "INVITE" or cseq > 1 else ""),
                f"Call-ID: {call_id}",
                f"CSeq: {cseq} {method}",
                "Max-Forwards: 70",
                f"Contact: <sip:carol@{host}:{port}>",
                *headers,
                f"Content-Length: {len(body)}",
            ]
            caller.sendto(
                ("\r\n".join(lines) + "\r\n\r\n" + body).encode(),
                ("127.0.0.1", proxy.kamailio.port),
            )

        send("INVITE", BOB, 1, [f"{n}: {v}" for n, v in SDP_HEADERS], sdp())
        while True:
            response = Message.parse(caller.recv(65535))
            if response.status >= 200:
                break
        assert response.status == 200, proxy.log()
        routes = [f"Route: {v}" for n, v in response.headers if n.lower() == "record-route"]
        assert routes, response
        worker = f"sip:voicemail@127.0.0.1:{workers[0].port}"
        send("ACK", worker, 1, routes)
        text = ["Content-Type: text/plain"]
        send("MESSAGE", f"sip:+4930123@127.0.0.1:{gw_port}", 2, [*routes, *text], "hi")
        send("MESSAGE", f"{worker};alias=127.0.0.1~{gw_port}~1", 3, [*routes, *text], "hi")
        further = [*routes, f"Route: <sip:127.0.0.1:{gw_port};lr>"]
        send("MESSAGE", worker, 4, [*further, *text], "hi")
        try:
            leaked = gateway.recv(65535)
        except TimeoutError:
            leaked = b""
        send("BYE", worker, 5, routes)
        time.sleep(0.5)
    del workers[0]._reply
    assert leaked == b"", leaked[:300]
    assert "not a media worker" in proxy.log()


def test_a_worker_refusing_the_signature_passes_the_call_on(
    proxy: NativeProxy, workers: list[FakeWorker]
) -> None:
    """A worker with another secret answers 403 Bad signature while its probes pass:
    the call goes to the next worker, nothing is marked, the log names what to check."""

    def bad_signature(request: Message, status: int, source: tuple[str, int]) -> None:
        copied = [
            f"{n}: {v}"
            for n, v in request.headers
            if n.lower() in ("via", "from", "to", "call-id", "cseq")
        ]
        copied = [line + ";tag=uas" if line.lower().startswith("to:") else line for line in copied]
        head = (
            "SIP/2.0 403 Bad signature\r\n" if request.method == "INVITE" else "SIP/2.0 200 OK\r\n"
        )
        workers[0].sock.sendto(
            (head + "\r\n".join(copied) + "\r\nContent-Length: 0\r\n\r\n").encode(), source
        )

    workers[0]._reply = bad_signature  # type: ignore[method-assign]
    try:
        with proxy.uac("127.0.0.41") as uac:
            response = uac.request("INVITE", BOB, from_=CAROL, headers=SDP_HEADERS, body=sdp())
        assert response.status == 404, proxy.log()  # worker 2's answer
        assert len(workers[1].invites) == 1
        assert "refused the signature (Bad signature)" in proxy.log()
        assert proxy.worker_flags() == ["AP", "AP"]
    finally:
        del workers[0]._reply


@contextlib.contextmanager
def registered_bob(proxy: NativeProxy) -> Iterator[Uac]:
    """bob's phone on 127.0.0.1, unregistered again afterwards (other tests call him
    unregistered)."""
    with proxy.uac() as phone:
        registered = phone.request(
            "REGISTER", f"sip:{DOMAIN}", from_=BOB, to=BOB, password=PASSWORDS["bob"]
        )
        assert registered.status == 200, proxy.log()
        try:
            yield phone
        finally:
            phone.request(
                "REGISTER", f"sip:{DOMAIN}", from_=BOB, to=BOB,
                headers=(("Expires", "0"),), password=PASSWORDS["bob"],
            )  # fmt: skip


def test_a_request_in_a_strangers_call_to_a_phone_goes_nowhere_but_the_phone(
    proxy: NativeProxy, gateway: socket.socket
) -> None:
    """A stranger's call rings bob's phone (its 180 names its Contact): what the
    stranger sends in the early dialog goes to that Contact only, not to a gateway
    named in the R-URI, a NAT alias or a further Route."""
    gw_port = gateway.getsockname()[1]
    with registered_bob(proxy) as bob, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.41", 0))
        stranger = End(sock, proxy.kamailio.port, CAROL, "stranger-1", BOB, cseq=0)
        stranger.call_id = f"ring-{secrets.token_hex(4)}@x"
        stranger.send("INVITE", BOB, body=sdp())
        invite = receive(bob.sock, request_of("INVITE"))
        contact = f"sip:bob@127.0.0.1:{bob.port}"
        bob.sock.sendto(
            dialog_response(invite, 180, "Ringing", to_tag="bob-1", contact=contact),
            ("127.0.0.1", proxy.kamailio.port),
        )
        receive(sock, lambda m: m.status == 180)
        stranger.peer_tag = "bob-1"
        stranger.routes = [v for n, v in invite.headers if n.lower() == "record-route"]
        text = ("Content-Type: text/plain",)
        stranger.send("MESSAGE", f"sip:+4930123@127.0.0.1:{gw_port}", *text)
        stranger.send("MESSAGE", f"{contact};alias=127.0.0.1~{gw_port}~1", *text)
        routes = stranger.routes
        stranger.routes = [*routes, f"<sip:127.0.0.1:{gw_port};lr>"]
        stranger.send("MESSAGE", contact, *text)
        try:
            leaked = gateway.recv(65535)
        except TimeoutError:
            leaked = b""
        stranger.routes = routes
        # the phone's Contact is reached, through an alias naming its own address too
        stranger.send("MESSAGE", f"{contact};alias=127.0.0.1~{bob.port}~1", *text)
        receive(bob.sock, request_of("MESSAGE"))
        cseq = stranger.send("MESSAGE", contact, *text)
        try:
            message = receive(bob.sock, request_of("MESSAGE"))
        except TimeoutError:
            raise AssertionError(proxy.log()) from None
        bob.sock.sendto(  # the call ends unanswered
            dialog_response(invite, 487, "Request Terminated", to_tag="bob-1", contact=contact),
            ("127.0.0.1", proxy.kamailio.port),
        )
    assert leaked == b"", leaked[:300]
    assert message.header("CSeq") == f"{cseq} MESSAGE"
    assert "not [sip:bob@127.0.0.1:" in proxy.log()


@pytest.mark.parametrize(
    ("hangup_by_callee", "callee_proxy"),
    [(False, False), (True, False), (False, True)],
    ids=["caller-bye", "callee-bye", "callee-proxy"],
)
def test_a_call_between_phones_carries_both_sides_requests(
    proxy: NativeProxy, gateway: socket.socket, hangup_by_callee: bool, callee_proxy: bool
) -> None:
    """An answered call to bob's phone: the caller's ACK, re-INVITE and BYE go to the
    phone's Contact, the phone's re-INVITE and BYE back to the caller."""
    with registered_bob(proxy) as bob, socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.42", 0))
        phone_call(
            proxy.kamailio.port, sock, CAROL, bob.sock, BOB,
            hangup_by_callee=hangup_by_callee, callee_proxy=callee_proxy, gateway=gateway,
        )  # fmt: skip
