"""Changes made through the API reach the phone and the webhooks: a real ``voicemail
worker`` (process 0) beside a real ``voicemail api`` sharing its data_dir reads the
notices, PUBLISHes the mailbox's counts (to a presence server of this test) and POSTs
signed webhooks (to the lab's catcher)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from media_worker.provisioning.provision import Preferences
from storage import open_storage
from storage.testing import make_wav
from tests.events.test_worker_changes import Presence, presence
from tests.integration.test_worker_command import _start, write_config
from tests.support.api import ApiServer, kamailio_database
from tests.support.procs import eventually, free_port, start_process, stop_process

pytestmark = pytest.mark.integration
__all__ = ["presence"]  # the fixture, used by name
SECRET = "api-webhook-secret-0123"
DOMAIN = "lab.example"


@dataclass
class Rig:
    """A worker's config (MWI to the test's presence server, webhooks to a running catcher),
    Kamailio's tables with bob, and an API sharing the worker's data_dir."""

    config: Path
    caught: Path
    api: ApiServer
    worker_log: Path


@pytest.fixture
async def rig(tmp_path: Path, presence: tuple[Presence, int]) -> AsyncIterator[Rig]:
    _, presence_port = presence
    hook_port = free_port()
    config = write_config(
        tmp_path,
        f"mwi: {{proxy: 'sip:127.0.0.1:{presence_port}'}}\n"
        "webhooks:\n"
        f"  endpoints: [{{name: lab, url: 'http://127.0.0.1:{hook_port}/', secret: {SECRET}}}]\n"
        "  retry_delay: 0.2\n  retry_max_delay: 1\n",
    )
    users = {f"bob@{DOMAIN}": ("bob-pw", Preferences())}
    db = await asyncio.to_thread(kamailio_database, tmp_path / "kamailio.sqlite", users)
    api = ApiServer(
        tmp_path / "api", f"fs://{tmp_path}/spool", {"kamailio_db": db}, data_dir=tmp_path / "data"
    )
    caught = tmp_path / "caught"
    catcher_log = (tmp_path / "catcher.log").open("ab")
    catcher = start_process(
        [sys.executable, "-m", "media_worker.lab.webhooks", "--port", str(hook_port),
         "--dir", str(caught), "--secret", SECRET],
        catcher_log,
    )  # fmt: skip
    try:
        yield Rig(config, caught, api, tmp_path / "worker.log")
    finally:
        api.stop()
        stop_process(catcher)
        catcher_log.close()


def delivered_types(caught: Path) -> list[str]:
    return sorted(json.loads(p.read_text())["body"]["type"] for p in caught.glob("*.json"))


async def bobs_message(spool: Path, sender: str, received_at: int) -> str:
    async with open_storage(f"fs://{spool}") as store:
        return await store.put_message(
            DOMAIN, "bob", make_wav(0.5), sender=sender, received_at=received_at
        )


async def test_api_changes_move_the_lamp_and_send_webhooks(
    tmp_path: Path, presence: tuple[Presence, int], rig: Rig
) -> None:
    server, _ = presence
    name = await bobs_message(tmp_path / "spool", "alice", 1_700_000_000)
    log, api, caught = rig.worker_log, rig.api, rig.caught
    worker, _ = await asyncio.to_thread(_start, rig.config, log)
    try:
        await asyncio.to_thread(api.start)
        async with httpx.AsyncClient(
            base_url=api.base_url + "/api/v1", auth=(f"bob@{DOMAIN}", "bob-pw")
        ) as client:
            url = f"/mailboxes/{DOMAIN}/bob/messages/{name}"
            assert (await client.patch(url, json={"new": False})).status_code == 204
            await eventually(lambda: server.last() == (0, 1), 10, log.read_text)
            assert (await client.patch(url, json={"new": True})).status_code == 204
            await eventually(lambda: server.last() == (1, 0), 10, log.read_text)
            assert (await client.delete(url)).status_code == 204
            await eventually(lambda: server.last() == (0, 0), 10, log.read_text)

        expected = ["message.deleted", "message.read", "message.unread"]
        await eventually(lambda: delivered_types(caught) == expected, 10, log.read_text)
        records = [json.loads(p.read_text()) for p in caught.glob("*.json")]
        assert all(record["signature_verified"] is True for record in records)
        assert {record["body"]["message"]["name"] for record in records} == {name}
        assert len(server.sources) == 1  # one publisher: the worker's process 0
    finally:
        stop_process(worker)


async def test_changes_made_while_the_worker_is_down_survive_an_api_crash_and_arrive(
    tmp_path: Path, presence: tuple[Presence, int], rig: Rig
) -> None:
    """Nothing is lost across an API restart: a change is spooled before its answer, so an
    API killed right after answering, then started again, loses nothing; the worker,
    started later, delivers every change to the phone and the webhooks."""
    server, _ = presence
    kept = await bobs_message(tmp_path / "spool", "alice", 1_700_000_000)
    gone = await bobs_message(tmp_path / "spool", "carol", 1_700_000_100)
    log, api, caught = rig.worker_log, rig.api, rig.caught
    changes = tmp_path / "data" / "changes"
    worker = None
    auth = (f"bob@{DOMAIN}", "bob-pw")
    messages = f"{api.base_url}/api/v1/mailboxes/{DOMAIN}/bob/messages"
    try:
        await asyncio.to_thread(api.start)
        async with httpx.AsyncClient(auth=auth) as client:
            reply = await client.patch(f"{messages}/{kept}", json={"new": False})
            assert reply.status_code == 204
        assert api.proc is not None
        api.proc.kill()  # no clean shutdown: whatever was answered must already be spooled
        await asyncio.to_thread(api.proc.wait)
        spooled = list(changes.glob("*.chg"))
        assert len(spooled) == 1, spooled

        await asyncio.to_thread(api.start)  # the same server again, on the same port
        async with httpx.AsyncClient(auth=auth) as client:
            assert (await client.delete(f"{messages}/{gone}")).status_code == 204
        api.stop()
        assert list(caught.glob("*.json")) == []  # no worker yet: nothing delivered
        assert server.sources == set()  # and nothing published

        worker, _ = await asyncio.to_thread(_start, rig.config, log)
        expected = ["message.deleted", "message.read"]
        await eventually(lambda: delivered_types(caught) == expected, 10, log.read_text)
        await eventually(lambda: server.last() == (0, 1), 10, log.read_text)  # kept, read
        await eventually(lambda: list(changes.glob("*.chg")) == [], 10, log.read_text)
    finally:
        if worker is not None:
            stop_process(worker)
