"""The voicebox PIN over a real call: baresip types the digits (RFC 4733 DTMF from its
console) and what it heard is matched against the prompts by cross-correlation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from media_worker.application import ActiveCall
from media_worker.apps.envelope import caller_prompts
from media_worker.apps.params import AppRequest
from media_worker.apps.pin import hash_pin
from media_worker.apps.service import VoicemailService
from media_worker.config import AppsConfig, MappingRule
from media_worker.prompts import PromptLibrary
from media_worker.sip.actions import Rejection
from media_worker.sip.message import Request
from storage import PinRecord, Storage
from storage.testing import make_wav
from tests.integration.conftest import WorkerFactory, service
from tests.support.audio_match import RATE, match, pcm_samples, read_pcm
from tests.support.baresip import Baresip
from tests.support.procs import eventually, free_port

pytestmark = pytest.mark.integration
PIN = "4711"


class Watched:
    """The service, keeping each answered call so that a test can see when the worker
    has sent a prompt out (its player goes busy, then idle)."""

    def __init__(self, app: VoicemailService) -> None:
        self.app = app
        self.calls: list[ActiveCall] = []

    def admit(self, invite: Request) -> AppRequest | Rejection:
        return self.app.admit(invite)

    async def run(self, call: ActiveCall, request: AppRequest) -> None:
        self.calls.append(call)
        await self.app.run(call, request)

    def busy(self) -> bool:
        endpoint = self.calls[-1].media.endpoint if self.calls else None
        return endpoint is not None and endpoint.player.busy

    async def played_out(self, describe: Callable[[], str]) -> None:
        """The prompt the worker starts now has been sent in full."""
        await eventually(self.busy, 10, describe)
        await eventually(lambda: not self.busy(), 20, describe)


@dataclass
class ListenedLibrary(PromptLibrary):
    """The prompt library, noting every prompt the worker fetched to play."""

    asked: list[str] = field(default_factory=list)

    def get(self, name: str, language: str | None = None, domain: str | None = None) -> bytes:
        self.asked.append(name)
        return super().get(name, language, domain)


async def mailbox_with_pin(store: Storage) -> None:
    """One new message, and the mailbox's own PIN set as `voicemail pin set` does."""
    await store.put_message(
        "127.0.0.1", "bob", make_wav(2.0), sender="sip:4930@x", received_at=1_700_000_000
    )
    stored = hash_pin(PIN)
    await store.update_pin("127.0.0.1", "bob", lambda record: PinRecord(stored))


async def failures(store: Storage) -> int:
    return len((await store.get_pin("127.0.0.1", "bob")).failures)


async def type_digits(phone: Baresip, digits: str) -> None:
    """One key at a time, as a person types: each becomes one RFC 4733 event."""
    for digit in digits:
        phone.command(digit)
        await asyncio.sleep(0.4)  # pacing between key presses, not a wait for a result


def in_order(heard: list[int], prompts: list[tuple[str, bytes]]) -> list[float]:
    """Where each prompt starts in ``heard``, each searched for after the one before;
    fails naming the first one not found."""
    found, start = [], 0
    for name, pcm in prompts:
        reference = pcm_samples(pcm)
        lag, score = match(reference, heard[start:], max_lag_s=(len(heard) - start) / RATE)
        assert score > 0.9, (name, start / RATE, lag, score)
        found.append(start / RATE + lag)
        start += int(lag * RATE) + len(reference)
    return found


@pytest.fixture
async def voicebox(
    tmp_path: Path, store: Storage, start_worker: WorkerFactory
) -> tuple[Watched, int, ListenedLibrary]:
    await mailbox_with_pin(store)
    routing = AppsConfig(mapping=(MappingRule(r"\*98(?P<user>.+)", "voicebox"),))
    library = ListenedLibrary()
    app, _ = service(tmp_path, store, free_port(), routing, library)
    watched = Watched(app)
    worker = await start_worker(watched)
    return watched, worker.port, library


async def test_wrong_pin_then_the_right_one_opens_the_box_and_its_envelope(
    store: Storage,
    voicebox: tuple[Watched, int, ListenedLibrary],
    phones: Callable[..., Baresip],
    quiet_caller: Path,
) -> None:
    watched, port, library = voicebox
    phone = phones(quiet_caller)
    phone.dial(f"sip:*98bob@127.0.0.1:{port}")
    await phone.wait_for("Call established")
    await watched.played_out(phone.log)  # "password"
    await type_digits(phone, "1234#")

    async def counted() -> bool:
        return await failures(store) == 1

    await eventually(counted, 10, phone.log)  # the wrong PIN was checked and counted
    await watched.played_out(phone.log)  # "login incorrect", "password"
    await type_digits(phone, PIN + "#")

    async def opened() -> bool:  # the first message is read once its playback starts
        return (await store.count("127.0.0.1", "bob")).new == 0

    await eventually(opened, 20, phone.log)
    phone.command("5")  # the envelope: when the message came and who left it
    await eventually(lambda: "received" in library.asked, 10, phone.log)
    await watched.played_out(phone.log)
    phone.hangup()
    await phone.wait_for("terminated")
    phone.stop()
    assert await failures(store) == 0  # a right PIN clears the failures
    heard = read_pcm(phone.dump("dec"))
    in_order(
        heard,
        [
            ("enter PIN", library.get("enter_pin")),
            ("wrong PIN", library.get("wrong_pin")),
            ("enter PIN again", library.get("enter_pin")),
            ("you have", library.get("you_have")),
            ("1 new message", library.get("number:1") + library.get("new_message")),
            ("first message", library.get("first_message")),
            ("received", library.get("received")),
            ("from 4930", b"".join(library.get(n) for n in caller_prompts("sip:4930@x"))),
        ],
    )


async def test_three_wrong_pins_end_the_call_with_goodbye(
    store: Storage,
    voicebox: tuple[Watched, int, ListenedLibrary],
    phones: Callable[..., Baresip],
    quiet_caller: Path,
) -> None:
    watched, port, library = voicebox
    phone = phones(quiet_caller)
    phone.dial(f"sip:*98bob@127.0.0.1:{port}")
    await phone.wait_for("Call established")
    for attempt in range(1, 4):
        await watched.played_out(phone.log)  # "password"
        await type_digits(phone, f"000{attempt}#")

        async def counted(attempt: int = attempt) -> bool:
            return await failures(store) == attempt

        await eventually(counted, 10, phone.log)
    await phone.wait_for("terminated", 20)  # "login incorrect", "goodbye", then the BYE
    phone.stop()
    assert "session closed" in phone.log()  # the worker hung up, not the phone
    assert (await store.count("127.0.0.1", "bob")).new == 1  # the box stayed shut
    heard = read_pcm(phone.dump("dec"))
    wrong, enter = library.get("wrong_pin"), library.get("enter_pin")
    in_order(
        heard,
        [
            ("enter PIN", enter),
            ("wrong PIN 1", wrong),
            ("enter PIN 2", enter),
            ("wrong PIN 2", wrong),
            ("enter PIN 3", enter),
            ("wrong PIN 3", wrong),
            ("goodbye", library.get("goodbye")),
        ],
    )
