"""Each authentication and access rule against the real server and Kamailio's schema."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from media_worker.api.state import path_segment
from media_worker.provisioning.provision import Preferences
from storage import open_storage
from tests.api.conftest import ALL_TOKEN, DOMAIN, LAB_TOKEN, OTHER, Api, as_bob, wav
from tests.support.api import ApiServer, kamailio_database
from tests.support.postgres import PostgresServer
from tests.support.stack import voicemail

pytestmark = pytest.mark.integration


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def test_no_or_wrong_credentials_get_401_with_a_challenge(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        url = f"/mailboxes/{DOMAIN}/bob/messages"
        for headers in (
            {},
            {"Authorization": "Digest username=bob"},
            {"Authorization": "Basic !!!notbase64"},
            bearer("not-a-token"),
            {"Authorization": "Bearer"},
        ):
            reply = await client.get(url, headers=headers)
            assert reply.status_code == 401, headers
            assert reply.headers["www-authenticate"].startswith('Basic realm="voicemail"')
        for auth in ((f"alice@{DOMAIN}", "bob-pw"), ("bob", "bob-pw"), (f"nobody@{DOMAIN}", "x")):
            assert (await client.get(url, auth=auth)).status_code == 401, auth
        # A script in a page asks for a challenge the browser does not answer itself.
        page = await client.get(url, headers={"X-Requested-With": "XMLHttpRequest"})
        assert page.status_code == 401
        assert page.headers["www-authenticate"].startswith("x-Basic ")


async def test_a_user_sees_only_their_own_mailbox(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url, auth=as_bob()) as client:
        assert (await client.get(f"/mailboxes/{DOMAIN}/bob")).status_code == 200
        for path in (
            f"/mailboxes/{DOMAIN}/alice",
            f"/mailboxes/{DOMAIN}/alice/messages",
            f"/mailboxes/{DOMAIN}/nobody/messages",  # 403, not 404: nothing to guess from
            f"/mailboxes/{OTHER}/bob/messages",
            f"/mailboxes/{DOMAIN}/alice/messages/1+x/audio",
        ):
            assert (await client.get(path)).status_code == 403, path
        for reply in (
            await client.delete(f"/mailboxes/{DOMAIN}/alice/messages/1+x"),
            await client.put(f"/mailboxes/{DOMAIN}/alice/pin", json={"pin": "1234"}),
            await client.patch(f"/mailboxes/{DOMAIN}/alice/settings", json={"mode": "box"}),
            await client.put(f"/mailboxes/{DOMAIN}/alice/greetings/vm", content=wav(1)),
        ):
            assert reply.status_code == 403


async def test_the_mailbox_is_the_one_the_proxy_gives_uid_and_did(api: Api) -> None:
    async with open_storage(api.storage_url) as store:
        name = await store.put_message(
            "box.example", "c-0042", wav(1), sender="sip:bob@api.example", received_at=1_700_000_000
        )
    async with httpx.AsyncClient(base_url=api.url, auth=(f"carol@{DOMAIN}", "carol-pw")) as client:
        listed = (await client.get(f"/mailboxes/{DOMAIN}/carol/messages")).json()["messages"]
        assert [m["name"] for m in listed] == [name]
        audio_path = f"/mailboxes/{DOMAIN}/carol/messages/{path_segment(name)}/audio"
        assert listed[0]["audio_url"].endswith(audio_path)
        assert (await client.get(audio_path)).content == wav(1)
        # The store's keys are not a way in for carol (not her SIP identity) ...
        assert (await client.get("/mailboxes/box.example/c-0042/messages")).status_code == 403
        # ... and settings cannot move her mailbox: uid and did are not settings.
        reply = await client.patch(f"/mailboxes/{DOMAIN}/carol/settings", json={"uid": "bob"})
        assert reply.status_code == 422


async def test_tokens_are_scoped_to_their_domains(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        lab, everywhere = bearer(LAB_TOKEN), bearer(ALL_TOKEN)
        assert (await client.get(f"/mailboxes/{DOMAIN}/alice", headers=lab)).status_code == 200
        assert (await client.get(f"/mailboxes/{OTHER}/dave", headers=lab)).status_code == 403
        assert (await client.get(f"/mailboxes/{OTHER}/dave", headers=everywhere)).status_code == 200
        # An operator reaches a mailbox that has no subscriber (a SEMS spool) too.
        reply = await client.get(f"/mailboxes/{DOMAIN}/no-such-sub/messages", headers=lab)
        assert (reply.status_code, reply.json()) == (200, {"messages": []})
        # ... but its settings live in Kamailio's database.
        reply = await client.patch(
            f"/mailboxes/{DOMAIN}/no-such-sub/settings", headers=lab, json={"mode": "box"}
        )
        assert reply.status_code == 404
        hostile = await client.get(f"/mailboxes/{DOMAIN}-prompts/x/messages", headers=everywhere)
        assert hostile.status_code == 400


async def test_repeated_failures_lock_the_user_out_even_with_the_right_password(
    api: Api,
) -> None:
    async with httpx.AsyncClient(base_url=api.url) as client:
        url = f"/mailboxes/{DOMAIN}/eve"
        assert (await client.get(url, auth=(f"eve@{DOMAIN}", "eve-pw"))).status_code == 200
        for _ in range(3):
            assert (await client.get(url, auth=(f"eve@{DOMAIN}", "guess"))).status_code == 401
        locked = await client.get(url, auth=(f"eve@{DOMAIN}", "eve-pw"))
        assert locked.status_code == 429
        assert 1 <= int(locked.headers["retry-after"]) <= 61
        # Another user from the same address is not affected.
        assert (await client.get(f"/mailboxes/{DOMAIN}/bob", auth=as_bob())).status_code == 200


def test_repeated_failures_lock_the_source_out(tmp_path: Path) -> None:
    db = kamailio_database(tmp_path / "kam.sqlite", {f"bob@{DOMAIN}": ("bob-pw", Preferences())})
    settings = {"kamailio_db": db, "lockout": {"user_failures": 100, "source_failures": 4}}
    with (
        ApiServer(tmp_path, f"fs://{tmp_path / 'spool'}", settings) as server,
        httpx.Client(base_url=server.base_url + "/api/v1") as client,
    ):
        url = f"/mailboxes/{DOMAIN}/bob"
        for n in range(4):
            assert client.get(url, auth=(f"guess{n}@{DOMAIN}", "x")).status_code == 401
        locked = client.get(url, auth=as_bob())
        assert locked.status_code == 429
        assert "retry-after" in locked.headers
        # Bearer guesses from a locked address are not even looked at.
        assert client.get(url, headers=bearer("x")).status_code == 429


def test_an_unreachable_kamailio_database_is_503_and_no_failed_login(tmp_path: Path) -> None:
    database = tmp_path / "kamailio.sqlite"
    settings = {"kamailio_db": f"sqlite://{database}", "lockout": {"user_failures": 2}}
    with (
        ApiServer(tmp_path, f"fs://{tmp_path / 'spool'}", settings) as server,
        httpx.Client(base_url=server.base_url + "/api/v1") as client,
    ):
        url = f"/mailboxes/{DOMAIN}/bob"
        for _ in range(3):
            reply = client.get(url, auth=as_bob())
            assert reply.status_code == 503
            assert "sqlite" not in reply.text  # the log has the details, not the client
        assert "user logins get 503" in server.log()
        # The database comes back: bob was not locked out by the outage.
        kamailio_database(database, {f"bob@{DOMAIN}": ("bob-pw", Preferences())})
        assert client.get(url, auth=as_bob()).status_code == 200


@pytest.mark.postgres
def test_users_from_kamailio_tables_in_postgresql(
    tmp_path: Path, postgres_server: PostgresServer
) -> None:
    postgres_server.psql("CREATE DATABASE kamailio_api")
    db = postgres_server.url("kamailio_api")
    voicemail("db", "init", db)
    voicemail("user", "add", f"bob@{DOMAIN}", "--db", db, "--uid", "b-1", stdin="bob-pw\n")
    with (
        ApiServer(tmp_path, f"fs://{tmp_path / 'spool'}", {"kamailio_db": db}) as server,
        httpx.Client(base_url=server.base_url + "/api/v1") as client,
    ):
        url = f"/mailboxes/{DOMAIN}/bob"
        assert client.get(url, auth=as_bob()).status_code == 200
        assert client.get(url, auth=(f"bob@{DOMAIN}", "wrong")).status_code == 401
        reply = client.patch(url + "/settings", auth=as_bob(), json={"language": "fr"})
        assert reply.json()["language"] == "fr"
        assert "kamailio_api" in server.log()
        assert "postgresql://" in server.log()
