"""PostgreSQL message store: metadata columns plus audio bytea, every operation transactional.

Several workers on several hosts share mailboxes through it. The schema is applied by
``voicemail storage init URL`` from the versioned files in ``storage/migrations``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from importlib import resources
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from storage.base import Storage
from storage.errors import (
    BackendNotFound,
    BackendUnavailable,
    MailboxNotFound,
    MessageNotFound,
    StorageError,
    StorageFull,
)
from storage.model import Counts, Message, MessageInfo, PinRecord, wav_duration
from storage.names import message_name

try:
    import asyncpg
except ImportError as exc:  # pragma: no cover - exercised by a test that hides asyncpg
    raise BackendNotFound(
        "the postgres storage backend needs the asyncpg driver: "
        "pip install 'kamailio-voicemail[postgres]' (or: pip install asyncpg)"
    ) from exc

log = logging.getLogger("voicemail.storage.postgres")

# Serialises concurrent `storage init` runs (an arbitrary constant of ours).
MIGRATION_LOCK = 0x766D_0001
DEFAULT_POOL_SIZE = 10

_MAILBOX_ID = "SELECT id FROM vm_mailbox WHERE domain = $1 AND username = $2"
_UPSERT_MAILBOX = """
    INSERT INTO vm_mailbox (domain, username) VALUES ($1, $2)
    ON CONFLICT (domain, username) DO UPDATE SET username = EXCLUDED.username
    RETURNING id
"""
# The columns of a MessageInfo, in its order (duration in seconds), so that a row becomes
# one without per-field Python work.
_INFO_COLUMNS = (
    "m.name, NOT m.is_read AS new, m.size, m.received_at, m.sender,"
    " m.duration_ms / 1000.0::float8 AS duration"
)
_FROM_BOX = (
    "FROM vm_message m JOIN vm_mailbox b ON b.id = m.mailbox_id "
    "WHERE b.domain = $1 AND b.username = $2"
)


def migrations() -> list[tuple[int, str, str]]:
    """(version, file name, SQL) of every shipped migration, in order."""
    found = []
    for entry in resources.files("storage").joinpath("migrations").iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text()))
    return sorted(found)


_INFO_WIDTH = len(MessageInfo._fields)


def _info(row: Any) -> MessageInfo:
    """The MessageInfo of a row that starts with _INFO_COLUMNS."""
    return MessageInfo._make(row[:_INFO_WIDTH])


class PostgresStorage(Storage):
    """Message store in PostgreSQL (``postgresql://user:pass@host:port/db?pool_size=10``)."""

    backend: ClassVar[str] = "postgres"

    def __init__(self, url: str) -> None:
        super().__init__(url)
        parts = urlsplit(url)
        if parts.scheme not in ("postgresql", "postgres"):
            raise ValueError(f"postgres storage URL must start with postgresql://, got {url!r}")
        query = dict(parse_qsl(parts.query))
        try:
            self.pool_size = int(query.pop("pool_size", DEFAULT_POOL_SIZE))
        except ValueError:
            raise ValueError(f"pool_size in {url!r} must be a number") from None
        self.dsn = urlunsplit(parts._replace(query=urlencode(query)))
        self._pool: asyncpg.Pool[asyncpg.Record] | None = None

    def describe(self) -> str:
        parts = urlsplit(self.url)
        host = parts.hostname or "localhost"
        port = f":{parts.port}" if parts.port else ""
        user = f"{parts.username}@" if parts.username else ""
        return f"postgresql://{user}{host}{port}{parts.path}"

    # ----- life cycle -----

    async def _open(self) -> None:
        async with self._errors("connecting"):
            pool = await asyncpg.create_pool(
                self.dsn, min_size=1, max_size=self.pool_size, command_timeout=30
            )
        try:
            async with self._errors("checking the schema"), pool.acquire() as con:
                await self._check_schema(con)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def _check_schema(self, con: Any) -> None:
        latest = migrations()[-1][0]
        try:
            version = await con.fetchval("SELECT max(version) FROM vm_schema_migrations")
        except asyncpg.UndefinedTableError:
            version = None
        if version is None or version < latest:
            raise BackendUnavailable(
                f"{self.describe()}: schema version {version or 0}, this release needs "
                f"{latest}: run `voicemail storage init URL`"
            )

    async def _close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _init(self) -> None:
        async with self._errors("initialising"):
            con = await asyncpg.connect(self.dsn)
            try:
                async with con.transaction():
                    await con.execute("SELECT pg_advisory_xact_lock($1)", MIGRATION_LOCK)
                    await con.execute(
                        "CREATE TABLE IF NOT EXISTS vm_schema_migrations ("
                        " version integer PRIMARY KEY, name text NOT NULL,"
                        " applied_at timestamptz NOT NULL DEFAULT now())"
                    )
                    applied = {
                        r["version"]
                        for r in await con.fetch("SELECT version FROM vm_schema_migrations")
                    }
                    for version, name, sql in migrations():
                        if version in applied:
                            continue
                        log.info("%s: applying migration %s", self.describe(), name)
                        await con.execute(sql)
                        await con.execute(
                            "INSERT INTO vm_schema_migrations (version, name) VALUES ($1, $2)",
                            version,
                            name,
                        )
            finally:
                await con.close()

    @contextlib.asynccontextmanager
    async def _errors(self, what: str) -> AsyncIterator[None]:
        """Map driver and network failures onto the storage error hierarchy."""
        try:
            yield
        except StorageError:
            raise
        except asyncpg.DiskFullError as exc:
            raise StorageFull(f"{self.describe()}: {what}: {exc}") from exc
        except (
            OSError,
            TimeoutError,
            asyncpg.PostgresConnectionError,
            asyncpg.InterfaceError,
            asyncpg.InvalidAuthorizationSpecificationError,
            asyncpg.InvalidCatalogNameError,
            asyncpg.CannotConnectNowError,
        ) as exc:
            raise BackendUnavailable(f"{self.describe()}: {what}: {exc}") from exc
        except asyncpg.UndefinedTableError as exc:
            raise BackendUnavailable(
                f"{self.describe()}: {what}: schema missing: run `voicemail storage init URL`"
            ) from exc
        except asyncpg.PostgresError as exc:
            raise StorageError(f"{self.describe()}: {what}: {exc}") from exc

    @contextlib.asynccontextmanager
    async def _statement(self, what: str) -> AsyncIterator[Any]:
        """A connection for one statement, which PostgreSQL runs as its own transaction
        (sparing the BEGIN and COMMIT round trips of a read that is one query)."""
        assert self._pool is not None, "storage used before open()"
        async with self._errors(what), self._pool.acquire() as con:
            yield con

    @contextlib.asynccontextmanager
    async def _transaction(self, what: str) -> AsyncIterator[Any]:
        async with self._statement(what) as con, con.transaction():
            yield con

    async def _not_found(self, con: Any, domain: str, user: str, name: str) -> MessageNotFound:
        if await con.fetchval(_MAILBOX_ID, domain, user) is None:
            return MailboxNotFound(domain, user, name)
        return MessageNotFound(domain, user, name)

    # ----- messages -----

    async def _put_message(
        self, domain: str, user: str, audio: bytes, sender: str, received_at: int
    ) -> str:
        duration = wav_duration(audio)
        duration_ms = None if duration is None else round(duration * 1000)
        async with self._transaction(f"storing a message for {user}@{domain}") as con:
            mailbox_id = await con.fetchval(_UPSERT_MAILBOX, domain, user)
            seq = 0
            while True:
                name = message_name(received_at, sender, seq)
                stored = await con.fetchval(
                    "INSERT INTO vm_message (mailbox_id, name, received_at, sender, size,"
                    " duration_ms, audio) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                    " ON CONFLICT (mailbox_id, name) DO NOTHING RETURNING name",
                    mailbox_id,
                    name,
                    received_at,
                    sender,
                    len(audio),
                    duration_ms,
                    audio,
                )
                if stored is not None:
                    return name
                seq += 1

    async def _get_message(self, domain: str, user: str, name: str) -> Message:
        async with self._transaction(f"reading {name} of {user}@{domain}") as con:
            row = await con.fetchrow(
                f"SELECT {_INFO_COLUMNS}, m.audio {_FROM_BOX} AND m.name = $3",
                domain,
                user,
                name,
            )
            if row is None:
                raise await self._not_found(con, domain, user, name)
        return Message(_info(row), bytes(row["audio"]))

    async def _mark_read(self, domain: str, user: str, name: str) -> MessageInfo | bool:
        return await self._set_read(domain, user, name, True)

    async def _mark_unread(self, domain: str, user: str, name: str) -> MessageInfo | bool:
        return await self._set_read(domain, user, name, False)

    async def _set_read(
        self, domain: str, user: str, name: str, is_read: bool
    ) -> MessageInfo | bool:
        what = f"marking {name} of {user}@{domain} {'read' if is_read else 'new'}"
        async with self._transaction(what) as con:
            row = await con.fetchrow(
                "UPDATE vm_message m SET is_read = $4 FROM vm_mailbox b"
                " WHERE b.id = m.mailbox_id AND b.domain = $1 AND b.username = $2"
                f" AND m.name = $3 AND m.is_read <> $4 RETURNING {_INFO_COLUMNS}",
                domain,
                user,
                name,
                is_read,
            )
            if row is not None:
                return _info(row)
            exists = await con.fetchval(f"SELECT 1 {_FROM_BOX} AND m.name = $3", domain, user, name)
            if exists is None:
                raise await self._not_found(con, domain, user, name)
            return False

    async def _delete_message(self, domain: str, user: str, name: str) -> MessageInfo | None:
        async with self._transaction(f"deleting {name} of {user}@{domain}") as con:
            row = await con.fetchrow(
                "DELETE FROM vm_message m USING vm_mailbox b"
                " WHERE b.id = m.mailbox_id AND b.domain = $1 AND b.username = $2"
                f" AND m.name = $3 RETURNING {_INFO_COLUMNS}",
                domain,
                user,
                name,
            )
            if row is None:
                raise await self._not_found(con, domain, user, name)
        return _info(row)

    async def _list_mailbox(self, domain: str, user: str) -> list[MessageInfo]:
        async with self._statement(f"listing {user}@{domain}") as con:
            rows = await con.fetch(
                f"SELECT {_INFO_COLUMNS} {_FROM_BOX} ORDER BY m.received_at, m.name",
                domain,
                user,
            )
        # Each row holds exactly a MessageInfo's fields: tuple.__new__ skips the named
        # tuple's Python-level __new__, a third of the cost for a large mailbox.
        new_info = tuple.__new__
        return [new_info(MessageInfo, row) for row in rows]

    async def _count(self, domain: str, user: str) -> Counts:
        async with self._statement(f"counting {user}@{domain}") as con:
            row = await con.fetchrow(
                "SELECT count(*) FILTER (WHERE NOT m.is_read) AS new,"
                f" count(*) FILTER (WHERE m.is_read) AS saved {_FROM_BOX}",
                domain,
                user,
            )
        return Counts(new=row["new"], saved=row["saved"])

    # ----- greetings -----

    async def _put_greeting(self, domain: str, user: str, typ: str, audio: bytes) -> None:
        async with self._transaction(f"storing greeting {typ} of {user}@{domain}") as con:
            mailbox_id = await con.fetchval(_UPSERT_MAILBOX, domain, user)
            await con.execute(
                "INSERT INTO vm_greeting (mailbox_id, typ, audio) VALUES ($1, $2, $3)"
                " ON CONFLICT (mailbox_id, typ)"
                " DO UPDATE SET audio = EXCLUDED.audio, updated_at = now()",
                mailbox_id,
                typ,
                audio,
            )

    async def _get_greeting(self, domain: str, user: str, typ: str) -> bytes | None:
        async with self._transaction(f"reading greeting {typ} of {user}@{domain}") as con:
            audio = await con.fetchval(
                "SELECT g.audio FROM vm_greeting g JOIN vm_mailbox b ON b.id = g.mailbox_id"
                " WHERE b.domain = $1 AND b.username = $2 AND g.typ = $3",
                domain,
                user,
                typ,
            )
        return None if audio is None else bytes(audio)

    async def _delete_greeting(self, domain: str, user: str, typ: str) -> bool:
        async with self._transaction(f"deleting greeting {typ} of {user}@{domain}") as con:
            deleted = await con.fetchval(
                "DELETE FROM vm_greeting g USING vm_mailbox b"
                " WHERE b.id = g.mailbox_id AND b.domain = $1 AND b.username = $2"
                " AND g.typ = $3 RETURNING g.typ",
                domain,
                user,
                typ,
            )
        return deleted is not None

    # ----- PIN -----

    async def _get_pin(self, domain: str, user: str) -> PinRecord:
        async with self._transaction(f"reading the PIN of {user}@{domain}") as con:
            row = await con.fetchrow(
                "SELECT p.hash, p.failures, p.locked_until FROM vm_pin p"
                " JOIN vm_mailbox b ON b.id = p.mailbox_id WHERE b.domain = $1 AND b.username = $2",
                domain,
                user,
            )
        return _pin(row)

    async def _update_pin(
        self, domain: str, user: str, change: Callable[[PinRecord], PinRecord]
    ) -> PinRecord:
        async with self._transaction(f"updating the PIN of {user}@{domain}") as con:
            mailbox_id = await con.fetchval(_UPSERT_MAILBOX, domain, user)
            # The mailbox row lock serialises concurrent updates of the same PIN record.
            await con.execute("SELECT id FROM vm_mailbox WHERE id = $1 FOR UPDATE", mailbox_id)
            row = await con.fetchrow(
                "SELECT hash, failures, locked_until FROM vm_pin WHERE mailbox_id = $1", mailbox_id
            )
            record = change(_pin(row))
            await con.execute(
                "INSERT INTO vm_pin (mailbox_id, hash, failures, locked_until)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT (mailbox_id) DO UPDATE SET"
                " hash = EXCLUDED.hash, failures = EXCLUDED.failures,"
                " locked_until = EXCLUDED.locked_until",
                mailbox_id,
                record.hash,
                list(record.failures),
                record.locked_until,
            )
        return record


def _pin(row: Any) -> PinRecord:
    if row is None:
        return PinRecord()
    return PinRecord(row["hash"], tuple(row["failures"]), float(row["locked_until"]))
