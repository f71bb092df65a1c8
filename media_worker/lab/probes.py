"""Is a part up? One probe per protocol, each a single request with a short timeout:
SIP OPTIONS (Kamailio, the workers), rtpengine's ng ping, an SMTP banner, an HTTP
request (the API, the webhook catcher)."""

from __future__ import annotations

import secrets
import socket

TIMEOUT = 0.5  # seconds: a loopback server that is up answers at once
API_PROBE = "/api/v1/openapi.json"  # `voicemail api` serves it without credentials


def sip_options(host: str, port: int) -> bytes:
    tag = secrets.randbelow(10**9)
    return (
        f"OPTIONS sip:{host}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {host}:9;branch=z9hG4bK-probe{tag};rport\r\n"
        f"From: <sip:probe@{host}>;tag={tag}\r\nTo: <sip:{host}>\r\n"
        f"Call-ID: probe-{tag}\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\n"
        "Content-Length: 0\r\n\r\n"
    ).encode()


def answers_options(host: str, port: int, timeout: float = TIMEOUT) -> bool:
    """A SIP server on UDP answers OPTIONS with 200 (``rport``: to our socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(sip_options(host, port), (host, port))
            return sock.recv(65535).startswith(b"SIP/2.0 200")
        except OSError:
            return False


def answers_ng(host: str, port: int, timeout: float = TIMEOUT) -> bool:
    """rtpengine's ng protocol (bencode over UDP): a ping is answered with pong."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.sendto(b"probe d7:command4:pinge", (host, port))
            return b"pong" in sock.recv(4096)
        except OSError:
            return False


def answers_smtp(host: str, port: int, timeout: float = TIMEOUT) -> bool:
    """An SMTP server greets with 220."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            return sock.recv(512).startswith(b"220")
    except OSError:
        return False


def answers_http(
    host: str, port: int, path: str = "/", ok: int | None = None, timeout: float = TIMEOUT
) -> bool:
    """An HTTP server answers a GET of ``path`` with a status line (with ``ok``: with
    that status, so a page that needs no credentials shows the application is up, not
    just its socket)."""
    request = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n"
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.sendall(request.encode())
            line = sock.recv(512).split(b"\r\n", 1)[0].split()
    except OSError:
        return False
    if len(line) < 2 or not line[0].startswith(b"HTTP/1.") or not line[1].isdigit():
        return False
    return ok is None or int(line[1]) == ok
