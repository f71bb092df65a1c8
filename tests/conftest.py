"""Session-wide fixtures: real servers started privately for the test run."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from storage import open_storage
from tests.support.postgres import PostgresServer


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A private PostgreSQL on a free loopback port, stopped (by PID) after the session."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_storage_url(postgres_server: PostgresServer) -> str:
    """URL of a database holding the voicemail schema, applied by the real init path."""
    postgres_server.psql("CREATE DATABASE voicemail_test")
    url = postgres_server.url("voicemail_test")

    async def init() -> None:
        await open_storage(url).init()

    asyncio.run(init())
    return url
