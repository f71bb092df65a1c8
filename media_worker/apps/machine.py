"""What the three apps' state tables share: the row, ``handle()``, ignoring, the end.

Each app module holds one ``TABLE``: ``(state, input) -> Row(next state, builder)``, as
``sip/transaction.py`` holds its transitions. An input is an event's type (``Started``,
``PlaybackDone``, ``Hangup``, ...) or a name for what the event says, which the app's
``classify()`` gives it before the table is read:

- a key press is turned into a named key by the app's key map, so each key is a row;
- an outcome that the event carries is an input of its own: ``RecordingStopped``'s reason
  (a ``StopReason``), the PIN verdict;
- ``None``: the event is stale (a stopped prompt reporting its end late, a timer the app
  did not set) and is dropped.
``classify()`` reads the event and the app's data and changes nothing.

A builder only builds the actions; ``handle()`` moves the state to the row's next state.
Where the next state depends on the app's data (the next message when there is none, an
empty mailbox once the PIN is right), the builder returns ``Branch(state, actions)``, and
that state must be one of the row's ``branches``: every state a row can lead to is
written in the table, and a builder that picks another raises ``AppStateError``.

A state with no row for an input ignores the event (no actions, the state stays) when
the caller or the clock can bring it at any moment: keys, the end of a prompt, timers,
hang-up (the app's ``IGNORABLE``). An event that only comes when the app asked for it
(a second ``Started``, ``RecordingStopped`` without ``Record``, ``PinChecked`` without
``CheckPin``) is the driver's bug and raises ``AppStateError`` naming the state and
the event, as ``transaction.py``'s ``_go()`` does. In the done state every event is
ignored: late events after the end are normal.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

from media_worker.apps.errors import AppStateError
from media_worker.apps.events import (
    Action,
    Dtmf,
    Event,
    Hangup,
    PlaybackDone,
    Timeout,
)

StateT = TypeVar("StateT", bound=enum.Enum)
AppT = TypeVar("AppT")

Input = type | enum.Enum
"""An event type, a named key, or a named outcome."""


@dataclass(frozen=True)
class Branch(Generic[StateT]):
    """A builder's answer when the data decides between the row's states."""

    state: StateT
    actions: list[Action]


Builder = Callable[[AppT, Event], "list[Action] | Branch[Any]"]


@dataclass(frozen=True)
class Row(Generic[AppT, StateT]):
    next: StateT
    build: Builder[AppT] | None = None  # None: no actions
    branches: tuple[StateT, ...] = ()  # the other states the builder may choose

    @property
    def targets(self) -> tuple[StateT, ...]:
        return (self.next, *self.branches)


Table = Mapping[tuple[StateT, Input], Row[Any, StateT]]


def input_name(key: Input) -> str:
    return key.__name__ if isinstance(key, type) else f"{type(key).__name__}.{key.name}"


class Machine(Generic[StateT]):
    """An app driven by its table: ``handle(event) -> actions``; ``state`` says where it is."""

    NAME: ClassVar[str]
    # What the caller or the clock can bring at any moment: ignored where a state has no row.
    IGNORABLE: ClassVar[tuple[type, ...]] = (Dtmf, PlaybackDone, Timeout, Hangup)

    def __init__(self, table: Table[StateT], initial: StateT, done: StateT) -> None:
        self.state = initial
        self._table = table
        self._done = done

    def classify(self, event: Event) -> Input | None:
        """The input the table is read with; None drops a stale event."""
        return type(event)

    def handle(self, event: Event) -> list[Action]:
        if self.state is self._done:
            return []
        key = self.classify(event)
        if key is None:
            return []
        row = self._table.get((self.state, key))
        if row is None:
            if isinstance(event, self.IGNORABLE):
                return []
            raise AppStateError(
                f"{self.NAME}: {type(event).__name__} is not expected in state "
                f"{self.state.value} (input {input_name(key)})"
            )
        result = [] if row.build is None else row.build(self, event)
        if isinstance(result, Branch):
            if result.state not in row.branches:
                raise AppStateError(
                    f"{self.NAME}: {input_name(key)} in state {self.state.value} "
                    f"cannot lead to {result.state.value}"
                )
            self.state = result.state
            return result.actions
        self.state = row.next
        return result
