"""Calls through Kamailio (KEMI) and rtpengine to media workers, as phones make them."""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import time
import wave
from email.message import Message
from pathlib import Path

import pytest

from media_worker.audio import read_wav, write_wav
from media_worker.lab.demo import mailbox_listing
from media_worker.lab.layout import DOMAIN
from media_worker.prompts import ASTERISK_EN
from storage import MessageInfo, open_storage
from tests.e2e.conftest import PhoneFactory, StackFactory
from tests.support.audio_match import match, pcm_samples, read_pcm
from tests.support.procs import free_port, wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SIPP_SCENARIOS = Path(__file__).parent.parent / "data" / "sipp"


def mailbox(stack: Stack, user: str) -> list[MessageInfo]:
    return mailbox_listing(stack.spool, user)


def message_audio(stack: Stack, user: str, name: str) -> bytes:
    async def get() -> bytes:
        async with open_storage(f"fs://{stack.spool}") as store:
            return (await store.get_message(DOMAIN, user, name)).audio

    return asyncio.run(get())


def attachment(mail: Message) -> bytes:
    [part] = [p for p in mail.walk() if p.get_content_type() == "audio/wav"]
    payload = part.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload


def wav_seconds(data: bytes) -> float:
    audio = read_wav(data)
    return len(audio.data) / 2 / 8000


def assert_speech(recorded: bytes, caller_speech: Path) -> None:
    """The recording holds what the caller said (normalised cross-correlation)."""
    _, score = match(read_pcm(caller_speech), pcm_samples(read_wav(recorded).data), 6.0)
    assert score > 0.9, score


def test_alice_leaves_unregistered_bob_a_message_in_box_and_email(
    stack: Stack, phone: PhoneFactory, message_speech: Path, caller_speech: Path
) -> None:
    alice = phone(stack, "alice", message_speech)
    alice.dial(f"sip:bob@{DOMAIN}")
    alice.wait_for_log("Call established", 15)
    wait_until(lambda: len(mailbox(stack, "bob")) == 1, 40, stack.logs)
    [message] = mailbox(stack, "bob")
    assert message.new
    assert "sip:alice@lab.example" in message.sender
    stored = message_audio(stack, "bob", message.name)
    assert_speech(stored, caller_speech)

    wait_until(lambda: len(stack.smtp.messages()) == 1, 20, stack.logs)  # bob's mode: both
    [mail] = stack.smtp.messages()
    assert mail["To"] == f"bob@{DOMAIN}"
    emailed = attachment(mail)
    assert abs(wav_seconds(emailed) - wav_seconds(stored)) < 0.5
    assert_speech(emailed, caller_speech)
    assert stack.rtpengine.log().count("Final packet stats") >= 1  # media was anchored


def test_carol_gets_email_only(
    stack: Stack, phone: PhoneFactory, message_speech: Path, caller_speech: Path
) -> None:
    alice = phone(stack, "alice", message_speech)
    alice.dial(f"sip:carol@{DOMAIN}")
    alice.wait_for_log("Call established", 15)
    wait_until(lambda: len(stack.smtp.messages()) == 1, 40, stack.logs)
    [mail] = stack.smtp.messages()
    assert mail["To"] == f"carol@{DOMAIN}"
    assert_speech(attachment(mail), caller_speech)
    assert mailbox(stack, "carol") == []  # mode voicemail: email only


def test_registered_bob_not_answering_gets_voicemail_after_the_timeout(
    stack: Stack, phone: PhoneFactory, message_speech: Path, silence: Path
) -> None:
    bob = phone(stack, "bob", silence)  # registered; baresip rings, nobody answers
    alice = phone(stack, "alice", message_speech)
    alice.dial(f"sip:bob@{DOMAIN}")
    bob.wait_for_log("Incoming call", 10)
    rang_at = time.monotonic()
    alice.wait_for_log("Call established", 20)
    rang_for = time.monotonic() - rang_at
    assert rang_for > 3, rang_for  # VM_NO_ANSWER_TIMEOUT is 4 s in the test stack
    wait_until(lambda: len(mailbox(stack, "bob")) == 1, 40, stack.logs)
    assert "Call established" not in bob.log()


def test_bob_dials_1000_and_hears_one_new_message(
    stack: Stack, phone: PhoneFactory, silence: Path, caller_speech: Path
) -> None:
    speech = read_wav(caller_speech.read_bytes()).data

    async def leave() -> None:
        async with open_storage(f"fs://{stack.spool}") as store:
            await store.put_message(
                DOMAIN, "bob", write_wav(speech), sender="sip:alice@lab.example",
                received_at=int(time.time()) - 60,
            )  # fmt: skip

    asyncio.run(leave())
    bob = phone(stack, "bob", silence, register=False)
    bob.dial(f"sip:1000@{DOMAIN}")
    bob.wait_for_log("Call established", 15)
    # "You have one new message. First message." and the message: it becomes read.
    wait_until(lambda: not mailbox(stack, "bob")[0].new, 20, stack.logs)
    time.sleep(4)
    bob.hangup()
    bob.wait_for_log("terminated", 10)
    bob.stop()
    heard = read_pcm(bob.dump("dec"))
    for prompt in ("vm-youhave.wav", "digits/1.wav", "vm-INBOX.wav", "vm-message.wav"):
        _, score = match(read_pcm(ASTERISK_EN / prompt), heard, max_lag_s=12.0)
        assert score > 0.9, (prompt, score)
    wait_until(lambda: "voicebox bob@lab.example" in stack.workers[0].log(), 10, stack.logs)


def test_bob_records_a_greeting_on_1001_that_the_next_caller_hears(
    stack: Stack, phone: PhoneFactory, caller_speech: Path, silence: Path, tmp_path: Path
) -> None:
    speaker = tmp_path / "speaker.wav"
    subprocess.run(["sox", str(caller_speech), str(speaker), "pad", "3", "30"], check=True)
    bob = phone(stack, "bob", speaker, register=False)
    bob.dial(f"sip:1001@{DOMAIN}")
    bob.wait_for_log("Call established", 15)
    time.sleep(1.5)
    bob.command("5")  # record now: the beep, then bob's words from 3 s on
    time.sleep(8.5)
    bob.command("#")  # done: the recording is played back
    time.sleep(1.5)
    bob.command("1")  # keep it
    bob.wait_for_log("terminated", 25)
    greeting = stack.spool / f"{DOMAIN}-prompts" / "bob" / "vm.wav"
    wait_until(greeting.exists, 10, stack.logs)
    assert_speech(greeting.read_bytes(), caller_speech)

    alice = phone(stack, "alice", silence)
    alice.dial(f"sip:bob@{DOMAIN}")
    alice.wait_for_log("Call established", 15)
    time.sleep(9)
    alice.hangup()
    alice.wait_for_log("terminated", 10)
    alice.stop()
    _, heard = match(read_pcm(caller_speech), read_pcm(alice.dump("dec")), max_lag_s=8.0)
    assert heard > 0.9, heard  # the next caller hears bob's new greeting


def test_forged_p_app_param_from_a_client_never_opens_another_mailbox(stack: Stack) -> None:
    """alice sends P-App-Name/P-App-Param naming bob's mailbox: she reaches her own."""
    result = subprocess.run(
        [
            "sipp", "-sf", str(SIPP_SCENARIOS / "forged-p-app-via-proxy.xml"),
            "-m", "1", "-i", "127.0.0.1",
            "-p", str(free_port(kind=socket.SOCK_DGRAM)),
            "-mp", str(free_port(kind=socket.SOCK_DGRAM)),
            "-nostdin", "-timeout", "30", "-timeout_error",
            f"127.0.0.1:{stack.kamailio.port}",
        ],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + stack.logs()
    wait_until(lambda: "voicebox alice@lab.example" in stack.workers[0].log(), 10, stack.logs)
    assert "bob@lab.example" not in stack.workers[0].log()


@pytest.mark.parametrize(
    ("codec", "module", "rate", "channels"),
    [("G722", "g722.so", 16000, 1), ("opus/48000/2", "opus.so", 48000, 2)],
    ids=["g722", "opus"],
)
def test_a_phone_without_g711_still_leaves_a_message(
    stack: Stack,
    phone: PhoneFactory,
    message_speech: Path,
    caller_speech: Path,
    tmp_path: Path,
    codec: str,
    module: str,
    rate: int,
    channels: int,
) -> None:
    wideband = tmp_path / "wideband.wav"  # baresip's source must run at the codec's rate
    subprocess.run(
        ["sox", str(message_speech), "-r", str(rate), "-c", str(channels), str(wideband)],
        check=True,
    )
    alice = phone(
        stack,
        "alice",
        wideband,
        codecs=codec,
        modules=(module, "aufile.so", "sndfile.so", "cons.so"),
        sample_rate=rate,
        channels=channels,
    )
    alice.dial(f"sip:bob@{DOMAIN}")
    alice.wait_for_log("Call established", 15)
    wait_until(lambda: len(mailbox(stack, "bob")) == 1, 40, stack.logs)
    [message] = mailbox(stack, "bob")
    stored = message_audio(stack, "bob", message.name)
    assert_speech(stored, caller_speech)  # rtpengine transcoded it to G.711 for the worker
    with wave.open(str(alice.dump("dec"))) as heard:
        assert heard.getnframes() > 0


def test_calls_reach_voicemail_with_one_of_two_workers_stopped(
    make_stack: StackFactory, phone: PhoneFactory, message_speech: Path, silence: Path
) -> None:
    """Round robin sends every other call to the stopped worker: the proxy fails over,
    from the request route (bob unregistered) and from the failure route (no answer)."""
    stack = make_stack(workers=2)
    stack.workers[0].stop()
    callers = [phone(stack, caller, message_speech) for caller in ("alice", "carol")]
    for calling in callers:
        calling.dial(f"sip:bob@{DOMAIN}")
    wait_until(lambda: len(mailbox(stack, "bob")) == 2, 60, stack.logs)

    phone(stack, "bob", silence)  # registered now, and never answers
    for calling in callers:
        calling.dial(f"sip:bob@{DOMAIN}")
    wait_until(lambda: len(mailbox(stack, "bob")) == 4, 60, stack.logs)

    def stored_by_the_live_worker() -> int:  # its line for a call follows the storing
        log = stack.workers[1].log()
        return len(re.findall(r"voicemail bob@lab\.example mode both: .*stored as", log))

    wait_until(lambda: stored_by_the_live_worker() == 4, 20, stack.workers[1].log)
    assert "answered 408 (no answer): voicemail" in stack.kamailio.log()
