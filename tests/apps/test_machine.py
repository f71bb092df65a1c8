"""The rules every app table shares: ignoring, the done state, branches the row names."""

from __future__ import annotations

import enum
from types import ModuleType

import pytest

from media_worker.apps import annrecorder, voicebox, voicemail
from media_worker.apps.errors import AppStateError
from media_worker.apps.events import Action, Dtmf, EndCall, Event, Hangup, PinChecked, Started
from media_worker.apps.machine import Branch, Input, Machine, Row, Table


class State(enum.Enum):
    IDLE = "idle"
    ON = "on"
    OFF = "off"
    DONE = "done"


class Toy(Machine[State]):
    NAME = "toy"

    def __init__(self, table: Table[State], then: State = State.OFF) -> None:
        super().__init__(table, State.IDLE, State.DONE)
        self.then = then

    def choose(self, event: Event) -> list[Action] | Branch[State]:
        return Branch(self.then, [EndCall()])


TABLE: dict[tuple[State, Input], Row[Toy, State]] = {
    (State.IDLE, Started): Row(State.ON, Toy.choose, (State.OFF,)),
    (State.ON, Dtmf): Row(State.DONE),
}


def test_a_branch_goes_to_a_state_the_row_names() -> None:
    toy = Toy(TABLE)
    assert toy.handle(Started()) == [EndCall()]
    assert toy.state is State.OFF


def test_a_branch_the_row_does_not_name_is_a_bug() -> None:
    with pytest.raises(AppStateError, match="toy: Started in state idle cannot lead to on"):
        Toy(TABLE, then=State.ON).handle(Started())


def test_keys_without_a_row_are_ignored_other_events_are_a_bug() -> None:
    toy = Toy(TABLE)
    assert toy.handle(Dtmf("1")) == []
    assert toy.state is State.IDLE
    with pytest.raises(AppStateError, match="toy: PinChecked is not expected in state idle"):
        toy.handle(PinChecked(ok=True))


def test_the_done_state_ignores_everything() -> None:
    toy = Toy({**TABLE, (State.IDLE, Started): Row(State.ON)})
    toy.handle(Started())
    toy.handle(Dtmf("1"))
    assert toy.state is State.DONE
    assert toy.handle(Started()) == []
    assert toy.handle(PinChecked(ok=False)) == []


@pytest.mark.parametrize("module", [annrecorder, voicebox, voicemail], ids=lambda m: m.__name__)
def test_every_row_leads_to_a_state_and_every_state_hears_a_hang_up(module: ModuleType) -> None:
    """The three apps' tables: each row's next states are states of its app, and every
    state but the end has a row for the caller hanging up."""
    states = set(module.State)
    for (state, _), row in module.TABLE.items():
        assert state in states
        assert set(row.targets) <= states, row
    assert {state for state, event in module.TABLE if event is Hangup} == states - {
        module.State.DONE
    }
