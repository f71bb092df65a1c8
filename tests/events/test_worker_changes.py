"""Changes made outside the worker reach it: a real ``voicemail worker`` (process 0) reads
the change spool that the ``voicemail mailbox`` commands write, moves the lamp (a PUBLISH
to a presence server of this test) and sends the webhooks (to the lab's catcher)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest

from media_worker.changes import Notice
from media_worker.config import parse_config
from media_worker.mwi import MessageSummary
from media_worker.sip.message import Request, parse_message, response_to, serialize
from storage import ChangeEvent, ChangeKind, open_storage
from storage.testing import make_wav
from tests.integration.test_worker_command import _start, write_config
from tests.support.procs import eventually, free_port, start_process, stop_process

pytestmark = pytest.mark.integration
VOICEMAIL = str(Path(sys.executable).parent / "voicemail")
SECRET = "lab-webhook-secret-0123"
DOMAIN, USER = "lab.example", "bob"


class Presence(asyncio.DatagramProtocol):
    """Answers each PUBLISH 200 with a new entity tag and keeps its body."""

    def __init__(self) -> None:
        self.summaries: list[MessageSummary] = []
        self.sources: set[tuple[str, int]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        request = parse_message(data)
        if not isinstance(request, Request) or request.method != "PUBLISH":
            return
        self.summaries.append(MessageSummary.parse(request.body))
        self.sources.add((str(addr[0]), int(addr[1])))
        response = response_to(request, 200, to_tag="presence")
        response.headers.add("SIP-ETag", f"e{len(self.summaries)}")
        response.headers.add("Expires", "3600")
        self.transport.sendto(serialize(response), addr)

    def last(self) -> tuple[int, int] | None:
        return (self.summaries[-1].new, self.summaries[-1].old) if self.summaries else None


@pytest.fixture
async def presence() -> AsyncIterator[tuple[Presence, int]]:
    loop = asyncio.get_running_loop()
    transport, protocol = await loop.create_datagram_endpoint(Presence, local_addr=("127.0.0.1", 0))
    try:
        yield protocol, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


def mailbox_command(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [VOICEMAIL, "mailbox", *args], capture_output=True, text=True, timeout=60,
        env={k: v for k, v in os.environ.items() if not k.startswith("VOICEMAIL_")} | (env or {}),
    )  # fmt: skip


async def test_mailbox_commands_move_the_lamp_and_send_webhooks(
    tmp_path: Path, presence: tuple[Presence, int]
) -> None:
    server, presence_port = presence
    hook_port = free_port()
    caught = tmp_path / "caught"
    config = write_config(
        tmp_path,
        f"mwi: {{proxy: 'sip:127.0.0.1:{presence_port}'}}\n"
        "webhooks:\n"
        f"  endpoints: [{{name: lab, url: 'http://127.0.0.1:{hook_port}/', secret: {SECRET}}}]\n"
        "  retry_delay: 0.2\n  retry_max_delay: 1\n",
    )
    async with open_storage(f"fs://{tmp_path}/spool") as store:
        name = await store.put_message(
            DOMAIN, USER, make_wav(0.5), sender="alice", received_at=1_700_000_000
        )
    catcher_log = (tmp_path / "catcher.log").open("ab")
    catcher = start_process(
        [sys.executable, "-m", "media_worker.lab.webhooks", "--port", str(hook_port),
         "--dir", str(caught), "--secret", SECRET],
        catcher_log,
    )  # fmt: skip
    log = tmp_path / "worker.log"
    worker, _ = await asyncio.to_thread(_start, config, log)
    try:
        assert server.last() is None  # nothing changed since the worker started
        read = await asyncio.to_thread(
            mailbox_command, "mark-read", "--config", str(config), DOMAIN, USER, name
        )
        assert read.returncode == 0, read.stderr
        assert read.stderr == ""
        await eventually(lambda: server.last() == (0, 1), 10, log.read_text)

        def types() -> list[str]:
            return sorted(json.loads(p.read_text())["body"]["type"] for p in caught.glob("*.json"))

        await eventually(lambda: types() == ["message.read"], 10, log.read_text)
        [record] = [json.loads(p.read_text()) for p in caught.glob("*.json")]
        assert record["signature_verified"] is True
        assert record["body"]["mailbox"] == {"domain": DOMAIN, "user": USER}
        assert record["body"]["message"]["name"] == name
        assert record["body"]["message"]["new"] is False
        assert record["body"]["message"]["sender"] == "alice"
        # $VOICEMAIL_CONFIG does as well as --config.
        env = {"VOICEMAIL_CONFIG": str(config)}
        unread = await asyncio.to_thread(mailbox_command, "mark-new", DOMAIN, USER, name, env=env)
        assert unread.returncode == 0, unread.stderr
        await eventually(lambda: server.last() == (1, 0), 10, log.read_text)
        deleted = await asyncio.to_thread(
            mailbox_command, "delete", "--config", str(config), DOMAIN, USER, name
        )
        assert deleted.returncode == 0, deleted.stderr
        await eventually(lambda: server.last() == (0, 0), 10, log.read_text)
        expected = ["message.deleted", "message.read", "message.unread"]
        await eventually(lambda: types() == expected, 10, log.read_text)
        assert list((tmp_path / "data" / "changes").glob("*.chg")) == []
        # Without the configuration the change is made, and the command says what it misses.
        async with open_storage(f"fs://{tmp_path}/spool") as store:
            other = await store.put_message(DOMAIN, USER, b"x", sender="a", received_at=1)
        blind = await asyncio.to_thread(
            mailbox_command, "delete", "--storage", f"fs://{tmp_path}/spool", DOMAIN, USER, other
        )
        assert blind.returncode == 0, blind.stderr
        assert "the worker is not told of this change" in blind.stderr
        assert len(server.sources) == 1  # one publisher: process 0's socket
    finally:
        stop_process(worker)
        stop_process(catcher)
        catcher_log.close()


async def test_process_zero_takes_the_address_learnt_elsewhere(tmp_path: Path) -> None:
    from media_worker.change_hub import ChangeHub
    from media_worker.config import SipConfig
    from media_worker.worker import Worker, WorkerSettings

    config = parse_config({"mwi": {"proxy": "sip:127.0.0.1:5999"}, "data_dir": str(tmp_path)})
    async with open_storage(f"fs://{tmp_path}/spool") as store:
        worker = Worker(WorkerSettings(SipConfig(port=0)), cast("Any", None))
        hub = ChangeHub(config, store, worker, tmp_path, tmp_path / "changes", 0)
        assert hub.publisher is not None
        changed: list[tuple[str, str]] = []

        def record(domain: str, user: str) -> None:
            changed.append((domain, user))

        hub.publisher.changed = record  # type: ignore[method-assign]
        event = ChangeEvent(ChangeKind.DELETED, "d-7", "u-42", "1700000000+a")
        await hub._handle(Notice.of(event, "another-process", ("bob", DOMAIN)))
        assert changed == [("d-7", "u-42")]
        assert hub.publisher._accounts == {("d-7", "u-42"): ("bob", DOMAIN)}
        # Its own changes reached the publisher straight from the store: not again.
        await hub._handle(Notice.of(event, hub.origin))
        greeting = ChangeEvent(ChangeKind.GREETING, "d-7", "u-42", "vm")
        await hub._handle(Notice.of(greeting, "another-process"))
        assert changed == [("d-7", "u-42")]


async def test_other_processes_spool_their_changes_and_publish_nothing(tmp_path: Path) -> None:
    from media_worker.apps.params import AppRequest
    from media_worker.change_hub import ChangeHub
    from media_worker.changes import ChangeConsumer
    from media_worker.config import SipConfig
    from media_worker.mwi_publisher import LearningApplication
    from media_worker.sip.headers import Headers
    from media_worker.worker import Worker, WorkerSettings

    class Admits:
        def admit(self, invite: Request) -> AppRequest:
            return AppRequest(
                app="voicemail", user="u-42", domain="d-7", sender="alice", mode="box",
                email=None, language=None, typ="vm", pin=None,
                uid="u-42", did="d-7", usr="bob", dom=DOMAIN,
            )  # fmt: skip

        async def run(self, call: object, request: AppRequest) -> None:
            return None

    config = parse_config({"mwi": {"proxy": "sip:127.0.0.1:5999"}, "data_dir": str(tmp_path)})
    spool = tmp_path / "changes"
    async with open_storage(f"fs://{tmp_path}/spool") as store:
        worker = Worker(WorkerSettings(SipConfig(port=0)), Admits())
        hub = ChangeHub(config, store, worker, tmp_path / "process1", spool, 1)
        assert hub.publisher is None
        assert hub.consumer is None
        assert isinstance(worker.app, LearningApplication)
        worker.app.admit(Request("INVITE", "sip:u-42@d-7", Headers()))  # a call learns bob
        await hub.start()
        try:
            await store.put_message("d-7", "u-42", b"x", sender="alice", received_at=1)
        finally:
            await hub.stop()
    notices: list[Notice] = []

    async def keep(notice: Notice) -> None:
        notices.append(notice)

    assert await ChangeConsumer(spool, keep).scan() == 1
    assert notices[0].address == ("bob", DOMAIN)
    assert notices[0].event.kind is ChangeKind.NEW


async def test_recordings_delivered_before_the_publisher_starts_move_the_lamp(
    tmp_path: Path,
) -> None:
    from media_worker.change_hub import ChangeHub
    from media_worker.config import SipConfig
    from media_worker.worker import Worker, WorkerSettings

    config = parse_config({"mwi": {"proxy": "sip:127.0.0.1:5999"}, "data_dir": str(tmp_path)})
    async with open_storage(f"fs://{tmp_path}/spool") as store:
        worker = Worker(WorkerSettings(SipConfig(port=0)), cast("Any", None))
        hub = ChangeHub(config, store, worker, tmp_path, tmp_path / "changes", 0)
        assert hub.publisher is not None
        changed: list[tuple[str, str]] = []

        def record(domain: str, user: str) -> None:
            changed.append((domain, user))

        hub.publisher.changed = record  # type: ignore[method-assign]
        hub.begin()
        # What service.recover() does with a journal a crash left: a message is stored.
        await store.put_message(DOMAIN, USER, b"recovered", sender="alice", received_at=1)
        await store.put_greeting(DOMAIN, "carol", "vm", b"g")  # no lamp for greetings
        assert changed == []
        await hub.start()
        try:
            assert changed == [(DOMAIN, USER)]
        finally:
            await hub.stop_publishing()
            await hub.stop()


async def test_with_two_processes_process_zero_alone_publishes(
    tmp_path: Path, presence: tuple[Presence, int]
) -> None:
    from media_worker.lab.probes import answers_options
    from tests.support.procs import free_udp_tcp_port

    server, presence_port = presence
    base = free_udp_tcp_port(count=2)
    config = write_config(tmp_path, f"mwi: {{proxy: 'sip:127.0.0.1:{presence_port}'}}\n")
    config.write_text(config.read_text().replace("port: 0", f"port: {base}"))
    async with open_storage(f"fs://{tmp_path}/spool") as store:
        name = await store.put_message(DOMAIN, USER, b"x", sender="alice", received_at=1)
    log = tmp_path / "worker.log"
    with log.open("ab") as out:
        proc = start_process(
            [VOICEMAIL, "worker", "--processes", "2", "--config", str(config)], out
        )
    try:
        spool = tmp_path / "data" / "changes"
        both = lambda: all(answers_options("127.0.0.1", p, 0.5) for p in (base, base + 1))  # noqa: E731
        await eventually(both, 20, log.read_text)
        await eventually(
            lambda: (
                f"changes: written to the spool {spool} for process 0" in log.read_text()
                and f"changes: reading the spool {spool}" in log.read_text()
            ),
            10,
            log.read_text,
        )
        deleted = await asyncio.to_thread(
            mailbox_command, "delete", "--config", str(config), DOMAIN, USER, name
        )
        assert deleted.returncode == 0, deleted.stderr
        await eventually(lambda: server.last() == (0, 0), 10, log.read_text)
        assert server.sources == {("127.0.0.1", base)}  # process 0's socket only
    finally:
        stop_process(proc)
