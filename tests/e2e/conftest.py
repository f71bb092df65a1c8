"""The whole stack (Kamailio + KEMI, rtpengine, workers, SMTP) for end-to-end tests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.integration.conftest import caller_speech
from tests.support.baresip import Baresip
from tests.support.stack import Stack

pytestmark = pytest.mark.integration
__all__ = ["caller_speech", "message_speech", "phone", "stack"]


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    """One stack for a module's tests: users alice (box), bob (both), carol (voicemail)."""
    with Stack() as started:
        try:
            yield started
        finally:
            started.cleanup()


@pytest.fixture(scope="session")
def message_speech(caller_speech: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a caller says after the greeting and beep (about 7 s): silence, then speech.
    baresip hangs up when its source file ends."""
    out = tmp_path_factory.mktemp("message") / "message.wav"
    subprocess.run(["sox", str(caller_speech), str(out), "pad", "8", "0"], check=True)
    return out


PhoneFactory = Callable[..., Baresip]


@pytest.fixture
def phone(stack: Stack) -> Iterator[PhoneFactory]:
    """``phone("alice", source_wav, register=True, codecs=...)``: a baresip phone with
    the user's account at the stack's Kamailio; all stop after the test."""
    with ExitStack() as stop:

        def start(
            user: str,
            source: Path,
            *,
            register: bool = True,
            codecs: str = "PCMU,PCMA",
            modules: tuple[str, ...] = ("g711.so", "aufile.so", "sndfile.so", "cons.so"),
        ) -> Baresip:
            account = stack.phone_account(user, codecs=codecs, register=register)
            started = Baresip(source, account=account, modules=modules)
            stop.callback(started.cleanup)
            stop.enter_context(started)
            if register:
                started.wait_for_log("200 OK", 10)
            return started

        yield start
