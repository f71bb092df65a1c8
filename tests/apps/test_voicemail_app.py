"""The voicemail app as a pure state machine: every mode, key and hang-up."""

from __future__ import annotations

import pytest

from kemi.app_param import Mode
from media_worker.apps.errors import AppError
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
    Timeout,
)
from media_worker.apps.voicemail import TABLE, Key, State, Voicemail, VoicemailSettings


def run(mode: Mode, *events: Event) -> tuple[Voicemail, list[Action]]:
    app = Voicemail(VoicemailSettings(mode, max_record_time=60))
    actions: list[Action] = []
    for event in events:
        actions += app.handle(event)
    return app, actions


GREETED = (Started(), PlaybackDone("greeting"), PlaybackDone("beep"))


@pytest.mark.parametrize("mode", ["voicemail", "box", "both"])
def test_recording_modes_caller_hangs_up(mode: Mode) -> None:
    app, actions = run(mode, *GREETED, RecordingStopped(12.5, StopReason.HANGUP), Hangup())
    assert actions == [
        Play(("greeting",), "greeting"),
        Play(("beep",), "beep"),
        Record(60),
        DeliverMessage(),
    ]
    assert app.state is State.DONE
    assert app.recorded


def test_ann_plays_the_greeting_and_hangs_up() -> None:
    app, actions = run("ann", Started(), Dtmf("#"), PlaybackDone("greeting"))
    assert actions == [Play(("greeting",), "greeting"), EndCall()]
    assert not app.recorded


def test_maximum_length_beeps_and_hangs_up() -> None:
    app, actions = run(
        "both", *GREETED, RecordingStopped(60, StopReason.MAX_DURATION), PlaybackDone("final-beep")
    )
    assert actions[-3:] == [DeliverMessage(), Play(("beep",), "final-beep"), EndCall()]
    assert app.state is State.DONE


def test_caller_hangs_up_during_the_final_beep() -> None:
    app, actions = run("box", *GREETED, RecordingStopped(60, StopReason.MAX_DURATION), Hangup())
    assert actions[-2:] == [DeliverMessage(), Play(("beep",), "final-beep")]
    assert app.state is State.DONE


def test_pound_skips_the_greeting_and_ends_the_message() -> None:
    _app, actions = run(
        "box",
        Started(),
        Dtmf("5"),  # other keys do nothing
        Dtmf("#"),
        PlaybackDone("greeting"),
        PlaybackDone("beep"),
        Dtmf("1"),
        Dtmf("#"),
        RecordingStopped(3.0, StopReason.STOPPED),
    )
    assert actions == [
        Play(("greeting",), "greeting"),
        StopPlayback(),
        Play(("beep",), "beep"),
        Record(60),
        StopRecording(),
        DeliverMessage(),
        Play(("goodbye",), "goodbye"),
        EndCall(),
    ]


@pytest.mark.parametrize(
    "events",
    [
        (Hangup(),),
        (Started(), Hangup()),
        (Started(), PlaybackDone("greeting"), Hangup()),
    ],
)
def test_hang_up_before_recording_records_nothing(events: tuple[Event, ...]) -> None:
    app, actions = run("both", *events)
    assert DeliverMessage() not in actions
    assert app.state is State.DONE
    assert not app.recorded


def test_late_events_after_the_end_are_ignored() -> None:
    app, _ = run("box", *GREETED, RecordingStopped(2, StopReason.HANGUP))
    assert app.handle(Hangup()) == []
    assert app.handle(Timeout("inactivity")) == []


def test_an_impossible_event_names_state_and_event() -> None:
    app = Voicemail(VoicemailSettings("box"))
    with pytest.raises(AppError, match="RecordingStopped is not expected in state idle"):
        app.handle(RecordingStopped(1, StopReason.HANGUP))


def test_an_event_without_a_row_is_ignored() -> None:
    app, _ = run("box", Started(), PlaybackDone("greeting"))
    assert (State.BEEP, Key.SKIP) not in TABLE
    assert app.handle(Dtmf("#")) == []
    assert app.state is State.BEEP
