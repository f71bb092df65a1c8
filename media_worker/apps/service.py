"""The worker's application: admits calls by the P-App contract and runs each app.

The apps are pure state machines; ``apps/driver.py`` feeds them media events and carries
out their actions, each ``apps/<app>_call.py`` the actions only its app has. Recordings
go through a journal, so a crash loses at most the last second; journals a crash left
behind are delivered at start-up, and those whose delivery failed (store down, disk full)
are tried again while the worker runs (``apps/redelivery.py``).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

from media_worker.application import ActiveCall
from media_worker.apps import delivery
from media_worker.apps.annrecorder_call import AnnrecorderCall
from media_worker.apps.context import AppContext, ServiceSettings
from media_worker.apps.delivery import Remember
from media_worker.apps.driver import AppCall
from media_worker.apps.journal import Leftover, note
from media_worker.apps.params import AppRequest, app_request
from media_worker.apps.redelivery import CorruptJournal, Redelivery
from media_worker.apps.voicebox_call import VoiceboxCall
from media_worker.apps.voicemail_call import VoicemailCall
from media_worker.mail.outbox import Outbox
from media_worker.mail.template import EmailTemplate
from media_worker.prompts import PromptLibrary
from media_worker.sip.actions import Rejection
from media_worker.sip.message import Request
from storage import Storage

__all__ = ["ServiceSettings", "VoicemailService"]


class VoicemailService:
    """The Application the worker runs: one per worker process."""

    def __init__(
        self,
        settings: ServiceSettings,
        store: Storage,
        outbox: Outbox,
        templates: Mapping[str, EmailTemplate],
        prompts: PromptLibrary,
    ) -> None:
        self.settings = settings
        journals: set[str] = set()  # written by calls in progress
        self.redelivery = Redelivery(
            settings.journal_dir,
            self._deliver_leftover,
            journals,
            first=settings.apps.retry_delay,
            cap=settings.apps.retry_max_delay,
        )
        self.context = AppContext(
            settings=settings,
            store=store,
            prompts=prompts,
            outbox=outbox,
            templates=templates,
            redelivery=self.redelivery,
            journals=journals,
        )

    # ----- start-up, and deliveries that failed -----

    async def start(self) -> None:
        """Retry, while the worker runs, the deliveries that fail when a call ends."""
        await self.redelivery.start()

    async def stop(self) -> None:
        await self.context.flusher.stop()
        await self.redelivery.stop()

    async def recover(self) -> int:
        """Deliver the recordings a crash left behind; returns how many. One that cannot
        be delivered now stays for the retries of ``start``."""
        return await self.redelivery.attempt_due()

    async def _deliver_leftover(self, leftover: Leftover) -> str:
        meta = leftover.meta
        try:
            request = AppRequest(**meta["request"])
            answered_at, call_id = int(meta["answered_at"]), str(meta["call_id"])
            done = {str(k): str(v) for k, v in dict(meta.get("done", {})).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise CorruptJournal(f"the record lacks what delivery needs: {exc!r}") from exc
        directory = self.settings.journal_dir

        async def remember(done: dict[str, str]) -> None:
            await asyncio.to_thread(note, directory, leftover.id, {**meta, "done": done})

        return await self.deliver(
            request, leftover.pcm, answered_at, call_id, done=done, remember=remember
        )

    async def deliver(
        self,
        request: AppRequest,
        pcm: bytes,
        answered_at: int,
        call_id: str,
        *,
        done: dict[str, str] | None = None,
        remember: Remember | None = None,
    ) -> str:
        """Store and/or email a recording per the mode (``apps/delivery.py``)."""
        return await delivery.deliver(
            self.context, request, pcm, answered_at, call_id, done=done, remember=remember
        )

    # ----- the worker's Application protocol -----

    def admit(self, invite: Request) -> AppRequest | Rejection:
        return app_request(invite, self.settings.apps)

    async def run(self, call: ActiveCall, request: AppRequest) -> None:
        started = time.monotonic()
        part: AppCall
        if request.app == "voicebox":
            part = VoiceboxCall(self.context, call, request)
        elif request.app == "annrecorder":
            part = AnnrecorderCall(self.context, call, request)
        else:
            part = VoicemailCall(self.context, call, request)
        outcome = await part.run()
        call.log.info(
            "%s %s@%s mode %s: %s after %.1f s",
            request.app, request.user, request.domain, request.mode, outcome,
            time.monotonic() - started,
        )  # fmt: skip
