"""The worker's SIP transport with raw sockets: UDP, TCP, IPv6, malformed input."""

from __future__ import annotations

import asyncio
import contextlib
import socket

import pytest

from media_worker.sip.message import Response, parse_message
from tests.integration.conftest import WorkerFactory
from tests.integration.test_sipp import WaitingApp
from tests.support.procs import eventually

pytestmark = pytest.mark.integration


def options(host: str, port: int, transport: str = "UDP", content_length: bool = True) -> bytes:
    text = (
        f"OPTIONS sip:vm@{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/{transport} {host}:5999;branch=z9hG4bK-opt-{transport};rport\r\n"
        "From: <sip:probe@kamailio>;tag=p1\r\nTo: <sip:vm@worker>\r\n"
        "Call-ID: options-1\r\nCSeq: 10 OPTIONS\r\nMax-Forwards: 70\r\n"
    )
    return (text + ("Content-Length: 0\r\n" if content_length else "") + "\r\n").encode()


async def udp_exchange(family: int, host: str, port: int, data: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        sock.bind((host, 0))
        await loop.sock_sendto(sock, data, (host, port))
        return await asyncio.wait_for(loop.sock_recv(sock, 65535), 5)


async def tcp_exchange(host: str, port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(data)
        await writer.drain()
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        return head
    finally:
        writer.close()
        await writer.wait_closed()


def response(data: bytes) -> Response:
    message = parse_message(data)
    assert isinstance(message, Response)
    return message


async def test_options_over_udp_and_tcp(start_worker: WorkerFactory) -> None:
    worker = await start_worker(WaitingApp())
    udp = response(
        await udp_exchange(
            socket.AF_INET, "127.0.0.1", worker.port, options("127.0.0.1", worker.port)
        )
    )
    assert (udp.status, udp.headers.get("Allow")) == (200, "INVITE, ACK, CANCEL, BYE, OPTIONS")
    tcp = response(
        await tcp_exchange("127.0.0.1", worker.port, options("127.0.0.1", worker.port, "TCP"))
    )
    assert tcp.status == 200


async def test_ipv6(start_worker: WorkerFactory) -> None:
    worker = await start_worker(WaitingApp(), listen="::1", trusted=("::1/128",))
    reply = response(
        await udp_exchange(socket.AF_INET6, "::1", worker.port, options("[::1]", worker.port))
    )
    assert reply.status == 200
    via = reply.headers.get("Via") or ""
    assert "received=::1" in via or "rport=" in via


async def test_malformed_requests_get_400_with_the_reason(start_worker: WorkerFactory) -> None:
    worker = await start_worker(WaitingApp())
    bad_cseq = options("127.0.0.1", worker.port).replace(b"CSeq: 10 OPTIONS", b"CSeq: ten OPTIONS")
    reply = await udp_exchange(socket.AF_INET, "127.0.0.1", worker.port, bad_cseq)
    assert reply.startswith(b"SIP/2.0 400 malformed CSeq 'ten OPTIONS'\r\n")
    no_length = options("127.0.0.1", worker.port, "TCP", content_length=False)
    tcp = response(await tcp_exchange("127.0.0.1", worker.port, no_length))
    assert (tcp.status, tcp.reason) == (400, "missing Content-Length over a stream transport")


async def test_garbage_is_dropped_and_the_worker_carries_on(
    start_worker: WorkerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", "voicemail.sip")
    worker = await start_worker(WaitingApp())
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        await loop.sock_sendto(sock, b"\x00\xffnot sip at all\r\n\r\n", ("127.0.0.1", worker.port))
    await asyncio.sleep(0.2)
    assert "dropped a malformed message from 127.0.0.1" in caplog.text
    reply = response(
        await udp_exchange(
            socket.AF_INET, "127.0.0.1", worker.port, options("127.0.0.1", worker.port)
        )
    )
    assert reply.status == 200


def invite(host: str, port: int, transport: str = "UDP", extra: bytes = b"") -> bytes:
    return (
        (
            f"INVITE sip:bob@{host}:{port} SIP/2.0\r\n"
            f"Via: SIP/2.0/{transport} {host}:5999;branch=z9hG4bK-inv-{transport};rport\r\n"
            "From: <sip:alice@lab.example>;tag=a1\r\nTo: <sip:bob@lab.example>\r\n"
            "Call-ID: odd-1\r\nCSeq: 1 INVITE\r\nMax-Forwards: 70\r\n"
            f"Contact: <sip:alice@{host}:5999>\r\n"
        ).encode()
        + extra
        + b"Content-Length: 0\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("extra", "call_id", "reason"),
    [
        (b"Subject: caf\xe9\r\n", b"odd-\xff1", b"header section is not UTF-8"),
        (b"X-Filler: 1\r\n" * 250, b"odd-1", b"more than 200 header fields"),
    ],
)
async def test_requests_kamailio_would_forward_are_answered_not_dropped(
    start_worker: WorkerFactory, extra: bytes, call_id: bytes, reason: bytes
) -> None:
    """Before, these went unanswered and the proxy took the worker out of its set."""
    worker = await start_worker(WaitingApp())
    data = invite("127.0.0.1", worker.port, extra=extra).replace(b"odd-1", call_id)
    udp = await udp_exchange(socket.AF_INET, "127.0.0.1", worker.port, data)
    assert udp.startswith(b"SIP/2.0 400 " + reason + b"\r\n")
    assert b"\r\nCall-ID: " + call_id + b"\r\n" in udp  # the peer's own bytes back
    tcp = await tcp_exchange("127.0.0.1", worker.port, data.replace(b"SIP/2.0/UDP", b"SIP/2.0/TCP"))
    assert tcp.startswith(b"SIP/2.0 400 " + reason + b"\r\n")
    assert worker.core.calls == {}


async def test_untrusted_refusal_goes_to_the_source_not_to_the_via(
    start_worker: WorkerFactory,
) -> None:
    worker = await start_worker(WaitingApp(), trusted=("127.0.0.1/32",))
    loop = asyncio.get_running_loop()
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as attacker,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as victim,
    ):
        for sock, host in ((attacker, "127.0.0.2"), (victim, "127.0.0.1")):
            sock.setblocking(False)
            sock.bind((host, 0))
        victim_port = int(victim.getsockname()[1])
        forged = invite("127.0.0.1", worker.port).replace(
            b"127.0.0.1:5999;branch=z9hG4bK-inv-UDP;rport",
            f"127.0.0.1:{victim_port};branch=z9hG4bK-x".encode(),
        )
        await loop.sock_sendto(attacker, forged, ("127.0.0.1", worker.port))
        reply = response(await asyncio.wait_for(loop.sock_recv(attacker, 65535), 5))
        assert (reply.status, reply.reason) == (403, "Forbidden (untrusted source)")
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(loop.sock_recv(victim, 65535), 0.3)


async def closed_by_peer(reader: asyncio.StreamReader, within: float) -> bool:
    try:
        return await asyncio.wait_for(reader.read(65535), within) == b""
    except ConnectionResetError:
        return True


async def test_tcp_from_an_untrusted_address_is_closed_on_accept(
    start_worker: WorkerFactory,
) -> None:
    worker = await start_worker(WaitingApp(), trusted=("127.0.0.1/32",))
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", worker.port, local_addr=("127.0.0.2", 0)
    )
    try:
        assert await closed_by_peer(reader, 2)
        assert worker.transport.connections == {}
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_idle_tcp_is_closed_and_a_busy_one_kept(start_worker: WorkerFactory) -> None:
    worker = await start_worker(WaitingApp())
    worker.transport.idle_timeout = 0.4
    reader, writer = await asyncio.open_connection("127.0.0.1", worker.port)
    try:
        for _ in range(6):  # 0.9 s of keep-alive pings, each answered: not idle
            writer.write(b"\r\n\r\n")
            assert await asyncio.wait_for(reader.readexactly(2), 1) == b"\r\n"
            await asyncio.sleep(0.15)
        assert len(worker.transport.connections) == 1
        assert await closed_by_peer(reader, 2)  # then silence: closed
        assert worker.transport.connections == {}
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_a_partial_message_is_bounded(start_worker: WorkerFactory) -> None:
    worker = await start_worker(WaitingApp())
    reader, writer = await asyncio.open_connection("127.0.0.1", worker.port)
    try:
        writer.write(b"OPTIONS sip:x@y SIP/2.0\r\nX: " + b"a" * 70_000)  # never a blank line
        await writer.drain()
        assert await closed_by_peer(reader, 5)
        assert worker.transport.connections == {}
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def test_lines_about_garbage_are_rate_limited(
    start_worker: WorkerFactory, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", "voicemail.sip")
    worker = await start_worker(WaitingApp())
    loop = asyncio.get_running_loop()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setblocking(False)
        for _ in range(100):
            await loop.sock_sendto(sock, b"\x00garbage\r\n\r\n", ("127.0.0.1", worker.port))
    await eventually(lambda: caplog.text.count("dropped a malformed message") >= 10, 5)
    await asyncio.sleep(0.2)
    assert caplog.text.count("dropped a malformed message") == 10


async def test_a_bad_request_framed_by_its_length_does_not_close_the_connection(
    start_worker: WorkerFactory,
) -> None:
    """The proxy's TCP connection carries other calls: one bad request must not cut it."""
    worker = await start_worker(WaitingApp())
    bad = invite("127.0.0.1", worker.port, "TCP", b"Subject: caf\xe9\r\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", worker.port)
    try:
        writer.write(bad + options("127.0.0.1", worker.port, "TCP"))
        first = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        second = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 5)
        assert first.startswith(b"SIP/2.0 400 header section is not UTF-8\r\n")
        assert second.startswith(b"SIP/2.0 200 OK\r\n")
        assert len(worker.transport.connections) == 1
    finally:
        writer.close()
        await writer.wait_closed()
