"""The media session API the apps use: play with marks, record, stop; events out.

Events (``media_worker/media_events.py``) arrive on one queue in the order they
happened: PlaybackDone for each marked item, Dtmf for each key press, RecordingStopped,
and Hangup when the caller is gone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from media_worker.media import PlayItem, RtpEndpoint
from media_worker.media_events import (
    Dtmf,
    Hangup,
    MediaEvent,
    PlaybackDone,
    RecordingStopped,
    StopReason,
)

__all__ = [
    "Dtmf",
    "Hangup",
    "MediaEvent",
    "MediaSession",
    "PlaybackDone",
    "RecordingStopped",
    "Sink",
    "StopReason",
]

RATE_BYTES = 16000  # bytes of 8 kHz 16-bit PCM per second
Sink = Callable[[bytes], None]


class _Buffered:
    """A sink that keeps the audio in memory (``MediaSession.record_early``)."""

    def __init__(self) -> None:
        self.data = bytearray()

    def __call__(self, pcm: bytes) -> None:
        self.data += pcm


class MediaSession:
    """What an app holds for one call."""

    def __init__(self) -> None:
        self.events: asyncio.Queue[MediaEvent] = asyncio.Queue()
        self.endpoint: RtpEndpoint | None = None
        self._sink: Sink | None = None
        self._recorded = 0
        self._max_bytes = 0
        self.ended = False

    # ----- wiring (the worker) -----

    def attach(self, endpoint: RtpEndpoint) -> None:
        self.endpoint = endpoint

    def on_audio(self, pcm: bytes) -> None:
        if self._sink is None:
            return
        room = self._max_bytes - self._recorded
        chunk = pcm[:room]
        self._sink(chunk)
        self._recorded += len(chunk)
        if self._recorded >= self._max_bytes:
            self._finish_recording(StopReason.MAX_DURATION)

    def on_digit(self, digit: str) -> None:
        self.events.put_nowait(Dtmf(digit))

    def on_played(self, mark: str, interrupted: bool) -> None:
        self.events.put_nowait(PlaybackDone(mark, interrupted))

    def hangup(self, reason: str) -> None:
        """The call is over: stop recording and tell the app."""
        if self.ended:
            return
        self.ended = True
        if self._sink is not None:
            self._finish_recording(StopReason.HANGUP)
        self.events.put_nowait(Hangup(reason))

    # ----- for the apps -----

    def play(self, items: list[PlayItem]) -> None:
        """Queue items behind whatever is playing."""
        if self.endpoint is not None:
            self.endpoint.player.enqueue(items)

    def stop_playback(self) -> None:
        if self.endpoint is not None:
            self.endpoint.player.stop()

    def record(self, sink: Sink, max_seconds: float) -> None:
        """Send the caller's audio to ``sink`` until stopped or ``max_seconds`` of it."""
        self._sink = sink
        self._recorded = 0
        self._max_bytes = int(max_seconds * RATE_BYTES) // 2 * 2

    def record_early(self, max_seconds: float) -> Callable[[Sink], None]:
        """Record from now on, for a sink that takes a while to open (a journal's files are
        created and synced in a thread, which under load takes long enough to lose the
        caller's first words). The audio is kept in memory until ``hand_over(sink)``
        writes it to the sink, which then takes the rest. Audio that came before a stop
        or a hang-up meanwhile is handed over all the same."""
        early = _Buffered()
        self.record(early, max_seconds)

        def hand_over(sink: Sink) -> None:
            if early.data:
                sink(bytes(early.data))
                early.data.clear()
            if self._sink is early:
                self._sink = sink

        return hand_over

    def stop_recording(self) -> None:
        if self._sink is not None:
            self._finish_recording(StopReason.STOPPED)

    def _finish_recording(self, reason: StopReason) -> None:
        self._sink = None
        self.events.put_nowait(RecordingStopped(self._recorded / RATE_BYTES, reason))

    async def next_event(self, within: float | None = None) -> MediaEvent | None:
        """The next event, or None after ``within`` seconds without one."""
        try:
            return await asyncio.wait_for(self.events.get(), within)
        except TimeoutError:
            return None
