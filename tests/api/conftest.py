"""A running ``voicemail api`` over a real store (fs, and PostgreSQL with the postgres
mark) and Kamailio's real schema in SQLite, shared by the tests of a module."""

from __future__ import annotations

import asyncio
import io
import math
import struct
import wave
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from media_worker.provisioning.provision import Preferences
from storage import open_storage
from tests.support.api import ApiServer, kamailio_database, token_hash

DOMAIN = "api.example"
OTHER = "other.example"
LAB_TOKEN = "lab-operator-token-0123456789"
ALL_TOKEN = "all-domains-token-0123456789"
USERS = {
    f"bob@{DOMAIN}": ("bob-pw", Preferences(voicemail="both", email=f"bob@{DOMAIN}", lang="en")),
    f"alice@{DOMAIN}": ("alice-pw", Preferences()),
    # The proxy gives carol the mailbox did/uid (box.example, c-0042), not carol@api.example.
    f"carol@{DOMAIN}": ("carol-pw", Preferences(uid="c-0042", did="box.example")),
    f"dave@{OTHER}": ("dave-pw", Preferences()),
    # For the lockout tests only: their failures must not lock anyone else out.
    f"eve@{DOMAIN}": ("eve-pw", Preferences()),
}


def wav(seconds: float, rate: int = 8000, channels: int = 1) -> bytes:
    frames = int(seconds * rate)
    samples = [int(8000 * math.sin(2 * math.pi * 440 * n / rate)) for n in range(frames)]
    pcm = b"".join(struct.pack("<" + "h" * channels, *([s] * channels)) for s in samples)
    out = io.BytesIO()
    with wave.open(out, "wb") as writer:
        writer.setnchannels(channels)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(pcm)
    return out.getvalue()


@dataclass
class Api:
    server: ApiServer
    storage_url: str

    @property
    def url(self) -> str:
        return self.server.base_url + "/api/v1"


def serve(
    kind: str, request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    directory = tmp_path_factory.mktemp("api")
    if kind == "postgres":
        storage_url = str(request.getfixturevalue("postgres_storage_url"))
    else:
        storage_url = f"fs://{directory / 'spool'}"
    db_url = kamailio_database(directory / "kamailio.sqlite", USERS)

    async def clean() -> None:
        async with open_storage(storage_url) as store:
            await store.init()
            for domain, user in (
                (DOMAIN, "bob"), (DOMAIN, "alice"), ("box.example", "c-0042"), (OTHER, "dave"),
            ):  # fmt: skip
                for info in await store.list_mailbox(domain, user):
                    await store.delete_message(domain, user, info.name)
                await store.delete_greeting(domain, user, "vm")

    asyncio.run(clean())
    settings = {
        "kamailio_db": db_url,
        "public_url": "https://vm.example.com/base/",
        "tokens": [
            {"name": "lab", "sha256": token_hash(LAB_TOKEN), "domains": [DOMAIN]},
            {"name": "all", "sha256": token_hash(ALL_TOKEN), "domains": "*"},
        ],
        # Every test client is 127.0.0.1: the per-source limit is tested on its own server.
        "lockout": {"user_failures": 3, "source_failures": 1000, "lock_for": 60},
        "greetings": {"max_bytes": 200_000, "max_seconds": 5},
    }
    with ApiServer(directory, storage_url, settings) as server:
        yield Api(server, storage_url)


@pytest.fixture(scope="module", params=["fs", pytest.param("postgres", marks=pytest.mark.postgres)])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The server over each store backend."""
    yield from serve(request.param, request, tmp_path_factory)


@pytest.fixture(scope="module")
def fs_api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """The server over the fs store, for what does not depend on the backend."""
    yield from serve("fs", request, tmp_path_factory)


def as_bob() -> tuple[str, str]:
    return (f"bob@{DOMAIN}", "bob-pw")
