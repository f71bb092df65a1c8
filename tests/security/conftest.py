"""Attacks on the whole stack (Kamailio with the shipped cfg, rtpengine, a media worker,
aiosmtpd), each module on a stack of its own; after each attack a normal call still
leaves bob a message."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.integration.conftest import caller_speech
from tests.support.secure_stack import SecureStack

__all__ = ["Checks", "caller_speech", "checks", "message_speech", "running"]


@contextmanager
def running(stack: SecureStack) -> Iterator[SecureStack]:
    """Start ``stack``; stop every process it started (by PID) and remove its directory,
    however the tests went."""
    try:
        with stack:
            yield stack
    finally:
        stack.cleanup()


@pytest.fixture(scope="session")
def message_speech(caller_speech: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What a caller says after bob's short greeting and the beep: a second of silence,
    then speech without the trailing silence; baresip hangs up when the file ends."""
    out = tmp_path_factory.mktemp("message") / "message.wav"
    subprocess.run(
        ["sox", str(caller_speech), str(out), "trim", "0", "-1.3", "pad", "1.0", "0"], check=True
    )
    return out


class Checks:
    """Several defences checked in one attack: every failure is reported, not only the
    first, and the normal call after the attack still runs."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def expect(self, condition: bool, what: str) -> bool:
        if not condition:
            self.failures.append(what)
        return condition

    def verify(self, logs: str = "") -> None:
        assert not self.failures, "\n".join(self.failures) + (f"\n{logs}" if logs else "")


@pytest.fixture
def checks() -> Checks:
    return Checks()
