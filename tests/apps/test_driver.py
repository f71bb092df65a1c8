"""The app driver in process: each app through the real driver, the real MediaSession
(without an RTP endpoint) and a real fs store; the test is the phone.

A played item is reported done at once, as a player with nothing to send would; keys,
audio and the hangup go in through the session's own entry points."""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import media_worker
from kemi.app_param import AppName, Mode
from media_worker.application import ActiveCall, CallLog
from media_worker.apps.annrecorder_call import AnnrecorderCall
from media_worker.apps.context import AppContext, Inactivity, ServiceSettings
from media_worker.apps.params import AppRequest
from media_worker.apps.pin import hash_pin
from media_worker.apps.service import VoicemailService
from media_worker.apps.voicebox_call import VoiceboxCall
from media_worker.apps.voicemail_call import VoicemailCall
from media_worker.audio import write_wav
from media_worker.config import AppsConfig, VoicemailConfig
from media_worker.mail.outbox import Outbox, SmtpSettings
from media_worker.mail.template import load_templates
from media_worker.media import PlayItem
from media_worker.prompts import PromptLibrary
from media_worker.session import MediaSession, Sink
from storage import PinRecord, Storage, open_storage
from tests.support.procs import eventually

TEMPLATES = Path(media_worker.__file__).parent / "templates"
SOUND = (3000).to_bytes(2, "little", signed=True) * 8000  # 1 s, far from silence
PIN = "4711"


class Phone(MediaSession):
    """The real MediaSession; what the app plays is noted and (``auto_done``) reported
    done at once."""

    def __init__(self, auto_done: bool = True) -> None:
        super().__init__()
        self.auto_done = auto_done
        self.played: list[str] = []  # marks, in order
        self.audio: dict[str, bytes] = {}  # mark -> what was played under it
        self.recordings = 0  # Record actions carried out

    def play(self, items: list[PlayItem]) -> None:
        super().play(items)  # no endpoint: nothing is sent
        loop = asyncio.get_running_loop()
        for item in items:
            self.played.append(item.mark)
            self.audio[item.mark] = item.pcm
            if self.auto_done:
                loop.call_soon(self.on_played, item.mark, False)

    def record(self, sink: Sink, max_seconds: float) -> None:
        super().record(sink, max_seconds)
        self.recordings += 1

    async def heard(self, prefix: str) -> None:
        """Wait until the last thing played has a mark starting with ``prefix``."""
        await eventually(
            lambda: bool(self.played) and self.played[-1].startswith(prefix),
            2,
            lambda: str(self.played),
        )

    def press(self, keys: str) -> None:
        for key in keys:
            self.on_digit(key)


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


def make_call(media: MediaSession | None = None) -> ActiveCall:
    log = CallLog(logging.getLogger("voicemail.test"), {"call_id": "c1"})
    return ActiveCall(SimpleNamespace(call_id="c1"), media or Phone(), log)  # type: ignore[arg-type]


def request(app: AppName = "voicemail", mode: Mode = "box", pin: str | None = None) -> AppRequest:
    return AppRequest(
        app=app, user="bob", domain="lab.example", sender="alice", mode=mode,
        email=None, language=None, typ="vm", pin=pin,
    )  # fmt: skip


def phone_of(call: ActiveCall) -> Phone:
    assert isinstance(call.media, Phone)
    return call.media


async def until(condition: Callable[[], bool]) -> None:
    await eventually(condition, 2)


# ----- voicemail -----


async def test_voicemail_records_and_delivers_on_hangup(
    tmp_path: Path, store: Storage, caplog: pytest.LogCaptureFixture
) -> None:
    service = make_service(tmp_path, store)
    call = make_call()
    phone = phone_of(call)
    running = asyncio.create_task(service.run(call, request()))
    await until(lambda: phone.recordings == 1)  # greeting, beep: recording
    assert phone.played == ["greeting", "beep"]
    phone.on_audio(SOUND + SOUND[: len(SOUND) // 2])
    phone.hangup("bye")
    with caplog.at_level(logging.INFO, "voicemail"):
        await asyncio.wait_for(running, 2)
    assert (await store.count("lab.example", "bob")).new == 1
    assert list((tmp_path / "journal").glob("*.meta")) == []
    assert service.context.journals == set()
    assert "voicemail bob@lab.example mode box: 1.5 s message stored as " in caplog.text


async def test_voicemail_writes_the_recording_out_every_second(
    tmp_path: Path, store: Storage
) -> None:
    call = make_call()
    phone = phone_of(call)
    voicemail = VoicemailCall(make_service(tmp_path, store).context, call, request())
    running = asyncio.create_task(voicemail.run())
    await until(lambda: phone.recordings == 1)
    phone.on_audio(SOUND)
    (pcm,) = (tmp_path / "journal").glob("*.pcm")
    await until(lambda: pcm.stat().st_size == len(SOUND))  # before the call ends
    phone.on_digit("#")  # ends the message: goodbye, then the call
    outcome = await asyncio.wait_for(running, 2)
    assert outcome.startswith("1.0 s message stored as"), outcome
    assert phone.played[-1] == "goodbye"


async def test_voicemail_announcement_only(tmp_path: Path, store: Storage) -> None:
    call = make_call()
    voicemail = VoicemailCall(make_service(tmp_path, store).context, call, request(mode="ann"))
    assert await asyncio.wait_for(voicemail.run(), 2) == "announcement played"
    assert phone_of(call).played == ["greeting"]


# ----- voicebox -----


async def test_voicebox_pin_then_playback_and_delete(tmp_path: Path, store: Storage) -> None:
    older = await store.put_message(
        "lab.example", "bob", write_wav(SOUND), sender="carol", received_at=1
    )
    newer = await store.put_message(
        "lab.example", "bob", write_wav(SOUND[:8000]), sender="dave", received_at=2
    )
    stored = hash_pin(PIN)
    await store.update_pin("lab.example", "bob", lambda record: PinRecord(stored))
    call = make_call()
    phone = phone_of(call)
    voicebox = VoiceboxCall(make_service(tmp_path, store).context, call, request("voicebox"))
    running = asyncio.create_task(voicebox.run())
    await phone.heard("pin")
    phone.press(PIN + "#")
    await phone.heard("menu")  # summary, "first message", the newest message, its menu
    played = [mark.rpartition("-")[0] for mark in phone.played]
    assert played == ["pin", "summary", "intro", "message", "menu"]
    assert len(phone.audio[phone.played[3]]) == len(SOUND[:8000])  # the newer one
    phone.press("3")  # delete it: "deleted", "next message", the older one
    await until(lambda: phone.played[-1] != phone.played[4] and phone.played[-1][:4] == "menu")
    assert len(phone.audio[phone.played[-2]]) == len(SOUND)
    phone.hangup("bye")
    assert await asyncio.wait_for(running, 2) == "messages deleted"
    listing = await store.list_mailbox("lab.example", "bob")
    assert [(m.name, m.new) for m in listing] == [(older, False)]
    assert newer != older


async def test_voicebox_wrong_pins_lock_out(tmp_path: Path, store: Storage) -> None:
    stored = hash_pin(PIN)
    await store.update_pin("lab.example", "bob", lambda record: PinRecord(stored))
    call = make_call()
    phone = phone_of(call)
    voicebox = VoiceboxCall(make_service(tmp_path, store).context, call, request("voicebox"))
    running = asyncio.create_task(voicebox.run())
    for _ in range(3):
        await phone.heard("pin")
        phone.played.clear()
        phone.press("0000#")
    assert await asyncio.wait_for(running, 2) == "caller hung up"  # goodbye, then the BYE
    assert phone.played[-1].startswith("bye")
    assert len((await store.get_pin("lab.example", "bob")).failures) == 3


# ----- annrecorder -----


async def test_annrecorder_records_and_keeps_a_greeting(tmp_path: Path, store: Storage) -> None:
    call = make_call()
    phone = phone_of(call)
    recorder = AnnrecorderCall(make_service(tmp_path, store).context, call, request("annrecorder"))
    running = asyncio.create_task(recorder.run())
    await phone.heard("intro")
    phone.press("1")  # "press any key to record": beep, then recording
    await until(lambda: phone.recordings == 1)
    phone.on_audio(SOUND * 2)
    phone.press("1")  # stop: the recording is played back, then "1 to keep"
    await phone.heard("confirm")
    assert phone.audio["review"] == SOUND * 2
    phone.press("1")
    assert await asyncio.wait_for(running, 2) == "greeting vm saved (2 s)"
    assert phone.played[-1] == "bye"
    greeting = await store.get_greeting("lab.example", "bob", "vm")
    assert greeting is not None
    assert len(greeting) > len(SOUND * 2)


async def test_annrecorder_hangup_while_recording_keeps_nothing(
    tmp_path: Path, store: Storage
) -> None:
    call = make_call()
    phone = phone_of(call)
    recorder = AnnrecorderCall(make_service(tmp_path, store).context, call, request("annrecorder"))
    running = asyncio.create_task(recorder.run())
    await phone.heard("intro")
    phone.press("1")
    await until(lambda: phone.recordings == 1)
    phone.on_audio(SOUND)
    phone.hangup("bye")
    assert await asyncio.wait_for(running, 2) == "greeting unchanged"
    assert await store.get_greeting("lab.example", "bob", "vm") is None


# ----- the time rules (no prompt ever ends by itself below: a plain MediaSession) -----


def quick(**inactivity: float) -> dict[str, Any]:
    return {"inactivity": Inactivity(**inactivity)}


async def talk(call: ActiveCall, seconds: float, key: str | None = None) -> None:
    """Send sound in real time (and press ``key`` with every 0.1 s of it)."""
    for _ in range(round(seconds * 10)):
        call.media.on_audio(SOUND[:1600])
        if key is not None:
            call.media.on_digit(key)
        await asyncio.sleep(0.1)


async def press(call: ActiveCall, key: str, seconds: float) -> None:
    for _ in range(round(seconds * 20)):
        call.media.on_digit(key)
        await asyncio.sleep(0.05)


def to_the_beep(call: ActiveCall) -> None:
    for mark in ("greeting", "beep"):
        call.media.on_played(mark, False)


def context(tmp_path: Path, store: Storage, **settings: Any) -> AppContext:
    return make_service(tmp_path, store, **settings).context


async def test_a_recording_runs_past_the_inactivity_time_to_its_maximum(
    tmp_path: Path, store: Storage
) -> None:
    ctx = context(
        tmp_path,
        store,
        voicemail=VoicemailConfig(max_record_time=1.5),
        drop_silent=False,
        **quick(voicemail=0.3),
    )
    call = make_call(MediaSession())
    voicemail = VoicemailCall(ctx, call, request())
    running = asyncio.create_task(voicemail.run())
    to_the_beep(call)
    await talk(call, 1.6)  # no event at all for 1.5 s: five times the inactivity time
    await until(lambda: voicemail.app.state.value == "final-beep")
    call.media.on_played("final-beep", False)
    outcome = await asyncio.wait_for(running, 2)
    assert outcome.startswith("1.5 s message stored as"), outcome
    assert (await store.count("lab.example", "bob")).new == 1


async def test_ignored_keys_do_not_keep_a_call_up(tmp_path: Path, store: Storage) -> None:
    call = make_call(MediaSession())
    voicemail = VoicemailCall(context(tmp_path, store, **quick(voicemail=0.3)), call, request())
    started = asyncio.get_running_loop().time()
    keys = asyncio.create_task(press(call, "5", 3.0))  # "5" means nothing in the greeting
    try:
        assert await asyncio.wait_for(voicemail.run(), 2) == "inactivity timeout"
    finally:
        keys.cancel()
    assert asyncio.get_running_loop().time() - started < 1.0


async def test_the_call_time_limit_ends_a_recording_call_and_keeps_the_message(
    tmp_path: Path, store: Storage
) -> None:
    ctx = context(
        tmp_path,
        store,
        apps=AppsConfig(max_call_time=1.5),
        voicemail=VoicemailConfig(min_record_time=0.5, max_record_time=60),
        drop_silent=False,
    )
    call = make_call(MediaSession())
    voicemail = VoicemailCall(ctx, call, request())
    started = asyncio.get_running_loop().time()
    running = asyncio.create_task(voicemail.run())
    to_the_beep(call)
    caller = asyncio.create_task(talk(call, 5.0, key="5"))  # keys and sound: not a hangup
    try:
        outcome = await asyncio.wait_for(running, 3)
    finally:
        caller.cancel()
    # The limit never fires early; how much audio a loaded machine fed in by then varies.
    assert asyncio.get_running_loop().time() - started >= 1.5
    found = re.match(r"call time limit, (\d+\.\d) s message stored as ", outcome)
    assert found, outcome
    assert 0.5 <= float(found.group(1)) <= 1.5
    assert (await store.count("lab.example", "bob")).new == 1
    assert list((tmp_path / "journal").glob("*.meta")) == []


async def test_a_recording_without_audio_is_stopped_after_its_maximum(
    tmp_path: Path, store: Storage, monkeypatch: pytest.MonkeyPatch
) -> None:
    from media_worker.apps import timers

    monkeypatch.setattr(timers, "RECORD_GRACE", 0.2)
    ctx = context(tmp_path, store, voicemail=VoicemailConfig(max_record_time=0.5))
    call = make_call(MediaSession())
    running = asyncio.create_task(VoicemailCall(ctx, call, request()).run())
    to_the_beep(call)  # then nothing: the caller sends no RTP
    assert await asyncio.wait_for(running, 2) == "dropped: 0.0 s is shorter than 1 s"


async def test_pin_digits_without_end_meet_the_call_time_limit(
    tmp_path: Path, store: Storage
) -> None:
    ctx = context(tmp_path, store, apps=AppsConfig(max_call_time=1.0), **quick(voicebox=0.5))
    call = make_call(MediaSession())
    keys = asyncio.create_task(press(call, "1", 5.0))  # digits of a PIN that never ends
    try:
        outcome = await asyncio.wait_for(
            VoiceboxCall(ctx, call, request("voicebox", pin="9")).run(), 3
        )
    finally:
        keys.cancel()
    assert outcome == "call time limit"


async def test_an_annrecorder_recording_outlives_the_inactivity_time(
    tmp_path: Path, store: Storage
) -> None:
    phone = Phone(auto_done=False)  # each prompt ends when the test says so
    call = make_call(phone)
    recorder = AnnrecorderCall(
        context(tmp_path, store, **quick(annrecorder=0.3)), call, request("annrecorder")
    )
    running = asyncio.create_task(recorder.run())
    await phone.heard("intro")
    phone.press("1")  # "press any key to record"
    await phone.heard("beep")
    phone.on_played("beep", False)
    await until(lambda: phone.recordings == 1)
    await talk(call, 1.2)
    phone.press("1")  # stop: review, keep it, goodbye
    for mark in ("review", "confirm", "bye"):
        await phone.heard(mark)
        phone.on_played(mark, False)
        if mark == "confirm":
            phone.press("1")
    outcome = await asyncio.wait_for(running, 2)
    assert outcome == "greeting vm saved (1 s)", outcome
    greeting = await store.get_greeting("lab.example", "bob", "vm")
    assert greeting is not None
    assert len(greeting) > 16000
