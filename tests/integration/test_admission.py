"""Admission against a real worker socket: the proxy's signature, and sip.max_calls."""

from __future__ import annotations

import asyncio
import itertools
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from kemi import signing
from media_worker.sip.address import NameAddr
from media_worker.sip.message import Response, parse_message
from tests.integration.conftest import WorkerFactory
from tests.integration.test_sipp import WaitingApp
from tests.integration.test_worker_command import _start as start_command
from tests.integration.test_worker_command import write_config
from tests.support.procs import stop_process

pytestmark = pytest.mark.integration

SECRET = "integration-secret-0123456789"
PARAM = "usr=bob;dom=lab.example;mod=box"
SDP = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 40002 RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
)
_ids = itertools.count(1)


@dataclass
class Uac:
    """Just enough of a phone (or a proxy) on a UDP socket to call a worker."""

    sock: socket.socket
    worker: tuple[str, int]

    @property
    def port(self) -> int:
        return int(self.sock.getsockname()[1])

    async def send(self, text: str) -> None:
        await asyncio.get_running_loop().sock_sendto(self.sock, text.encode(), self.worker)

    async def final(self, call_id: str, method: str = "INVITE") -> Response:
        """The final response to ``method`` of ``call_id`` (provisional ones skipped)."""
        loop = asyncio.get_running_loop()
        async with asyncio.timeout(5):
            while True:
                message = parse_message(await loop.sock_recv(self.sock, 65535))
                if (
                    isinstance(message, Response)
                    and message.call_id == call_id
                    and method in (message.headers.get("CSeq") or "")
                    and message.status >= 200
                ):
                    return message

    def request(
        self,
        method: str,
        call_id: str,
        *,
        seq: int = 1,
        to_tag: str = "",
        extra: str = "",
        branch: str = "",
    ) -> str:
        body = SDP if method == "INVITE" and not to_tag else ""
        to = f"<sip:vm@127.0.0.1>{';tag=' + to_tag if to_tag else ''}"
        return (
            f"{method} sip:vm@127.0.0.1:{self.worker[1]} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-{call_id}-{branch or seq};rport\r\n"
            f"From: <sip:alice@lab.example>;tag=from-{call_id}\r\nTo: {to}\r\n"
            f"Call-ID: {call_id}\r\nCSeq: {seq} {method}\r\nMax-Forwards: 70\r\n"
            f"Contact: <sip:alice@127.0.0.1:{self.port}>\r\n{extra}"
            f"Content-Type: application/sdp\r\nContent-Length: {len(body)}\r\n\r\n{body}"
        )

    async def invite(self, call_id: str, extra: str = "") -> Response:
        await self.send(self.request("INVITE", call_id, extra=extra))
        response = await self.final(call_id)
        to_tag = NameAddr.parse(response.headers.get("To") or "").tag or ""
        # The ACK of a 2xx is a transaction of its own; that of a refusal is the INVITE's.
        branch = "ack" if response.status < 300 else ""
        await self.send(self.request("ACK", call_id, to_tag=to_tag, branch=branch))
        return response

    async def bye(self, call_id: str, to_tag: str) -> Response:
        await self.send(self.request("BYE", call_id, seq=2, to_tag=to_tag))
        return await self.final(call_id, "BYE")


UacFactory = Callable[[int], Uac]


@pytest.fixture
async def uac_for() -> AsyncIterator[UacFactory]:
    opened: list[socket.socket] = []

    def make(port: int) -> Uac:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.setblocking(False)
        opened.append(sock)
        return Uac(sock, ("127.0.0.1", port))

    yield make
    for sock in opened:
        sock.close()


def signature(call_id: str, t: int, *, name: str = "voicemail", param: str = PARAM) -> str:
    return signing.sign(SECRET, t, (call_id, name, param))


def app_headers(call_id: str, value: str, param: str = PARAM) -> str:
    return f"P-App-Name: voicemail\r\nP-App-Param: {param}\r\n{signing.HEADER}: {value}\r\n"


def to_tag(response: Response) -> str:
    return NameAddr.parse(response.headers.get("To") or "").tag or ""


async def test_only_signed_fresh_untampered_requests_are_served(
    start_worker: WorkerFactory, uac_for: UacFactory, caplog: pytest.LogCaptureFixture
) -> None:
    now = 1_764_625_504.0
    app = WaitingApp()
    worker = await start_worker(app, secret=SECRET, clock=lambda: now)
    uac: Uac = uac_for(worker.port)
    t = int(now)

    signed = await uac.invite("signed", app_headers("signed", signature("signed", t - 20)))
    assert signed.status == 200
    assert (await uac.bye("signed", to_tag(signed))).status == 200

    refused = {
        "unsigned": ("P-App-Name: voicemail\r\n", "Unsigned request"),
        "stale": (app_headers("stale", signature("stale", t - 31)), "Stale signature"),
        "future": (app_headers("future", signature("future", t + 31)), "Stale signature"),
        "other-call": (app_headers("other-call", signature("signed", t)), "Bad signature"),
        "tampered": (
            app_headers("tampered", signature("tampered", t), "usr=carol;dom=lab.example"),
            "Bad signature",
        ),
        "renamed": (
            app_headers("renamed", signature("renamed", t, name="voicebox")),
            "Bad signature",
        ),
        "malformed": (app_headers("malformed", "t=1; sig=0"), "Malformed signature"),
    }
    for call_id, (extra, reason) in refused.items():
        response = await uac.invite(call_id, extra)
        assert (response.status, response.reason) == (403, reason), call_id
        assert f"[{call_id}] INVITE from 127.0.0.1:{uac.port} refused: 403 {reason}" in caplog.text
    assert app.calls == 1
    assert worker.core.calls == {}
    # Other requests that are not in a dialog need the signature too; OPTIONS probes do not.
    await uac.send(uac.request("MESSAGE", "message"))
    assert (await uac.final("message", "MESSAGE")).status == 403
    await uac.send(uac.request("OPTIONS", "probe"))
    assert (await uac.final("probe", "OPTIONS")).status == 200


async def test_without_a_secret_unsigned_requests_are_served(
    start_worker: WorkerFactory, uac_for: UacFactory
) -> None:
    worker = await start_worker(WaitingApp())
    uac: Uac = uac_for(worker.port)
    response = await uac.invite("plain", "P-App-Name: voicemail\r\n")
    assert response.status == 200
    assert (await uac.bye("plain", to_tag(response))).status == 200


async def test_beyond_max_calls_a_new_invite_gets_503_until_a_call_ends(
    start_worker: WorkerFactory, uac_for: UacFactory
) -> None:
    app = WaitingApp()
    worker = await start_worker(app, max_calls=2)
    uac: Uac = uac_for(worker.port)
    first = await uac.invite("first")
    second = await uac.invite("second")
    assert (first.status, second.status) == (200, 200)
    bound = len(worker._calls)
    third = await uac.invite("third")
    assert (third.status, third.reason) == (503, "Service Unavailable")
    assert third.headers.get("Retry-After") == "5"
    assert len(worker._calls) == bound == 2  # no RTP ports were taken for it
    assert (await uac.bye("first", to_tag(first))).status == 200
    for _ in range(250):  # the app returns, and the call's ports are released
        if len(worker._calls) < 2:
            break
        await asyncio.sleep(0.02)
    fourth = await uac.invite("fourth")
    assert fourth.status == 200
    # The call that stayed up is untouched: it still ends normally.
    assert (await uac.bye("second", to_tag(second))).status == 200
    assert (await uac.bye("fourth", to_tag(fourth))).status == 200
    assert app.calls == 3


async def test_the_worker_command_takes_the_secret_from_its_configuration(
    tmp_path: Path, uac_for: UacFactory
) -> None:
    config = write_config(tmp_path)
    text = config.read_text().replace(
        "sip: {listen: 127.0.0.1, port: 0}",
        f"sip: {{listen: 127.0.0.1, port: 0, secret: {SECRET}, max_calls: 1}}",
    )
    config.write_text(text)
    log = tmp_path / "worker.log"
    proc, port = await asyncio.to_thread(start_command, config, log)
    try:
        uac = uac_for(port)
        unsigned = await uac.invite("command-unsigned", "P-App-Name: voicemail\r\n")
        assert (unsigned.status, unsigned.reason) == (403, "Unsigned request")
        await uac.send(uac.request("OPTIONS", "command-probe"))
        assert (await uac.final("command-probe", "OPTIONS")).status == 200
        assert "sip.secret is not set" not in log.read_text()
    finally:
        await asyncio.to_thread(stop_process, proc)
