"""What the app drivers share: timers that become app events, prompt playback, and
waiting for the media session and the timers at once."""

from __future__ import annotations

import asyncio
from collections import deque

from media_worker import session as media
from media_worker.apps import events as ev
from media_worker.apps.params import AppRequest
from media_worker.audio import AudioFormatError, read_wav
from media_worker.media import PlayItem
from media_worker.prompts import PromptLibrary, PromptMissing
from media_worker.worker import ActiveCall
from storage import Storage


def translate(event: media.MediaEvent) -> ev.Event | None:
    """A media session event as an app sees it (None: of no interest to apps)."""
    if isinstance(event, media.PlaybackDone):
        return ev.PlaybackDone(event.mark)
    if isinstance(event, media.Dtmf):
        return ev.Dtmf(event.digit)
    if isinstance(event, media.RecordingStopped):
        return ev.RecordingStopped(event.seconds, event.reason)
    if isinstance(event, media.Hangup):
        return ev.Hangup()
    return None


class EventSource:
    """Media events and timer expiries, one at a time, in the order they happened."""

    def __init__(self, call: ActiveCall) -> None:
        self.call = call
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
        """The next app event; None after ``within`` seconds of nothing at all."""
        while True:
            if self._held:
                return self._held.popleft()
            if not self._expired.empty():
                return self._expired.get_nowait()
            media_get = asyncio.ensure_future(self.call.media.events.get())
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
                    held = translate(media_get.result())
                    if held is not None:
                        self._held.append(held)
                return timer_get.result()
            translated = translate(media_get.result())
            if translated is not None:
                return translated


def playing(call: ActiveCall) -> bool:
    """A prompt or message is being played (or queued) to the caller."""
    endpoint = call.media.endpoint
    return endpoint is not None and endpoint.player.busy


def play(call: ActiveCall, mark: str, pcm: bytes) -> None:
    call.media.play([PlayItem(mark, pcm)])


async def drain_playback(call: ActiveCall) -> None:
    """Let the last prompt (goodbye, a final beep) be heard before the BYE."""
    endpoint = call.media.endpoint
    for _ in range(100):
        if endpoint is None or not endpoint.player.busy or call.media.ended:
            return
        await asyncio.sleep(0.1)


async def prompt_audio(
    name: str, request: AppRequest, store: Storage, prompts: PromptLibrary, call: ActiveCall
) -> bytes:
    """PCM of a logical prompt for this caller; "greeting" is the mailbox's personal
    greeting of type ``typ`` (or the default one). A prompt nothing provides is logged
    and skipped: a missing file must not end the call."""
    if name == "greeting":
        audio = await store.get_greeting(request.domain, request.user, request.typ)
        if audio is not None:
            try:
                return read_wav(audio, f"greeting {request.typ} of {request.user}").data
            except AudioFormatError as exc:
                call.log.warning("personal greeting unusable, default played: %s", exc)
        name = "greeting_default"
    try:
        return await asyncio.to_thread(prompts.get, name, request.language, request.domain)
    except (PromptMissing, OSError, ValueError) as exc:
        call.log.warning("prompt %s skipped: %s (see voicemail prompts check)", name, exc)
        return b""
