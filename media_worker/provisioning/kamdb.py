"""The Kamailio database: create its tables, and add, change, show and delete users.

One set of queries (``$n`` parameters) runs on SQLite (stdlib sqlite3, off the event
loop) and on PostgreSQL (asyncpg, imported only when a PostgreSQL URL is used).
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import quote

from kemi.app_param import PREFERENCE_KEYS
from media_worker.provisioning.provision import (
    TABLES,
    DatabaseUnavailable,
    DbUrl,
    Dialect,
    Preferences,
    ProvisionError,
    Refused,
    UserNotFound,
    ha1,
    ha1b,
    load_schema,
    preference_changes,
    preference_rows,
    schema_versions,
    split_statements,
)

if TYPE_CHECKING:
    import asyncpg

NOT_INITIALISED = "run `voicemail db init` first"


class Sql(Protocol):
    dialect: Dialect

    async def fetch(self, sql: str, *args: object) -> list[tuple[Any, ...]]: ...
    async def execute(self, sql: str, *args: object) -> None: ...
    def transaction(self) -> Any: ...  # an async context manager
    async def tables(self) -> set[str]: ...
    async def close(self) -> None: ...


class SqliteSql:
    """sqlite3 in autocommit mode; ``transaction()`` takes the write lock up front."""

    dialect: Dialect = "sqlite"

    def __init__(self, conn: sqlite3.Connection, where: str) -> None:
        self._conn = conn
        self._where = where

    @classmethod
    async def open(cls, url: DbUrl, create: bool) -> SqliteSql:
        mode = "rwc" if create else "rw"
        uri = f"file:{quote(url.target)}?mode={mode}"
        try:
            conn = await asyncio.to_thread(
                sqlite3.connect, uri, uri=True, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            hint = "" if create else f" ({NOT_INITIALISED})"
            raise DatabaseUnavailable(f"cannot open {url}: {exc}{hint}") from exc
        # A proxy reading the same file holds short locks; wait for them, not fail.
        conn.execute("PRAGMA busy_timeout = 5000")
        return cls(conn, str(url))

    def _run(self, sql: str, args: Sequence[object]) -> list[tuple[Any, ...]]:
        # sqlite3 understands numbered ?NNN parameters, so $n maps one to one.
        try:
            return self._conn.execute(re.sub(r"\$(\d+)", r"?\1", sql), args).fetchall()
        except sqlite3.IntegrityError as exc:
            raise Refused(f"{self._where}: {exc}") from exc
        except sqlite3.OperationalError as exc:
            hint = f" ({NOT_INITIALISED})" if "no such table" in str(exc) else ""
            raise DatabaseUnavailable(f"{self._where}: {exc}{hint}") from exc
        except sqlite3.Error as exc:
            raise ProvisionError(f"{self._where}: {exc}") from exc

    async def fetch(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        return await asyncio.to_thread(self._run, sql, args)

    async def execute(self, sql: str, *args: object) -> None:
        await asyncio.to_thread(self._run, sql, args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        await self.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            await self.execute("ROLLBACK")
            raise
        await self.execute("COMMIT")

    async def tables(self) -> set[str]:
        rows = await self.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")
        return {row[0] for row in rows}

    async def close(self) -> None:
        await asyncio.to_thread(self._conn.close)


class PostgresSql:
    dialect: Dialect = "postgres"

    def __init__(self, conn: asyncpg.Connection, where: str) -> None:
        self._conn = conn
        self._where = where

    @classmethod
    async def open(cls, url: DbUrl) -> PostgresSql:
        try:
            import asyncpg
        except ImportError as exc:
            raise DatabaseUnavailable(
                "PostgreSQL support needs asyncpg: pip install 'kamailio-voicemail[postgres]'"
            ) from exc
        try:
            conn = await asyncpg.connect(url.target, timeout=10)
        except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DatabaseUnavailable(f"cannot connect to {url}: {exc}") from exc
        return cls(conn, str(url))

    @asynccontextmanager
    async def _errors(self) -> AsyncIterator[None]:
        import asyncpg

        try:
            yield
        except asyncpg.UndefinedTableError as exc:
            raise DatabaseUnavailable(f"{self._where}: {exc} ({NOT_INITIALISED})") from exc
        except (asyncpg.IntegrityConstraintViolationError, asyncpg.DataError) as exc:
            raise Refused(f"{self._where}: {exc}") from exc
        except (OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError) as exc:
            raise DatabaseUnavailable(f"{self._where}: {exc}") from exc
        except asyncpg.PostgresError as exc:
            raise ProvisionError(f"{self._where}: {exc}") from exc

    async def fetch(self, sql: str, *args: object) -> list[tuple[Any, ...]]:
        async with self._errors():
            return [tuple(row) for row in await self._conn.fetch(sql, *args)]

    async def execute(self, sql: str, *args: object) -> None:
        async with self._errors():
            await self._conn.execute(sql, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[None]:
        async with self._errors(), self._conn.transaction():
            yield

    async def tables(self) -> set[str]:
        rows = await self.fetch(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()"
        )
        return {row[0] for row in rows}

    async def close(self) -> None:
        await self._conn.close()


@asynccontextmanager
async def connect(url: DbUrl, create: bool = False) -> AsyncIterator[Sql]:
    """A connection; ``create`` lets SQLite make a new file (only `db init` does)."""
    db: Sql = (
        await SqliteSql.open(url, create)
        if url.dialect == "sqlite"
        else (await PostgresSql.open(url))
    )
    try:
        yield db
    finally:
        await db.close()


# ----- db init -----


@dataclass(frozen=True)
class InitReport:
    created: tuple[str, ...]
    present: tuple[str, ...]


async def init_schema(db: Sql) -> InitReport:
    """Create the missing tables and their version rows, in one transaction; refuse a
    table whose version row Kamailio would reject, before changing anything."""
    sql = load_schema(db.dialect)
    wanted = schema_versions(sql)
    async with db.transaction():
        existing = await db.tables() & set(TABLES)
        found: dict[str, int] = {}
        if "version" in existing:
            rows = await db.fetch("SELECT table_name, table_version FROM version")
            found = {name: int(number) for name, number in rows}
        for table in TABLES:
            if table not in existing:
                continue
            if table not in found:
                raise Refused(
                    f"table {table} exists but has no row in table version: Kamailio would "
                    f"refuse to start; check it is Kamailio 5.6's and add version "
                    f"{wanted[table]} by hand"
                )
            if found[table] != wanted[table]:
                raise Refused(
                    f"table {table} has version {found[table]}, Kamailio 5.6 expects "
                    f"{wanted[table]}: migrate it with kamdbctl/kamailio's upgrade scripts"
                )
        for statement in split_statements(sql):
            await db.execute(statement)
    created = tuple(t for t in TABLES if t not in existing)
    return InitReport(created, tuple(t for t in TABLES if t in existing))


# ----- users -----


@dataclass(frozen=True)
class UserRecord:
    user: str
    domain: str
    has_password: bool
    preferences: dict[str, str]  # every usr_preferences attribute of the user
    uuid: str
    registrations: int

    def to_json(self) -> dict[str, object]:
        return {
            "user": self.user,
            "domain": self.domain,
            "password_set": self.has_password,
            "uuid": self.uuid,
            "preferences": self.preferences,
            "registrations": self.registrations,
        }


_USER = "username = $1 AND domain = $2"
# usrloc with use_domain = 0 stores no domain: the user's contacts are still theirs.
_CONTACTS = "username = $1 AND (domain = $2 OR domain IS NULL)"


async def _exists(db: Sql, user: str, domain: str) -> bool:
    return bool(await db.fetch(f"SELECT 1 FROM subscriber WHERE {_USER}", user, domain))


async def _preferences(db: Sql, user: str, domain: str) -> list[tuple[str, str, str]]:
    return [
        (str(a), str(v), str(u))
        for a, v, u in await db.fetch(
            f"SELECT attribute, value, uuid FROM usr_preferences WHERE {_USER} ORDER BY id",
            user,
            domain,
        )
    ]


async def _write_preferences(db: Sql, user: str, domain: str, prefs: Preferences) -> None:
    """Merge the given fields into the user's voicemail preferences, one row each."""
    current = {a: v for a, v, _ in await _preferences(db, user, domain) if a in PREFERENCE_KEYS}
    merged = {**current, **preference_changes(prefs)}
    managed = tuple(PREFERENCE_KEYS)
    marks = ", ".join(f"${n}" for n in range(3, 3 + len(managed)))
    await db.execute(
        f"DELETE FROM usr_preferences WHERE {_USER} AND attribute IN ({marks})",
        user,
        domain,
        *managed,
    )
    for row in preference_rows(user, domain, merged):
        await db.execute(
            "INSERT INTO usr_preferences"
            " (uuid, username, domain, attribute, type, value, last_modified)"
            " VALUES ($1, $2, $3, $4, $5, $6, CURRENT_TIMESTAMP)",
            row.uuid,
            row.username,
            row.domain,
            row.attribute,
            row.type,
            row.value,
        )


async def add_user(db: Sql, user: str, domain: str, password: str, prefs: Preferences) -> None:
    async with db.transaction():
        if await _exists(db, user, domain):
            raise Refused(f"user {user}@{domain} already exists (use `voicemail user set`)")
        await db.execute(
            "INSERT INTO subscriber (username, domain, password, ha1, ha1b)"
            " VALUES ($1, $2, '', $3, $4)",
            user,
            domain,
            ha1(user, domain, password),
            ha1b(user, domain, password),
        )
        await _write_preferences(db, user, domain, prefs)


async def set_user(
    db: Sql, user: str, domain: str, password: str | None, prefs: Preferences
) -> None:
    async with db.transaction():
        if not await _exists(db, user, domain):
            raise UserNotFound(user, domain)
        if password is not None:
            await db.execute(
                f"UPDATE subscriber SET password = '', ha1 = $3, ha1b = $4 WHERE {_USER}",
                user,
                domain,
                ha1(user, domain, password),
                ha1b(user, domain, password),
            )
        await _write_preferences(db, user, domain, prefs)


async def get_user(db: Sql, user: str, domain: str) -> UserRecord:
    rows = await db.fetch(f"SELECT password, ha1 FROM subscriber WHERE {_USER}", user, domain)
    if not rows:
        raise UserNotFound(user, domain)
    prefs = await _preferences(db, user, domain)
    uuids = {u for a, _, u in prefs if a in PREFERENCE_KEYS}
    (count,) = (await db.fetch(f"SELECT count(*) FROM location WHERE {_CONTACTS}", user, domain))[0]
    return UserRecord(
        user=user,
        domain=domain,
        has_password=any(rows[0]),
        preferences={a: v for a, v, _ in prefs},
        uuid=uuids.pop() if len(uuids) == 1 else "",
        registrations=int(count),
    )


async def delete_user(db: Sql, user: str, domain: str) -> None:
    async with db.transaction():
        if not await _exists(db, user, domain):
            raise UserNotFound(user, domain)
        await db.execute(f"DELETE FROM subscriber WHERE {_USER}", user, domain)
        await db.execute(f"DELETE FROM usr_preferences WHERE {_USER}", user, domain)
        await db.execute(f"DELETE FROM location WHERE {_CONTACTS}", user, domain)
        await db.execute(f"DELETE FROM location_attrs WHERE {_CONTACTS}", user, domain)
