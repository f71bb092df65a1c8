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


@dataclass
class ApiState:
    config: ApiConfig
    store: Storage
    accounts: Accounts | None
    authenticator: Authenticator
    conversions: asyncio.Semaphore
    clock: Callable[[], float] = time.time
    forwarder: ChangeForwarder | None = None  # set while the app runs
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
