"""Test data, a WAV maker and the child-process bodies the storage contract suites share
(the contract's concurrency tests spawn them). For tests only."""

from __future__ import annotations

import asyncio
import io
import multiprocessing
import wave
from collections.abc import Callable

from storage import PinRecord, open_storage

DOMAIN = "example.com"
USER = "bob"
TS = 1_700_000_000

# Every form an identity value must never take (docs/design.md: opaque keys, not paths).
HOSTILE_VALUES = [
    "",
    ".",
    "..",
    "/",
    "a/b",
    "../etc",
    "..\\..\\windows",
    "a\\b",
    "a\0b",
    "a\nb",
    "a\rb",
    "tab\there",
    "esc\x1b[0m",
    "del\x7f",
    "x" * 256,
]
SENDERS = [
    "alice",
    '"Bob" <sip:bob@example.com>',
    "sip:+4930123456@example.com",
    "Jürgen Müller <sip:j@example.de>",
    "a/b\\c..%41%%",
    "",
    "line\nbreak\ttab",
]


def make_wav(seconds: float, rate: int = 8000, level: int = 1000) -> bytes:
    """A 16-bit mono PCM WAV of a square wave, ``seconds`` long."""
    frames = int(seconds * rate)
    pcm = b"".join(
        (level if (i // 20) % 2 else -level).to_bytes(2, "little", signed=True)
        for i in range(frames)
    )
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(pcm)
    return buf.getvalue()


def add_failure(record: PinRecord) -> PinRecord:
    return PinRecord(record.hash, (*record.failures, float(len(record.failures))), 0.0)


def fail_pins(url: str, count: int) -> None:
    """Child process body: record ``count`` PIN failures, one update at a time."""

    async def run() -> None:
        store = await open_storage(url)
        try:
            for _ in range(count):
                await store.update_pin(DOMAIN, USER, add_failure)
        finally:
            await store.close()

    asyncio.run(run())


def hammer(url: str, worker: int, count: int) -> None:
    """Child process body: put ``count`` messages (same ts, same sender) and mark half read."""

    async def run() -> None:
        store = await open_storage(url)
        try:
            for i in range(count):
                name = await store.put_message(
                    DOMAIN,
                    USER,
                    f"worker {worker} message {i}".encode(),
                    sender="x",
                    received_at=TS,
                )
                if i % 2:
                    await store.mark_read(DOMAIN, USER, name)
        finally:
            await store.close()

    asyncio.run(run())


async def run_processes(target: Callable[..., None], arguments: list[tuple[object, ...]]) -> None:
    """Run ``target`` in one spawned process per argument tuple; all must succeed."""
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=target, args=args) for args in arguments]
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            await asyncio.to_thread(proc.join, 120)
            assert proc.exitcode == 0
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
