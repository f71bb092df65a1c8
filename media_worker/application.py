"""What the worker gives an application for a call, and what it asks of one.

The apps and the MWI publisher import this, not the worker: an ``Application`` admits or
refuses each INVITE and runs each answered call, given as an ``ActiveCall``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol, TypeVar

from media_worker.session import MediaSession
from media_worker.sip.actions import Rejection
from media_worker.sip.call import Call
from media_worker.sip.message import Request


class CallLog(logging.LoggerAdapter[logging.Logger]):
    """Prefixes every line with the call it is about."""

    def process(self, msg: str, kwargs: object) -> tuple[str, object]:  # type: ignore[override]
        extra = self.extra or {}
        return f"[{extra.get('call_id')}] {msg}", kwargs


@dataclass
class ActiveCall:
    """What an application gets for an answered call."""

    call: Call
    media: MediaSession
    log: CallLog

    @property
    def call_id(self) -> str:
        return self.call.call_id


Admitted = TypeVar("Admitted")


class Application(Protocol[Admitted]):
    def admit(self, invite: Request) -> Admitted | Rejection:
        """Refuse the INVITE (with a status and reason) or accept it: what it returns
        then is given to ``run`` if the call is answered, and dropped if not."""

    async def run(self, call: ActiveCall, admitted: Admitted) -> None:
        """Serve the answered call; returning ends it."""
