"""Attacks on the native cfg through the real Kamailio and rtpengine (the proxy of
test_native_security: fake workers, callers on other loopback addresses)."""

from __future__ import annotations

import secrets
import socket
import time
from collections.abc import Iterator

import pytest

from tests.kamailio.test_native_security import (
    BOB,
    CAROL,
    SDP_HEADERS,
    FakeWorker,
    NativeProxy,
    proxy,
    sdp,
    workers,
)
from tests.kamailio.uac import Message

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
