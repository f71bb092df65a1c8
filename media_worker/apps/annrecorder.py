"""The annrecorder app: hear the current greeting, record a new one, review, keep it.

welcome, "your current greeting is", the greeting (or the default), "press any key to
record"; any key: beep and record; any key (or the maximum): the recording is played
back, then "press 1 to keep, 2 to record again". As in SEMS, the recording is kept when
the caller says nothing at that point (configurable). A state table in one file.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass

from media_worker.apps.errors import AppStateError
from media_worker.apps.events import (
    Action,
    Dtmf,
    Event,
    HangUp,
    Hangup,
    PinChecked,
    Play,
    PlaybackDone,
    Record,
    RecordingStopped,
    SaveGreeting,
    Started,
    StartTimer,
    StopPlayback,
    StopRecording,
    Timeout,
)

WAIT = "wait"
KEEP, AGAIN = "1", "2"


@dataclass(frozen=True)
class AnnrecorderSettings:
    max_record_time: float = 120.0
    wait_for_key: float = 20.0
    keep_on_silence: bool = True  # SEMS keeps the recording on a confirm timeout


class State(enum.Enum):
    IDLE = "idle"
    INTRO = "intro"
    BEEP = "beep"
    RECORDING = "recording"
    REVIEW = "review"
    CONFIRM = "confirm"
    GOODBYE = "goodbye"
    DONE = "done"


class Annrecorder:
    def __init__(self, settings: AnnrecorderSettings) -> None:
        self.settings = settings
        self.state = State.IDLE
        self.saved = False
        self._expected = ""  # the mark of the prompt now playing
        ignore = self._ignore
        hangup = self._hung_up
        self._table: dict[State, dict[type, Callable[[Event], list[Action]]]] = {
            State.IDLE: {Started: self._start, Hangup: hangup},
            State.INTRO: {
                Dtmf: self._record,
                PlaybackDone: self._wait,
                Timeout: self._goodbye,
                Hangup: hangup,
            },
            State.BEEP: {PlaybackDone: self._beep_done, Dtmf: ignore, Hangup: hangup},
            State.RECORDING: {
                Dtmf: self._stop,
                RecordingStopped: self._recorded,
                PlaybackDone: ignore,
                Hangup: hangup,
            },
            State.REVIEW: {
                PlaybackDone: self._confirm,
                Dtmf: self._decide,
                Hangup: hangup,
            },
            State.CONFIRM: {
                PlaybackDone: self._wait,
                Dtmf: self._decide,
                Timeout: self._confirm_timeout,
                Hangup: hangup,
            },
            State.GOODBYE: {PlaybackDone: self._bye_done, Dtmf: ignore, Hangup: hangup},
            State.DONE: dict.fromkeys(
                (Hangup, PlaybackDone, Dtmf, Timeout, RecordingStopped, PinChecked), ignore
            ),
        }

    def handle(self, event: Event) -> list[Action]:
        handler = self._table[self.state].get(type(event))
        if handler is None:
            raise AppStateError(
                f"annrecorder: {type(event).__name__} is not expected in state {self.state.value}"
            )
        if isinstance(event, PlaybackDone) and event.mark != self._expected:
            return []  # an interrupted prompt reporting late
        return handler(event)

    def _play(self, prompts: tuple[str, ...], mark: str) -> Play:
        self._expected = mark
        return Play(prompts, mark)

    def _ignore(self, event: Event) -> list[Action]:
        return []

    def _hung_up(self, event: Event) -> list[Action]:
        self.state = State.DONE  # nothing is kept that the caller did not keep
        return []

    def _start(self, event: Event) -> list[Action]:
        self.state = State.INTRO
        prompts = ("greeting_welcome", "greeting_current", "greeting", "greeting_record_prompt")
        return [self._play(prompts, "intro")]

    def _wait(self, event: Event) -> list[Action]:
        return [StartTimer(WAIT, self.settings.wait_for_key)]

    def _record(self, event: Event) -> list[Action]:
        self.state = State.BEEP
        return [StopPlayback(), self._play(("beep",), "beep")]

    def _beep_done(self, event: Event) -> list[Action]:
        self.state = State.RECORDING
        return [Record(self.settings.max_record_time)]

    def _stop(self, event: Event) -> list[Action]:
        return [StopRecording()]

    def _recorded(self, event: Event) -> list[Action]:
        assert isinstance(event, RecordingStopped)
        if event.reason == "hangup":
            self.state = State.DONE
            return []
        self.state = State.REVIEW
        return [self._play(("recording",), "review")]

    def _confirm(self, event: Event) -> list[Action]:
        self.state = State.CONFIRM
        return [self._play(("greeting_confirm",), "confirm")]

    def _decide(self, event: Event) -> list[Action]:
        assert isinstance(event, Dtmf)
        if event.digit == KEEP:
            return self._keep()
        if event.digit == AGAIN:
            return self._record(event)
        return []

    def _keep(self) -> list[Action]:
        self.saved = True
        self.state = State.GOODBYE
        return [StopPlayback(), SaveGreeting(), self._play(("greeting_saved", "goodbye"), "bye")]

    def _confirm_timeout(self, event: Event) -> list[Action]:
        if self.settings.keep_on_silence:
            return self._keep()
        return self._goodbye(event)

    def _goodbye(self, event: Event) -> list[Action]:
        self.state = State.GOODBYE
        return [StopPlayback(), self._play(("goodbye",), "bye")]

    def _bye_done(self, event: Event) -> list[Action]:
        self.state = State.DONE
        return [HangUp()]
