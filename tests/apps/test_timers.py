"""The timer rules of a call, as a pure object (time is an argument)."""

from __future__ import annotations

from media_worker.apps.timers import DRAIN, POLL, RECORD_GRACE, CallTimers, Expiry


def timers(inactivity: float = 30.0, max_call_time: float = 1800.0) -> CallTimers:
    return CallTimers(inactivity, max_call_time, started=100.0)


def test_waiting_for_the_caller_ends_after_the_inactivity_time() -> None:
    t = timers()
    assert t.wait(100.0, playing=False) == 30.0
    assert t.check(129.9, playing=False) is None
    assert t.check(130.0, playing=False) is Expiry.INACTIVITY


def test_activity_restarts_the_inactivity_time() -> None:
    t = timers()
    t.activity(120.0)
    assert t.check(149.0, playing=False) is None
    assert t.wait(140.0, playing=False) == 10.0
    assert t.check(150.0, playing=False) is Expiry.INACTIVITY


def test_a_recording_is_not_idleness_and_ends_by_its_own_length() -> None:
    t = timers()
    t.recording(101.0, max_seconds=120.0)
    assert t.wait(101.0, playing=False) == 120.0 + RECORD_GRACE
    for now in range(102, 221 + int(RECORD_GRACE)):  # far past the inactivity time
        assert t.check(float(now), playing=False) is None
    t.recording_over(230.0)
    assert t.check(259.0, playing=False) is None  # inactivity counts from the end
    assert t.check(260.0, playing=False) is Expiry.INACTIVITY


def test_a_recording_without_audio_is_stopped_after_its_maximum() -> None:
    t = timers()
    t.recording(100.0, max_seconds=10.0)
    assert t.check(110.0 + RECORD_GRACE, playing=False) is Expiry.RECORDING
    assert t.record_until is None  # reported once
    assert t.check(110.0 + RECORD_GRACE, playing=False) is None


def test_playing_holds_the_inactivity_time_and_polls_for_its_end() -> None:
    t = timers()
    for now in range(100, 200):  # a 100 s message being played
        assert t.check(float(now), playing=True) is None
    assert t.wait(199.0, playing=True) == POLL
    assert t.check(228.0, playing=False) is None  # 30 s after the playback's end
    assert t.check(229.0, playing=False) is Expiry.INACTIVITY


def test_the_wall_clock_limit_ends_any_call_once() -> None:
    t = timers(max_call_time=60.0)
    t.recording(101.0, max_seconds=120.0)
    assert t.wait(150.0, playing=False) == 10.0
    assert t.check(159.0, playing=True) is None
    assert t.check(160.0, playing=True) is Expiry.CALL_TIME
    assert t.ended
    assert t.check(161.0, playing=False) is None
    assert t.wait(161.0, playing=False) == DRAIN  # to take the events the hangup causes


def test_activity_never_postpones_the_wall_clock_limit() -> None:
    t = timers(inactivity=5.0, max_call_time=12.0)
    for now in range(100, 112):
        t.activity(float(now))
        assert t.check(float(now), playing=False) is None
    assert t.wait(111.0, playing=False) == 1.0
    assert t.check(112.0, playing=False) is Expiry.CALL_TIME
