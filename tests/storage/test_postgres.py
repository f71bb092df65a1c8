"""The postgres backend against a real PostgreSQL server: the storage contract and schema."""

from __future__ import annotations

import subprocess
import uuid
from collections.abc import Callable

import pytest

import storage.postgres
from storage import BackendUnavailable, StorageError, open_storage
from storage.testing import DOMAIN, TS, USER, StorageContract, make_wav
from tests.support.postgres import SUPERUSER, PostgresServer

pytestmark = pytest.mark.postgres

TABLES = ("vm_mailbox", "vm_message", "vm_greeting")


class TestPostgresContract(StorageContract):
    @pytest.fixture
    def storage_url(self, postgres_server: PostgresServer, postgres_storage_url: str) -> str:
        postgres_server.psql(f"TRUNCATE {', '.join(TABLES)} CASCADE", "voicemail_test")
        return postgres_storage_url

    @pytest.fixture
    def footprint(self, postgres_server: PostgresServer) -> Callable[[], set[str]]:
        def rows() -> set[str]:
            found: set[str] = set()
            for table in TABLES:
                out = postgres_server.psql(f"SELECT * FROM {table}", "voicemail_test")
                found.update(f"{table}: {line}" for line in out.splitlines())
            return found

        return rows


async def test_read_flag_is_a_column(
    postgres_server: PostgresServer, postgres_storage_url: str
) -> None:
    postgres_server.psql("TRUNCATE vm_mailbox CASCADE", "voicemail_test")
    async with open_storage(postgres_storage_url) as store:
        name = await store.put_message(DOMAIN, USER, b"abc", sender="a", received_at=TS)
        await store.mark_read(DOMAIN, USER, name)
    row = postgres_server.psql(
        "SELECT b.domain, b.username, m.name, m.is_read, m.size, m.received_at"
        " FROM vm_message m JOIN vm_mailbox b ON b.id = m.mailbox_id",
        "voicemail_test",
    )
    assert row == f"{DOMAIN}|{USER}|{name}|t|3|{TS}"


async def test_list_and_count_never_read_audio(
    postgres_server: PostgresServer, postgres_storage_url: str
) -> None:
    """A role that may read every column of a message but its audio lists and counts."""
    postgres_server.psql("TRUNCATE vm_mailbox CASCADE", "voicemail_test")
    async with open_storage(postgres_storage_url) as store:
        name = await store.put_message(DOMAIN, USER, make_wav(1.0), sender="a", received_at=TS)
    role = f"vm_no_audio_{uuid.uuid4().hex[:8]}"
    postgres_server.psql(
        f"CREATE ROLE {role} LOGIN;"
        f" GRANT SELECT ON vm_mailbox, vm_schema_migrations TO {role};"
        " GRANT SELECT (mailbox_id, name, received_at, sender, is_read, size, duration_ms)"
        f" ON vm_message TO {role}",
        "voicemail_test",
    )
    async with open_storage(postgres_server.url("voicemail_test").replace(
        f"{SUPERUSER}@", f"{role}@"
    )) as store:  # fmt: skip
        assert [m.name for m in await store.list_mailbox(DOMAIN, USER)] == [name]
        counts = await store.count(DOMAIN, USER)
        assert (counts.new, counts.saved) == (1, 0)
        with pytest.raises(StorageError, match="permission denied"):
            await store.get_message(DOMAIN, USER, name)


async def test_init_is_idempotent_and_versioned(postgres_storage_url: str) -> None:
    store = open_storage(postgres_storage_url)
    await store.init()
    await store.init()
    async with store:
        assert await store.count(DOMAIN, "nobody") is not None


async def test_init_upgrades_an_older_schema_keeping_its_messages(
    postgres_server: PostgresServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    postgres_server.psql("CREATE DATABASE voicemail_upgrade")
    url = postgres_server.url("voicemail_upgrade")
    shipped = storage.postgres.migrations()
    assert [version for version, _, _ in shipped] == list(range(1, len(shipped) + 1))
    monkeypatch.setattr(storage.postgres, "migrations", lambda: shipped[:2])
    await open_storage(url).init()
    async with open_storage(url) as store:
        name = await store.put_message(DOMAIN, USER, b"abc", sender="a", received_at=TS)
    monkeypatch.undo()

    with pytest.raises(BackendUnavailable, match="schema version 2, this release needs"):
        await open_storage(url).count(DOMAIN, USER)
    await open_storage(url).init()
    async with open_storage(url) as store:
        assert [m.name for m in await store.list_mailbox(DOMAIN, USER)] == [name]
    indexes = postgres_server.psql(
        "SELECT indexname FROM pg_indexes WHERE tablename = 'vm_message' ORDER BY 1",
        "voicemail_upgrade",
    )
    assert indexes.split() == ["vm_message_listing", "vm_message_pkey"]


async def test_uninitialised_database_says_what_to_do(postgres_server: PostgresServer) -> None:
    postgres_server.psql("CREATE DATABASE voicemail_empty")
    store = open_storage(postgres_server.url("voicemail_empty"))
    with pytest.raises(BackendUnavailable, match="voicemail storage init"):
        await store.count(DOMAIN, USER)


async def test_unreachable_server_is_backend_unavailable(postgres_server: PostgresServer) -> None:
    from tests.support.procs import free_port

    store = open_storage(f"postgresql://voicemail@127.0.0.1:{free_port()}/voicemail_test")
    with pytest.raises(BackendUnavailable, match="connecting"):
        await store.count(DOMAIN, USER)


def test_password_is_not_logged() -> None:
    store = open_storage("postgresql://vm:secret@db.example:5433/vm?pool_size=4")
    assert "secret" not in store.describe()
    assert "secret" not in repr(store)
    assert store.describe() == "postgresql://vm@db.example:5433/vm"


def test_server_helper_runs_psql(postgres_server: PostgresServer) -> None:
    assert postgres_server.psql("SELECT 6 * 7") == "42"
    with pytest.raises(subprocess.CalledProcessError):
        postgres_server.psql("SELECT * FROM no_such_table")
