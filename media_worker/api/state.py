"""What one API process holds while it runs: settings, the store, the database of
accounts, the authenticator. Built by ``app.create_app``; routes reach it through
``api_state(request)``."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from fastapi import Request

from media_worker.api.accounts import Accounts
from media_worker.api.auth import Authenticator
from media_worker.api.config import ApiConfig
from media_worker.changes import ChangeForwarder
from storage.base import Storage

log = logging.getLogger("voicemail.api")

API_PREFIX = "/api/v1"
# Seconds a change request waits for its notice to be on disk before it answers anyway
# (the notice stays queued and is written when the disk lets us).
NOTICE_WAIT = 5.0
# What a path segment may hold unescaped (RFC 3986 pchar): message names such as
# 1700000000+sip:alice@example.com then go as they are, and cost no quote() call.
_PCHAR = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=:@]*")
# uid/did mailboxes whose SIP address the API has seen, remembered for the notices.
MAX_ADDRESSES = 10_000


class EncodedCache:
    """The last MP3/Opus encodings, by (mailbox, name, digest of the WAV, format): an
    audio element seeks with one Range request after another, and each must not encode
    the whole message again. Bounded by count and by bytes. The store is still asked
    first on every request (it may be gone, or another), so an entry is never stale."""

    def __init__(self, max_items: int = 32, max_bytes: int = 16 * 1024 * 1024) -> None:
        self.max_items = max_items
        self.max_bytes = max_bytes
        self._items: OrderedDict[tuple[str, ...], bytes] = OrderedDict()
        self._bytes = 0

    def get(self, key: tuple[str, ...]) -> bytes | None:
        data = self._items.get(key)
        if data is not None:
            self._items.move_to_end(key)
        return data

    def put(self, key: tuple[str, ...], data: bytes) -> None:
        if len(data) > self.max_bytes:
            return
        old = self._items.pop(key, None)
        self._bytes -= len(old) if old is not None else 0
        self._items[key] = data
        self._bytes += len(data)
        while len(self._items) > self.max_items or self._bytes > self.max_bytes:
            _, dropped = self._items.popitem(last=False)
            self._bytes -= len(dropped)

    def __len__(self) -> int:
        return len(self._items)

    @property
    def size(self) -> int:
        return self._bytes


@dataclass
class ApiState:
    config: ApiConfig
    store: Storage
    accounts: Accounts | None
    authenticator: Authenticator
    conversions: asyncio.Semaphore
    clock: Callable[[], float] = time.time
    forwarder: ChangeForwarder | None = None  # set while the app runs
    encoded: EncodedCache = field(default_factory=EncodedCache)
    addresses: OrderedDict[tuple[str, str], tuple[str, str]] = field(default_factory=OrderedDict)

    def learn_address(self, store_key: tuple[str, str], sip: tuple[str, str]) -> None:
        """Remember that the store's (domain, user) is the SIP (user, domain), so that
        the worker publishes the lamp of a uid/did mailbox under the phone's address."""
        self.addresses[store_key] = sip
        self.addresses.move_to_end(store_key)
        while len(self.addresses) > MAX_ADDRESSES:
            self.addresses.popitem(last=False)

    def address_of(self, domain: str, user: str) -> tuple[str, str] | None:
        return self.addresses.get((domain, user))

    async def changed(self, what: str) -> None:
        """Wait until the notice of the change just made is durable in the spool, so
        that an answered request has moved (or will move) the lamp."""
        if self.forwarder is None:
            return
        try:
            await asyncio.wait_for(self.forwarder.flush(), NOTICE_WAIT)
        except TimeoutError:
            log.warning("api: %s: change notice not yet written; lamps and webhooks wait", what)

    def url(self, *segments: str) -> str:
        """An API URL, absolute when api.public_url is set; each segment is quoted."""
        base = (self.config.public_url or "").rstrip("/")
        return f"{base}{API_PREFIX}/{'/'.join(map(path_segment, segments))}"


def path_segment(text: str) -> str:
    """``text`` as one URL path segment ('/' and everything outside pchar escaped)."""
    if _PCHAR.fullmatch(text):
        return text
    # SEMS file names may hold undecodable bytes (surrogate escapes): they go as bytes.
    return quote(text, safe="!$&'()*+,;=:@", errors="surrogateescape")


def api_state(request: Request) -> ApiState:
    state = request.app.state.api
    assert isinstance(state, ApiState)
    return state
