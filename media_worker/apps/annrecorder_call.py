"""Drives the annrecorder app for one call: the current greeting, recording, saving."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

from media_worker.apps import events as ev
from media_worker.apps.annrecorder import Annrecorder, AnnrecorderSettings, State
from media_worker.apps.calls import EventSource, drain_playback, play, playing, prompt_audio
from media_worker.apps.params import AppRequest
from media_worker.apps.timers import CallTimers, Expiry
from media_worker.audio import trim_trailing_silence, write_wav
from media_worker.worker import ActiveCall

if TYPE_CHECKING:
    from media_worker.apps.service import VoicemailService

INACTIVITY = 60.0  # seconds of waiting for the caller, with nothing the app acts on


class AnnrecorderCall:
    def __init__(self, service: VoicemailService, call: ActiveCall, request: AppRequest) -> None:
        self.service = service
        self.call = call
        self.request = request
        self.source = EventSource(call)
        self.recording = bytearray()
        self.outcome = "greeting unchanged"
        self.timers = CallTimers(
            INACTIVITY, service.settings.max_call_time, asyncio.get_running_loop().time()
        )

    async def run(self) -> str:
        settings = AnnrecorderSettings(max_record_time=self.service.settings.max_record_time)
        app = Annrecorder(settings)
        loop, timers = asyncio.get_running_loop(), self.timers
        try:
            actions = app.handle(ev.Started())
            while not await self._act(actions):
                actions = []
                expiry = timers.check(loop.time(), playing(self.call))
                if expiry is Expiry.INACTIVITY:
                    self.outcome += f" ({expiry.value})"
                    break
                if expiry is Expiry.RECORDING:
                    self.call.log.warning("recording got no audio past its maximum: stopped")
                    self.call.media.stop_recording()
                elif expiry is Expiry.CALL_TIME:
                    self.outcome += f" ({expiry.value})"
                    self.call.log.info("call time limit reached: ending the call")
                    self.call.media.hangup(expiry.value)  # the app ends as on a hangup
                event = await self.source.next(timers.wait(loop.time(), playing(self.call)))
                if event is None:
                    if timers.ended:
                        break
                    continue
                if isinstance(event, ev.RecordingStopped):
                    timers.recording_over(loop.time())
                state = app.state
                actions = app.handle(event)
                if actions or app.state is not state:  # an ignored key is not activity
                    timers.activity(loop.time())
                if app.state is State.DONE and not actions:
                    break
        finally:
            self.source.close()
        return self.outcome

    async def _act(self, actions: list[ev.Action]) -> bool:
        call, request, store = self.call, self.request, self.service.store
        for action in actions:
            if isinstance(action, ev.Play):
                play(call, action.mark, b"".join([await self._prompt(n) for n in action.prompts]))
            elif isinstance(action, ev.StopPlayback):
                call.media.stop_playback()
            elif isinstance(action, ev.Record):
                self.recording = bytearray()
                call.media.record(self.recording.extend, action.max_seconds)
                self.timers.recording(asyncio.get_running_loop().time(), action.max_seconds)
            elif isinstance(action, ev.StopRecording):
                call.media.stop_recording()
            elif isinstance(action, ev.StartTimer):
                self.source.start_timer(action.name, action.seconds)
            elif isinstance(action, ev.CancelTimer):
                self.source.cancel_timer(action.name)
            elif isinstance(action, ev.SaveGreeting):
                audio = write_wav(trim_trailing_silence(bytes(self.recording)))
                await store.put_greeting(request.domain, request.user, request.typ, audio)
                self.outcome = f"greeting {request.typ} saved ({len(audio) // 16000} s)"
            elif isinstance(action, ev.HangUp):
                await drain_playback(call)
                return True
        return False

    async def _prompt(self, name: str) -> bytes:
        if name == "recording":
            return bytes(self.recording)
        service = self.service
        return await prompt_audio(name, self.request, service.store, service.prompts, self.call)
