"""The worker's application: admits calls by the P-App contract and drives the apps.

The apps are pure state machines; this driver turns media events into app events and
app actions into media, storage and email operations. Recordings go through a journal,
so a crash loses at most the last second; journals a crash left behind are delivered at
start-up, and those whose delivery failed (store down, disk full) are tried again while
the worker runs (``apps/redelivery.py``). The timer rules of a call are
``apps/timers.py``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from media_worker import session as media
from media_worker.apps import events as ev
from media_worker.apps.calls import drain_playback, playing, prompt_audio, translate
from media_worker.apps.journal import Journal, Leftover, note
from media_worker.apps.params import AppRequest, AppRouting, Refusal, app_request
from media_worker.apps.redelivery import CorruptJournal, Redelivery
from media_worker.apps.timers import CallTimers, Expiry
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

INACTIVITY = 30.0  # seconds of waiting for the caller, with nothing the app acts on


@dataclass(frozen=True)
class ServiceSettings:
    routing: AppRouting = field(default_factory=AppRouting)
    min_record_time: float = 1.0
    max_record_time: float = 120.0
    drop_silent: bool = True
    journal_dir: Path = Path("/var/lib/voicemail/journal")
    extra_variables: tuple[str, ...] = ()
    max_call_time: float = 1800.0  # wall-clock limit of any call
    retry_delay: float = 5.0  # first wait before a failed delivery is tried again ...
    retry_max_delay: float = 300.0  # ... doubling up to this


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
        self.journals_in_use: set[str] = set()  # written by calls in progress
        self.redelivery = Redelivery(
            settings.journal_dir,
            self._deliver_leftover,
            self.journals_in_use,
            first=settings.retry_delay,
            cap=settings.retry_max_delay,
        )

    # ----- start-up, and deliveries that failed -----

    async def start(self) -> None:
        """Retry, while the worker runs, the deliveries that fail when a call ends."""
        await self.redelivery.start()

    async def stop(self) -> None:
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

    async def deliver(
        self,
        request: AppRequest,
        pcm: bytes,
        answered_at: int,
        call_id: str,
        *,
        done: dict[str, str] | None = None,
        remember: Callable[[dict[str, str]], Awaitable[None]] | None = None,
    ) -> str:
        """Store and/or email a recording per the mode; returns what happened, for the log.

        ``done``: the steps an earlier attempt completed ("stored", "emailed"), which are
        not repeated; ``remember`` is given it after each step, so a retry after a
        failure of the next one does not store the message twice."""
        done = {} if done is None else done
        trimmed = trim_trailing_silence(pcm)
        seconds = len(trimmed) / 16000
        if seconds < self.settings.min_record_time:
            return f"dropped: {seconds:.1f} s is shorter than {self.settings.min_record_time:g} s"
        if self.settings.drop_silent and is_silent(trimmed):
            return "dropped: only silence"
        wav = write_wav(trimmed)
        said = []
        name: str | None = None
        if request.mode in ("box", "both"):
            name = done.get("stored")
            if name is None:
                name = await self.store.put_message(
                    request.domain,
                    request.user,
                    wav,
                    sender=request.sender,
                    received_at=answered_at,
                )
                done["stored"] = name
                if remember is not None:
                    await remember(done)
            said.append(f"stored as {name}")
        if request.mode in ("voicemail", "both") and request.email and "emailed" in done:
            said.append(f"email queued as {done['emailed']}")
        elif request.mode in ("voicemail", "both") and request.email:
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
            done["emailed"] = job
            if remember is not None:
                await remember(done)
            said.append(f"email queued as {job}")
        return f"{seconds:.1f} s message " + ", ".join(said)


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
        self.timers = CallTimers(
            INACTIVITY, service.settings.max_call_time, asyncio.get_running_loop().time()
        )

    async def run(self) -> str:
        session, loop, timers = self.call.media, asyncio.get_running_loop(), self.timers
        try:
            if await self._act(self.app.handle(ev.Started())):
                return self.outcome
            while True:
                expiry = timers.check(loop.time(), playing(self.call))
                if expiry is not None and self._expired(expiry):
                    break
                event = await session.next_event(timers.wait(loop.time(), playing(self.call)))
                if event is None:
                    if timers.ended:
                        break  # the limit's hangup was taken; nothing more comes
                    continue
                app_event = translate(event)
                if app_event is not None:
                    if isinstance(app_event, ev.RecordingStopped):
                        timers.recording_over(loop.time())
                    state = self.app.state
                    actions = self.app.handle(app_event)
                    if actions or self.app.state is not state:  # an ignored key is not activity
                        timers.activity(loop.time())
                    if await self._act(actions):
                        break
                if isinstance(event, media.Hangup):
                    break
        finally:
            await self._finish_journal(deliver=self.journal is not None)
        return self.outcome

    def _expired(self, expiry: Expiry) -> bool:
        """Act on a timer that ran out; True: the call ends now."""
        if expiry is Expiry.RECORDING:
            self.call.log.warning("recording got no audio past its maximum: stopped")
            self.call.media.stop_recording()
            return False
        self.outcome = expiry.value
        if expiry is Expiry.CALL_TIME:
            self.call.log.info("call time limit reached: ending the call")
            # As if the caller hung up: a recording in progress is stopped and delivered.
            self.call.media.hangup(expiry.value)
            return False
        return True

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
                self.timers.recording(asyncio.get_running_loop().time(), action.max_seconds)
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
        self.service.journals_in_use.add(journal.id)
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
            try:
                await self._flusher
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # noqa: BLE001 - a full disk: close() says it again
                self.call.log.warning("journal not written: %s", exc)
        service = self.service
        try:
            await journal.close()
            if deliver:
                pcm = await journal.read()
                delivered = await service.deliver(
                    self.request, pcm, self.answered_at, self.call.call_id,
                    done=journal.done, remember=journal.remember,
                )  # fmt: skip
                self.outcome = f"{self.outcome}, {delivered}" if self.timers.ended else delivered
            await journal.remove()
        except BaseException as exc:
            # The journal stays on disk; the service tries again while the worker runs.
            service.redelivery.failed(journal.id)
            if not isinstance(exc, Exception):
                raise
            self.call.log.warning(
                "message for %s@%s not delivered (%s): kept, tried again in %.3g s",
                self.request.user, self.request.domain, str(exc) or type(exc).__name__,
                service.redelivery.delay(1),
            )  # fmt: skip
            self.outcome = "message kept for a later delivery"
        finally:
            service.journals_in_use.discard(journal.id)
