"""The voicemail app end to end: baresip leaves a message that lands in the spool; a
recording is emailed through the outbox to a real SMTP server; a crash's leftovers are
delivered at start-up."""

from __future__ import annotations

import asyncio
import email
import subprocess
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest

from media_worker.apps.journal import Journal
from media_worker.apps.params import AppRequest
from media_worker.audio import read_wav
from media_worker.config import AppsConfig, MappingRule
from media_worker.prompts import ASTERISK_EN, PromptLibrary, build_prompts
from storage import Storage
from tests.integration.conftest import WorkerFactory, service
from tests.support.audio_match import match, pcm_samples, read_pcm
from tests.support.baresip import Baresip
from tests.support.procs import eventually, free_port
from tests.support.smtp import Inbox

pytestmark = pytest.mark.integration


@pytest.fixture
def patient_caller(caller_speech: Path, tmp_path: Path) -> Path:
    """Seven seconds of silence (the greeting and the beep), then the caller speaks."""
    out = tmp_path / "patient.wav"
    subprocess.run(["sox", str(caller_speech), str(out), "pad", "7", "0"], check=True)
    return out


async def test_baresip_leaves_a_message_in_the_box(
    tmp_path: Path,
    store: Storage,
    start_worker: WorkerFactory,
    phones: Callable[..., Baresip],
    patient_caller: Path,
    caller_speech: Path,
) -> None:
    app, _ = service(
        tmp_path, store, free_port(), AppsConfig(default_mode="box", simple_mode="voicemail")
    )
    worker = await start_worker(app)
    phone = phones(patient_caller)
    phone.dial(f"sip:bob@127.0.0.1:{worker.port}")

    async def stored() -> bool:
        return (await store.count("127.0.0.1", "bob")).total > 0

    await eventually(stored, 30, phone.log)
    [info] = await store.list_mailbox("127.0.0.1", "bob")
    assert (info.new, info.sender) == (True, "<sip:alice@127.0.0.1>")
    message = await store.get_message("127.0.0.1", "bob", info.name)
    recorded = read_wav(message.audio)
    speech = read_pcm(caller_speech)
    # Everything the caller said after the beep is there; the trailing silence is trimmed.
    recorded_samples = pcm_samples(recorded.data)
    lag, score = match(speech, recorded_samples, max_lag_s=2.0)
    assert score > 0.9, (lag, score)
    spoken = len(speech) / 8000 - 1.5  # caller_speech ends with 1.5 s of silence
    assert abs(recorded.duration - lag - spoken) < 0.5, (recorded.duration, lag, spoken)
    phone.stop()
    # The caller heard the default greeting (Debian's Asterisk prompt).
    heard = read_pcm(phone.dump("dec"))
    _, greeting_score = match(read_pcm(ASTERISK_EN / "vm-intro.wav")[:16000], heard)
    assert greeting_score > 0.9
    assert list((tmp_path / "journal").glob("*")) == []  # the journal is gone once stored


async def test_both_mode_stores_and_emails(
    tmp_path: Path, store: Storage, smtp_inbox: tuple[Inbox, int], caller_speech: Path
) -> None:
    inbox, port = smtp_inbox
    app, outbox = service(tmp_path, store, port, AppsConfig())
    await outbox.start()
    try:
        request = AppRequest(
            app="voicemail", user="bob", domain="lab.example", sender='"Alice" <sip:alice@lab.example>',
            mode="both", email="bob@lab.example", language=None, typ="vm", pin=None,
        )  # fmt: skip
        speech = read_wav(caller_speech.read_bytes()).data
        outcome = await app.deliver(request, speech, 1_700_000_000, "call-1")
        assert "stored as 1700000000+" in outcome
        await eventually(lambda: bool(inbox.messages))
    finally:
        await outbox.stop()
    parsed = email.message_from_bytes(inbox.messages[0], policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    assert parsed["To"] == "bob@lab.example"
    assert parsed["Subject"] == 'New voice message from "Alice" <sip:alice@lab.example>'
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_content_type() == "audio/wav"
    attached = read_wav(attachment.get_content())
    # caller_speech ends with 1.5 s of silence, which is trimmed.
    assert abs(attached.duration - (len(speech) / 16000 - 1.5)) < 0.5, attached.duration
    assert (await store.count("lab.example", "bob")).new == 1


async def test_short_and_silent_messages_are_dropped(tmp_path: Path, store: Storage) -> None:
    app, _ = service(tmp_path, store, free_port(), AppsConfig())
    request = AppRequest(
        app="voicemail", user="bob", domain="lab.example", sender="x", mode="box",
        email=None, language=None, typ="vm", pin=None,
    )  # fmt: skip
    assert (await app.deliver(request, b"\x10\x20" * 4000, 1, "c")).startswith("dropped: 0.5 s")
    assert await app.deliver(request, bytes(64000), 1, "c") == "dropped: 0.0 s is shorter than 1 s"
    assert (await store.count("lab.example", "bob")).total == 0


async def test_recording_left_by_a_crash_is_delivered_at_start_up(
    tmp_path: Path, store: Storage, caller_speech: Path
) -> None:
    app, _ = service(tmp_path, store, free_port(), AppsConfig())
    request = AppRequest(
        app="voicemail", user="bob", domain="lab.example", sender="carol", mode="box",
        email=None, language=None, typ="vm", pin=None,
    )  # fmt: skip
    journal = await Journal.create(
        tmp_path / "journal",
        {"call_id": "crashed", "answered_at": 1_700_000_500, "request": vars(request)},
    )
    journal.append(read_wav(caller_speech.read_bytes()).data)
    await journal.flush()  # then the worker "dies": the journal is never closed
    assert await app.recover() == 1
    [info] = await store.list_mailbox("lab.example", "bob")
    assert (info.received_at, info.sender) == (1_700_000_500, "carol")
    assert await app.recover() == 0  # delivered once


async def test_voicebox_over_baresip_dtmf(
    tmp_path: Path,
    store: Storage,
    start_worker: WorkerFactory,
    phones: Callable[..., Baresip],
    quiet_caller: Path,
    caller_speech: Path,
) -> None:
    speech = read_wav(caller_speech.read_bytes()).data
    from media_worker.audio import write_wav

    await store.put_message(
        "127.0.0.1", "bob", write_wav(speech), sender="sip:4930@x", received_at=1_700_000_000
    )
    routing = AppsConfig(mapping=(MappingRule(r"\*98(?P<user>.+)", "voicebox"),))
    build_prompts("en", tmp_path / "prompts")  # the menu prompts Debian's set lacks
    library = PromptLibrary(generated=tmp_path / "prompts")
    app, _ = service(tmp_path, store, free_port(), routing, library)
    worker = await start_worker(app)
    phone = phones(quiet_caller)
    phone.dial(f"sip:*98bob@127.0.0.1:{worker.port}")
    await phone.wait_for("Call established")

    # "You have 1 new message. First message." then the message itself (about 5.5 s).
    async def read() -> bool:  # a message is read once its playback starts
        return (await store.count("127.0.0.1", "bob")).new == 0

    await eventually(read, 20, phone.log)
    await asyncio.sleep(6.5)
    phone.command("3")  # delete it

    async def deleted() -> bool:
        return (await store.count("127.0.0.1", "bob")).total == 0

    await eventually(deleted, 10, phone.log)
    await asyncio.sleep(2.0)  # "deleted", "no more messages"
    phone.hangup()
    await phone.wait_for("terminated")
    phone.stop()
    heard = read_pcm(phone.dump("dec"))
    # The prompts from Debian's set and the message itself, in what the caller heard.
    for prompt in ("vm-youhave.wav", "vm-first.wav", "vm-deleted.wav"):
        _, score = match(read_pcm(ASTERISK_EN / prompt), heard, max_lag_s=15.0)
        assert score > 0.9, (prompt, score)
    _, score = match(pcm_samples(speech)[8000 : 8000 * 3], heard, max_lag_s=15.0)
    assert score > 0.9, score


@pytest.fixture
def greeting_speaker(caller_speech: Path, tmp_path: Path) -> Path:
    """Three seconds of silence, the caller's words, then silence while they listen."""
    out = tmp_path / "speaker.wav"
    subprocess.run(["sox", str(caller_speech), str(out), "pad", "3", "30"], check=True)
    return out


async def test_annrecorder_greeting_is_heard_by_the_next_caller(
    tmp_path: Path,
    store: Storage,
    start_worker: WorkerFactory,
    phones: Callable[..., Baresip],
    greeting_speaker: Path,
    quiet_caller: Path,
    caller_speech: Path,
) -> None:
    routing = AppsConfig(
        default_mode="box",
        mapping=(MappingRule(r"\*99(?P<user>.+)", "annrecorder"), MappingRule(r"bob", "voicemail")),
    )
    build_prompts("en", tmp_path / "prompts")
    app, _ = service(
        tmp_path, store, free_port(), routing, PromptLibrary(generated=tmp_path / "prompts")
    )
    worker = await start_worker(app)

    owner = phones(greeting_speaker)
    owner.dial(f"sip:*99bob@127.0.0.1:{worker.port}")
    await owner.wait_for("Call established")
    await asyncio.sleep(1.5)
    owner.command("5")  # record now (the beep, then the caller's words from 3 s on)
    await asyncio.sleep(8.5)
    owner.command("#")  # done: the recording is played back
    await asyncio.sleep(1.5)
    owner.command("1")  # keep it
    await owner.wait_for("terminated", 20)  # "saved, goodbye", then the worker hangs up
    greeting = await store.get_greeting("127.0.0.1", "bob", "vm")
    assert greeting is not None
    speech = read_pcm(caller_speech)
    _, score = match(speech, pcm_samples(read_wav(greeting).data), max_lag_s=6.0)
    assert score > 0.9, score

    caller = phones(quiet_caller)
    caller.dial(f"sip:bob@127.0.0.1:{worker.port}")
    await caller.wait_for("Call established")
    await asyncio.sleep(10)
    caller.hangup()
    await caller.wait_for("terminated")
    caller.stop()
    _, heard = match(speech, read_pcm(caller.dump("dec")), max_lag_s=8.0)
    assert heard > 0.9, heard  # the next caller hears the new greeting
