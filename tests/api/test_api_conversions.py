"""The bounded queue of audio conversions: what one client asking for many encodings
at once can make the server hold."""

from __future__ import annotations

import asyncio
import threading

import pytest

from media_worker.api.conversions import Busy, Conversions


async def test_requests_for_the_same_audio_share_one_conversion() -> None:
    release = threading.Event()
    calls = 0

    def encode() -> bytes:
        nonlocal calls
        calls += 1
        release.wait(10)
        return b"mp3"

    conversions = Conversions(running=1, waiting=0)
    asks = [asyncio.ensure_future(conversions.run(("bob", "m1", "mp3"), encode)) for _ in range(20)]
    await asyncio.sleep(0.05)
    # One asker going away does not cancel the others' result.
    asks[0].cancel()
    release.set()
    results = await asyncio.gather(*asks[1:])
    assert results == [b"mp3"] * 19
    assert calls == 1
    assert conversions.queued == 0


async def test_beyond_the_queue_a_conversion_is_refused_and_the_queue_drains() -> None:
    release = threading.Event()

    def encode() -> bytes:
        release.wait(10)
        return b"x"

    conversions = Conversions(running=1, waiting=2)
    held = [asyncio.ensure_future(conversions.run(("m", n), encode)) for n in range(3)]
    await asyncio.sleep(0.05)
    for key in (("m", 99), None):
        with pytest.raises(Busy):
            await conversions.run(key, encode)
    release.set()
    assert await asyncio.gather(*held) == [b"x"] * 3
    assert conversions.queued == 0
    assert await conversions.run(None, lambda: b"y") == b"y"


async def test_a_failed_conversion_fails_every_asker_and_frees_its_place() -> None:
    def broken() -> bytes:
        raise ValueError("unreadable")

    conversions = Conversions(running=1, waiting=0)
    asks = [conversions.run("k", broken) for _ in range(3)]
    results = await asyncio.gather(*asks, return_exceptions=True)
    assert all(isinstance(r, ValueError) for r in results)
    assert conversions.queued == 0


async def test_uploads_hold_a_place_in_the_queue_while_their_body_arrives() -> None:
    conversions = Conversions(running=1, waiting=1)
    arriving = asyncio.Event()

    async def upload() -> bytes:
        async with conversions.place():
            await arriving.wait()  # the body still on its way
            return await conversions.convert(lambda: b"wav")

    uploads = [asyncio.ensure_future(upload()) for _ in range(2)]
    await asyncio.sleep(0)
    with pytest.raises(Busy):
        async with conversions.place():
            pass  # a third upload is refused before it reads a byte
    with pytest.raises(Busy):
        await conversions.run(("m", 1), lambda: b"mp3")
    arriving.set()
    assert await asyncio.gather(*uploads) == [b"wav"] * 2
    assert conversions.queued == 0
