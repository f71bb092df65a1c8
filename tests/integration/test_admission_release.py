"""Every INVITE a worker cannot serve is answered, and what it held is released.

A real worker and the real voicemail application, raw SIP over UDP: hundreds of bad
INVITEs, and a thousand admitted ones cancelled while ringing, leave no call, no
transaction, no admitted request and no RTP socket behind.
"""

from __future__ import annotations

import asyncio
import gc
import os
import socket
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from media_worker.apps.params import AppRequest
from media_worker.apps.service import VoicemailService
from media_worker.config import AppsConfig
from media_worker.sdp import LocalMedia
from media_worker.sip.message import Request, Response, parse_message, response_to, serialize
from media_worker.sip.timers import Timers
from media_worker.worker import Worker
from storage import Storage
from tests.integration.conftest import WorkerFactory, service
from tests.integration.test_sipp import WaitingApp
from tests.support.procs import eventually

pytestmark = pytest.mark.integration

# Short timers: a refused INVITE's transaction is gone a fraction of a second after its ACK.
FAST = Timers(t1=0.02, t2=0.1, t4=0.05)
BAD_PORT_SDP = "v=0\r\no=x 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
BAD_PORT_SDP += "m=audio 5\u00b2 RTP/AVP 0\r\n"
GOOD_SDP = BAD_PORT_SDP.replace("5\u00b2", "40000")


class Phone:
    """A UDP socket that speaks just enough SIP to send INVITEs and ACK their answers."""

    def __init__(self, worker_port: int) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port = int(self.sock.getsockname()[1])
        self.worker = ("127.0.0.1", worker_port)

    def close(self) -> None:
        self.sock.close()

    def invite(self, call_id: str, body: str) -> bytes:
        payload = body.encode()
        return (
            f"INVITE sip:bob@lab.example SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-{call_id};rport\r\n"
            f"From: <sip:alice@lab.example>;tag=a-{call_id}\r\n"
            "To: <sip:bob@lab.example>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
            f"Contact: <sip:alice@127.0.0.1:{self.port}>\r\n"
            "P-App-Name: voicemail\r\nP-App-Param: usr=bob;dom=lab.example;mod=box\r\n"
            + ("Content-Type: application/sdp\r\n" if payload else "")
            + f"Content-Length: {len(payload)}\r\n\r\n"
        ).encode() + payload

    def cancel(self, call_id: str) -> bytes:
        """The CANCEL of ``invite(call_id)``: its Via branch, From, To and Call-ID."""
        return (
            f"CANCEL sip:bob@lab.example SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK-{call_id};rport\r\n"
            f"From: <sip:alice@lab.example>;tag=a-{call_id}\r\n"
            "To: <sip:bob@lab.example>\r\n"
            f"Call-ID: {call_id}\r\nCSeq: 1 CANCEL\r\nMax-Forwards: 70\r\n"
            "Content-Length: 0\r\n\r\n"
        ).encode()

    async def send(self, data: bytes) -> None:
        await asyncio.get_running_loop().sock_sendto(self.sock, data, self.worker)

    async def receive(self) -> Request | Response:
        data = await asyncio.wait_for(asyncio.get_running_loop().sock_recv(self.sock, 65535), 5)
        message = parse_message(data)
        assert isinstance(message, Request | Response)
        return message

    async def final(self, call_id: str, cseq: int = 1) -> Response:
        """The final response to this call's request with this CSeq (retransmissions of
        earlier ones are skipped)."""
        while True:
            message = await self.receive()
            if (
                isinstance(message, Response)
                and message.call_id == call_id
                and message.cseq()[0] == cseq
                and message.status >= 200
            ):
                return message

    async def ack(self, response: Response, body: str = "") -> None:
        to = response.headers.get("To")
        payload = body.encode()
        branch = "z9hG4bK-ack-" if 200 <= response.status < 300 else "z9hG4bK-"
        await self.send(
            (
                f"ACK sip:bob@lab.example SIP/2.0\r\n"
                f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch={branch}{response.call_id}\r\n"
                f"From: <sip:alice@lab.example>;tag=a-{response.call_id}\r\nTo: {to}\r\n"
                f"Call-ID: {response.call_id}\r\nCSeq: 1 ACK\r\nMax-Forwards: 70\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n"
            ).encode()
            + payload
        )


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def admitted_requests() -> int:
    """AppRequests alive anywhere in the process (the admitted calls' profiles)."""
    gc.collect()
    return sum(isinstance(o, AppRequest) for o in gc.get_objects())


def held(worker: Worker, app: VoicemailService) -> dict[str, int]:
    return {
        "calls": len(worker.core.calls),
        "worker calls": len(worker._calls),  # each with what the app admitted
        "transactions": 0 if worker.core.next_deadline() is None else 1,
        "journals": len(app.context.journals),
    }


NOTHING = {"calls": 0, "worker calls": 0, "transactions": 0, "journals": 0}


@pytest.fixture
async def setup(
    start_worker: WorkerFactory, tmp_path: Path, store: Storage
) -> AsyncIterator[tuple[Worker, VoicemailService, Phone]]:
    app, _ = service(tmp_path, store, 9, AppsConfig())
    worker = await start_worker(app, timers=FAST)
    phone = Phone(worker.port)
    try:
        yield worker, app, phone
    finally:
        phone.close()


async def test_200_invites_with_a_non_ascii_digit_in_the_port_are_answered_and_released(
    setup: tuple[Worker, VoicemailService, Phone],
) -> None:
    worker, app, phone = setup
    fds = open_fds()
    for i in range(200):
        call_id = f"bad-port-{i}"
        await phone.send(phone.invite(call_id, BAD_PORT_SDP))
        final = await phone.final(call_id)
        assert (final.status, final.reason) == (400, "SDP line 6: malformed media port '5\u00b2'")
        await phone.ack(final)
    await eventually(lambda: held(worker, app) == NOTHING, 5, lambda: str(held(worker, app)))
    assert open_fds() == fds  # every RTP socket pair closed
    # And the worker still takes a good call.
    await phone.send(phone.invite("good", GOOD_SDP))
    assert (await phone.final("good")).status == 200


async def test_any_exception_while_admitting_is_a_500_and_releases_everything(
    setup: tuple[Worker, VoicemailService, Phone],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    worker, app, phone = setup

    def broken(self: LocalMedia, offer: object) -> object:
        raise ZeroDivisionError("a bug")

    monkeypatch.setattr(LocalMedia, "answer", broken)
    fds = open_fds()
    for i in range(50):
        await phone.send(phone.invite(f"bug-{i}", GOOD_SDP))
        final = await phone.final(f"bug-{i}")
        assert (final.status, final.reason) == (500, "Server Internal Error (ZeroDivisionError)")
        await phone.ack(final)
    await eventually(lambda: held(worker, app) == NOTHING, 5, lambda: str(held(worker, app)))
    assert open_fds() == fds
    assert "[bug-49] admission failed" in caplog.text


async def test_a_late_offer_whose_ack_has_a_bad_answer_is_hung_up_at_once(
    setup: tuple[Worker, VoicemailService, Phone],
) -> None:
    worker, app, phone = setup
    fds = open_fds()
    await phone.send(phone.invite("late", ""))
    ok = await phone.final("late")
    assert ok.status == 200
    assert ok.body.startswith(b"v=0")
    assert held(worker, app)["worker calls"] == 1  # with its admitted request
    assert open_fds() == fds + 2  # the RTP and RTCP sockets offered in the 200
    await phone.ack(ok, BAD_PORT_SDP)
    bye = await phone.receive()
    assert isinstance(bye, Request)
    assert bye.method == "BYE"
    # Released when the BYE goes out, not when it is answered.
    assert open_fds() == fds
    assert (len(worker._calls), len(worker.core.calls)) == (0, 0)
    await phone.send(serialize(response_to(bye, 200)))


async def test_1000_calls_admitted_and_cancelled_while_ringing_leave_nothing(
    start_worker: WorkerFactory, tmp_path: Path, store: Storage
) -> None:
    app, _ = service(tmp_path, store, 9, AppsConfig())
    worker = await start_worker(app, timers=FAST, ring_time=30.0)  # rings until cancelled
    phone = Phone(worker.port)
    try:
        fds, before = open_fds(), admitted_requests()
        loop = asyncio.get_running_loop()

        async def answers(ids: list[str], wanted: Callable[[Response], bool]) -> None:
            """Read until each call got a response ``wanted``; ACK the final ones."""
            waiting = set(ids)
            async with asyncio.timeout(5):  # one timer, not a task per datagram
                while waiting:
                    message = parse_message(await loop.sock_recv(phone.sock, 65535))
                    if not isinstance(message, Response):
                        continue
                    if message.cseq() == (1, "INVITE") and message.status >= 200:
                        assert message.status == 487, message.status  # cancelled
                        await phone.ack(message)
                    if wanted(message):
                        waiting.discard(message.call_id)

        for batch in range(50):  # 20 at a time: what a phone's socket buffer holds
            ids = [f"cancelled-{batch}-{i}" for i in range(20)]
            for call_id in ids:
                await phone.send(phone.invite(call_id, GOOD_SDP))
            await answers(ids, lambda r: r.status == 180)
            assert len(worker._calls) == len(ids)  # admitted, each with its RTP ports
            for call_id in ids:
                await phone.send(phone.cancel(call_id))
            await answers(ids, lambda r: r.cseq() == (1, "INVITE") and r.status >= 200)
        await eventually(lambda: held(worker, app) == NOTHING, 5, lambda: str(held(worker, app)))
        assert open_fds() == fds
        assert admitted_requests() == before
        assert not [name for name, value in vars(app).items() if isinstance(value, dict)]
    finally:
        phone.close()


async def test_a_reinvite_that_fails_is_answered_and_the_call_goes_on(
    start_worker: WorkerFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    worker = await start_worker(WaitingApp(), timers=FAST)
    phone = Phone(worker.port)
    try:
        await phone.send(phone.invite("re", GOOD_SDP))
        ok = await phone.final("re")
        assert ok.status == 200
        await phone.ack(ok)
        to = ok.headers.get("To")

        async def reinvite(seq: int, body: str) -> Response:
            payload = body.encode()
            await phone.send(
                (
                    "INVITE sip:bob@lab.example SIP/2.0\r\n"
                    f"Via: SIP/2.0/UDP 127.0.0.1:{phone.port};branch=z9hG4bK-re{seq}\r\n"
                    f"From: <sip:alice@lab.example>;tag=a-re\r\nTo: {to}\r\n"
                    f"Call-ID: re\r\nCSeq: {seq} INVITE\r\nMax-Forwards: 70\r\n"
                    f"Contact: <sip:alice@127.0.0.1:{phone.port}>\r\n"
                    f"Content-Type: application/sdp\r\nContent-Length: {len(payload)}\r\n\r\n"
                ).encode()
                + payload
            )
            return await phone.final("re", seq)

        assert (await reinvite(2, BAD_PORT_SDP)).status == 400

        def broken(self: LocalMedia, offer: object) -> object:
            raise ZeroDivisionError("a bug")

        with monkeypatch.context() as patch:
            patch.setattr(LocalMedia, "answer", broken)
            assert (await reinvite(3, GOOD_SDP)).status == 500
        assert (await reinvite(4, GOOD_SDP)).status == 200  # no re-INVITE left pending
        assert len(worker.core.calls) == 1
    finally:
        phone.close()
