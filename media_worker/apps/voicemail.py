"""The voicemail app: greeting, beep, record, deliver. A state table in one file.

Modes: voicemail (email), box (store), both, ann (greeting only: nothing recorded).
'#' during the greeting skips to the beep; '#' while recording ends the message, as does
hanging up; at the maximum length a last beep plays and the call ends.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from kemi.app_param import Mode
from media_worker.apps.events import (
    Action,
    DeliverMessage,
    Dtmf,
    EndCall,
    Event,
    Hangup,
    Play,
    PlaybackDone,
    Record,
    RecordingStopped,
    Started,
    StopPlayback,
    StopReason,
    StopRecording,
)
from media_worker.apps.machine import Branch, Input, Machine, Row

SKIP_KEY = "#"


class State(enum.Enum):
    IDLE = "idle"
    GREETING = "greeting"
    ANNOUNCEMENT = "announcement"  # mode ann: the greeting, then the end
    BEEP = "beep"
    RECORDING = "recording"
    FINAL_BEEP = "final-beep"
    DONE = "done"


class Key(enum.Enum):
    SKIP = "skip"  # '#': skip the greeting, end the message
    OTHER = "other"  # every other key: no row acts on it


@dataclass(frozen=True)
class VoicemailSettings:
    mode: Mode
    max_record_time: float = 120.0


class Voicemail(Machine[State]):
    NAME = "voicemail"

    def __init__(self, settings: VoicemailSettings) -> None:
        super().__init__(TABLE, State.IDLE, State.DONE)
        self.settings = settings
        self.recorded = False  # a recording reached DeliverMessage

    def classify(self, event: Event) -> Input | None:
        if isinstance(event, Dtmf):
            return Key.SKIP if event.digit == SKIP_KEY else Key.OTHER
        if isinstance(event, RecordingStopped):
            return event.reason
        return type(event)

    # ----- builders -----

    def _start(self, event: Event) -> list[Action] | Branch[State]:
        greeting: list[Action] = [Play(("greeting",), "greeting")]
        return Branch(State.ANNOUNCEMENT, greeting) if self.settings.mode == "ann" else greeting

    def _beep(self, event: Event) -> list[Action]:
        return [Play(("beep",), "beep")]

    def _record(self, event: Event) -> list[Action]:
        return [Record(self.settings.max_record_time)]

    def _deliver(self) -> list[Action]:
        self.recorded = True
        return [DeliverMessage()]

    def _full(self, event: Event) -> list[Action]:
        return [*self._deliver(), Play(("beep",), "final-beep")]

    def _stopped(self, event: Event) -> list[Action]:
        return [*self._deliver(), Play(("goodbye",), "goodbye"), EndCall()]

    def _hung_up(self, event: Event) -> list[Action]:
        return self._deliver()

    def _skip_greeting(self, event: Event) -> list[Action]:
        return [StopPlayback()]  # its PlaybackDone(greeting) leads on to the beep

    def _stop_recording(self, event: Event) -> list[Action]:
        return [StopRecording()]

    def _hang_up(self, event: Event) -> list[Action]:
        return [EndCall()]


S, V = State, Voicemail  # table shorthand
# (state, input) -> next state and the actions. No row: the event is ignored (machine.py).
TABLE: dict[tuple[State, Input], Row[Voicemail, State]] = {
    (S.IDLE, Started): Row(S.GREETING, V._start, (S.ANNOUNCEMENT,)),
    (S.IDLE, Hangup): Row(S.DONE),
    (S.GREETING, PlaybackDone): Row(S.BEEP, V._beep),
    (S.GREETING, Key.SKIP): Row(S.GREETING, V._skip_greeting),
    (S.GREETING, Hangup): Row(S.DONE),
    (S.ANNOUNCEMENT, PlaybackDone): Row(S.DONE, V._hang_up),
    (S.ANNOUNCEMENT, Hangup): Row(S.DONE),
    (S.BEEP, PlaybackDone): Row(S.RECORDING, V._record),
    (S.BEEP, Hangup): Row(S.DONE),
    (S.RECORDING, Key.SKIP): Row(S.RECORDING, V._stop_recording),
    (S.RECORDING, StopReason.MAX_DURATION): Row(S.FINAL_BEEP, V._full),
    (S.RECORDING, StopReason.STOPPED): Row(S.DONE, V._stopped),
    (S.RECORDING, StopReason.HANGUP): Row(S.DONE, V._hung_up),
    # The RecordingStopped(hangup) that comes first decides; the Hangup after it changes nothing.
    (S.RECORDING, Hangup): Row(S.RECORDING),
    (S.FINAL_BEEP, PlaybackDone): Row(S.DONE, V._hang_up),
    (S.FINAL_BEEP, Hangup): Row(S.DONE),
}
