"""The app drivers' timer rules, in process: a media session fed by the test stands in
for RTP and the phone (no endpoint: nothing is played, so no prompt ever ends by itself).

A recording outlives the inactivity time; keys the app ignores do not keep a call up;
the wall-clock limit ends any call, delivering a recording in progress."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import media_worker
from media_worker import session as media
from media_worker.apps import annrecorder_call, service, timers, voicebox_call
from media_worker.apps.annrecorder_call import AnnrecorderCall
from media_worker.apps.params import AppName, AppRequest, Mode
from media_worker.apps.service import ServiceSettings, VoicemailCall, VoicemailService
from media_worker.apps.voicebox_call import VoiceboxCall
from media_worker.mail.outbox import Outbox, SmtpSettings
from media_worker.mail.template import load_templates
from media_worker.prompts import PromptLibrary
from media_worker.worker import ActiveCall, CallLog
from storage import Storage, open_storage

TEMPLATES = Path(media_worker.__file__).parent / "templates"
SOUND = (3000).to_bytes(2, "little", signed=True) * 800  # 0.1 s, far from silence


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Storage]:
    async with open_storage(f"fs://{tmp_path}/spool") as opened:
        yield opened


def make_service(tmp_path: Path, store: Storage, **settings: Any) -> VoicemailService:
    outbox = Outbox(tmp_path / "outbox", SmtpSettings(port=9))
    return VoicemailService(
        ServiceSettings(journal_dir=tmp_path / "journal", **settings),
        store,
        outbox,
        load_templates(TEMPLATES),
        PromptLibrary(),
    )


def make_call() -> ActiveCall:
    log = CallLog(logging.getLogger("voicemail.test"), {"call_id": "c1"})
    return ActiveCall(SimpleNamespace(call_id="c1"), media.MediaSession(), log, None)  # type: ignore[arg-type]


def request(app: AppName = "voicemail", mode: Mode = "box", pin: str | None = None) -> AppRequest:
    return AppRequest(
        app=app, user="bob", domain="lab.example", sender="alice", mode=mode,
        email=None, language=None, typ="vm", pin=pin,
    )  # fmt: skip


async def talk(call: ActiveCall, seconds: float, key: str | None = None) -> None:
    """Send sound in real time (and press ``key`` with every 0.1 s of it)."""
    for _ in range(round(seconds * 10)):
        call.media.on_audio(SOUND)
        if key is not None:
            call.media.on_digit(key)
        await asyncio.sleep(0.1)


async def press(call: ActiveCall, key: str, seconds: float) -> None:
    for _ in range(round(seconds * 20)):
        call.media.on_digit(key)
        await asyncio.sleep(0.05)


def to_the_beep(call: ActiveCall) -> None:
    for mark in ("greeting", "beep"):
        call.media.events.put_nowait(media.PlaybackDone(mark))


async def test_a_recording_runs_past_the_inactivity_time_to_its_maximum(
    tmp_path: Path, store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "INACTIVITY", 0.3)
    app = make_service(tmp_path, store, max_record_time=1.5, drop_silent=False)
    call = make_call()
    voicemail = VoicemailCall(app, call, request())
    running = asyncio.create_task(voicemail.run())
    to_the_beep(call)
    await talk(call, 1.6)  # no event at all for 1.5 s: five times the inactivity time
    await asyncio.sleep(0.05)
    assert voicemail.app.state.value == "final-beep"
    call.media.events.put_nowait(media.PlaybackDone("final-beep"))
    outcome = await asyncio.wait_for(running, 2)
    assert outcome.startswith("1.5 s message stored as"), outcome
    assert (await store.count("lab.example", "bob")).new == 1


async def test_ignored_keys_do_not_keep_a_call_up(
    tmp_path: Path, store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service, "INACTIVITY", 0.3)
    call = make_call()
    voicemail = VoicemailCall(make_service(tmp_path, store), call, request())
    started = time.monotonic()
    keys = asyncio.create_task(press(call, "5", 3.0))  # "5" means nothing in the greeting
    try:
        assert await asyncio.wait_for(voicemail.run(), 2) == "inactivity timeout"
    finally:
        keys.cancel()
    assert time.monotonic() - started < 1.0


async def test_the_call_time_limit_ends_a_recording_call_and_keeps_the_message(
    tmp_path: Path, store: Storage
) -> None:
    app = make_service(
        tmp_path,
        store,
        max_call_time=1.5,
        min_record_time=0.5,
        max_record_time=60,
        drop_silent=False,
    )
    call = make_call()
    voicemail = VoicemailCall(app, call, request())
    started = time.monotonic()
    running = asyncio.create_task(voicemail.run())
    to_the_beep(call)
    caller = asyncio.create_task(talk(call, 5.0, key="5"))  # keys and sound: not a hangup
    try:
        outcome = await asyncio.wait_for(running, 3)
    finally:
        caller.cancel()
    assert 1.5 <= time.monotonic() - started < 2.0
    assert re.match(r"call time limit, 1\.[45] s message stored as ", outcome), outcome
    assert (await store.count("lab.example", "bob")).new == 1
    assert list((tmp_path / "journal").glob("*.meta")) == []


async def test_a_recording_without_audio_is_stopped_after_its_maximum(
    tmp_path: Path, store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(timers, "RECORD_GRACE", 0.2)
    app = make_service(tmp_path, store, max_record_time=0.5)
    call = make_call()
    voicemail = VoicemailCall(app, call, request())
    running = asyncio.create_task(voicemail.run())
    to_the_beep(call)  # then nothing: the caller sends no RTP
    assert await asyncio.wait_for(running, 2) == "dropped: 0.0 s is shorter than 1 s"


async def test_pin_digits_without_end_meet_the_call_time_limit(
    tmp_path: Path, store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(voicebox_call, "INACTIVITY", 0.5)
    app = make_service(tmp_path, store, max_call_time=1.0)
    call = make_call()
    keys = asyncio.create_task(press(call, "1", 5.0))  # digits of a PIN that never ends
    try:
        outcome = await asyncio.wait_for(
            VoiceboxCall(app, call, request("voicebox", pin="9")).run(), 3
        )
    finally:
        keys.cancel()
    assert outcome == "call time limit"


async def test_an_annrecorder_recording_outlives_the_inactivity_time(
    tmp_path: Path, store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(annrecorder_call, "INACTIVITY", 0.3)
    call = make_call()
    recorder = AnnrecorderCall(make_service(tmp_path, store), call, request("annrecorder"))
    running = asyncio.create_task(recorder.run())
    await asyncio.sleep(0.05)
    call.media.on_digit("1")  # "press any key to record"
    call.media.events.put_nowait(media.PlaybackDone("beep"))
    await talk(call, 1.2)
    for step in ("1", "review", "confirm", "1", "bye"):  # stop, review, keep it, goodbye
        if step == "1":
            call.media.on_digit(step)
        else:
            call.media.events.put_nowait(media.PlaybackDone(step))
        await asyncio.sleep(0.05)
    outcome = await asyncio.wait_for(running, 2)
    assert outcome == "greeting vm saved (1 s)", outcome
    greeting = await store.get_greeting("lab.example", "bob", "vm")
    assert greeting is not None
    assert len(greeting) > 16000
