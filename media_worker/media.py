"""A call's RTP endpoint: a socket pair, symmetric latching, paced G.711 sending.

Outgoing: the player's audio (or silence, so that phones and rtpengine never see a dead
stream) goes out every 20 ms with continuous sequence numbers and timestamps and the
marker bit at each talk-spurt start. Incoming: packets go through the receive stream;
audio reaches the recorder and digits reach the session.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from media_worker import g711
from media_worker.dtmf import InbandDetector
from media_worker.jitter import ReceiveStream
from media_worker.pacer import PERIOD, Pacer
from media_worker.rtp import RtpPacket, is_rtcp, parse_rtp
from media_worker.sdp import MediaParams

log = logging.getLogger("voicemail.media")

FRAME_BYTES = 2 * g711.FRAME_SAMPLES  # 20 ms of 16-bit PCM


class PortRangeExhausted(OSError):
    """No free RTP port pair in the configured range."""


class PortAllocator:
    """Even/odd RTP/RTCP port pairs from a configured range, bound on ``host``."""

    def __init__(self, host: str, low: int, high: int) -> None:
        if low % 2:
            low += 1
        if high <= low:
            raise ValueError(f"RTP port range {low}-{high} is empty")
        self.host = host
        self.low, self.high = low, high
        self._next = low + 2 * random.randrange((high - low) // 2)  # noqa: S311 - not secret

    def bind_pair(self) -> tuple[socket.socket, socket.socket]:
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        for _ in range((self.high - self.low) // 2):
            port = self._next
            self._next = port + 2 if port + 2 < self.high else self.low
            rtp = socket.socket(family, socket.SOCK_DGRAM)
            rtcp = socket.socket(family, socket.SOCK_DGRAM)
            try:
                rtp.bind((self.host, port))
                rtcp.bind((self.host, port + 1))
            except OSError:
                rtp.close()
                rtcp.close()
                continue
            rtp.setblocking(False)
            rtcp.setblocking(False)
            return rtp, rtcp
        raise PortRangeExhausted(f"no free RTP port pair in {self.low}-{self.high}")


@dataclass
class PlayItem:
    mark: str
    pcm: bytes


class Player:
    """Queue of PCM items played frame by frame; reports when each starts and ends."""

    def __init__(self, on_event: Callable[[str, str, bool], None]) -> None:
        self._items: deque[PlayItem] = deque()
        self._current: PlayItem | None = None
        self._offset = 0
        self._on_event = on_event  # (kind "start"|"done", mark, interrupted)

    @property
    def busy(self) -> bool:
        return self._current is not None or bool(self._items)

    def enqueue(self, items: list[PlayItem]) -> None:
        self._items.extend(items)

    def stop(self) -> None:
        """Drop the current and queued items (each reported done, interrupted)."""
        if self._current is not None:
            self._on_event("done", self._current.mark, True)
            self._current = None
        while self._items:
            self._on_event("done", self._items.popleft().mark, True)

    def next_frame(self) -> bytes | None:
        """20 ms of PCM, or None when there is nothing to play."""
        frame = b""
        while len(frame) < FRAME_BYTES:
            if self._current is None:
                if not self._items:
                    break
                self._current = self._items.popleft()
                self._offset = 0
                self._on_event("start", self._current.mark, False)
            need = FRAME_BYTES - len(frame)
            frame += self._current.pcm[self._offset : self._offset + need]
            self._offset += need
            if self._offset >= len(self._current.pcm):
                self._on_event("done", self._current.mark, False)
                self._current = None
        if not frame:
            return None
        return frame + bytes(FRAME_BYTES - len(frame))


class RtpEndpoint(asyncio.DatagramProtocol):
    """One call's media. ``on_audio`` gets received PCM; ``on_digit`` gets key presses."""

    def __init__(
        self,
        params: MediaParams,
        sockets: tuple[socket.socket, socket.socket],
        pacer: Pacer,
        *,
        on_audio: Callable[[bytes], None],
        on_digit: Callable[[str], None],
        on_play_event: Callable[[str, str, bool], None],
    ) -> None:
        self.params = params
        self._rtp_sock, self._rtcp_sock = sockets
        self.local_port = int(self._rtp_sock.getsockname()[1])
        self.pacer = pacer
        self.on_audio = on_audio
        self.on_digit = on_digit
        self.player = Player(on_play_event)
        self._transport: asyncio.DatagramTransport | None = None
        self._rtcp_transport: asyncio.BaseTransport | None = None
        self._remote = self._sdp_remote(params)
        self._latched = False
        self._ssrc = random.getrandbits(32)
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self._talking = False
        self.due = 0.0
        self._configure(params)
        self.sent_packets = 0

    def _configure(self, params: MediaParams) -> None:
        codec = params.codec
        self._encode = g711.ENCODERS[codec.name.upper()]
        self._silence = g711.SILENCE[codec.name.upper()]
        self.receiver = ReceiveStream(
            codec.name.upper(),
            codec.payload_type,
            params.dtmf.payload_type if params.dtmf else None,
        )
        self.inband = InbandDetector() if params.dtmf is None else None

    @staticmethod
    def _sdp_remote(params: MediaParams) -> tuple[str, int] | None:
        return (params.remote_host, params.remote_port) if params.remote_host else None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(lambda: self, sock=self._rtp_sock)
        self._transport = transport
        # RTCP is accepted and ignored: rtpengine sends it, nothing here needs it.
        self._rtcp_transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, sock=self._rtcp_sock
        )
        self.due = loop.time()
        self.pacer.add(self)

    def stop(self) -> None:
        self.pacer.remove(self)
        tail = self.receiver.flush().pcm
        if tail:
            self.on_audio(tail)
        if self._transport is not None:
            self._transport.close()
        if self._rtcp_transport is not None:
            self._rtcp_transport.close()

    def update(self, params: MediaParams) -> None:
        """New negotiated parameters (re-INVITE): direction, address, codec."""
        if params.codec != self.params.codec or params.dtmf != self.params.dtmf:
            self._configure(params)
        self.params = params
        if not self._latched:
            self._remote = self._sdp_remote(params)

    # ----- sending (called by the pacer) -----

    def send_due(self, now: float) -> None:
        while self.due <= now + 0.0005:
            self.due += PERIOD
            self._send_frame()
            if now - self.due > 10 * PERIOD:  # the loop stalled: resynchronise, do not burst
                self.due = now + PERIOD

    def _send_frame(self) -> None:
        pcm = self.player.next_frame()
        marker = False
        if pcm is None:
            payload = self._silence
            self._talking = False
        else:
            payload = self._encode(pcm)
            marker = not self._talking
            self._talking = True
        if self._remote is not None and self.params.direction.sends and self._transport is not None:
            packet = RtpPacket(
                self.params.codec.payload_type, self._seq, self._ts, self._ssrc, payload, marker
            )
            self._transport.sendto(packet.serialize(), self._remote)
            self.sent_packets += 1
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + g711.FRAME_SAMPLES) & 0xFFFFFFFF

    # ----- receiving -----

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if is_rtcp(data):
            return
        try:
            packet = parse_rtp(data)
        except ValueError as exc:
            log.debug("ignored a bad RTP packet from %s: %s", addr, exc)
            return
        if not self._latched:
            # Symmetric RTP: answer where the media really comes from (NAT, rtpengine).
            self._remote = (str(addr[0]), int(addr[1]))
            self._latched = True
        if not self.params.direction.receives:
            return
        received = self.receiver.feed(packet)
        if received.pcm:
            self.on_audio(received.pcm)
            if self.inband is not None:
                for digit in self.inband.feed(received.pcm):
                    self.on_digit(digit)
        for digit in received.digits:
            self.on_digit(digit)

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)
