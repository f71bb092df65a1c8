"""The RTP endpoint hears only the call's peer: real UDP sockets on loopback.

127.0.0.2 stands for a foreign host (every 127/8 address reaches loopback on Linux).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass

import pytest

from media_worker import g711
from media_worker.dtmf import DIGITS, TelephoneEvent
from media_worker.media import RtpEndpoint, source_hosts
from media_worker.pacer import Pacer
from media_worker.rtp import RtpPacket
from media_worker.sdp import PCMU, TELEPHONE_EVENT, Direction, MediaParams

CALLER = "127.0.0.1"
FOREIGN = "127.0.0.2"


def udp(host: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((host, 0))
    sock.setblocking(False)
    return sock


@dataclass
class Peer:
    """A UDP socket that sends RTP as one party would."""

    sock: socket.socket
    ssrc: int
    seq: int = 100
    ts: int = 8000

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()
        return str(host), int(port)

    def audio(self, to: tuple[str, int]) -> None:
        packet = RtpPacket(0, self.seq, self.ts, self.ssrc, g711.SILENCE["PCMU"])
        self.sock.sendto(packet.serialize(), to)
        self.seq += 1
        self.ts += 160

    def start(self, to: tuple[str, int]) -> None:
        """Enough audio to fill the receiver's reordering window: later packets pass at once."""
        for _ in range(6):
            self.audio(to)

    def digit(self, digit: str, to: tuple[str, int]) -> None:
        payload = TelephoneEvent(DIGITS.index(digit), True, 10, 800).serialize()
        packet = RtpPacket(TELEPHONE_EVENT.payload_type, self.seq, self.ts, self.ssrc, payload)
        self.sock.sendto(packet.serialize(), to)
        self.seq += 1
        self.ts += 800

    def received(self) -> int:
        count = 0
        while True:
            try:
                self.sock.recv(2048)
            except BlockingIOError:
                return count
            count += 1


@dataclass
class Endpoint:
    rtp: RtpEndpoint
    digits: list[str]
    audio: list[bytes]

    @property
    def address(self) -> tuple[str, int]:
        return CALLER, self.rtp.local_port


@pytest.fixture
def sockets() -> Iterator[list[socket.socket]]:
    opened: list[socket.socket] = []
    yield opened
    for sock in opened:
        sock.close()


def peer(sockets: list[socket.socket], host: str, ssrc: int) -> Peer:
    sock = udp(host)
    sockets.append(sock)
    return Peer(sock, ssrc)


MakeEndpoint = Callable[[str, int], Awaitable[Endpoint]]


@pytest.fixture
async def make_endpoint() -> AsyncIterator[MakeEndpoint]:
    started: list[RtpEndpoint] = []

    async def make(sdp_host: str, sdp_port: int) -> Endpoint:
        params = MediaParams(
            remote_host=sdp_host,
            remote_port=sdp_port,
            codec=PCMU,
            dtmf=TELEPHONE_EVENT,
            direction=Direction.SENDRECV,
            source_host=sdp_host,
        )
        digits: list[str] = []
        audio: list[bytes] = []
        rtp = RtpEndpoint(
            params,
            (udp(CALLER), udp(CALLER)),
            Pacer(),
            on_audio=audio.append,
            on_digit=digits.append,
            on_played=lambda mark, interrupted: None,
        )
        rtp.call_id = "source-test"
        await rtp.start()
        started.append(rtp)
        return Endpoint(rtp, digits, audio)

    yield make
    for rtp in started:
        rtp.stop()


async def settle() -> None:
    await asyncio.sleep(0.1)


async def test_foreign_hash_and_3_change_nothing_after_latching(
    make_endpoint: MakeEndpoint, sockets: list[socket.socket], caplog: pytest.LogCaptureFixture
) -> None:
    caller = peer(sockets, CALLER, 1)
    stranger = peer(sockets, FOREIGN, 2)
    same_host = peer(sockets, CALLER, 3)  # the caller's address, another port
    endpoint: Endpoint = await make_endpoint(*caller.address)
    caller.start(endpoint.address)
    await settle()
    heard = len(endpoint.audio)
    assert heard > 0
    for _ in range(5):
        stranger.digit("#", endpoint.address)
        stranger.digit("3", endpoint.address)
        stranger.audio(endpoint.address)
        same_host.digit("3", endpoint.address)
    await settle()
    assert endpoint.digits == []
    assert len(endpoint.audio) == heard
    assert endpoint.rtp.foreign_packets == 20
    assert stranger.received() == 0
    assert same_host.received() == 0
    caller.digit("#", endpoint.address)
    caller.digit("3", endpoint.address)
    await settle()
    assert endpoint.digits == ["#", "3"]
    assert caller.received() > 0  # the worker's stream goes to the caller
    with caplog.at_level(logging.DEBUG, "voicemail.media"):
        endpoint.rtp.stop()
        endpoint.rtp.stop()  # the worker stops an endpoint twice on some paths
    infos = [r for r in caplog.records if r.name == "voicemail.media" and r.levelno >= logging.INFO]
    assert len(infos) == 1
    assert "[source-test] dropped 20 RTP packet(s)" in infos[0].getMessage()
    assert FOREIGN in infos[0].getMessage()


async def test_before_latching_only_the_sdp_address_is_heard(
    make_endpoint: MakeEndpoint, sockets: list[socket.socket]
) -> None:
    caller = peer(sockets, CALLER, 1)
    stranger = peer(sockets, FOREIGN, 2)
    endpoint: Endpoint = await make_endpoint(*caller.address)
    stranger.start(endpoint.address)  # first in: must not be latched onto
    stranger.digit("#", endpoint.address)
    stranger.digit("3", endpoint.address)
    await settle()
    assert endpoint.digits == []
    assert endpoint.audio == []
    assert endpoint.rtp.foreign_packets == 8
    assert stranger.received() == 0  # nor is the worker's stream sent there
    caller.start(endpoint.address)
    caller.digit("#", endpoint.address)
    await settle()
    assert endpoint.digits == ["#"]
    stranger.digit("3", endpoint.address)
    await settle()
    assert endpoint.digits == ["#"]


async def test_a_caller_behind_nat_is_heard_from_another_port(
    make_endpoint: MakeEndpoint, sockets: list[socket.socket]
) -> None:
    sdp_port = peer(sockets, CALLER, 9)  # what the SDP names, never used to send
    caller = peer(sockets, CALLER, 1)  # the NAT's mapping: same address, other port
    stranger = peer(sockets, FOREIGN, 2)
    endpoint: Endpoint = await make_endpoint(*sdp_port.address)
    caller.start(endpoint.address)
    caller.digit("5", endpoint.address)
    await settle()
    assert endpoint.digits == ["5"]
    assert endpoint.audio
    await asyncio.sleep(0.1)
    assert caller.received() > 0  # symmetric RTP: answered where it came from
    sdp_port.received()
    sdp_port.digit("3", endpoint.address)  # latched: now even the SDP's port is foreign
    stranger.digit("3", endpoint.address)
    await settle()
    assert endpoint.digits == ["5"]
    assert sdp_port.received() == 0


async def test_a_reinvite_moving_the_media_latches_afresh(
    make_endpoint: MakeEndpoint, sockets: list[socket.socket]
) -> None:
    caller = peer(sockets, CALLER, 1)
    moved = peer(sockets, FOREIGN, 2)
    endpoint: Endpoint = await make_endpoint(*caller.address)
    caller.start(endpoint.address)
    caller.digit("1", endpoint.address)
    await settle()
    params = endpoint.rtp.params
    host, port = moved.address
    endpoint.rtp.update(
        MediaParams(host, port, params.codec, params.dtmf, params.direction, source_host=host)
    )
    caller.digit("2", endpoint.address)
    moved.start(endpoint.address)
    moved.digit("3", endpoint.address)
    await settle()
    assert endpoint.digits == ["1", "3"]


def test_source_hosts_cover_the_spellings_a_socket_reports() -> None:
    assert source_hosts("192.0.2.1") == {"192.0.2.1", "::ffff:192.0.2.1"}
    assert source_hosts("2001:DB8:0::1") == {"2001:db8::1"}
    assert source_hosts("::ffff:192.0.2.1") == {"::ffff:192.0.2.1", "::ffff:c000:201", "192.0.2.1"}
    assert source_hosts("rtp.example") == {"rtp.example"}
    assert source_hosts(None) == frozenset()


async def test_audio_still_queued_at_the_hang_up_reaches_the_recording(
    make_endpoint: MakeEndpoint, sockets: list[socket.socket]
) -> None:
    caller = peer(sockets, CALLER, 1)
    endpoint: Endpoint = await make_endpoint(*caller.address)
    caller.start(endpoint.address)
    await settle()
    heard = len(b"".join(endpoint.audio))
    # A busy worker handles the BYE before the last packets it has not read yet: sent
    # now, with no chance for the loop to read them before stop().
    for _ in range(30):
        caller.audio(endpoint.address)
    endpoint.rtp.stop()
    assert len(b"".join(endpoint.audio)) == heard + 30 * 320
    endpoint.rtp.stop()  # stopped twice, as on some paths: nothing more, no error
    assert len(b"".join(endpoint.audio)) == heard + 30 * 320
