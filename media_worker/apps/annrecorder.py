"""The annrecorder app: hear the current greeting, record a new one, review, keep it.

welcome, "your current greeting is", the greeting (or the default), "press any key to
record"; any key: beep and record; any key (or the maximum): the recording is played
back, then "press 1 to keep, 2 to record again". As in SEMS, the recording is kept when
the caller says nothing at that point (configurable). A state table in one file.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from media_worker.apps.events import (
    Action,
    CancelTimer,
    Dtmf,
    EndCall,
    Event,
    Hangup,
    Play,
    PlaybackDone,
    Record,
    RecordingStopped,
    SaveGreeting,
    Started,
    StartTimer,
    StopPlayback,
    StopReason,
    StopRecording,
    Timeout,
)
from media_worker.apps.machine import Input, Machine, Row

WAIT = "wait"
KEEP, AGAIN = "1", "2"


@dataclass(frozen=True)
class AnnrecorderSettings:
    max_record_time: float = 120.0
    wait_for_key: float = 20.0
    keep_on_silence: bool = True  # SEMS keeps the recording on a confirm timeout


class State(enum.Enum):
    IDLE = "idle"
    INTRO = "intro"  # the greeting and "press any key to record" play
    INTRO_WAIT = "intro-wait"  # they have played; the wait timer runs
    BEEP = "beep"
    RECORDING = "recording"
    REVIEW = "review"
    CONFIRM = "confirm"  # "press 1 to keep, 2 to record again" plays
    CONFIRM_WAIT = "confirm-wait"  # it has played; the wait timer runs
    GOODBYE = "goodbye"
    DONE = "done"


class Key(enum.Enum):
    KEEP = "keep"
    AGAIN = "again"
    OTHER = "other"  # "any key" where any key will do


KEYS = {KEEP: Key.KEEP, AGAIN: Key.AGAIN}


class Annrecorder(Machine[State]):
    NAME = "annrecorder"

    def __init__(self, settings: AnnrecorderSettings) -> None:
        super().__init__(TABLE, State.IDLE, State.DONE)
        self.settings = settings
        self.saved = False
        self._expected = ""  # the mark of the prompt now playing

    def classify(self, event: Event) -> Input | None:
        if isinstance(event, PlaybackDone) and event.mark != self._expected:
            return None  # an interrupted prompt reporting late
        if isinstance(event, Timeout) and event.name != WAIT:
            return None  # not a timer this app sets
        if isinstance(event, Dtmf):
            return KEYS.get(event.digit, Key.OTHER)
        if isinstance(event, RecordingStopped):
            return event.reason
        return type(event)

    def _play(self, prompts: tuple[str, ...], mark: str) -> Play:
        self._expected = mark
        return Play(prompts, mark)

    # ----- builders -----

    def _start(self, event: Event) -> list[Action]:
        prompts = ("greeting_welcome", "greeting_current", "greeting", "greeting_record_prompt")
        return [self._play(prompts, "intro")]

    def _wait(self, event: Event) -> list[Action]:
        return [StartTimer(WAIT, self.settings.wait_for_key)]

    def _beep(self, event: Event) -> list[Action]:
        return [StopPlayback(), self._play(("beep",), "beep")]

    def _answer_then_beep(self, event: Event) -> list[Action]:
        # A key answers the wait: its timer must not fire in a later state.
        return [CancelTimer(WAIT), *self._beep(event)]

    def _record(self, event: Event) -> list[Action]:
        return [Record(self.settings.max_record_time)]

    def _stop(self, event: Event) -> list[Action]:
        return [StopRecording()]

    def _review(self, event: Event) -> list[Action]:
        return [self._play(("recording",), "review")]

    def _confirm(self, event: Event) -> list[Action]:
        return [self._play(("greeting_confirm",), "confirm")]

    def _keep(self, event: Event) -> list[Action]:
        self.saved = True
        return [StopPlayback(), SaveGreeting(), self._play(("greeting_saved", "goodbye"), "bye")]

    def _answer_then_keep(self, event: Event) -> list[Action]:
        return [CancelTimer(WAIT), *self._keep(event)]

    def _silence(self, event: Event) -> list[Action]:
        return self._keep(event) if self.settings.keep_on_silence else self._goodbye(event)

    def _goodbye(self, event: Event) -> list[Action]:
        return [StopPlayback(), self._play(("goodbye",), "bye")]

    def _hang_up(self, event: Event) -> list[Action]:
        return [EndCall()]


S, A = State, Annrecorder  # table shorthand
ANY_KEY = tuple(Key)
# (state, input) -> next state and the actions. No row: the event is ignored (machine.py).
# A hang-up keeps nothing that the caller did not keep. A timer runs only in the *_WAIT
# states; a Timeout elsewhere is one the caller's key already answered (ignored).
TABLE: dict[tuple[State, Input], Row[Annrecorder, State]] = {
    (S.IDLE, Started): Row(S.INTRO, A._start),
    (S.INTRO, PlaybackDone): Row(S.INTRO_WAIT, A._wait),
    **{(S.INTRO, key): Row(S.BEEP, A._beep) for key in ANY_KEY},
    **{(S.INTRO_WAIT, key): Row(S.BEEP, A._answer_then_beep) for key in ANY_KEY},
    (S.INTRO_WAIT, Timeout): Row(S.GOODBYE, A._goodbye),
    (S.BEEP, PlaybackDone): Row(S.RECORDING, A._record),
    **{(S.RECORDING, key): Row(S.RECORDING, A._stop) for key in ANY_KEY},
    (S.RECORDING, StopReason.MAX_DURATION): Row(S.REVIEW, A._review),
    (S.RECORDING, StopReason.STOPPED): Row(S.REVIEW, A._review),
    (S.RECORDING, StopReason.HANGUP): Row(S.DONE),
    (S.REVIEW, PlaybackDone): Row(S.CONFIRM, A._confirm),
    (S.REVIEW, Key.KEEP): Row(S.GOODBYE, A._keep),
    (S.REVIEW, Key.AGAIN): Row(S.BEEP, A._beep),
    (S.CONFIRM, PlaybackDone): Row(S.CONFIRM_WAIT, A._wait),
    (S.CONFIRM, Key.KEEP): Row(S.GOODBYE, A._keep),
    (S.CONFIRM, Key.AGAIN): Row(S.BEEP, A._beep),
    (S.CONFIRM_WAIT, Key.KEEP): Row(S.GOODBYE, A._answer_then_keep),
    (S.CONFIRM_WAIT, Key.AGAIN): Row(S.BEEP, A._answer_then_beep),
    (S.CONFIRM_WAIT, Timeout): Row(S.GOODBYE, A._silence),
    (S.GOODBYE, PlaybackDone): Row(S.DONE, A._hang_up),
    **{(state, Hangup): Row(S.DONE) for state in State if state is not S.DONE},
}
