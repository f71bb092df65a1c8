"""Each change made through the API reaches the worker's change spool before the API
answers, carrying the SIP address of a uid/did mailbox; audio in MP3 and Opus."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from media_worker.changes import SUFFIX, Notice, spool_dir
from storage import ChangeKind, open_storage
from tests.api.conftest import DOMAIN, Api, as_bob, wav

pytestmark = pytest.mark.integration


def notices(api: Api) -> list[Notice]:
    directory = spool_dir(Path(api.server.config["data_dir"]))
    found = [Notice.parse(path.read_bytes()) for path in sorted(directory.glob("*" + SUFFIX))]
    for path in directory.glob("*" + SUFFIX):
        path.unlink()
    return found


async def test_every_change_is_spooled_before_the_answer(api: Api) -> None:
    notices(api)
    async with open_storage(api.storage_url) as store:
        name = await store.put_message(DOMAIN, "bob", wav(1), sender="a", received_at=1_700_000_400)
        carols = await store.put_message(
            "box.example", "c-0042", wav(1), sender="b", received_at=1_700_000_400
        )
    async with httpx.AsyncClient(base_url=api.url, auth=as_bob()) as client:
        url = f"/mailboxes/{DOMAIN}/bob/messages/{name}"
        assert (await client.patch(url, json={"new": False})).status_code == 204
        assert (await client.patch(url, json={"new": True})).status_code == 204
        assert (await client.delete(url)).status_code == 204
        greeting = f"/mailboxes/{DOMAIN}/bob/greetings/vm"
        assert (await client.put(greeting, content=wav(1))).status_code == 204
        assert (await client.delete(greeting)).status_code == 204
        seen = [(n.event.kind, n.event.domain, n.event.user, n.event.name) for n in notices(api)]
        assert seen == [
            (ChangeKind.READ, DOMAIN, "bob", name),
            (ChangeKind.UNREAD, DOMAIN, "bob", name),
            (ChangeKind.DELETED, DOMAIN, "bob", name),
            (ChangeKind.GREETING, DOMAIN, "bob", "vm"),
            (ChangeKind.GREETING_DELETED, DOMAIN, "bob", "vm"),
        ]
        # Reading changes nothing, so it tells nobody.
        await client.get(f"/mailboxes/{DOMAIN}/bob/messages")
        assert notices(api) == []
    async with httpx.AsyncClient(base_url=api.url, auth=(f"carol@{DOMAIN}", "carol-pw")) as client:
        url = f"/mailboxes/{DOMAIN}/carol/messages/{carols}"
        assert (await client.patch(url, json={"new": False})).status_code == 204
        (notice,) = notices(api)
        assert (notice.event.domain, notice.event.user) == ("box.example", "c-0042")
        assert notice.address == ("carol", DOMAIN)


async def test_audio_in_mp3_and_opus_with_ranges(api: Api) -> None:
    async with open_storage(api.storage_url) as store:
        name = await store.put_message(DOMAIN, "bob", wav(2), sender="a", received_at=1_700_000_500)
    async with httpx.AsyncClient(base_url=api.url, auth=as_bob()) as client:
        url = f"/mailboxes/{DOMAIN}/bob/messages/{name}/audio"
        mp3 = await client.get(url, params={"format": "mp3"})
        assert mp3.status_code == 200
        assert mp3.headers["content-type"] == "audio/mpeg"
        assert mp3.headers["content-disposition"].endswith('.mp3"')
        assert mp3.content[:3] == b"ID3" or mp3.content[0] == 0xFF
        assert len(mp3.content) < len(wav(2)) / 4
        part = await client.get(url, params={"format": "mp3"}, headers={"Range": "bytes=0-99"})
        assert (part.status_code, part.content) == (206, mp3.content[:100])
        opus = await client.get(url, params={"format": "opus"})
        assert opus.headers["content-type"] == "audio/ogg"
        assert opus.content[:4] == b"OggS"
        # Each encoding has a random Ogg serial number: ranges of one file must come from
        # one encoding, or a seeking player gets pieces of different files.
        part = await client.get(url, params={"format": "opus"}, headers={"Range": "bytes=0-99"})
        assert (part.status_code, part.content) == (206, opus.content[:100])
        # A greeting uploaded as MP3 of another rate comes back as 8 kHz mono WAV.
        greeting = f"/mailboxes/{DOMAIN}/bob/greetings/vm"
        assert (await client.put(greeting, content=mp3.content)).status_code == 204
        stored = (await client.get(greeting)).content
        assert stored[:4] == b"RIFF"
        assert stored[24:28] == (8000).to_bytes(4, "little")
        assert (await client.delete(greeting)).status_code == 204
