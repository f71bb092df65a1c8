"""The voicebox app: PIN, "you have N new and M saved messages", then each message with
its menu. A state table in one file; events in, actions out.

Keys (configurable): 1 repeat, 2 save, 3 delete, 4 start over (SEMS), 5 envelope,
6 next, 7 previous, 0 help. A message becomes read when its playback starts. Every
waiting state ends with goodbye after the inactivity time.
"""

from __future__ import annotations

import enum
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from media_worker.apps.errors import AppStateError
from media_worker.apps.events import (
    Action,
    CancelTimer,
    CheckPin,
    DeleteMessage,
    Dtmf,
    Event,
    HangUp,
    Hangup,
    MarkRead,
    PinChecked,
    Play,
    PlaybackDone,
    PlayEnvelope,
    PlayMessage,
    RecordingStopped,
    Started,
    StartTimer,
    StopPlayback,
    Timeout,
)

INACTIVITY = "inactivity"
PIN_KEYS = frozenset("0123456789")  # a PIN is digits; * # A-D never join it


@dataclass(frozen=True)
class KeyMap:
    repeat: str = "1"
    save: str = "2"
    delete: str = "3"
    start_over: str = "4"
    envelope: str = "5"
    next: str = "6"
    previous: str = "7"
    help: str = "0"


@dataclass(frozen=True)
class VoiceboxSettings:
    pin_required: bool = False
    pin_tries: int = 3
    inactivity: float = 20.0
    keys: KeyMap = field(default_factory=KeyMap)
    max_pin_digits: int = 16


@dataclass
class Entry:
    name: str
    new: bool
    deleted: bool = False


class State(enum.Enum):
    IDLE = "idle"
    PIN = "pin"  # collecting digits
    PIN_CHECK = "pin-check"  # waiting for the driver's verdict
    SUMMARY = "summary"
    INTRO = "intro"  # "first message" / "next message"
    MESSAGE = "message"  # the message itself
    MENU = "menu"  # after a message: waiting for a key
    CONFIRM = "confirm"  # "saved" / "deleted" / the envelope, then on
    END = "end"  # "no more messages": start over, go back, or leave
    GOODBYE = "goodbye"
    DONE = "done"


def count_prompts(new: int, saved: int) -> tuple[str, ...]:
    """ "you have 3 new messages and 1 saved message", as prompt tokens."""
    parts: list[str] = ["you_have"]
    if new:
        parts += [f"number:{new}", "new_message" if new == 1 else "new_messages"]
    if new and saved:
        parts.append("and")
    if saved:
        parts += [f"number:{saved}", "saved_message" if saved == 1 else "saved_messages"]
    return tuple(parts)


class Voicebox:
    def __init__(self, settings: VoiceboxSettings, messages: list[tuple[str, bool]]) -> None:
        """``messages``: (name, new) oldest first, as the store lists them."""
        self.settings = settings
        new = [Entry(n, True) for n, is_new in messages if is_new]
        saved = [Entry(n, False) for n, is_new in messages if not is_new]
        self.entries = new[::-1] + saved[::-1]  # newest first, new before saved
        self.counts = (len(new), len(saved))
        self.index = 0
        self.state = State.IDLE
        self.pin_digits = ""
        self.pin_failures = 0
        self._marks = itertools.count(1)
        self._expected: str | None = None  # the mark whose PlaybackDone moves us on
        self._after_confirm: Callable[[], list[Action]] | None = None
        ignore = self._ignore
        common = {Hangup: self._hung_up, Timeout: self._timeout, RecordingStopped: ignore}
        self._table: dict[State, dict[type, Callable[[Event], list[Action]]]] = {
            State.IDLE: {Started: self._start, **common},
            State.PIN: {Dtmf: self._pin_digit, PlaybackDone: self._arm_timer, **common},
            State.PIN_CHECK: {
                PinChecked: self._pin_checked,
                Dtmf: ignore,
                PlaybackDone: ignore,
                **common,
            },
            State.SUMMARY: {PlaybackDone: self._summary_done, Dtmf: self._key, **common},
            State.INTRO: {PlaybackDone: self._intro_done, Dtmf: self._key, **common},
            State.MESSAGE: {PlaybackDone: self._message_done, Dtmf: self._key, **common},
            State.MENU: {PlaybackDone: self._arm_timer, Dtmf: self._key, **common},
            State.CONFIRM: {PlaybackDone: self._confirm_done, Dtmf: self._key, **common},
            State.END: {PlaybackDone: self._arm_timer, Dtmf: self._end_key, **common},
            State.GOODBYE: {PlaybackDone: self._goodbye_done, Dtmf: ignore, **common},
            State.DONE: dict.fromkeys(
                (Hangup, Timeout, PlaybackDone, Dtmf, PinChecked, RecordingStopped), ignore
            ),
        }

    def handle(self, event: Event) -> list[Action]:
        handler = self._table[self.state].get(type(event))
        if handler is None:
            raise AppStateError(
                f"voicebox: {type(event).__name__} is not expected in state {self.state.value}"
            )
        if isinstance(event, PlaybackDone) and event.mark != self._expected:
            return []  # an interrupted prompt reporting late: nothing to do
        return handler(event)

    # ----- helpers -----

    def _play(self, prompts: tuple[str, ...], kind: str) -> Play:
        self._expected = f"{kind}-{next(self._marks)}"
        return Play(prompts, self._expected)

    def _mark(self, kind: str) -> str:
        self._expected = f"{kind}-{next(self._marks)}"
        return self._expected

    def _goodbye(self) -> list[Action]:
        self.state = State.GOODBYE
        return [CancelTimer(INACTIVITY), StopPlayback(), self._play(("goodbye",), "bye")]

    def _live(self) -> list[int]:
        return [i for i, e in enumerate(self.entries) if not e.deleted]

    # ----- handlers -----

    def _ignore(self, event: Event) -> list[Action]:
        return []

    def _hung_up(self, event: Event) -> list[Action]:
        self.state = State.DONE
        return []

    def _timeout(self, event: Event) -> list[Action]:
        if isinstance(event, Timeout) and event.name == INACTIVITY:
            return self._goodbye()
        return []

    def _arm_timer(self, event: Event) -> list[Action]:
        return [StartTimer(INACTIVITY, self.settings.inactivity)]

    def _start(self, event: Event) -> list[Action]:
        if self.settings.pin_required:
            self.state = State.PIN
            return [self._play(("enter_pin",), "pin")]
        return self._summary()

    def _pin_digit(self, event: Event) -> list[Action]:
        assert isinstance(event, Dtmf)
        if event.digit != "#":
            if len(self.pin_digits) < self.settings.max_pin_digits and event.digit in PIN_KEYS:
                self.pin_digits += event.digit
            return [CancelTimer(INACTIVITY), StartTimer(INACTIVITY, self.settings.inactivity)]
        digits, self.pin_digits = self.pin_digits, ""
        self.state = State.PIN_CHECK
        return [CancelTimer(INACTIVITY), StopPlayback(), CheckPin(digits)]

    def _pin_checked(self, event: Event) -> list[Action]:
        assert isinstance(event, PinChecked)
        if event.ok:
            return self._summary()
        self.pin_failures += 1
        if event.locked or self.pin_failures >= self.settings.pin_tries:
            self.state = State.GOODBYE
            return [self._play(("wrong_pin", "goodbye"), "bye")]
        self.state = State.PIN
        return [self._play(("wrong_pin", "enter_pin"), "pin")]

    def _summary(self) -> list[Action]:
        new, saved = self.counts
        if not new and not saved:
            self.state = State.GOODBYE
            return [self._play(("no_messages", "goodbye"), "bye")]
        self.state = State.SUMMARY
        return [self._play(count_prompts(new, saved), "summary")]

    def _summary_done(self, event: Event) -> list[Action]:
        return self._intro(first=True)

    def _intro(self, first: bool) -> list[Action]:
        self.state = State.INTRO
        return [
            CancelTimer(INACTIVITY),
            self._play(("first_message" if first else "next_message",), "intro"),
        ]

    def _intro_done(self, event: Event) -> list[Action]:
        return self._play_current()

    def _play_current(self) -> list[Action]:
        entry = self.entries[self.index]
        self.state = State.MESSAGE
        actions: list[Action] = [
            CancelTimer(INACTIVITY),
            PlayMessage(entry.name, self._mark("message")),
        ]
        if entry.new:
            entry.new = False
            actions.append(MarkRead(entry.name))  # read once its playback starts
        return actions

    def _message_done(self, event: Event) -> list[Action]:
        self.state = State.MENU
        return [self._play(("message_menu",), "menu")]

    def _confirm(self, prompts: tuple[str, ...], then: Callable[[], list[Action]]) -> list[Action]:
        self.state = State.CONFIRM
        self._after_confirm = then
        return [CancelTimer(INACTIVITY), StopPlayback(), self._play(prompts, "confirm")]

    def _confirm_done(self, event: Event) -> list[Action]:
        then, self._after_confirm = self._after_confirm, None
        return then() if then is not None else []

    def _advance(self, step: int) -> list[Action]:
        live = self._live()
        later = [i for i in live if (i > self.index if step > 0 else i < self.index)]
        if not later:
            if step < 0:  # before the first one: the first one again
                return [StopPlayback(), *self._play_current()] if live else self._end()
            return self._end()
        self.index = later[0] if step > 0 else later[-1]
        return [StopPlayback(), *self._intro(first=False)]

    def _end(self) -> list[Action]:
        self.state = State.END
        return [CancelTimer(INACTIVITY), StopPlayback(), self._play(("no_more_messages",), "end")]

    def _key(self, event: Event) -> list[Action]:
        assert isinstance(event, Dtmf)
        keys, digit = self.settings.keys, event.digit
        if self.state is State.SUMMARY or (
            self.state is State.INTRO and digit not in (keys.next, keys.previous)
        ):
            return []  # keys act on a message, not on the announcements before it
        entry = self.entries[self.index]
        if digit == keys.repeat:
            return [StopPlayback(), *self._play_current()]
        if digit == keys.save:
            return self._confirm(("saved",), lambda: self._advance(+1))
        if digit == keys.delete:
            entry.deleted = True
            return [
                DeleteMessage(entry.name),
                *self._confirm(("deleted",), lambda: self._advance(+1)),
            ]
        if digit == keys.start_over:
            return self._start_over()
        if digit == keys.envelope:
            self.state = State.CONFIRM
            self._after_confirm = self._back_to_menu
            return [
                CancelTimer(INACTIVITY),
                StopPlayback(),
                PlayEnvelope(entry.name, self._mark("confirm")),
            ]
        if digit == keys.next:
            return self._advance(+1)
        if digit == keys.previous:
            return self._advance(-1)
        if digit == keys.help:
            return [CancelTimer(INACTIVITY), StopPlayback(), *self._back_to_menu(help_text=True)]
        return []

    def _back_to_menu(self, help_text: bool = False) -> list[Action]:
        self.state = State.MENU
        return [self._play(("message_help",) if help_text else ("message_menu",), "menu")]

    def _start_over(self) -> list[Action]:
        live = self._live()
        if not live:
            return self._end()
        self.index = live[0]
        return [StopPlayback(), *self._intro(first=True)]

    def _end_key(self, event: Event) -> list[Action]:
        assert isinstance(event, Dtmf)
        keys = self.settings.keys
        if event.digit == keys.start_over:
            return self._start_over()
        if event.digit == keys.previous and self._live():
            self.index = self._live()[-1]
            return [StopPlayback(), *self._intro(first=False)]
        return self._goodbye()

    def _goodbye_done(self, event: Event) -> list[Action]:
        self.state = State.DONE
        return [HangUp()]
