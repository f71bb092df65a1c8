"""A message longer than the menus' inactivity time is recorded whole: 36 s through
Kamailio, rtpengine and a worker, back in full by email and in the box."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from media_worker.lab.layout import DOMAIN
from tests.e2e.conftest import PhoneFactory
from tests.e2e.test_calls import attachment, mailbox, message_audio, wav_seconds
from tests.support.procs import wait_until
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
SPOKEN = 36.0


@pytest.fixture
def long_speech(tmp_path: Path) -> Path:
    """8 s of silence (the greeting and the beep), then 36 s of sound to its very end
    (nothing for the worker to trim); baresip hangs up when the file ends."""
    out = tmp_path / "long.wav"
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(out),
         "synth", f"{SPOKEN:g}", "sine", "300-900", "vol", "0.3", "pad", "8", "0"],
        check=True,
    )  # fmt: skip
    return out


def test_a_36_s_message_arrives_whole_by_email_and_in_the_box(
    stack: Stack, phone: PhoneFactory, long_speech: Path
) -> None:
    alice = phone(stack, "alice", long_speech)
    alice.dial(f"sip:bob@{DOMAIN}")  # bob's mode: both
    alice.wait_for_log("Call established", 15)
    wait_until(lambda: len(mailbox(stack, "bob")) == 1, 90, stack.logs)
    [message] = mailbox(stack, "bob")
    stored = wav_seconds(message_audio(stack, "bob", message.name))
    # From the end of the beep (about 6-7 s into the call) to the hangup at 44 s.
    assert SPOKEN - 0.5 <= stored <= SPOKEN + 3.0, (stored, stack.logs())
    wait_until(lambda: len(stack.smtp.messages()) == 1, 30, stack.logs)
    [mail] = stack.smtp.messages()
    assert mail["To"] == f"bob@{DOMAIN}"
    assert abs(wav_seconds(attachment(mail)) - stored) < 0.1
    assert "inactivity" not in stack.workers[0].log()
