"""The worker's application: admits calls by the P-App contract and drives the apps.

The apps are pure state machines; this driver turns media events into app events and
app actions into media, storage and email operations. Recordings go through a journal,
so a crash loses at most the last second; journals a crash left behind are delivered at
start-up.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from media_worker import session as media
from media_worker.apps import events as ev
from media_worker.apps.calls import drain_playback, prompt_audio, translate
from media_worker.apps.journal import Journal, Leftover, forget, recover
from media_worker.apps.params import AppRequest, AppRouting, Refusal, app_request
from media_worker.apps.voicemail import Voicemail, VoicemailSettings
from media_worker.audio import (
    is_silent,
    trim_trailing_silence,
    write_wav,
)
from media_worker.mail.message import build_email
from media_worker.mail.outbox import Outbox
from media_worker.mail.template import EmailTemplate, select_template
from media_worker.media import PlayItem
from media_worker.prompts import PromptLibrary
from media_worker.sip.message import Request
from media_worker.worker import ActiveCall
from storage import Storage

log = logging.getLogger("voicemail.apps")

INACTIVITY = 30.0  # seconds without any event end a call (no call stays up forever)


@dataclass(frozen=True)
class ServiceSettings:
    routing: AppRouting = field(default_factory=AppRouting)
    min_record_time: float = 1.0
    max_record_time: float = 120.0
    drop_silent: bool = True
    journal_dir: Path = Path("/var/lib/voicemail/journal")
    extra_variables: tuple[str, ...] = ()


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
        self.store = store
        self.outbox = outbox
        self.templates = templates
        self.prompts = prompts
        self._admitted: dict[str, AppRequest] = {}

    # ----- start-up -----

    async def recover(self) -> int:
        """Deliver the recordings a crash left behind; returns how many."""
        leftovers = await asyncio.to_thread(recover, self.settings.journal_dir)
        for leftover in leftovers:
            await self._deliver_leftover(leftover)
        return len(leftovers)

    async def _deliver_leftover(self, leftover: Leftover) -> None:
        meta = leftover.meta
        request = AppRequest(**meta["request"])
        outcome = await self.deliver(
            request, leftover.pcm, int(meta["answered_at"]), meta["call_id"]
        )
        log.info(
            "[%s] recovered recording for %s@%s: %s",
            meta["call_id"],
            request.user,
            request.domain,
            outcome,
        )
        await asyncio.to_thread(forget, self.settings.journal_dir, leftover.id)

    # ----- the worker's Application protocol -----

    def admit(self, invite: Request) -> Refusal | None:
        request = app_request(invite, self.settings.routing)
        if isinstance(request, Refusal):
            return request
        self._admitted[invite.call_id] = request
        return None

    def release(self, invite: Request) -> None:
        self._admitted.pop(invite.call_id, None)  # a call refused or ended before run()

    async def run(self, call: ActiveCall) -> None:
        request = self._admitted.pop(call.call_id)
        started = time.monotonic()
        if request.app == "voicebox":
            from media_worker.apps.voicebox_call import VoiceboxCall

            outcome = await VoiceboxCall(self, call, request).run()
        elif request.app == "annrecorder":
            from media_worker.apps.annrecorder_call import AnnrecorderCall

            outcome = await AnnrecorderCall(self, call, request).run()
        else:
            outcome = await VoicemailCall(self, call, request).run()
        call.log.info(
            "%s %s@%s mode %s: %s after %.1f s",
            request.app, request.user, request.domain, request.mode, outcome,
            time.monotonic() - started,
        )  # fmt: skip

    # ----- delivery -----

    async def deliver(self, request: AppRequest, pcm: bytes, answered_at: int, call_id: str) -> str:
        """Store and/or email a recording per the mode; returns what happened, for the log."""
        trimmed = trim_trailing_silence(pcm)
        seconds = len(trimmed) / 16000
        if seconds < self.settings.min_record_time:
            return f"dropped: {seconds:.1f} s is shorter than {self.settings.min_record_time:g} s"
        if self.settings.drop_silent and is_silent(trimmed):
            return "dropped: only silence"
        wav = write_wav(trimmed)
        done = []
        name = None
        if request.mode in ("box", "both"):
            name = await self.store.put_message(
                request.domain, request.user, wav, sender=request.sender, received_at=answered_at
            )
            done.append(f"stored as {name}")
        if request.mode in ("voicemail", "both") and request.email:
            variables = {
                "user": request.usr or request.user,
                "domain": request.dom or request.domain,
                "uid": request.uid or "",
                "did": request.did or "",
                "email": request.email,
                "sender": request.sender,
                "from": request.sender,
                "ts": str(answered_at),
                "vmsg_length": f"{seconds:.2f}",
                **{k: request.extras.get(k, "") for k in self.settings.extra_variables},
            }
            template = select_template(self.templates, request.did, request.language)
            message = build_email(
                template.render(variables),
                wav,
                f"{name or answered_at}.wav",
                sent_at=time.time(),
                id_domain=request.domain,
            )
            job = await self.outbox.submit(
                message, mailbox=f"{request.user}@{request.domain}", call_id=call_id
            )
            done.append(f"email queued as {job}")
        return f"{seconds:.1f} s message " + ", ".join(done)


class VoicemailCall:
    """One voicemail call: feeds the app its events, carries out its actions."""

    def __init__(self, service: VoicemailService, call: ActiveCall, request: AppRequest) -> None:
        self.service = service
        self.call = call
        self.request = request
        self.app = Voicemail(VoicemailSettings(request.mode, service.settings.max_record_time))
        self.answered_at = int(time.time())
        self.journal: Journal | None = None
        self.outcome = "caller hung up before the beep"
        self._flusher: asyncio.Task[None] | None = None

    async def run(self) -> str:
        session = self.call.media
        try:
            if await self._act(self.app.handle(ev.Started())):
                return self.outcome
            while (event := await session.next_event(INACTIVITY)) is not None:
                app_event = translate(event)
                if app_event is not None and await self._act(self.app.handle(app_event)):
                    break
                if isinstance(event, media.Hangup):
                    break
            else:
                self.outcome = "inactivity timeout"
        finally:
            await self._finish_journal(deliver=self.journal is not None)
        return self.outcome

    async def _act(self, actions: list[ev.Action]) -> bool:
        """Carry out ``actions``; True once the app hung up."""
        session = self.call.media
        for action in actions:
            if isinstance(action, ev.Play):
                pcm = b"".join([await self._prompt(name) for name in action.prompts])
                session.play([PlayItem(action.mark, pcm)])
            elif isinstance(action, ev.StopPlayback):
                session.stop_playback()
            elif isinstance(action, ev.Record):
                await self._start_recording(action.max_seconds)
            elif isinstance(action, ev.StopRecording):
                session.stop_recording()
            elif isinstance(action, ev.DeliverMessage):
                await self._finish_journal(deliver=True)
            elif isinstance(action, ev.HangUp):
                if self.request.mode == "ann":
                    self.outcome = "announcement played"
                await drain_playback(self.call)
                return True
        return False

    async def _prompt(self, name: str) -> bytes:
        service = self.service
        return await prompt_audio(name, self.request, service.store, service.prompts, self.call)

    async def _start_recording(self, max_seconds: float) -> None:
        meta: dict[str, Any] = {
            "call_id": self.call.call_id,
            "answered_at": self.answered_at,
            "request": {k: v for k, v in vars(self.request).items()},
        }
        self.journal = journal = await Journal.create(self.service.settings.journal_dir, meta)
        self.call.media.record(journal.append, max_seconds)
        self._flusher = asyncio.create_task(self._flush_every_second(journal))

    @staticmethod
    async def _flush_every_second(journal: Journal) -> None:
        while True:
            await asyncio.sleep(1.0)
            await journal.flush()

    async def _finish_journal(self, *, deliver: bool) -> None:
        journal, self.journal = self.journal, None
        if journal is None:
            return
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
        await journal.close()
        if deliver:
            pcm = await journal.read()
            self.outcome = await self.service.deliver(
                self.request, pcm, self.answered_at, self.call.call_id
            )
        await journal.remove()
