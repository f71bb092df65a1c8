"""Carries out the annrecorder app's own actions for one call: the recording is kept
in memory, played back for review, and saved as the mailbox's greeting."""

from __future__ import annotations

from media_worker.application import ActiveCall
from media_worker.apps import events as ev
from media_worker.apps.annrecorder import Annrecorder, AnnrecorderSettings, State
from media_worker.apps.context import AppContext
from media_worker.apps.driver import AppCall
from media_worker.apps.params import AppRequest
from media_worker.apps.timers import Expiry
from media_worker.audio import trim_trailing_silence, write_wav
from media_worker.session import Sink


class AnnrecorderCall(AppCall):
    def __init__(self, context: AppContext, call: ActiveCall, request: AppRequest) -> None:
        super().__init__(
            context,
            call,
            request,
            inactivity=context.settings.inactivity.annrecorder,
            outcome="greeting unchanged",
        )
        max_record_time = context.settings.voicemail.max_record_time
        self.app = Annrecorder(AnnrecorderSettings(max_record_time=max_record_time))
        self.recording = bytearray()

    async def open(self) -> Annrecorder:
        return self.app

    def done(self) -> bool:
        return self.app.state is State.DONE

    def timed_out(self, expiry: Expiry) -> None:
        self.outcome += f" ({expiry.value})"

    async def record(self, max_seconds: float) -> Sink:
        self.recording = bytearray()
        return self.recording.extend

    async def prompt(self, name: str) -> bytes:
        if name == "recording":
            return bytes(self.recording)
        return await super().prompt(name)

    async def act(self, action: ev.Action) -> ev.Event | None:
        if isinstance(action, ev.SaveGreeting):
            request = self.request
            audio = write_wav(trim_trailing_silence(bytes(self.recording)))
            await self.context.store.put_greeting(request.domain, request.user, request.typ, audio)
            self.outcome = f"greeting {request.typ} saved ({len(audio) // 16000} s)"
            return None
        return await super().act(action)
