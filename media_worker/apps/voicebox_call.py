"""Carries out the voicebox app's own actions for one call: the PIN check with its
lockout, playing stored messages and their envelopes, marking read, deleting."""

from __future__ import annotations

import hmac
import time
from datetime import datetime

from media_worker.application import ActiveCall
from media_worker.apps import events as ev
from media_worker.apps.context import AppContext
from media_worker.apps.driver import AppCall
from media_worker.apps.envelope import envelope_prompts
from media_worker.apps.params import AppRequest
from media_worker.apps.pin import Lockout, PinError, verify_pin
from media_worker.apps.voicebox import State, Voicebox, VoiceboxSettings
from media_worker.audio import read_wav
from media_worker.media import PlayItem
from storage import MessageNotFound, PinRecord


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


class VoiceboxCall(AppCall):
    def __init__(self, context: AppContext, call: ActiveCall, request: AppRequest) -> None:
        super().__init__(
            context,
            call,
            request,
            inactivity=context.settings.inactivity.voicebox,
            outcome="caller hung up",
        )
        self.app: Voicebox | None = None
        self._received: dict[str, tuple[int, str]] = {}  # name -> (time, sender)

    async def open(self) -> Voicebox:
        store, request = self.context.store, self.request
        listing = await store.list_mailbox(request.domain, request.user)
        self._received = {m.name: (m.received_at, m.sender) for m in listing}
        pin = await store.get_pin(request.domain, request.user)
        settings = VoiceboxSettings(pin_required=bool(request.pin or pin.hash))
        self.app = Voicebox(settings, [(m.name, m.new) for m in listing])
        return self.app

    def done(self) -> bool:
        return self.app is not None and self.app.state is State.DONE

    async def act(self, action: ev.Action) -> ev.Event | None:
        store, request, media = self.context.store, self.request, self.call.media
        if isinstance(action, ev.PlayMessage):
            try:
                message = await store.get_message(request.domain, request.user, action.name)
                pcm = read_wav(message.audio, action.name).data
            except (MessageNotFound, ValueError) as exc:
                self.call.log.warning("message %s cannot be played: %s", action.name, exc)
                pcm = b""
            media.play([PlayItem(action.mark, pcm)])
        elif isinstance(action, ev.PlayEnvelope):
            pcm = b"".join([await self.prompt(name) for name in self._envelope(action.name)])
            media.play([PlayItem(action.mark, pcm)])
        elif isinstance(action, ev.MarkRead):
            await store.mark_read(request.domain, request.user, action.name)
        elif isinstance(action, ev.DeleteMessage):
            await store.delete_message(request.domain, request.user, action.name)
            self.outcome = "messages deleted"
        elif isinstance(action, ev.CheckPin):
            verdict = await self._check_pin(action.digits)
            self.outcome = "locked out" if verdict.locked else self.outcome
            return verdict
        else:
            return await super().act(action)
        return None

    def _envelope(self, name: str) -> tuple[str, ...]:
        """ "received <day> at <time> from <caller>", in the caller's prompt language."""
        received_at, sender = self._received.get(name, (0, ""))
        language = self.context.prompts.language_for(self.request.language)
        received = datetime.fromtimestamp(received_at)  # the worker's local time
        return envelope_prompts(received, datetime.now(), sender, language)

    async def _check_pin(self, digits: str) -> ev.PinChecked:
        """The mailbox's own PIN, else the P-App one; failures count towards the lockout."""
        store, request = self.context.store, self.request
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
