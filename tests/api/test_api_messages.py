"""Messages through the real server: list, audio with ranges, mark, delete, refusals."""

from __future__ import annotations

import httpx
import pytest

from storage import open_storage
from tests.api.conftest import DOMAIN, Api, as_bob, wav

pytestmark = pytest.mark.integration


async def put(api: Api, user: str, seconds: float, received_at: int, sender: str) -> str:
    async with open_storage(api.storage_url) as store:
        return await store.put_message(
            DOMAIN, user, wav(seconds), sender=sender, received_at=received_at
        )


async def test_the_list_is_newest_first_with_every_field(api: Api) -> None:
    old = await put(api, "bob", 1.0, 1_700_000_000, "sip:alice@api.example")
    new = await put(api, "bob", 2.0, 1_700_000_100, '"Carol" <sip:carol@api.example>')
    async with httpx.AsyncClient(base_url=api.url, auth=as_bob()) as client:
        reply = await client.get(f"/mailboxes/{DOMAIN}/bob/messages")
        assert reply.status_code == 200, reply.text
        assert reply.headers["cache-control"] == "no-store"
        listed = reply.json()["messages"]
        assert [m["name"] for m in listed][:2] == [new, old]
        first = listed[0]
        assert {k: v for k, v in first.items() if k != "audio_url"} == {
            "name": new,
            "new": True,
            "received_at": "2023-11-14T22:15:00Z",
            "received_at_unix": 1_700_000_100,
            "sender": '"Carol" <sip:carol@api.example>',
            "duration_s": 2.0,
            "size": len(wav(2.0)),
        }
        assert first["audio_url"].endswith("/audio")
        assert first["audio_url"].startswith(
            f"https://vm.example.com/base/api/v1/mailboxes/{DOMAIN}/bob/messages/"
        )
        # Following the link (with our host instead of the public one) gives the audio.
        path = first["audio_url"].removeprefix("https://vm.example.com/base/api/v1")
        audio = await client.get(path)
        assert audio.status_code == 200
        assert audio.content == wav(2.0)

        await client.patch(f"/mailboxes/{DOMAIN}/bob/messages/{old}", json={"new": False})
        saved = await client.get(f"/mailboxes/{DOMAIN}/bob/messages", params={"folder": "saved"})
        assert [m["name"] for m in saved.json()["messages"]] == [old]
        fresh = await client.get(f"/mailboxes/{DOMAIN}/bob/messages", params={"folder": "new"})
        assert old not in [m["name"] for m in fresh.json()["messages"]]
        assert new in [m["name"] for m in fresh.json()["messages"]]
        bad = await client.get(f"/mailboxes/{DOMAIN}/bob/messages", params={"folder": "old"})
        assert bad.status_code == 422


async def test_audio_has_its_type_a_file_name_ranges_and_leaves_the_flag(api: Api) -> None:
    name = await put(api, "bob", 1.0, 1_700_000_200, "sip:alice@api.example")
    data = wav(1.0)
    async with httpx.AsyncClient(base_url=api.url, auth=as_bob()) as client:
        url = f"/mailboxes/{DOMAIN}/bob/messages/{name}/audio"
        whole = await client.get(url)
        assert whole.status_code == 200
        assert whole.headers["content-type"] == "audio/wav"
        assert whole.headers["accept-ranges"] == "bytes"
        assert whole.headers["content-disposition"] == (
            'attachment; filename="voicemail-bob-20231114-221640.wav"'
        )
        assert whole.content == data

        part = await client.get(url, headers={"Range": "bytes=44-1043"})
        assert part.status_code == 206
        assert part.headers["content-range"] == f"bytes 44-1043/{len(data)}"
        assert part.content == data[44:1044]
        tail = await client.get(url, headers={"Range": "bytes=-10"})
        assert (tail.status_code, tail.content) == (206, data[-10:])
        open_end = await client.get(url, headers={"Range": f"bytes={len(data) - 5}-"})
        assert open_end.content == data[-5:]
        outside = await client.get(url, headers={"Range": f"bytes={len(data)}-"})
        assert outside.status_code == 416
        assert outside.headers["content-range"] == f"bytes */{len(data)}"
        several = await client.get(url, headers={"Range": "bytes=0-1,5-6"})
        assert (several.status_code, several.content) == (200, data)
        assert "strict-transport-security" not in whole.headers  # plain HTTP here

        # A player resuming with If-Range gets the range only while the bytes are the same.
        tag = whole.headers["etag"]
        assert tag.startswith('"')
        assert part.headers["etag"] == tag
        same = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": tag})
        assert (same.status_code, same.content) == (206, data[:10])
        for other in ('"another"', f"W/{tag}", "Tue, 01 Dec 2026 10:00:00 GMT"):
            changed = await client.get(url, headers={"Range": "bytes=0-9", "If-Range": other})
            assert (changed.status_code, changed.content) == (200, data), other
        kept = await client.get(url, headers={"If-None-Match": tag})
        assert (kept.status_code, kept.content, kept.headers["etag"]) == (304, b"", tag)

        unknown_format = await client.get(url, params={"format": "flac"})
        assert unknown_format.status_code == 422
        listed = (await client.get(f"/mailboxes/{DOMAIN}/bob/messages")).json()["messages"]
        assert {m["name"]: m["new"] for m in listed}[name] is True


async def test_mark_read_and_new_again_then_delete(api: Api) -> None:
    name = await put(api, "bob", 1.0, 1_700_000_300, "sip:alice@api.example")
    async with (
        httpx.AsyncClient(base_url=api.url, auth=as_bob()) as client,
        open_storage(api.storage_url) as store,
    ):
        url = f"/mailboxes/{DOMAIN}/bob/messages/{name}"

        async def flag() -> bool:
            return {m.name: m.new for m in await store.list_mailbox(DOMAIN, "bob")}[name]

        assert (await client.patch(url, json={"new": False})).status_code == 204
        assert await flag() is False
        assert (await client.patch(url, json={"new": True})).status_code == 204
        assert await flag() is True
        for body in ({"new": "no"}, {"new": 0}, {}, {"new": False, "x": 1}):
            assert (await client.patch(url, json=body)).status_code == 422, body

        assert (await client.delete(url)).status_code == 204
        assert name not in [m.name for m in await store.list_mailbox(DOMAIN, "bob")]
        assert (await client.delete(url)).status_code == 404
        assert (await client.patch(url, json={"new": False})).status_code == 404
        assert (await client.get(url + "/audio")).status_code == 404


async def test_path_like_and_hostile_names_are_400(api: Api) -> None:
    async with httpx.AsyncClient(base_url=api.url, auth=as_bob()) as client:
        base = f"/mailboxes/{DOMAIN}/bob/messages"
        # httpx (like browsers) resolves a literal "..": %2E%2E is how one reaches us.
        for name in ("%2E%2E", ".hidden", "a%00b", "a%2Fb", "..%2F..%2Fetc", "a%5Cb", "a%0Ab"):
            for reply in (
                await client.get(f"{base}/{name}/audio"),
                await client.delete(f"{base}/{name}"),
            ):
                assert reply.status_code == 400, (name, reply.status_code, reply.text)
        assert (await client.get(f"/mailboxes/{DOMAIN}/bob/nothing")).status_code == 404


async def test_a_polling_client_gets_304_until_the_listing_changes(api: Api) -> None:
    name = await put(api, "bob", 1.0, 1_700_000_600, "sip:alice@api.example")
    async with httpx.AsyncClient(base_url=api.url, auth=as_bob()) as client:
        url = f"/mailboxes/{DOMAIN}/bob/messages"
        first = await client.get(url)
        tag = first.headers["etag"]
        same = await client.get(url, headers={"If-None-Match": tag})
        assert (same.status_code, same.content, same.headers["etag"]) == (304, b"", tag)
        await client.patch(f"{url}/{name}", json={"new": False})
        changed = await client.get(url, headers={"If-None-Match": tag})
        assert changed.status_code == 200
        assert changed.headers["etag"] != tag
        assert changed.json()["messages"]
        new_tag = changed.headers["etag"]
        for header in ("*", f'"x", W/{new_tag}', f"{tag}, {new_tag}"):
            again = await client.get(url, headers={"If-None-Match": header})
            assert again.status_code == 304, header
        other = await client.get(url, headers={"If-None-Match": f'"x", {tag}'})
        assert other.status_code == 200
