"""Carries out the voicemail app's own actions for one call: the recording goes into a
journal (written every second by the worker's one ``JournalFlusher``, so a crash loses at
most the last second) and is delivered when the app says so or the caller hangs up."""

from __future__ import annotations

import time
from typing import Any

from media_worker.application import ActiveCall
from media_worker.apps import delivery
from media_worker.apps import events as ev
from media_worker.apps.context import AppContext
from media_worker.apps.driver import AppCall
from media_worker.apps.journal import Journal
from media_worker.apps.params import AppRequest
from media_worker.apps.timers import Expiry
from media_worker.apps.voicemail import State, Voicemail, VoicemailSettings
from media_worker.session import Sink


class VoicemailCall(AppCall):
    def __init__(self, context: AppContext, call: ActiveCall, request: AppRequest) -> None:
        super().__init__(
            context,
            call,
            request,
            inactivity=context.settings.inactivity.voicemail,
            outcome="caller hung up before the beep",
        )
        max_record_time = context.settings.voicemail.max_record_time
        self.app = Voicemail(VoicemailSettings(request.mode, max_record_time))
        self.answered_at = int(time.time())
        self.journal: Journal | None = None
        self.limit_reached = False  # the call time limit ended the call

    async def open(self) -> Voicemail:
        return self.app

    def done(self) -> bool:
        return self.app.state is State.DONE

    def ending(self) -> None:
        if self.request.mode == "ann":
            self.outcome = "announcement played"

    def timed_out(self, expiry: Expiry) -> None:
        super().timed_out(expiry)
        self.limit_reached = expiry is Expiry.CALL_TIME

    async def act(self, action: ev.Action) -> ev.Event | None:
        if isinstance(action, ev.DeliverMessage):
            await self._finish_journal(deliver=True)
            return None
        return await super().act(action)

    async def record(self, max_seconds: float) -> Sink:
        meta: dict[str, Any] = {
            "call_id": self.call.call_id,
            "answered_at": self.answered_at,
            "request": dict(vars(self.request)),
        }
        self.journal = journal = await Journal.create(self.context.settings.journal_dir, meta)
        self.context.journals.add(journal.id)
        self.context.flusher.add(journal)
        return journal.append

    async def close(self) -> None:
        await self._finish_journal(deliver=self.journal is not None)

    async def _finish_journal(self, *, deliver: bool) -> None:
        journal, self.journal = self.journal, None
        if journal is None:
            return
        self.context.flusher.discard(journal)  # close() writes the rest
        context, request = self.context, self.request
        try:
            await journal.close()
            if deliver:
                pcm = await journal.read()
                delivered = await delivery.deliver(
                    context, request, pcm, self.answered_at, self.call.call_id,
                    done=journal.done, remember=journal.remember,
                )  # fmt: skip
                self.outcome = f"{self.outcome}, {delivered}" if self.limit_reached else delivered
            await journal.remove()
        except BaseException as exc:
            # The journal stays on disk; the service tries again while the worker runs.
            context.redelivery.failed(journal.id)
            if not isinstance(exc, Exception):
                raise
            self.call.log.warning(
                "message for %s@%s not delivered (%s): kept, tried again in %.3g s",
                request.user, request.domain, str(exc) or type(exc).__name__,
                context.redelivery.delay(1),
            )  # fmt: skip
            self.outcome = "message kept for a later delivery"
        finally:
            context.journals.discard(journal.id)
