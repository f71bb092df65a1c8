"""The whole stack (Kamailio + KEMI, rtpengine, workers, SMTP) for end-to-end tests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.integration.conftest import caller_speech
from tests.support.baresip import MODULES, Baresip
from tests.support.stack import Stack, voicemail

pytestmark = pytest.mark.integration
__all__ = ["caller_speech", "message_speech", "phone", "stack"]


@pytest.fixture(scope="session")
def built_prompts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("prompts")
    voicemail("prompts", "build", "en", "--dir", str(directory))
    return directory


StackFactory = Callable[..., Stack]


@pytest.fixture
def make_stack(built_prompts: Path) -> Iterator[StackFactory]:
    """``make_stack(workers=2)``: a stack of its own for the test, stopped afterwards."""
    with ExitStack() as stop:

        def make(**options: object) -> Stack:
            started = Stack(prompts=built_prompts, **options)  # type: ignore[arg-type]
            stop.callback(started.cleanup)
            stop.enter_context(started)
            return started

        yield make


@pytest.fixture
def stack(make_stack: StackFactory) -> Stack:
    """Users alice (mode box), bob (both) and carol (voicemail) at lab.example."""
    return make_stack()


@pytest.fixture(scope="session")
def message_speech(caller_speech: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a caller says after the greeting and beep (about 7 s): silence, then speech.
    baresip hangs up when its source file ends."""
    out = tmp_path_factory.mktemp("message") / "message.wav"
    subprocess.run(["sox", str(caller_speech), str(out), "pad", "8", "0"], check=True)
    return out


@pytest.fixture(scope="session")
def silence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A phone that listens: 60 s of silence as its microphone."""
    out = tmp_path_factory.mktemp("silence") / "silence.wav"
    subprocess.run(
        ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(out), "trim", "0", "60"],
        check=True,
    )
    return out


PhoneFactory = Callable[..., Baresip]


@pytest.fixture
def phone() -> Iterator[PhoneFactory]:
    """``phone(stack, "alice", source_wav, register=True, codecs=...)``: a baresip
    phone with the user's account at the stack's Kamailio; all stop after the test."""
    with ExitStack() as stop:

        def start(
            stack: Stack,
            user: str,
            source: Path,
            *,
            register: bool = True,
            codecs: str = "PCMU,PCMA",
            modules: tuple[str, ...] = MODULES,
            sample_rate: int = 8000,
            channels: int = 1,
        ) -> Baresip:
            account = stack.phone_account(user, codecs=codecs, register=register)
            started = Baresip(
                source, account=account, modules=modules, sample_rate=sample_rate, channels=channels
            )
            stop.callback(started.cleanup)
            stop.enter_context(started)
            if register:
                started.wait_for_log("200 OK", 10)
            return started

        yield start
