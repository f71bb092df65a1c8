"""The four voicemail modes through a real call: baresip calls a worker directly and a real
SMTP server (aiosmtpd) receives what the worker mails.

voicemail: emailed, nothing stored; box: stored as new, no email; both: stored and
emailed; ann: the greeting, then the worker hangs up; nothing recorded, nothing sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import email
import logging
import math
import subprocess
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import default as default_policy
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from media_worker.application import ActiveCall
from media_worker.apps.params import AppRequest
from media_worker.apps.service import VoicemailService
from media_worker.audio import read_wav
from media_worker.config import AppsConfig
from media_worker.prompts import PromptLibrary
from media_worker.sip.actions import Rejection
from media_worker.sip.message import Request
from storage import Storage
from tests.integration.conftest import WorkerFactory, service
from tests.support.audio_match import RATE, match, pcm_samples, read_pcm
from tests.support.baresip import Baresip
from tests.support.procs import eventually, free_port
from tests.support.smtp import Inbox

pytestmark = pytest.mark.integration
EMAIL = "bob@lab.example"


class AsTheProxySends:
    """The proxy's part, which baresip cannot play: P-App-Name and P-App-Param added to
    each INVITE before the worker admits it (the worker's own parsing still decides)."""

    def __init__(self, app: VoicemailService, param: str) -> None:
        self.app, self.param = app, param

    def admit(self, invite: Request) -> AppRequest | Rejection:
        forwarded = dataclasses.replace(invite, headers=invite.headers.copy())
        forwarded.headers.set("P-App-Name", "voicemail")
        forwarded.headers.set("P-App-Param", self.param)
        return self.app.admit(forwarded)

    async def run(self, call: ActiveCall, request: AppRequest) -> None:
        await self.app.run(call, request)


@pytest.fixture
def late_speaker(caller_speech: Path, tmp_path: Path) -> Path:
    """Nine seconds of silence (the greeting and beep end at about 6.1 s), the caller's
    words, a short pause, then the file ends and baresip hangs up."""
    out = tmp_path / "late.wav"
    subprocess.run(["sox", str(caller_speech), str(out), "pad", "9", "0"], check=True)
    return out


def last_sound(samples: list[int], threshold: float = 100.0) -> float:
    """Seconds to the end of the last 20 ms frame louder than ``threshold`` RMS (the
    worker's silence level)."""
    frame = RATE // 50
    for end in range(len(samples) // frame * frame, 0, -frame):
        piece = samples[end - frame : end]
        if math.sqrt(sum(x * x for x in piece) / frame) >= threshold:
            return end / RATE
    return 0.0


def spoken_after_the_beep(phone: Baresip, library: PromptLibrary) -> float:
    """How long the caller spoke after the beep, from baresip's own two recordings.

    The worker records from the end of the beep until the BYE and trims the trailing
    silence, so the attachment should last from the beep's end to the end of the last
    sound the caller sent. Both ends are measured on baresip's side, independently of the
    worker: the beep's end by cross-correlating the greeting+beep prompts with what the
    phone heard (dec), the last sound by the RMS level of what it sent (enc). The two
    dumps start together with the call's media, so their clocks agree to within the
    jitter buffer's delay (tens of ms), well inside the 0.5 s allowed.
    """
    heard = read_pcm(phone.dump("dec"))
    sent = read_pcm(phone.dump("enc"))
    announcement = pcm_samples(library.get("greeting_default") + library.get("beep"))
    lag, score = match(announcement, heard, max_lag_s=3.0)
    assert score > 0.9, ("greeting and beep not heard", lag, score)
    beep_end = lag + len(announcement) / RATE
    return last_sound(sent) - beep_end


def attachment(raw: bytes) -> tuple[EmailMessage, bytes]:
    parsed = email.message_from_bytes(raw, policy=default_policy)
    assert isinstance(parsed, EmailMessage)
    [part] = list(parsed.iter_attachments())
    assert part.get_content_type() == "audio/wav"
    content = part.get_content()
    assert isinstance(content, bytes)
    return parsed, content


@pytest.mark.parametrize("mode", ["voicemail", "box", "both"])
async def test_mode_leaves_the_right_result(
    mode: str,
    tmp_path: Path,
    store: Storage,
    smtp_inbox: tuple[Inbox, int],
    start_worker: WorkerFactory,
    phones: Callable[..., Baresip],
    late_speaker: Path,
    caller_speech: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="voicemail")
    inbox, smtp_port = smtp_inbox
    library = PromptLibrary()
    if mode == "box":  # no address needed: a direct call with the configured default mode
        app, outbox = service(
            tmp_path, store, smtp_port, AppsConfig(default_mode="box", simple_mode="voicemail")
        )
        worker = await start_worker(app)
    else:
        app, outbox = service(tmp_path, store, smtp_port, AppsConfig(), library)
        worker = await start_worker(AsTheProxySends(app, f"mod={mode};eml={EMAIL}"))
    await outbox.start()
    try:
        phone = phones(late_speaker)
        phone.dial(f"sip:bob@127.0.0.1:{worker.port}")
        await phone.wait_for("Call established")
        await phone.wait_for("terminated", 40)  # the source ended: baresip hung up
        # The worker's one line for the call is written once storing and queueing are done.
        ended = f"voicemail bob@127.0.0.1 mode {mode}: "
        await eventually(lambda: ended in caplog.text, 20, lambda: caplog.text[-3000:])
        if mode != "box":
            await eventually(lambda: len(inbox.messages) == 1, 20, lambda: caplog.text[-3000:])
        await eventually(lambda: outbox.pending() == [], 20, lambda: caplog.text[-3000:])
    finally:
        await outbox.stop()
    phone.stop()
    assert list((tmp_path / "journal").iterdir()) == []

    listing = await store.list_mailbox("127.0.0.1", "bob")
    if mode == "voicemail":
        assert listing == []
    else:
        [info] = listing
        assert (info.new, info.sender) == (True, "<sip:alice@127.0.0.1>")

    if mode == "box":
        assert inbox.messages == []
        assert list((tmp_path / "outbox").glob("*.eml")) == []
        return
    [raw] = inbox.messages
    parsed, wav = attachment(raw)
    assert parsed["To"] == EMAIL
    assert parsed["Subject"] == "New voice message from <sip:alice@127.0.0.1>"
    recorded = read_wav(wav)
    spoken = spoken_after_the_beep(phone, library)
    assert abs(recorded.duration - spoken) < 0.5, (recorded.duration, spoken)
    # And it is the caller's speech that was recorded.
    _, score = match(read_pcm(caller_speech), pcm_samples(recorded.data), max_lag_s=5.0)
    assert score > 0.9, score
    if mode == "both":
        stored = await store.get_message("127.0.0.1", "bob", listing[0].name)
        assert stored.audio == wav


async def test_ann_mode_plays_the_greeting_and_hangs_up(
    tmp_path: Path,
    store: Storage,
    smtp_inbox: tuple[Inbox, int],
    start_worker: WorkerFactory,
    phones: Callable[..., Baresip],
    quiet_caller: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="voicemail")
    inbox, smtp_port = smtp_inbox
    library = PromptLibrary()
    app, outbox = service(
        tmp_path, store, smtp_port, AppsConfig(default_mode="ann", simple_mode="voicemail")
    )
    worker = await start_worker(app)
    await outbox.start()
    try:
        phone = phones(quiet_caller)  # 40 s of listening: it never hangs up first
        phone.dial(f"sip:bob@127.0.0.1:{worker.port}")
        await phone.wait_for("Call established")
        await phone.wait_for("terminated", 30)
        ended = "voicemail bob@127.0.0.1 mode ann: announcement played"
        await eventually(lambda: ended in caplog.text, 10, lambda: caplog.text[-3000:])
    finally:
        await outbox.stop()
    phone.stop()
    assert "session closed" in phone.log()  # the worker's BYE ended it
    heard = read_pcm(phone.dump("dec"))
    _, score = match(pcm_samples(library.get("greeting_default")), heard)
    assert score > 0.9, score
    assert (await store.count("127.0.0.1", "bob")).total == 0
    assert inbox.messages == []
    assert outbox.pending() == []
    assert not (tmp_path / "journal").exists() or list((tmp_path / "journal").iterdir()) == []


async def test_smtp_down_during_the_call_then_up_the_email_arrives(
    tmp_path: Path,
    store: Storage,
    start_worker: WorkerFactory,
    phones: Callable[..., Baresip],
    late_speaker: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The mail server is down when the message is left: the email waits in the outbox,
    retried, and is delivered once the server is up."""
    caplog.set_level(logging.INFO, logger="voicemail")
    smtp_port = free_port()  # nothing listens here yet
    app, outbox = service(tmp_path, store, smtp_port, AppsConfig())
    worker = await start_worker(AsTheProxySends(app, f"mod=both;eml={EMAIL}"))
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    await outbox.start()
    try:
        phone = phones(late_speaker)
        phone.dial(f"sip:bob@127.0.0.1:{worker.port}")
        await phone.wait_for("Call established")
        await phone.wait_for("terminated", 40)
        await eventually(lambda: "mode both: " in caplog.text, 20, lambda: caplog.text[-3000:])
        assert len(outbox.pending()) == 1  # queued, the server refused the connection
        await asyncio.sleep(0.5)  # a few retries fail meanwhile; the job stays
        assert len(outbox.pending()) == 1
        await asyncio.to_thread(controller.start)
        await eventually(lambda: len(inbox.messages) == 1, 30, lambda: caplog.text[-3000:])
        await eventually(lambda: outbox.pending() == [], 10, lambda: caplog.text[-3000:])
    finally:
        await outbox.stop()
        with contextlib.suppress(AssertionError, RuntimeError):
            await asyncio.to_thread(controller.stop)
    phone.stop()
    parsed, wav = attachment(inbox.messages[0])
    assert parsed["To"] == EMAIL
    [stored] = await store.list_mailbox("127.0.0.1", "bob")
    assert (await store.get_message("127.0.0.1", "bob", stored.name)).audio == wav
