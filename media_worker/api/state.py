"""What one API process holds while it runs: settings, the store, the database of
accounts, the authenticator. Built by ``app.create_app``; routes reach it through
``api_state(request)``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import quote

from fastapi import Request

from media_worker.api.accounts import Accounts
from media_worker.api.auth import Authenticator
from media_worker.api.config import ApiConfig
from storage.base import Storage

API_PREFIX = "/api/v1"


@dataclass
class ApiState:
    config: ApiConfig
    store: Storage
    accounts: Accounts | None
    authenticator: Authenticator
    conversions: asyncio.Semaphore
    clock: Callable[[], float] = time.time
    started: list[object] = field(default_factory=list)  # things stopped at shutdown

    def url(self, *segments: str) -> str:
        """An API URL, absolute when api.public_url is set; each segment is quoted."""
        base = (self.config.public_url or "").rstrip("/")
        path = "/".join(quote(segment, safe="") for segment in segments)
        return f"{base}{API_PREFIX}/{path}"


def api_state(request: Request) -> ApiState:
    state = request.app.state.api
    assert isinstance(state, ApiState)
    return state
