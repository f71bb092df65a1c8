"""Kamailio's database as the API reads it: a subscriber's HA1, their voicemail
preferences, and the mailbox the proxy would give them.

One connection per API process, used by one query at a time (the queries are single
indexed rows); a lost connection is dropped and opened again by the next request.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass

from kemi.app_param import preferences_from_rows
from media_worker.config_errors import ConfigError
from media_worker.provisioning import kamdb
from media_worker.provisioning.provision import (
    DatabaseUnavailable,
    Preferences,
    Refused,
    check_preferences,
    parse_db_url,
)

log = logging.getLogger("voicemail.api")

_USER = "username = $1 AND domain = $2"


@dataclass(frozen=True)
class Account:
    """A subscriber and what the proxy loads for them from usr_preferences."""

    user: str
    domain: str
    preferences: Mapping[str, str]

    @property
    def mailbox(self) -> tuple[str, str]:
        """(domain, user) of the store's mailbox: did and uid when set, as the proxy
        sends them in P-App-Param and the worker keys the mailbox by them."""
        did = self.preferences.get("did") or self.domain
        uid = self.preferences.get("uid") or self.user
        return did, uid

    def settings(self) -> dict[str, str | None]:
        prefs = self.preferences
        return {
            "mode": prefs.get("voicemail") or None,
            "email": prefs.get("email") or None,
            "language": prefs.get("lang") or None,
            "greeting_type": prefs.get("vm_greeting_type") or None,
        }


class Accounts:
    """Read and update subscribers in the Kamailio database at ``url``."""

    def __init__(self, url: str) -> None:
        try:
            self.url = parse_db_url(url)
        except Refused as exc:
            raise ConfigError(f"api.kamailio_db: {exc}") from None
        self._db: kamdb.Sql | None = None
        self._lock = asyncio.Lock()

    async def _connection(self) -> kamdb.Sql:
        if self._db is None:
            if self.url.dialect == "sqlite":
                self._db = await kamdb.SqliteSql.open(self.url, create=False)
            else:
                self._db = await kamdb.PostgresSql.open(self.url)
        return self._db

    async def _drop(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                await db.close()
            except Exception:
                log.debug("closing a failed Kamailio database connection", exc_info=True)

    async def close(self) -> None:
        async with self._lock:
            await self._drop()

    async def ha1(self, user: str, domain: str) -> str | None:
        """The subscriber's HA1, or None when there is no such subscriber."""
        async with self._lock:
            try:
                db = await self._connection()
                rows = await db.fetch(f"SELECT ha1 FROM subscriber WHERE {_USER}", user, domain)
            except DatabaseUnavailable:
                await self._drop()
                raise
        return str(rows[0][0]) if rows and rows[0][0] else None

    async def account(self, user: str, domain: str) -> Account | None:
        """The subscriber with their preferences, or None when there is no such one."""
        async with self._lock:
            try:
                db = await self._connection()
                found = await db.fetch(f"SELECT 1 FROM subscriber WHERE {_USER}", user, domain)
                rows = await db.fetch(
                    f"SELECT attribute, value FROM usr_preferences WHERE {_USER} ORDER BY id",
                    user,
                    domain,
                )
            except DatabaseUnavailable:
                await self._drop()
                raise
        if not found:
            return None
        pairs = [(str(a), str(v)) for a, v in rows]
        return Account(user, domain, preferences_from_rows(pairs))

    async def update(self, user: str, domain: str, prefs: Preferences) -> None:
        """Write preferences with the checks `voicemail user set` applies (Refused for a
        value the worker would refuse, UserNotFound for no subscriber)."""
        check_preferences(prefs)
        async with self._lock:
            try:
                db = await self._connection()
                await kamdb.set_user(db, user, domain, None, prefs)
            except DatabaseUnavailable:
                await self._drop()
                raise
