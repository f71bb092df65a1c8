"""The voicemail app: greeting, beep, record, deliver. A state table in one file.

Modes: voicemail (email), box (store), both, ann (greeting only: nothing recorded).
'#' during the greeting skips to the beep; '#' while recording ends the message, as does
hanging up; at the maximum length a last beep plays and the call ends.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from media_worker.apps.errors import AppStateError
from media_worker.apps.events import (
    Action,
    DeliverMessage,
    Dtmf,
    Event,
    HangUp,
    Hangup,
    Play,
    PlaybackDone,
    Record,
    RecordingStopped,
    Started,
    StopPlayback,
    StopRecording,
    Timeout,
)
from media_worker.apps.params import Mode

SKIP_KEY = "#"


class State(enum.Enum):
    IDLE = "idle"
    GREETING = "greeting"
    BEEP = "beep"
    RECORDING = "recording"
    FINAL_BEEP = "final-beep"
    DONE = "done"


@dataclass(frozen=True)
class VoicemailSettings:
    mode: Mode
    max_record_time: float = 120.0


class Voicemail:
    def __init__(self, settings: VoicemailSettings) -> None:
        self.settings = settings
        self.state = State.IDLE
        self.recorded = False  # a recording reached DeliverMessage
        ignore = self._ignore
        # state -> event type -> handler (returns the actions and sets the next state)
        self._table: dict[State, dict[type, Callable[[Event], list[Action]]]] = {
            State.IDLE: {Started: self._start, Hangup: self._done},
            State.GREETING: {
                PlaybackDone: self._greeting_done,
                Dtmf: self._greeting_key,
                Hangup: self._done,
            },
            State.BEEP: {PlaybackDone: self._beep_done, Dtmf: ignore, Hangup: self._done},
            State.RECORDING: {
                RecordingStopped: self._recording_stopped,
                Dtmf: self._recording_key,
                Hangup: ignore,  # the RecordingStopped(hangup) that comes first decides
                PlaybackDone: ignore,
            },
            State.FINAL_BEEP: {
                PlaybackDone: self._final_beep_done,
                Dtmf: ignore,
                Hangup: self._done,
            },
            State.DONE: dict.fromkeys(
                (Hangup, PlaybackDone, Dtmf, RecordingStopped, Timeout), ignore
            ),
        }

    def handle(self, event: Event) -> list[Action]:
        handler = self._table[self.state].get(type(event))
        if handler is None:
            raise AppStateError(
                f"voicemail: {type(event).__name__} is not expected in state {self.state.value}"
            )
        return handler(event)

    # ----- handlers -----

    def _ignore(self, event: Event) -> list[Action]:
        return []

    def _done(self, event: Event) -> list[Action]:
        self.state = State.DONE
        return []

    def _start(self, event: Event) -> list[Action]:
        self.state = State.GREETING
        return [Play(("greeting",), "greeting")]

    def _greeting_key(self, event: Event) -> list[Action]:
        if isinstance(event, Dtmf) and event.digit == SKIP_KEY and self.settings.mode != "ann":
            return [StopPlayback()]  # its PlaybackDone(greeting) leads on to the beep
        return []

    def _greeting_done(self, event: Event) -> list[Action]:
        if self.settings.mode == "ann":
            self.state = State.DONE
            return [HangUp()]
        self.state = State.BEEP
        return [Play(("beep",), "beep")]

    def _beep_done(self, event: Event) -> list[Action]:
        self.state = State.RECORDING
        return [Record(self.settings.max_record_time)]

    def _recording_key(self, event: Event) -> list[Action]:
        if isinstance(event, Dtmf) and event.digit == SKIP_KEY:
            return [StopRecording()]
        return []

    def _recording_stopped(self, event: Event) -> list[Action]:
        assert isinstance(event, RecordingStopped)
        self.recorded = True
        if event.reason == "max-duration":
            self.state = State.FINAL_BEEP
            return [DeliverMessage(), Play(("beep",), "final-beep")]
        self.state = State.DONE
        if event.reason == "hangup":
            return [DeliverMessage()]
        return [DeliverMessage(), Play(("goodbye",), "goodbye"), HangUp()]

    def _final_beep_done(self, event: Event) -> list[Action]:
        self.state = State.DONE
        return [HangUp()]
