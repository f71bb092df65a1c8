"""The voicebox app: PIN, "you have N new and M saved messages", then each message with
its menu. A state table in one file; events in, actions out.

Keys (configurable): 1 repeat, 2 save, 3 delete, 4 start over (SEMS), 5 envelope,
6 next, 7 previous, 0 help; '#' ends the PIN. A message becomes read when its playback
starts. Every waiting state ends with goodbye when no key comes (``wait_for_key``).
"""

from __future__ import annotations

import enum
import itertools
from dataclasses import dataclass, field

from media_worker.apps.events import (
    Action,
    CancelTimer,
    CheckPin,
    DeleteMessage,
    Dtmf,
    EndCall,
    Event,
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
from media_worker.apps.machine import Branch, Input, Machine, Row

WAIT = "wait"  # the timer of a prompt that waits for a key
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
    enter: str = "#"  # ends the PIN


class Key(enum.Enum):
    """A key press as the table sees it; the KeyMap says which digit is which."""

    REPEAT = "repeat"
    SAVE = "save"
    DELETE = "delete"
    START_OVER = "start over"
    ENVELOPE = "envelope"
    NEXT = "next"
    PREVIOUS = "previous"
    HELP = "help"
    ENTER = "enter"
    OTHER = "other"  # a key with no meaning in the menu


def key_names(keys: KeyMap) -> dict[str, Key]:
    return {
        keys.repeat: Key.REPEAT,
        keys.save: Key.SAVE,
        keys.delete: Key.DELETE,
        keys.start_over: Key.START_OVER,
        keys.envelope: Key.ENVELOPE,
        keys.next: Key.NEXT,
        keys.previous: Key.PREVIOUS,
        keys.help: Key.HELP,
        keys.enter: Key.ENTER,
    }


class Pin(enum.Enum):
    """The driver's PinChecked, as an input."""

    RIGHT = "right"
    WRONG = "wrong"  # another try left
    LOCKED = "locked"  # wrong and no try left, or the mailbox is locked


@dataclass(frozen=True)
class VoiceboxSettings:
    pin_required: bool = False
    pin_tries: int = 3
    # A prompt's wait for a key before goodbye. Inactivity.voicebox (context.py), longer,
    # is the driver's limit that ends a call outright when nothing happens at all.
    wait_for_key: float = 20.0
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
    CONFIRM = "confirm"  # "saved" / "deleted", then the next message
    ENVELOPE = "envelope"  # when and from whom, then the menu
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


class Voicebox(Machine[State]):
    NAME = "voicebox"
    # The voicebox never records: a driver's report of a recording changes nothing.
    IGNORABLE = (*Machine.IGNORABLE, RecordingStopped)

    def __init__(self, settings: VoiceboxSettings, messages: list[tuple[str, bool]]) -> None:
        """``messages``: (name, new) oldest first, as the store lists them."""
        super().__init__(TABLE, State.IDLE, State.DONE)
        self.settings = settings
        self._keys = key_names(settings.keys)
        new = [Entry(n, True) for n, is_new in messages if is_new]
        saved = [Entry(n, False) for n, is_new in messages if not is_new]
        self.entries = new[::-1] + saved[::-1]  # newest first, new before saved
        self.counts = (len(new), len(saved))
        self.index = 0
        self.pin_digits = ""
        self.pin_failures = 0
        self._marks = itertools.count(1)
        self._expected: str | None = None  # the mark whose PlaybackDone moves us on

    def classify(self, event: Event) -> Input | None:
        if isinstance(event, PlaybackDone) and event.mark != self._expected:
            return None  # an interrupted prompt reporting late: nothing to do
        if isinstance(event, Timeout) and event.name != WAIT:
            return None
        if isinstance(event, Dtmf):
            return self._keys.get(event.digit, Key.OTHER)
        if isinstance(event, PinChecked):
            if event.ok:
                return Pin.RIGHT
            last = event.locked or self.pin_failures + 1 >= self.settings.pin_tries
            return Pin.LOCKED if last else Pin.WRONG
        return type(event)

    # ----- helpers -----

    def _mark(self, kind: str) -> str:
        self._expected = f"{kind}-{next(self._marks)}"
        return self._expected

    def _play(self, prompts: tuple[str, ...], kind: str) -> Play:
        return Play(prompts, self._mark(kind))

    def _live(self) -> list[int]:
        return [i for i, e in enumerate(self.entries) if not e.deleted]

    def _intro(self, first: bool) -> list[Action]:
        return [
            CancelTimer(WAIT),
            self._play(("first_message" if first else "next_message",), "intro"),
        ]

    def _end(self) -> Branch[State]:
        return Branch(
            State.END,
            [CancelTimer(WAIT), StopPlayback(), self._play(("no_more_messages",), "end")],
        )

    def _summary(self) -> list[Action] | Branch[State]:
        new, saved = self.counts
        if not new and not saved:
            return Branch(State.GOODBYE, [self._play(("no_messages", "goodbye"), "bye")])
        return [self._play(count_prompts(new, saved), "summary")]

    def _confirm(self, prompt: str) -> list[Action]:
        return [CancelTimer(WAIT), StopPlayback(), self._play((prompt,), "confirm")]

    # ----- builders -----

    def _start(self, event: Event) -> list[Action] | Branch[State]:
        if self.settings.pin_required:
            return Branch(State.PIN, [self._play(("enter_pin",), "pin")])
        return self._summary()

    def _arm_timer(self, event: Event) -> list[Action]:
        return [StartTimer(WAIT, self.settings.wait_for_key)]

    def _goodbye(self, event: Event) -> list[Action]:
        return [CancelTimer(WAIT), StopPlayback(), self._play(("goodbye",), "bye")]

    def _pin_digit(self, event: Event) -> list[Action]:
        assert isinstance(event, Dtmf)
        if len(self.pin_digits) < self.settings.max_pin_digits and event.digit in PIN_KEYS:
            self.pin_digits += event.digit
        return [CancelTimer(WAIT), StartTimer(WAIT, self.settings.wait_for_key)]

    def _check_pin(self, event: Event) -> list[Action]:
        digits, self.pin_digits = self.pin_digits, ""
        return [CancelTimer(WAIT), StopPlayback(), CheckPin(digits)]

    def _pin_right(self, event: Event) -> list[Action] | Branch[State]:
        return self._summary()

    def _pin_wrong(self, event: Event) -> list[Action]:
        self.pin_failures += 1
        return [self._play(("wrong_pin", "enter_pin"), "pin")]

    def _pin_locked(self, event: Event) -> list[Action]:
        self.pin_failures += 1
        return [self._play(("wrong_pin", "goodbye"), "bye")]

    def _first(self, event: Event) -> list[Action]:
        return self._intro(first=True)

    def _play_current(self, event: Event) -> list[Action]:
        entry = self.entries[self.index]
        actions: list[Action] = [
            CancelTimer(WAIT),
            PlayMessage(entry.name, self._mark("message")),
        ]
        if entry.new:
            entry.new = False
            actions.append(MarkRead(entry.name))  # read once its playback starts
        return actions

    def _repeat(self, event: Event) -> list[Action]:
        return [StopPlayback(), *self._play_current(event)]

    def _menu(self, event: Event) -> list[Action]:
        return [self._play(("message_menu",), "menu")]

    def _help(self, event: Event) -> list[Action]:
        return [CancelTimer(WAIT), StopPlayback(), self._play(("message_help",), "menu")]

    def _save(self, event: Event) -> list[Action]:
        return self._confirm("saved")

    def _delete(self, event: Event) -> list[Action]:
        entry = self.entries[self.index]
        entry.deleted = True
        return [DeleteMessage(entry.name), *self._confirm("deleted")]

    def _envelope(self, event: Event) -> list[Action]:
        name = self.entries[self.index].name
        return [CancelTimer(WAIT), StopPlayback(), PlayEnvelope(name, self._mark("envelope"))]

    def _next(self, event: Event) -> list[Action] | Branch[State]:
        later = [i for i in self._live() if i > self.index]
        if not later:
            return self._end()
        self.index = later[0]
        return [StopPlayback(), *self._intro(first=False)]

    def _previous(self, event: Event) -> list[Action] | Branch[State]:
        live = self._live()
        earlier = [i for i in live if i < self.index]
        if earlier:
            self.index = earlier[-1]
            return [StopPlayback(), *self._intro(first=False)]
        if live:  # before the first one: the first one again
            return Branch(State.MESSAGE, self._repeat(event))
        return self._end()

    def _start_over(self, event: Event) -> list[Action] | Branch[State]:
        live = self._live()
        if not live:
            return self._end()
        self.index = live[0]
        return [StopPlayback(), *self._intro(first=True)]

    def _last(self, event: Event) -> list[Action] | Branch[State]:
        live = self._live()
        if not live:
            return Branch(State.GOODBYE, self._goodbye(event))
        self.index = live[-1]
        return [StopPlayback(), *self._intro(first=False)]

    def _hang_up(self, event: Event) -> list[Action]:
        return [EndCall()]


S, V = State, Voicebox  # table shorthand
WAITING = [s for s in State if s is not S.DONE]
ON_A_MESSAGE = (S.MESSAGE, S.MENU, S.CONFIRM, S.ENVELOPE)
# The keys that act on a message, in every state where one is playing or just was.
MESSAGE_KEYS: dict[Key, Row[Voicebox, State]] = {
    Key.REPEAT: Row(S.MESSAGE, V._repeat),
    Key.SAVE: Row(S.CONFIRM, V._save),
    Key.DELETE: Row(S.CONFIRM, V._delete),
    Key.START_OVER: Row(S.INTRO, V._start_over, (S.END,)),
    Key.ENVELOPE: Row(S.ENVELOPE, V._envelope),
    Key.NEXT: Row(S.INTRO, V._next, (S.END,)),
    Key.PREVIOUS: Row(S.INTRO, V._previous, (S.MESSAGE, S.END)),
    Key.HELP: Row(S.MENU, V._help),
}
# (state, input) -> next state and the actions. No row: the event is ignored (machine.py).
TABLE: dict[tuple[State, Input], Row[Voicebox, State]] = {
    (S.IDLE, Started): Row(S.SUMMARY, V._start, (S.PIN, S.GOODBYE)),
    # Every key but '#' restarts the wait; only 0-9 join the PIN.
    **{(S.PIN, key): Row(S.PIN, V._pin_digit) for key in Key if key is not Key.ENTER},
    (S.PIN, Key.ENTER): Row(S.PIN_CHECK, V._check_pin),
    (S.PIN, PlaybackDone): Row(S.PIN, V._arm_timer),
    (S.PIN_CHECK, Pin.RIGHT): Row(S.SUMMARY, V._pin_right, (S.GOODBYE,)),
    (S.PIN_CHECK, Pin.WRONG): Row(S.PIN, V._pin_wrong),
    (S.PIN_CHECK, Pin.LOCKED): Row(S.GOODBYE, V._pin_locked),
    # Keys act on a message, not on the announcements before it.
    (S.SUMMARY, PlaybackDone): Row(S.INTRO, V._first),
    (S.INTRO, PlaybackDone): Row(S.MESSAGE, V._play_current),
    (S.INTRO, Key.NEXT): MESSAGE_KEYS[Key.NEXT],
    (S.INTRO, Key.PREVIOUS): MESSAGE_KEYS[Key.PREVIOUS],
    **{(s, key): row for s in ON_A_MESSAGE for key, row in MESSAGE_KEYS.items()},
    (S.MESSAGE, PlaybackDone): Row(S.MENU, V._menu),
    (S.MENU, PlaybackDone): Row(S.MENU, V._arm_timer),
    (S.CONFIRM, PlaybackDone): Row(S.INTRO, V._next, (S.END,)),
    (S.ENVELOPE, PlaybackDone): Row(S.MENU, V._menu),
    # At the end: start over, go back to the last message, or any other key leaves.
    **{(S.END, key): Row(S.GOODBYE, V._goodbye) for key in Key},
    (S.END, Key.START_OVER): Row(S.INTRO, V._start_over, (S.END,)),
    (S.END, Key.PREVIOUS): Row(S.INTRO, V._last, (S.GOODBYE,)),
    (S.END, PlaybackDone): Row(S.END, V._arm_timer),
    (S.GOODBYE, PlaybackDone): Row(S.DONE, V._hang_up),
    **{(s, Timeout): Row(S.GOODBYE, V._goodbye) for s in WAITING},
    **{(s, Hangup): Row(S.DONE) for s in WAITING},
}
