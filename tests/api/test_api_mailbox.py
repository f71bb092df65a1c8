"""The mailbox resource, greetings, PIN and settings through the real server."""

from __future__ import annotations

import asyncio
import sqlite3

import httpx
import pytest

from media_worker.apps.pin import verify_pin
from storage import open_storage
from tests.api.conftest import DOMAIN, Api, as_bob, wav

pytestmark = pytest.mark.integration


async def test_the_mailbox_has_counts_greetings_and_settings(api: Api) -> None:
    async with open_storage(api.storage_url) as store:
        for info in await store.list_mailbox(DOMAIN, "alice"):
            await store.delete_message(DOMAIN, "alice", info.name)
        first = await store.put_message(DOMAIN, "alice", wav(1), sender="x", received_at=10)
        await store.put_message(DOMAIN, "alice", wav(1), sender="y", received_at=20)
        await store.mark_read(DOMAIN, "alice", first)
    async with httpx.AsyncClient(base_url=api.url, auth=as_bob()) as client:
        bob = (await client.get(f"/mailboxes/{DOMAIN}/bob")).json()
        assert bob["settings"] == {
            "mode": "both",
            "email": f"bob@{DOMAIN}",
            "language": "en",
            "greeting_type": None,
        }
        assert (bob["domain"], bob["user"]) == (DOMAIN, "bob")
    async with httpx.AsyncClient(base_url=api.url, auth=(f"alice@{DOMAIN}", "alice-pw")) as client:
        alice = (await client.get(f"/mailboxes/{DOMAIN}/alice")).json()
        assert (alice["new"], alice["saved"], alice["greetings"]) == (1, 1, [])


async def test_greetings_are_stored_normalised_and_refused_with_reasons(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url, auth=as_bob()) as client:
        url = f"/mailboxes/{DOMAIN}/bob/greetings/vm"
        assert (await client.get(url)).status_code == 404
        assert (await client.delete(url)).status_code == 404
        put = await client.put(url, content=wav(1.5), headers={"Content-Type": "audio/wav"})
        assert put.status_code == 204, put.text
        fetched = await client.get(url)
        assert (fetched.status_code, fetched.headers["content-type"]) == (200, "audio/wav")
        assert fetched.content == wav(1.5)
        listed = (await client.get(f"/mailboxes/{DOMAIN}/bob")).json()["greetings"]
        assert [(g["type"], g["duration_s"]) for g in listed] == [("vm", 1.5)]
        assert listed[0]["audio_url"].endswith(f"/mailboxes/{DOMAIN}/bob/greetings/vm")

        too_big = await client.put(url, content=b"\0" * 200_001)
        assert too_big.status_code == 413
        assert "200000 bytes" in too_big.json()["detail"]
        too_long = await client.put(url, content=wav(6))
        assert too_long.status_code == 413
        assert "limit of 5 s" in too_long.json()["detail"]
        for body in (b"", b"RIFF nonsense", b"\xff" * 100):
            reply = await client.put(url, content=body)
            assert reply.status_code == 422, body
            assert reply.json()["detail"]
        assert (
            await client.put(f"/mailboxes/{DOMAIN}/bob/greetings/.x", content=wav(1))
        ).status_code == 400
        # The refused uploads left the stored greeting alone.
        assert (await client.get(url)).content == wav(1.5)

        assert (await client.delete(url)).status_code == 204
        assert (await client.get(url)).status_code == 404


async def test_the_pin_is_stored_hashed_and_cleared(api: Api) -> None:
    async with (
        httpx.AsyncClient(base_url=api.url, auth=as_bob()) as client,
        open_storage(api.storage_url) as store,
    ):
        url = f"/mailboxes/{DOMAIN}/bob/pin"
        assert (await client.put(url, json={"pin": "4711"})).status_code == 204
        record = await store.get_pin(DOMAIN, "bob")
        assert record.hash is not None
        assert "4711" not in record.hash
        assert await asyncio.to_thread(verify_pin, "4711", record.hash)
        for body in ({"pin": "12"}, {"pin": "12ab"}, {"pin": "１２３４"}, {"pin": 1234}, {}):
            assert (await client.put(url, json=body)).status_code == 422, body
        assert (await client.delete(url)).status_code == 204
        assert (await store.get_pin(DOMAIN, "bob")).hash is None


async def test_settings_are_written_to_usr_preferences_with_the_cli_checks(api: Api) -> None:
    db = str(api.server.config["api"]["kamailio_db"]).removeprefix("sqlite://")

    def rows() -> dict[str, str]:
        with sqlite3.connect(db) as conn:
            found = conn.execute(
                "SELECT attribute, value FROM usr_preferences WHERE username = 'alice'"
            ).fetchall()
        return dict(found)

    async with httpx.AsyncClient(base_url=api.url, auth=(f"alice@{DOMAIN}", "alice-pw")) as client:
        url = f"/mailboxes/{DOMAIN}/alice/settings"
        reply = await client.patch(
            url, json={"mode": "box", "email": "alice@example.org", "language": "de"}
        )
        assert reply.status_code == 200, reply.text
        assert reply.json() == {
            "mode": "box",
            "email": "alice@example.org",
            "language": "de",
            "greeting_type": None,
        }
        assert rows() == {"voicemail": "box", "email": "alice@example.org", "lang": "de"}
        reply = await client.patch(url, json={"email": None, "greeting_type": "busy"})
        assert reply.json()["email"] is None
        assert rows() == {"voicemail": "box", "lang": "de", "vm_greeting_type": "busy"}
        for body in (
            {"mode": "loud"},
            {"email": "no-at-sign"},
            {"language": "../../x"},
            {"greeting_type": "a/b"},
            {"email": 5},
            {"password": "x"},
        ):
            assert (await client.patch(url, json=body)).status_code == 422, body
        assert rows() == {"voicemail": "box", "lang": "de", "vm_greeting_type": "busy"}


async def test_a_greeting_type_with_quotes_makes_a_plain_file_name(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url, auth=as_bob()) as client:
        url = f"/mailboxes/{DOMAIN}/bob/greetings/" + "%22x%22%3B a"
        assert (await client.put(url, content=wav(1))).status_code == 204
        reply = await client.get(url)
        assert reply.headers["content-disposition"] == 'attachment; filename="greeting-_x___a.wav"'
        assert (await client.delete(url)).status_code == 204
