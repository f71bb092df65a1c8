"""Webhook deliveries against the lab's real catcher (a separate process on a free port):
signed and complete, retried after the receiver was down, kept across a restart of the
outbox, refusals set aside; an endpoint that hangs or answers a huge body holds nobody."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import IO

import httpx
import pytest

from media_worker.changes import Notice
from media_worker.config import ConfigError, WebhookEndpoint, WebhooksConfig, parse_config
from media_worker.webhooks.events import delivery_id, event_body, verify, wanted
from media_worker.webhooks.outbox import WebhookOutbox
from storage import ChangeEvent, ChangeKind, MessageInfo
from tests.support.procs import eventually, free_port, start_process, stop_process

pytestmark = pytest.mark.integration

SECRET = "lab-webhook-secret-0123"
INFO = MessageInfo("1700000000+alice", True, 16044, 1_700_000_000, "alice", 1.0)


def notice(kind: ChangeKind = ChangeKind.NEW, name: str = INFO.name) -> Notice:
    info = INFO if kind.moves_lamp else None
    return Notice.of(ChangeEvent(kind, "lab.example", "bob", name, info, 1_700_000_100.5), "t")


def settings(port: int, **extra: object) -> WebhooksConfig:
    endpoint = WebhookEndpoint(name="lab", url=f"http://127.0.0.1:{port}/hook", secret=SECRET)
    values: dict[str, object] = {"retry_delay": 0.1, "retry_max_delay": 0.4, **extra}
    return WebhooksConfig(endpoints=(endpoint,), **values)  # type: ignore[arg-type]


@pytest.fixture
def catcher(tmp_path: Path) -> Iterator[Callable[..., Awaitable[tuple[int, Path]]]]:
    """``await catcher(port=None, secret=SECRET)``: start a catcher process, return once it
    listens; all are stopped."""
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[IO[bytes]] = []

    async def start(port: int | None = None, secret: str = SECRET) -> tuple[int, Path]:
        port = port or free_port()
        directory = tmp_path / f"caught-{port}"
        log = (tmp_path / f"catcher-{port}.log").open("ab")
        logs.append(log)
        proc = start_process(
            [sys.executable, "-m", "media_worker.lab.webhooks", "--listen", "127.0.0.1",
             "--port", str(port), "--dir", str(directory), "--secret", secret],
            log,
        )  # fmt: skip
        procs.append(proc)
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                if proc.poll() is not None:
                    raise AssertionError((tmp_path / f"catcher-{port}.log").read_text()) from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            break
        return port, directory

    try:
        yield start
    finally:
        for proc in procs:
            stop_process(proc)
        for log in logs:
            log.close()


@pytest.fixture
async def outboxes(tmp_path: Path) -> AsyncIterator[Callable[[WebhooksConfig], WebhookOutbox]]:
    started: list[WebhookOutbox] = []

    def make(config: WebhooksConfig) -> WebhookOutbox:
        box = WebhookOutbox(tmp_path / "webhooks", config)
        started.append(box)
        return box

    try:
        yield make
    finally:
        for box in started:
            await box.stop()


def saved(directory: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(directory.glob("*.json"))]


async def test_a_delivery_is_signed_and_complete(
    catcher: Callable[..., Awaitable[tuple[int, Path]]],
    outboxes: Callable[[WebhooksConfig], WebhookOutbox],
) -> None:
    port, directory = await catcher()
    box = outboxes(settings(port))
    await box.start()
    change = notice()
    [job] = await box.enqueue(change)
    assert job == delivery_id(change.id, "lab")
    await eventually(lambda: (directory / f"{job}.json").exists(), 10)
    record = json.loads((directory / f"{job}.json").read_text())
    assert record["signature_verified"] is True
    headers = {k.lower(): v for k, v in record["headers"].items()}
    assert headers["x-voicemail-event"] == "message.created"
    assert headers["x-voicemail-delivery"] == job
    assert headers["content-type"] == "application/json"
    assert record["body"] == {
        "id": change.id,
        "type": "message.created",
        "occurred_at": "2023-11-14T22:15:00.500Z",
        "mailbox": {"domain": "lab.example", "user": "bob"},
        "message": {
            "name": "1700000000+alice", "new": True, "received_at": "2023-11-14T22:13:20Z",
            "received_at_unix": 1_700_000_000, "sender": "alice", "duration_s": 1.0,
            "size": 16044,
        },
    }  # fmt: skip
    await eventually(lambda: box.pending() == [], 5)
    assert list((box.directory).glob("*.job")) == []


def test_the_signature_is_hmac_sha256_of_the_body() -> None:
    body = json.dumps(event_body(notice(ChangeKind.GREETING_DELETED, "vm"))).encode()
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert verify(SECRET, body, expected)
    assert not verify(SECRET, body + b" ", expected)
    assert not verify("another-secret-0123", body, expected)
    assert not verify(SECRET, body, None)
    assert json.loads(body)["greeting"] == {"type": "vm"}


async def test_retried_after_the_receiver_was_down_and_across_a_restart(
    catcher: Callable[..., Awaitable[tuple[int, Path]]],
    outboxes: Callable[[WebhooksConfig], WebhookOutbox],
) -> None:
    port = free_port()  # nobody listens yet
    first = outboxes(settings(port))
    await first.start()
    [job] = await first.enqueue(notice(ChangeKind.READ))
    [other] = await first.enqueue(notice(ChangeKind.DELETED))

    def attempted() -> bool:
        return all(first._jobs[j].attempts >= 2 for j in (job, other))

    await eventually(attempted, 10)
    await first.stop()  # the worker stops with both undelivered ...
    assert sorted(p.stem for p in first.directory.glob("*.job")) == sorted([job, other])
    _, directory = await catcher(port)  # ... the receiver comes back ...
    second = outboxes(settings(port))
    await second.start()  # ... and so does the worker
    await eventually(lambda: len(list(directory.glob("*.json"))) == 2, 10)
    assert {r["body"]["type"] for r in saved(directory)} == {"message.read", "message.deleted"}  # type: ignore[index]
    await eventually(lambda: second.pending() == [], 5)


async def test_a_refusal_is_set_aside_with_a_log_line(
    catcher: Callable[..., Awaitable[tuple[int, Path]]],
    outboxes: Callable[[WebhooksConfig], WebhookOutbox],
    caplog: pytest.LogCaptureFixture,
) -> None:
    port, directory = await catcher(secret="the-receivers-other-secret")  # answers 401
    box = outboxes(settings(port))
    await box.start()
    with caplog.at_level(logging.ERROR, logger="voicemail.webhooks"):
        [job] = await box.enqueue(notice())
        await eventually(lambda: (box.directory / "rejected" / f"{job}.job").exists(), 10)
    assert box.pending() == []
    assert saved(directory) == []
    assert any("refused with 401" in r.getMessage() for r in caplog.records)


async def test_a_hanging_or_chatty_endpoint_holds_nobody(
    catcher: Callable[..., Awaitable[tuple[int, Path]]], tmp_path: Path
) -> None:
    accepted: list[asyncio.StreamWriter] = []

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        accepted.append(writer)  # reads nothing, answers nothing

    async def chatty(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 10000000000\r\n\r\n" + b"x" * 65536)
        accepted.append(writer)  # and the rest never comes

    hanging = await asyncio.start_server(hang, "127.0.0.1", 0)
    talking = await asyncio.start_server(chatty, "127.0.0.1", 0)
    port, directory = await catcher()
    endpoints = (
        WebhookEndpoint("slow", f"http://127.0.0.1:{_port(hanging)}/", SECRET),
        WebhookEndpoint("huge", f"http://127.0.0.1:{_port(talking)}/", SECRET),
        WebhookEndpoint("lab", f"http://127.0.0.1:{port}/", SECRET),
    )
    box = WebhookOutbox(
        tmp_path / "webhooks",
        WebhooksConfig(endpoints=endpoints, timeout=0.5, retry_delay=60, retry_max_delay=60),
    )
    await box.start()
    try:
        for _ in range(3):
            await box.enqueue(notice())
        await eventually(lambda: len(list(directory.glob("*.json"))) == 3, 10)
        await eventually(lambda: box.delivered == 6, 10)  # lab's three and huge's three
        slow = [job for job in box._jobs.values() if job.endpoint == "slow"]
        await eventually(lambda: all(job.attempts == 1 and job.last_error for job in slow), 10)
        assert len(slow) == 3
    finally:
        await box.stop()
        for writer in accepted:
            writer.close()
        for server in (hanging, talking):
            server.close()
            await server.wait_closed()


def _port(server: asyncio.Server) -> int:
    return int(server.sockets[0].getsockname()[1])


def test_filters_and_configuration_errors() -> None:
    assert wanted(("*",), "greeting.deleted")
    assert wanted(("message.*",), "message.unread")
    assert not wanted(("message.*",), "greeting.updated")
    assert wanted(("greeting.updated",), "greeting.updated")
    config = parse_config(
        {"webhooks": {"endpoints": [
            {"name": "crm", "url": "https://crm.example/h", "secret": SECRET,
             "events": ["message.created", "greeting.*"]},
        ]}}
    )  # fmt: skip
    assert config.webhooks is not None
    assert config.webhooks.endpoints[0].events == ("message.created", "greeting.*")
    for data, error in [
        ({"endpoints": [{"url": "https://x/", "secret": SECRET}]}, r"endpoints\[0\]\.name"),
        ({"endpoints": [{"name": "a", "url": "ftp://x/", "secret": SECRET}]}, r"\.url"),
        ({"endpoints": [{"name": "a", "url": "http://x/", "secret": "short"}]}, r"\.secret"),
        (
            {"endpoints": [{"name": "a", "url": "http://x/", "secret": SECRET,
                            "events": ["message.heard"]}]},
            r"events\[0\]: unknown event 'message.heard'",
        ),
        (
            {"endpoints": [{"name": "a", "url": "http://x/", "secret": SECRET}] * 2},
            r"endpoints\[1\]\.name: 'a' is used twice",
        ),
        (
            {"endpoints": [{"name": "a", "url": "http://x/", "secret": "REPLACE-WITH-A-SECRET"}]},
            r"secret: still the sample's placeholder",
        ),
        ({"timeout": 0}, r"timeout: 0 is outside"),
        ({"retry_delay": 10, "retry_max_delay": 5}, r"retry_max_delay"),
    ]:  # fmt: skip
        with pytest.raises(ConfigError, match=r"^webhooks\..*" + error):
            parse_config({"webhooks": data})


async def test_the_catcher_refuses_what_is_not_a_delivery(
    catcher: Callable[..., Awaitable[tuple[int, Path]]],
) -> None:
    port, directory = await catcher()
    url = f"http://127.0.0.1:{port}/"
    body = b'{"id": "x"}'
    good = {"X-Voicemail-Delivery": "abc123", "X-Voicemail-Signature": sign(body)}
    async with httpx.AsyncClient(trust_env=False) as client:
        assert (await client.post(url, content=body)).status_code == 400  # no delivery id
        bad_id = {**good, "X-Voicemail-Delivery": "../../etc/passwd"}
        assert (await client.post(url, content=body, headers=bad_id)).status_code == 400
        forged = {**good, "X-Voicemail-Signature": "sha256=" + "0" * 64}
        assert (await client.post(url, content=body, headers=forged)).status_code == 401
        assert await raw_post(port, "²".encode(), body) == b"411"
        assert await raw_post(port, str(2 << 20).encode(), body) == b"413"
        assert saved(directory) == []
        assert (await client.post(url, content=body, headers=good)).status_code == 200
    [record] = saved(directory)
    assert record["body"] == {"id": "x"}
    assert record["signature_verified"] is True


async def raw_post(port: int, length: bytes, body: bytes) -> bytes:
    """POST with a Content-Length no HTTP client would send; returns the status code."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(
            b"POST / HTTP/1.1\r\nHost: x\r\nX-Voicemail-Delivery: abc\r\n"
            b"Content-Length: " + length + b"\r\n\r\n" + body
        )
        await writer.drain()
        status = await reader.readline()
    finally:
        writer.close()
        await writer.wait_closed()
    return status.split()[1]


def sign(body: bytes) -> str:
    return "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()


def test_the_samples_webhooks_section_uncommented_is_valid_but_for_its_secret() -> None:
    from media_worker.config import SAMPLE

    lines = SAMPLE.read_text().splitlines()
    start = lines.index("webhooks: null") + 1
    block = []
    for line in lines[start:]:
        if not line.startswith("#  "):
            break
        block.append(line[1:])
    text = "webhooks:\n" + "\n".join(block) + "\n"
    import yaml

    with pytest.raises(ConfigError, match="still the sample's placeholder"):
        parse_config(yaml.safe_load(text))
    config = parse_config(yaml.safe_load(text.replace("REPLACE-WITH-A-SECRET", SECRET)))
    assert config.webhooks is not None
    assert config.webhooks == WebhooksConfig(endpoints=config.webhooks.endpoints)  # defaults
    [endpoint] = config.webhooks.endpoints
    assert (endpoint.name, endpoint.events) == ("crm", ("message.*",))


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(certificate, key) for 127.0.0.1, made by openssl; the certificate is its own CA."""
    out = tmp_path_factory.mktemp("tls")
    cert, key = out / "cert.pem", out / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip
    return cert, key


async def test_https_endpoints_are_verified_against_the_configured_ca(
    tmp_path: Path, certificate: tuple[Path, Path]
) -> None:
    cert, key = certificate
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    bodies: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            length = next(
                int(line.split(b":", 1)[1])
                for line in head.split(b"\r\n")
                if line.lower().startswith(b"content-length:")
            )
            bodies.append(await reader.readexactly(length))
            writer.write(b"HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n")
            await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError):
            pass  # the client refused our certificate
        finally:
            writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0, ssl=server_tls)
    url = f"https://127.0.0.1:{server.sockets[0].getsockname()[1]}/hook"
    endpoint = WebhookEndpoint("tls", url, SECRET)
    untrusting = WebhookOutbox(
        tmp_path / "a", WebhooksConfig(endpoints=(endpoint,), retry_delay=60, retry_max_delay=60)
    )
    trusting = WebhookOutbox(
        tmp_path / "b",
        WebhooksConfig(
            endpoints=(endpoint,), retry_delay=60, retry_max_delay=60, ca_file=str(cert)
        ),
    )
    try:
        await untrusting.start()
        [refused] = await untrusting.enqueue(notice())
        await eventually(lambda: untrusting._jobs[refused].attempts == 1, 10)
        await eventually(
            lambda: "CERTIFICATE_VERIFY_FAILED" in untrusting._jobs[refused].last_error, 10
        )
        assert bodies == []
        await trusting.start()
        await trusting.enqueue(notice())
        await eventually(lambda: trusting.delivered == 1, 10)
        assert len(bodies) == 1
    finally:
        await untrusting.stop()
        await trusting.stop()
        server.close()
        await server.wait_closed()
