"""A real worker answering baresip over UDP and TCP: audio both ways, DTMF, hang-ups,
CANCEL and hold. The audio is checked by cross-correlation against its source."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from media_worker.application import ActiveCall
from media_worker.audio import read_wav
from media_worker.media import PlayItem
from media_worker.session import Dtmf, Hangup, MediaEvent, PlaybackDone
from media_worker.sip.actions import Rejection
from media_worker.sip.message import Request
from tests.integration.conftest import PROMPT, WorkerFactory
from tests.support.audio_match import match, pcm_samples, read_pcm
from tests.support.baresip import Baresip
from tests.support.procs import eventually

pytestmark = pytest.mark.integration


class RecordingApp:
    """Plays the prompt, records the caller, collects events until hang-up.

    With ``hang_up_after_prompt`` it ends the call itself once the prompt has played.
    """

    def __init__(self, hang_up_after_prompt: bool = False) -> None:
        self.hang_up_after_prompt = hang_up_after_prompt
        self.recorded = bytearray()
        self.events: list[MediaEvent] = []
        self.done = asyncio.Event()
        self.calls: list[ActiveCall] = []

    def admit(self, invite: Request) -> Rejection | None:
        return None

    async def run(self, call: ActiveCall, admitted: None) -> None:
        self.calls.append(call)
        try:
            call.media.play([PlayItem("prompt", read_wav(PROMPT.read_bytes()).data)])
            call.media.record(self.recorded.extend, 60)
            while (event := await call.media.next_event(30)) is not None:
                self.events.append(event)
                if isinstance(event, Hangup):
                    return
                if isinstance(event, PlaybackDone) and self.hang_up_after_prompt:
                    return
        finally:
            self.done.set()

    @property
    def digits(self) -> list[str]:
        return [e.digit for e in self.events if isinstance(e, Dtmf)]


async def call_and_check_audio(
    start_worker: WorkerFactory,
    phones: Callable[..., Baresip],
    caller_speech: Path,
    transport: str,
) -> None:
    app = RecordingApp()
    worker = await start_worker(app)
    phone = phones(caller_speech, transport=transport)
    params = ";transport=tcp" if transport == "tcp" else ""
    phone.dial(f"sip:vm@127.0.0.1:{worker.port}{params}")
    await phone.wait_for("Call established")
    for digit in "15#":
        await asyncio.sleep(0.4)
        phone.command(digit)
    # baresip hangs up by itself when its source file ends.
    await asyncio.wait_for(app.done.wait(), 20)
    await phone.wait_for("terminated")
    assert app.digits == ["1", "5", "#"]
    assert isinstance(app.events[-1], Hangup)
    assert app.events[-1].reason == "bye"

    # What the worker recorded is what baresip played ...
    speech = read_pcm(caller_speech)
    lag, score = match(speech, pcm_samples(bytes(app.recorded)))
    assert score > 0.9, (lag, score)
    # baresip pauses its file while it sends a key's tone events: allow for that.
    recorded_s, speech_s = len(app.recorded) / 16000, len(speech) / 8000
    assert speech_s - 0.1 < recorded_s < speech_s + 0.3 * len(app.digits) + 0.3
    # ... and what baresip heard is the prompt the worker played.
    phone.stop()
    lag, score = match(read_pcm(PROMPT)[: 8000 * 3], read_pcm(phone.dump("dec")))
    assert score > 0.9, (lag, score)


async def test_udp_call_audio_both_ways_and_dtmf(
    start_worker: WorkerFactory, phones: Callable[..., Baresip], caller_speech: Path
) -> None:
    await call_and_check_audio(start_worker, phones, caller_speech, "udp")


async def test_tcp_call_audio_both_ways_and_dtmf(
    start_worker: WorkerFactory, phones: Callable[..., Baresip], caller_speech: Path
) -> None:
    await call_and_check_audio(start_worker, phones, caller_speech, "tcp")


@pytest.fixture
def long_speech(caller_speech: Path, tmp_path: Path) -> Path:
    """The caller's speech followed by 20 s of silence: a caller who stays on the line."""
    import subprocess

    out = tmp_path / "long.wav"
    subprocess.run(["sox", str(caller_speech), str(out), "pad", "0", "20"], check=True)
    return out


async def test_worker_hangs_up_with_bye(
    start_worker: WorkerFactory, phones: Callable[..., Baresip], long_speech: Path
) -> None:
    app = RecordingApp(hang_up_after_prompt=True)
    worker = await start_worker(app)
    phone = phones(long_speech)
    phone.dial(f"sip:vm@127.0.0.1:{worker.port}")
    await asyncio.wait_for(app.done.wait(), 20)
    await phone.wait_for("terminated")
    assert not any(isinstance(e, Hangup) for e in app.events)  # we ended it, not the caller
    assert isinstance(app.events[-1], PlaybackDone)
    assert worker.core.calls == {}


async def test_cancel_before_answer(
    start_worker: WorkerFactory,
    phones: Callable[..., Baresip],
    long_speech: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", "voicemail.worker")
    app = RecordingApp()
    worker = await start_worker(app, ring_time=10)
    phone = phones(long_speech)
    phone.dial(f"sip:vm@127.0.0.1:{worker.port}")
    await phone.wait_for("180 Ringing")
    assert len(worker._calls) == 1
    phone.hangup()  # baresip CANCELs the unanswered INVITE
    await eventually(lambda: not worker._calls)
    assert "call ended: cancel" in caplog.text
    assert app.calls == []
    assert worker.core.calls == {}


async def test_hold_and_resume_by_reinvite(
    start_worker: WorkerFactory, phones: Callable[..., Baresip], long_speech: Path
) -> None:
    app = RecordingApp()
    worker = await start_worker(app)
    phone = phones(long_speech)
    phone.dial(f"sip:vm@127.0.0.1:{worker.port}")
    await phone.wait_for("Call established")
    await asyncio.sleep(0.3)
    [state] = worker._calls.values()
    assert state.endpoint is not None
    phone.command("x")  # hold: re-INVITE with a=sendonly
    await eventually(
        lambda: state.endpoint is not None and state.endpoint.params.direction.value == "recvonly"
    )
    phone.command("X")  # resume: re-INVITE with a=sendrecv
    await eventually(
        lambda: state.endpoint is not None and state.endpoint.params.direction.value == "sendrecv"
    )
    phone.hangup()
    await asyncio.wait_for(app.done.wait(), 10)
    assert isinstance(app.events[-1], Hangup)


async def test_untrusted_source_is_refused(
    start_worker: WorkerFactory, phones: Callable[..., Baresip], long_speech: Path
) -> None:
    app = RecordingApp()
    worker = await start_worker(app, trusted=("10.0.0.0/8",))
    phone = phones(long_speech)
    phone.dial(f"sip:vm@127.0.0.1:{worker.port}")
    await phone.wait_for("403 Forbidden")
    assert app.calls == []
    assert worker.core.calls == {}
