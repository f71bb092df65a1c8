"""The voicebox app as a pure state machine: PIN, counts, every key, timeouts."""

from __future__ import annotations

import pytest

from media_worker.apps.errors import AppError
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
    Started,
    StartTimer,
    StopPlayback,
    Timeout,
)
from media_worker.apps.voicebox import (
    TABLE,
    Key,
    State,
    Voicebox,
    VoiceboxSettings,
    count_prompts,
)

# Oldest first, as the store lists them: two read (saved) and two new messages.
MAILBOX = [("100+a", False), ("200+b", True), ("300+c", False), ("400+d", True)]


class Driver:
    """Feeds events and completes playbacks the way the media session would."""

    def __init__(self, box: Voicebox) -> None:
        self.box = box
        self.actions: list[Action] = []

    def send(self, event: Event) -> list[Action]:
        actions = self.box.handle(event)
        self.actions += actions
        return actions

    def finish_playback(self) -> list[Action]:
        """The current prompt or message plays to its end."""
        marks = [a.mark for a in self.actions if isinstance(a, Play | PlayMessage | PlayEnvelope)]
        return self.send(PlaybackDone(marks[-1]))

    def played(self) -> list[str]:
        out = []
        for a in self.actions:
            if isinstance(a, Play):
                out.append(" ".join(a.prompts))
            elif isinstance(a, PlayMessage):
                out.append(f"<{a.name}>")
            elif isinstance(a, PlayEnvelope):
                out.append(f"[envelope {a.name}]")
        return out


def started(mailbox: list[tuple[str, bool]] = MAILBOX, **settings: object) -> Driver:
    driver = Driver(Voicebox(VoiceboxSettings(**settings), mailbox))  # type: ignore[arg-type]
    driver.send(Started())
    return driver


def test_counts_are_spoken() -> None:
    assert count_prompts(2, 1) == (
        "you_have",
        "number:2",
        "new_messages",
        "and",
        "number:1",
        "saved_message",
    )
    assert count_prompts(1, 0) == ("you_have", "number:1", "new_message")
    assert count_prompts(0, 3) == ("you_have", "number:3", "saved_messages")


def test_new_messages_newest_first_then_saved_and_read_when_played() -> None:
    d = started()
    d.finish_playback()  # summary
    d.finish_playback()  # "first message"
    assert d.actions[-2:] == [PlayMessage("400+d", d.actions[-2].mark), MarkRead("400+d")]  # type: ignore[union-attr]
    for _ in range(3):
        d.finish_playback()  # the message ends: the menu
        d.send(Dtmf("6"))  # next
        d.finish_playback()  # "next message"
    d.finish_playback()
    assert d.played() == [
        "you_have number:2 new_messages and number:2 saved_messages",
        "first_message", "<400+d>", "message_menu",
        "next_message", "<200+b>", "message_menu",
        "next_message", "<300+c>", "message_menu",
        "next_message", "<100+a>", "message_menu",
    ]  # fmt: skip
    assert [a.name for a in d.actions if isinstance(a, MarkRead)] == ["400+d", "200+b"]


def test_no_messages() -> None:
    d = started([])
    d.finish_playback()
    assert d.played() == ["no_messages goodbye"]
    assert d.actions[-1] == EndCall()


def test_repeat_save_delete_envelope_help() -> None:
    d = started()
    d.finish_playback()
    d.finish_playback()  # first message playing: 400+d
    repeat = d.send(Dtmf("1"))  # repeat at once: stop, play again, no second MarkRead
    assert repeat[0] == StopPlayback()
    assert [type(a) for a in repeat[1:]] == [CancelTimer, PlayMessage]
    d.finish_playback()  # message ends, menu
    d.send(Dtmf("5"))  # envelope
    d.finish_playback()  # envelope done: menu again
    d.send(Dtmf("0"))  # help
    d.send(Dtmf("3"))  # delete 400+d
    assert DeleteMessage("400+d") in d.actions
    d.finish_playback()  # "deleted", then on to the next message
    d.finish_playback()  # "next message"
    d.send(Dtmf("2"))  # save 200+b (already read when it started)
    d.finish_playback()  # "saved", next
    assert d.played() == [
        "you_have number:2 new_messages and number:2 saved_messages",
        "first_message", "<400+d>", "<400+d>", "message_menu", "[envelope 400+d]",
        "message_menu", "message_help", "deleted", "next_message", "<200+b>", "saved",
        "next_message",
    ]  # fmt: skip


def test_previous_start_over_and_the_end() -> None:
    d = started([("1+x", True), ("2+y", True)])
    d.finish_playback()
    d.finish_playback()  # playing 2+y (newest)
    d.send(Dtmf("7"))  # previous at the first: the first again
    d.send(Dtmf("6"))  # next: 1+x
    d.finish_playback()
    d.send(Dtmf("6"))  # next past the last: "no more messages"
    assert d.box.state is State.END
    d.send(Dtmf("4"))  # start over
    d.finish_playback()
    assert d.played()[-4:] == ["<1+x>", "no_more_messages", "first_message", "<2+y>"]


def test_deleting_everything_ends_the_list() -> None:
    d = started([("1+x", False)])
    d.finish_playback()
    d.finish_playback()
    d.send(Dtmf("3"))
    d.finish_playback()  # "deleted"
    assert d.box.state is State.END
    d.send(Dtmf("4"))  # start over with nothing left
    assert d.box.state is State.END
    d.send(Dtmf("9"))  # anything else: goodbye
    d.finish_playback()
    assert d.actions[-1] == EndCall()


def test_pin_right_on_the_second_try() -> None:
    d = started(pin_required=True)
    assert d.played() == ["enter_pin"]
    for key in "12#":
        d.send(Dtmf(key))
    assert CheckPin("12") in d.actions
    d.send(PinChecked(ok=False))
    for key in "1234#":
        d.send(Dtmf(key))
    assert d.actions.count(CheckPin("1234")) == 1
    d.send(PinChecked(ok=True))
    assert d.played()[-1].startswith("you_have")


def test_three_wrong_pins_then_goodbye() -> None:
    d = started(pin_required=True)
    for _ in range(3):
        d.send(Dtmf("9"))
        d.send(Dtmf("#"))
        d.send(PinChecked(ok=False))
    assert d.played()[-1] == "wrong_pin goodbye"
    d.finish_playback()
    assert d.actions[-1] == EndCall()


def test_locked_mailbox_ends_at_once() -> None:
    d = started(pin_required=True)
    d.send(Dtmf("#"))
    d.send(PinChecked(ok=False, locked=True))
    assert d.played()[-1] == "wrong_pin goodbye"


def test_waiting_for_a_key_ends_every_waiting_state_with_goodbye() -> None:
    d = started()
    for _ in range(4):  # summary, "first message", the message, the menu prompt
        d.finish_playback()
    assert StartTimer("wait", 20.0) in d.actions
    d.send(Timeout("wait"))
    assert d.played()[-1] == "goodbye"
    d.finish_playback()
    assert d.actions[-1] == EndCall()
    pin = started(pin_required=True)
    pin.finish_playback()
    pin.send(Timeout("wait"))
    assert pin.box.state is State.GOODBYE


def test_keys_restart_the_wait_timer_during_pin_entry() -> None:
    d = started(pin_required=True)
    d.send(Dtmf("1"))
    assert d.actions[-2:] == [CancelTimer("wait"), StartTimer("wait", 20.0)]


def test_late_playback_reports_and_hang_up() -> None:
    d = started()
    d.send(PlaybackDone("summary-999"))  # not the current mark: ignored
    states = [d.box.state]
    d.send(Hangup())
    states.append(d.box.state)
    assert states == [State.SUMMARY, State.DONE]
    assert d.send(Dtmf("1")) == []


def test_impossible_event() -> None:
    box = Voicebox(VoiceboxSettings(), MAILBOX)
    with pytest.raises(AppError, match="PinChecked is not expected in state idle"):
        box.handle(PinChecked(ok=True))


def test_an_event_without_a_row_is_ignored() -> None:
    d = started()
    assert (State.SUMMARY, Key.DELETE) not in TABLE
    assert d.send(Dtmf("3")) == []  # keys do not act on the summary
    assert d.box.state is State.SUMMARY
    assert not any(isinstance(a, DeleteMessage) for a in d.actions)


def test_every_key_of_the_map_is_a_row_where_a_message_is_heard() -> None:
    for state in (State.MESSAGE, State.MENU, State.CONFIRM, State.ENVELOPE):
        for key in Key:
            assert ((state, key) in TABLE) is (key not in (Key.ENTER, Key.OTHER)), (state, key)
