"""Drives the voicebox app for one call: the mailbox, the PIN, prompts and messages."""

from __future__ import annotations

import asyncio
import hmac
import time
from datetime import datetime
from typing import TYPE_CHECKING

from media_worker.apps import events as ev
from media_worker.apps.calls import EventSource, drain_playback, play, playing, prompt_audio
from media_worker.apps.envelope import envelope_prompts
from media_worker.apps.params import AppRequest
from media_worker.apps.pin import Lockout, PinError, verify_pin
from media_worker.apps.timers import CallTimers, Expiry
from media_worker.apps.voicebox import State, Voicebox, VoiceboxSettings
from media_worker.audio import read_wav
from media_worker.worker import ActiveCall
from storage import MessageNotFound, PinRecord

if TYPE_CHECKING:
    from media_worker.apps.service import VoicemailService

INACTIVITY = 30.0  # seconds of waiting for the caller, with nothing the app acts on


def pin_matches(digits: str, stored: str | None, param_pin: str | None) -> bool:
    """A mailbox's own (hashed) PIN always wins; P-App-Param's ``pin=`` counts only for
    a mailbox without one, so a forged or stale P-App-Param cannot replace it."""
    if stored is not None:
        try:
            return verify_pin(digits, stored)
        except PinError:
            return False
    if param_pin:
        return hmac.compare_digest(digits.encode(), param_pin.encode())
    return False


class VoiceboxCall:
    def __init__(self, service: VoicemailService, call: ActiveCall, request: AppRequest) -> None:
        self.service = service
        self.call = call
        self.request = request
        self.source = EventSource(call)
        self.lockout = Lockout()
        self.outcome = "caller hung up"
        self._received: dict[str, tuple[int, str]] = {}  # name -> (time, sender)

    async def run(self) -> str:
        store, request = self.service.store, self.request
        listing = await store.list_mailbox(request.domain, request.user)
        self._received = {m.name: (m.received_at, m.sender) for m in listing}
        pin = await store.get_pin(request.domain, request.user)
        settings = VoiceboxSettings(pin_required=bool(request.pin or pin.hash))
        app = Voicebox(settings, [(m.name, m.new) for m in listing])
        loop = asyncio.get_running_loop()
        timers = CallTimers(INACTIVITY, self.service.settings.max_call_time, loop.time())
        try:
            actions = app.handle(ev.Started())
            while True:
                if await self._act(app, actions):
                    break
                actions = []
                expiry = timers.check(loop.time(), playing(self.call))
                if expiry is Expiry.INACTIVITY:
                    self.outcome = expiry.value
                    break
                if expiry is Expiry.CALL_TIME:
                    self.outcome = expiry.value
                    self.call.log.info("call time limit reached: ending the call")
                    self.call.media.hangup(expiry.value)  # the app ends as on a hangup
                event = await self.source.next(timers.wait(loop.time(), playing(self.call)))
                if event is None:
                    if timers.ended:
                        break
                    continue
                state = app.state
                actions = app.handle(event)
                if actions or app.state is not state:  # an ignored key is not activity
                    timers.activity(loop.time())
                if isinstance(event, ev.Hangup) or (app.state is State.DONE and not actions):
                    break
        finally:
            self.source.close()
        return self.outcome

    async def _act(self, app: Voicebox, actions: list[ev.Action]) -> bool:
        """Carry out ``actions``; True once the app hung up."""
        store, request, call = self.service.store, self.request, self.call
        for action in actions:
            if isinstance(action, ev.Play):
                play(call, action.mark, await self._prompts(action.prompts))
            elif isinstance(action, ev.PlayMessage):
                try:
                    message = await store.get_message(request.domain, request.user, action.name)
                    pcm = read_wav(message.audio, action.name).data
                except (MessageNotFound, ValueError) as exc:
                    call.log.warning("message %s cannot be played: %s", action.name, exc)
                    pcm = b""
                play(call, action.mark, pcm)
            elif isinstance(action, ev.PlayEnvelope):
                play(call, action.mark, await self._prompts(self._envelope(action.name)))
            elif isinstance(action, ev.MarkRead):
                await store.mark_read(request.domain, request.user, action.name)
            elif isinstance(action, ev.DeleteMessage):
                await store.delete_message(request.domain, request.user, action.name)
                self.outcome = "messages deleted"
            elif isinstance(action, ev.StopPlayback):
                call.media.stop_playback()
            elif isinstance(action, ev.StartTimer):
                self.source.start_timer(action.name, action.seconds)
            elif isinstance(action, ev.CancelTimer):
                self.source.cancel_timer(action.name)
            elif isinstance(action, ev.CheckPin):
                verdict = await self._check_pin(action.digits)
                self.outcome = "locked out" if verdict.locked else self.outcome
                if await self._act(app, app.handle(verdict)):
                    return True
            elif isinstance(action, ev.HangUp):
                await drain_playback(call)
                return True
        return False

    async def _prompts(self, names: tuple[str, ...]) -> bytes:
        service = self.service
        parts = [
            await prompt_audio(name, self.request, service.store, service.prompts, self.call)
            for name in names
        ]
        return b"".join(parts)

    def _envelope(self, name: str) -> tuple[str, ...]:
        """ "received <day> at <time> from <caller>", in the caller's prompt language."""
        received_at, sender = self._received.get(name, (0, ""))
        language = self.service.prompts.language_for(self.request.language)
        received = datetime.fromtimestamp(received_at)  # the worker's local time
        return envelope_prompts(received, datetime.now(), sender, language)

    async def _check_pin(self, digits: str) -> ev.PinChecked:
        """The mailbox's own PIN, else the P-App one; failures count towards the lockout."""
        store, request = self.service.store, self.request
        now = time.time()
        verdict: list[ev.PinChecked] = []

        def check(record: PinRecord) -> PinRecord:
            lock = Lockout(failures=list(record.failures), locked_until=record.locked_until)
            if lock.locked(now):
                verdict.append(ev.PinChecked(ok=False, locked=True))
                return record
            if pin_matches(digits, record.hash, request.pin):
                lock.succeeded()
                verdict.append(ev.PinChecked(ok=True))
            else:
                verdict.append(ev.PinChecked(ok=False, locked=lock.failed(now)))
            return PinRecord(record.hash, tuple(lock.failures), lock.locked_until)

        await store.update_pin(request.domain, request.user, check)
        return verdict[-1]
