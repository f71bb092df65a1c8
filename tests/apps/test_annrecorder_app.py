"""The annrecorder app as a pure state machine."""

from __future__ import annotations

import pytest

from media_worker.apps.annrecorder import TABLE, Annrecorder, AnnrecorderSettings, Key, State
from media_worker.apps.errors import AppError
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


def run(*events: Event, **settings: object) -> tuple[Annrecorder, list[Action]]:
    app = Annrecorder(AnnrecorderSettings(**settings))  # type: ignore[arg-type]
    actions: list[Action] = []
    for event in events:
        actions += app.handle(event)
    return app, actions


RECORDED = (
    Started(),
    Dtmf("5"),  # any key: record
    PlaybackDone("intro"),  # the interrupted intro reports late: ignored
    PlaybackDone("beep"),
    Dtmf("#"),  # any key: done
    RecordingStopped(4.0, StopReason.STOPPED),
)


def test_record_review_keep() -> None:
    app, actions = run(*RECORDED, PlaybackDone("review"), Dtmf("1"), PlaybackDone("bye"))
    assert actions == [
        Play(
            ("greeting_welcome", "greeting_current", "greeting", "greeting_record_prompt"), "intro"
        ),
        StopPlayback(),
        Play(("beep",), "beep"),
        Record(120.0),
        StopRecording(),
        Play(("recording",), "review"),
        Play(("greeting_confirm",), "confirm"),
        StopPlayback(),
        SaveGreeting(),
        Play(("greeting_saved", "goodbye"), "bye"),
        EndCall(),
    ]
    assert app.saved


def test_record_again_then_keep_during_review() -> None:
    app, actions = run(
        *RECORDED,
        Dtmf("2"),
        PlaybackDone("beep"),
        RecordingStopped(120.0, StopReason.MAX_DURATION),
        Dtmf("1"),
    )
    assert actions.count(Record(120.0)) == 2
    assert SaveGreeting() in actions
    assert app.state is State.GOODBYE


def test_silence_at_the_confirm_keeps_it_like_sems() -> None:
    _app, actions = run(*RECORDED, PlaybackDone("review"), PlaybackDone("confirm"), Timeout("wait"))
    assert StartTimer("wait", 20.0) in actions
    assert SaveGreeting() in actions
    _, strict = run(
        *RECORDED,
        PlaybackDone("review"),
        PlaybackDone("confirm"),
        Timeout("wait"),
        keep_on_silence=False,
    )
    assert SaveGreeting() not in strict


@pytest.mark.parametrize("cut", [1, 3, 5, 7])
def test_hanging_up_keeps_nothing(cut: int) -> None:
    events = (*RECORDED, PlaybackDone("review"))[:cut]
    app, actions = run(*events, Hangup())
    assert SaveGreeting() not in actions
    assert app.state is State.DONE


def test_no_key_after_the_intro_says_goodbye() -> None:
    app, actions = run(Started(), PlaybackDone("intro"), Timeout("wait"), PlaybackDone("bye"))
    assert actions[-2:] == [Play(("goodbye",), "bye"), EndCall()]
    assert not app.saved


def test_impossible_event() -> None:
    with pytest.raises(AppError, match="RecordingStopped is not expected in state idle"):
        Annrecorder(AnnrecorderSettings()).handle(RecordingStopped(1, StopReason.STOPPED))


def test_an_event_without_a_row_is_ignored() -> None:
    app, _ = run(*RECORDED)  # the recording plays back
    assert (State.REVIEW, Key.OTHER) not in TABLE
    assert app.handle(Dtmf("9")) == []
    assert app.state is State.REVIEW


def test_a_key_after_the_prompt_cancels_the_wait_so_it_cannot_fire_later() -> None:
    app, actions = run(Started(), PlaybackDone("intro"), Dtmf("5"))
    assert actions[1:3] == [StartTimer("wait", 20.0), CancelTimer("wait")]
    late: list[Event] = [PlaybackDone("beep"), Dtmf("#"), RecordingStopped(4.0, StopReason.STOPPED)]
    late += [PlaybackDone("review"), Timeout("wait")]  # during "press 1 to keep": not silence
    assert [a for e in late for a in app.handle(e)] == [
        Record(120.0),
        StopRecording(),
        Play(("recording",), "review"),
        Play(("greeting_confirm",), "confirm"),
    ]
    assert app.state is State.CONFIRM
    assert not app.saved
