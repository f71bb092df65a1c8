"""Overload: a worker at ``sip.max_calls`` refuses new INVITEs with 503 and Retry-After
while the calls it admitted keep their media and their recordings.

Not a timing test: the worker's RTP is counted per second against a generous floor, and
the stored message's length is compared with what the caller sent after the beep."""

from __future__ import annotations

import asyncio
import math
import random
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import pytest

from media_worker import g711
from media_worker.audio import SILENCE_RMS, read_wav, write_wav
from media_worker.config import AppsConfig
from media_worker.sip.timers import Timers
from storage import Storage
from tests.integration import test_admission
from tests.integration.conftest import WorkerFactory, service
from tests.integration.test_admission import Uac, UacFactory, to_tag
from tests.support.procs import eventually
from tests.support.smtp import Inbox

pytestmark = pytest.mark.integration

DOMAIN, USER = "lab.example", "bob"
APP = f"P-App-Name: voicemail\r\nP-App-Param: usr={USER};dom={DOMAIN};mod=box\r\n"
MAX_CALLS = 2
REFUSED = 50
TONE_PACKETS = 250  # five seconds of the caller speaking after the beep
# Short transaction timers so that the refused INVITEs' and the BYEs' transactions end
# within the test (Timer I = T4, Timer J = 64 * T1).
TIMERS = Timers(t1=0.05, t2=0.4, t4=0.5)
uac_for = test_admission.uac_for  # the fixture: UDP sockets for raw UACs


def tone(seconds: float, hz: float = 440.0) -> bytes:
    """Signed 16-bit mono 8 kHz PCM of a sine well above the worker's silence level."""
    count = int(seconds * g711.RATE)
    return b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * n / g711.RATE)))
        for n in range(count)
    )


TONE_FRAME = g711.ulaw_encode(tone(0.02))
SILENT_FRAME = g711.SILENCE["PCMU"]


@dataclass(eq=False)
class Caller(asyncio.DatagramProtocol):
    """The caller's RTP: sends PCMU every 20 ms, counts the worker's packets."""

    arrivals: list[float] = field(default_factory=list)
    loud: list[bool] = field(default_factory=list)
    transport: asyncio.DatagramTransport | None = None
    worker: tuple[str, int] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        if len(data) < 12 or data[1] & 0x7F != 0:
            return  # RTCP or telephone-event
        self.arrivals.append(asyncio.get_running_loop().time())
        self.loud.append(g711.rms(g711.ulaw_decode(data[12:])) >= SILENCE_RMS)

    @property
    def port(self) -> int:
        assert self.transport is not None
        return int(self.transport.get_extra_info("sockname")[1])

    def beep_ended(self, quiet: int = 25) -> bool:
        """Announcement heard, then ``quiet`` silent packets: the worker records."""
        return any(self.loud) and len(self.loud) >= quiet and not any(self.loud[-quiet:])

    def last_loud_arrival(self) -> float:
        return max(t for t, loud in zip(self.arrivals, self.loud, strict=True) if loud)

    def per_second(self, start: float, end: float) -> list[int]:
        """Packets received in each whole second from ``start`` to ``end``."""
        seconds = int(end - start)
        counts = [0] * seconds
        for t in self.arrivals:
            slot = int(t - start)
            if 0 <= slot < seconds:
                counts[slot] += 1
        return counts

    async def stream(self, frames: int, payload: bytes, state: list[int]) -> None:
        """Send ``frames`` packets on a 20 ms schedule; ``state``: [sequence, timestamp]."""
        assert self.transport is not None
        assert self.worker is not None
        loop = asyncio.get_running_loop()
        start = loop.time()
        for n in range(frames):
            header = struct.pack("!BBHII", 0x80, 0, state[0] & 0xFFFF, state[1], 0x1234)
            self.transport.sendto(header + payload, self.worker)
            state[0] += 1
            state[1] = (state[1] + 160) & 0xFFFFFFFF
            await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - loop.time()))


def offer(port: int) -> str:
    return (
        f"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
        f"m=audio {port} RTP/AVP 0 101\r\na=rtpmap:0 PCMU/8000\r\n"
        "a=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
    )


@dataclass
class MediaUac(Uac):
    """A UAC whose INVITE offers its caller's RTP port."""

    rtp_port: int = 0

    def request(self, method: str, call_id: str, **kwargs: object) -> str:
        text = super().request(method, call_id, **kwargs)  # type: ignore[arg-type]
        if method != "INVITE" or kwargs.get("to_tag"):
            return text
        head, _, _ = text.partition("Content-Length:")
        body = offer(self.rtp_port)
        return f"{head}Content-Length: {len(body)}\r\n\r\n{body}"


async def test_admitted_calls_keep_media_and_recordings_while_new_ones_get_503(
    tmp_path: Path,
    store: Storage,
    smtp_inbox: tuple[Inbox, int],
    start_worker: WorkerFactory,
    uac_for: UacFactory,
) -> None:
    loop = asyncio.get_running_loop()
    await store.put_greeting(DOMAIN, USER, "vm", write_wav(tone(0.4, 600.0)))
    app, _ = service(
        tmp_path, store, smtp_inbox[1], AppsConfig(default_mode="box", simple_mode="voicemail")
    )
    worker = await start_worker(app, max_calls=MAX_CALLS, timers=TIMERS)
    callers: list[Caller] = []
    calls: list[tuple[MediaUac, str, str]] = []  # (uac, Call-ID, the worker's tag)
    for n in range(MAX_CALLS):
        _, caller = await loop.create_datagram_endpoint(Caller, local_addr=("127.0.0.1", 0))
        plain = uac_for(worker.port)
        uac = MediaUac(plain.sock, plain.worker, rtp_port=caller.port)
        call_id = f"held-{n}-{random.randrange(10**9)}"
        answer = await uac.invite(call_id, APP)
        assert answer.status == 200, (answer.status, answer.reason)
        port = int(answer.body.decode().split("m=audio ")[1].split()[0])
        caller.worker = ("127.0.0.1", port)
        callers.append(caller)
        calls.append((uac, call_id, to_tag(answer)))
    try:
        streams = [[random.randrange(1 << 16), random.randrange(1 << 32)] for _ in callers]
        # Silence until the greeting and the beep are over, on both calls.
        while not all(c.beep_ended() for c in callers):
            await asyncio.gather(
                *(c.stream(5, SILENT_FRAME, s) for c, s in zip(callers, streams, strict=True))
            )
            assert loop.time() - callers[0].arrivals[0] < 10, "greeting and beep never ended"
        tone_start = loop.time()
        media_start = min(c.arrivals[0] for c in callers)
        speaking = [
            asyncio.create_task(c.stream(TONE_PACKETS, TONE_FRAME, s))
            for c, s in zip(callers, streams, strict=True)
        ]
        flood: Uac = uac_for(worker.port)
        transactions_before = len(worker.core._servers)
        for n in range(REFUSED):
            refused = await flood.invite(f"refused-{n}", APP)
            assert (refused.status, refused.headers.get("Retry-After")) == (503, "5"), n
        assert len(worker._calls) == len(worker.core.calls) == MAX_CALLS
        await asyncio.gather(*speaking)
        media_end = loop.time()
        # The refused INVITEs left nothing behind: their transactions end on Timer I.
        await eventually(lambda: len(worker.core._servers) <= transactions_before, 5)
        byes = [await uac.bye(call_id, tag) for uac, call_id, tag in calls]
        assert [bye.status for bye in byes] == [200] * MAX_CALLS
    finally:
        for caller in callers:
            assert caller.transport is not None
            caller.transport.close()

    for caller in callers:
        counts = caller.per_second(media_start, media_end)
        # 50 packets a second are sent; a stall of the worker's media would show as a
        # second with far fewer (generous: CPU is shared with other tests).
        assert counts
        assert min(counts) >= 25, counts

    # Both messages stored, each as long as the tone plus the silence sent between the
    # beep's end and the tone (the worker trims only trailing silence).
    async def stored() -> bool:
        return len(await store.list_mailbox(DOMAIN, USER)) == MAX_CALLS

    await eventually(stored, 10)
    messages = await store.list_mailbox(DOMAIN, USER)
    expected = [TONE_PACKETS * 0.02 + tone_start - c.last_loud_arrival() for c in callers]
    for info in messages:
        audio = read_wav((await store.get_message(DOMAIN, USER, info.name)).audio)
        assert min(expected) - 0.3 < audio.duration < max(expected) + 0.3, (
            audio.duration,
            expected,
        )
        assert audio.duration >= TONE_PACKETS * 0.02 - 0.1
    await eventually(lambda: worker._calls == {} and worker.core.calls == {}, 10)
    await eventually(lambda: worker.core._servers == {}, 10)

    # With the calls over, a new call is admitted again.
    again: Uac = uac_for(worker.port)
    answer = await again.invite("after", APP)
    assert answer.status == 200, (answer.status, answer.reason)
    assert (await again.bye("after", to_tag(answer))).status == 200
