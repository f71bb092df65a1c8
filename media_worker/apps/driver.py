"""Runs one call's app: feeds it the media events and its timers, and carries out the
actions every app shares (play, stop playback, record, stop recording, timers, end the
call) together with the call time rules of ``apps/timers.py``.

What only one app does (deliver a message, check a PIN, play a stored message, save a
greeting) is its ``AppCall`` subclass's, in ``apps/<app>_call.py``; each gets the
worker's ``AppContext``, never the service.
"""

from __future__ import annotations

import abc
import asyncio
import enum
from collections import deque
from typing import Protocol

from media_worker.application import ActiveCall, CallLog
from media_worker.apps import events as ev
from media_worker.apps.context import AppContext
from media_worker.apps.errors import AppStateError
from media_worker.apps.params import AppRequest
from media_worker.apps.timers import CallTimers, Expiry
from media_worker.audio import AudioFormatError, read_wav
from media_worker.media import PlayItem
from media_worker.prompts import PromptMissing
from media_worker.session import MediaSession, Sink


class App(Protocol):
    """A pure app: a state table, events in and actions out."""

    @property
    def state(self) -> enum.Enum: ...

    def handle(self, event: ev.Event) -> list[ev.Action]: ...


class AppCall(abc.ABC):
    """The part of a call that only its app knows; subclasses say which app it is and
    carry out that app's own actions."""

    def __init__(
        self,
        context: AppContext,
        call: ActiveCall,
        request: AppRequest,
        *,
        inactivity: float,
        outcome: str,
    ) -> None:
        self.context = context
        self.call = call
        self.request = request
        self.inactivity = inactivity  # seconds without anything the app acts on
        self.outcome = outcome  # for the log line when the call ends

    @abc.abstractmethod
    async def open(self) -> App:
        """The app for this call (reading what it needs to start)."""

    @abc.abstractmethod
    def done(self) -> bool:
        """The app has reached its end state."""

    async def act(self, action: ev.Action) -> ev.Event | None:
        """Carry out an action of this app's own; returns an answer for the app, if any."""
        raise AppStateError(f"{self.request.app}: no driver for {type(action).__name__}")

    async def prompt(self, name: str) -> bytes:
        context = self.context
        return await prompt_audio(name, self.request, context, self.call.log)

    async def record(self, max_seconds: float) -> Sink:
        """Where the caller's audio goes for a Record action."""
        raise AppStateError(f"{self.request.app}: does not record")

    def ending(self) -> None:  # noqa: B027 - an optional hook: most apps need nothing
        """The app ends the call (EndCall)."""

    def timed_out(self, expiry: Expiry) -> None:
        """A call time rule ends the call: the log line says so."""
        self.outcome = expiry.value

    async def close(self) -> None:  # noqa: B027 - an optional hook
        """The call is over, whichever way it ended."""

    async def run(self) -> str:
        """Drive the call to its end; returns its outcome for the log."""
        return await Driver(self, await self.open()).run()


class Driver:
    def __init__(self, part: AppCall, app: App) -> None:
        self.part = part
        self.app = app
        self.media = part.call.media
        self.source = EventSource(self.media)
        self.loop = asyncio.get_running_loop()
        max_call_time = part.context.settings.apps.max_call_time
        self.timers = CallTimers(part.inactivity, max_call_time, self.loop.time())

    async def run(self) -> str:
        app, part, timers, loop = self.app, self.part, self.timers, self.loop
        try:
            actions = app.handle(ev.Started())
            while not await self._act(actions):
                actions = []
                expiry = timers.check(loop.time(), self._playing())
                if expiry is not None and self._expired(expiry):
                    break
                event = await self.source.next(timers.wait(loop.time(), self._playing()))
                if event is None:
                    if timers.ended:
                        break  # the limit's hangup was taken; nothing more comes
                    continue
                if isinstance(event, ev.RecordingStopped):
                    timers.recording_over(loop.time())
                state = app.state
                actions = app.handle(event)
                if actions or app.state is not state:  # an ignored key is not activity
                    timers.activity(loop.time())
                if isinstance(event, ev.Hangup):
                    await self._act(actions)
                    break
                if part.done() and not actions:
                    break
        finally:
            self.source.close()
            await part.close()
        return part.outcome

    def _playing(self) -> bool:
        """A prompt or message is being played (or queued) to the caller."""
        endpoint = self.media.endpoint
        return endpoint is not None and endpoint.player.busy

    def _expired(self, expiry: Expiry) -> bool:
        """Act on a time rule that ran out; True: the call ends now."""
        log = self.part.call.log
        if expiry is Expiry.RECORDING:
            log.warning("recording got no audio past its maximum: stopped")
            self.media.stop_recording()
            return False
        self.part.timed_out(expiry)
        if expiry is Expiry.CALL_TIME:
            log.info("call time limit reached: ending the call")
            # As if the caller hung up: a recording in progress is stopped and delivered.
            self.media.hangup(expiry.value)
            return False
        return True

    async def _act(self, actions: list[ev.Action]) -> bool:
        """Carry out ``actions``; True once the app ended the call."""
        media, part = self.media, self.part
        for action in actions:
            if isinstance(action, ev.Play):
                pcm = b"".join([await part.prompt(name) for name in action.prompts])
                media.play([PlayItem(action.mark, pcm)])
            elif isinstance(action, ev.StopPlayback):
                media.stop_playback()
            elif isinstance(action, ev.Record):
                # From the beep on: the caller's first words come while the sink opens.
                hand_over = media.record_early(action.max_seconds)
                self.timers.recording(self.loop.time(), action.max_seconds)
                hand_over(await part.record(action.max_seconds))
            elif isinstance(action, ev.StopRecording):
                media.stop_recording()
            elif isinstance(action, ev.StartTimer):
                self.source.start_timer(action.name, action.seconds)
            elif isinstance(action, ev.CancelTimer):
                self.source.cancel_timer(action.name)
            elif isinstance(action, ev.EndCall):
                part.ending()
                await drain_playback(media)
                return True
            else:
                answer = await part.act(action)
                if answer is not None and await self._act(self.app.handle(answer)):
                    return True
        return False


class EventSource:
    """Media events and timer expiries, one at a time, in the order they happened."""

    def __init__(self, media: MediaSession) -> None:
        self.media = media
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._expired: asyncio.Queue[ev.Event] = asyncio.Queue()
        self._held: deque[ev.Event] = deque()  # a media event that came with a timeout

    def start_timer(self, name: str, seconds: float) -> None:
        self.cancel_timer(name)
        loop = asyncio.get_running_loop()
        self._timers[name] = loop.call_later(seconds, self._expired.put_nowait, ev.Timeout(name))

    def cancel_timer(self, name: str) -> None:
        handle = self._timers.pop(name, None)
        if handle is not None:
            handle.cancel()

    def close(self) -> None:
        for handle in self._timers.values():
            handle.cancel()
        self._timers.clear()

    async def next(self, within: float) -> ev.Event | None:
        """The next event; None after ``within`` seconds of nothing at all."""
        if self._held:
            return self._held.popleft()
        if not self._expired.empty():
            return self._expired.get_nowait()
        media_get = asyncio.ensure_future(self.media.events.get())
        timer_get = asyncio.ensure_future(self._expired.get())
        try:
            done, _ = await asyncio.wait(
                {media_get, timer_get}, timeout=within, return_when=asyncio.FIRST_COMPLETED
            )
        finally:  # also when we are cancelled: leave no getter behind
            for task in (media_get, timer_get):
                if not task.done():
                    task.cancel()
            await asyncio.gather(media_get, timer_get, return_exceptions=True)
        if not done:
            return None
        if timer_get in done:
            if media_get in done:  # both at once: the media event comes next
                self._held.append(media_get.result())
            return timer_get.result()
        return media_get.result()


async def drain_playback(media: MediaSession) -> None:
    """Let the last prompt (goodbye, a final beep) be heard before the BYE."""
    endpoint = media.endpoint
    for _ in range(100):
        if endpoint is None or not endpoint.player.busy or media.ended:
            return
        await asyncio.sleep(0.1)


async def prompt_audio(name: str, request: AppRequest, context: AppContext, log: CallLog) -> bytes:
    """PCM of a logical prompt for this caller; "greeting" is the mailbox's personal
    greeting of type ``typ`` (or the default one). A prompt nothing provides is logged
    and skipped: a missing file must not end the call."""
    if name == "greeting":
        audio = await context.store.get_greeting(request.domain, request.user, request.typ)
        if audio is not None:
            try:
                return read_wav(audio, f"greeting {request.typ} of {request.user}").data
            except AudioFormatError as exc:
                log.warning("personal greeting unusable, default played: %s", exc)
        name = "greeting_default"
    try:
        return await asyncio.to_thread(context.prompts.get, name, request.language, request.domain)
    except (PromptMissing, OSError, ValueError) as exc:
        log.warning("prompt %s skipped: %s (see voicemail prompts check)", name, exc)
        return b""
