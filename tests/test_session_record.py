"""Recording into a sink that opens late: nothing the caller says after the beep is lost,
and the limits count it."""

from __future__ import annotations

from media_worker.session import MediaSession, RecordingStopped, StopReason


def frame(n: int) -> bytes:
    return bytes([n]) * 320  # 20 ms of 16-bit PCM


def test_audio_before_the_sink_opens_comes_first_in_order() -> None:
    session = MediaSession()
    hand_over = session.record_early(10.0)
    session.on_audio(frame(1))
    session.on_audio(frame(2))  # the journal's files are still being created
    got: list[bytes] = []
    hand_over(got.append)
    session.on_audio(frame(3))
    assert b"".join(got) == frame(1) + frame(2) + frame(3)
    session.stop_recording()
    session.on_audio(frame(4))
    assert b"".join(got) == frame(1) + frame(2) + frame(3)


def test_a_hang_up_while_the_sink_opens_keeps_what_was_said() -> None:
    session = MediaSession()
    hand_over = session.record_early(10.0)
    session.on_audio(frame(1))
    session.hangup("BYE")
    got: list[bytes] = []
    hand_over(got.append)
    session.on_audio(frame(2))  # the endpoint is stopped; nothing more is recorded
    assert got == [frame(1)]
    stopped = session.events.get_nowait()
    assert isinstance(stopped, RecordingStopped)
    assert stopped.reason is StopReason.HANGUP


def test_the_maximum_counts_the_early_audio() -> None:
    session = MediaSession()
    hand_over = session.record_early(0.05)  # 800 bytes
    session.on_audio(frame(1))
    session.on_audio(frame(2))
    got: list[bytes] = []
    hand_over(got.append)
    session.on_audio(frame(3))
    assert b"".join(got) == frame(1) + frame(2) + frame(3)[:160]
    stopped = session.events.get_nowait()
    assert isinstance(stopped, RecordingStopped)
    assert stopped.reason is StopReason.MAX_DURATION
