"""The worker's SIP transport with raw sockets: UDP, TCP, IPv6, malformed input."""

from __future__ import annotations

import asyncio
import socket

import pytest

from media_worker.sip.message import Response, parse_message
from tests.integration.conftest import WorkerFactory
from tests.integration.test_sipp import WaitingApp

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
    worker = await start_worker(WaitingApp(), sip_host="::1", trusted=("::1/128",))
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
