"""A call's RTP endpoint: a socket pair, symmetric latching, paced G.711 sending.

Outgoing: the player's audio (or silence, so that phones and rtpengine never see a dead
stream) goes out every 20 ms with continuous sequence numbers and timestamps and the
marker bit at each talk-spurt start. Incoming: packets go through the receive stream;
audio reaches the recorder and digits reach the session.

Only the peer's media counts: until the first packet, only the address the SDP named
(c=) is accepted, from any port (NAT may change it); that packet's source address and
port are latched, and from then on packets from anywhere else are dropped and counted.
Otherwise anyone who finds a worker's RTP port could press keys in a stranger's call
(``#`` ends a recording, ``3`` deletes a message).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass

from media_worker import g711
from media_worker.dtmf import InbandDetector
from media_worker.jitter import ReceiveStream
from media_worker.pacer import PERIOD, TICK, Pacer
from media_worker.rtp import is_rtcp, pack_header, parse_rtp
from media_worker.sdp import MediaParams

log = logging.getLogger("voicemail.media")

FRAME_SAMPLES = g711.FRAME_SAMPLES  # 20 ms; also the bytes of one G.711 frame
MAX_CATCH_UP = 10  # frames sent back to back after a stall; beyond that they are skipped
MAX_DRAIN = 250  # packets read from the socket at the end of a call (5 s of audio), at most
HOLD_ADDRESSES = frozenset({"0.0.0.0", "::"})  # noqa: S104 - RFC 2543 hold, not a bind


def source_hosts(host: str | None) -> frozenset[str]:
    """The spellings a socket may report for packets from ``host`` (the SDP's c=)."""
    if host is None:
        return frozenset()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return frozenset({host})  # a name: only ever equal to itself
    hosts = {str(address)}
    if isinstance(address, ipaddress.IPv4Address):
        hosts.add(f"::ffff:{address}")  # received on an IPv6 socket
    elif address.ipv4_mapped is not None:
        hosts |= {str(address.ipv4_mapped), f"::ffff:{address.ipv4_mapped}"}
    return frozenset(hosts)


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


_ENCODED: OrderedDict[tuple[Callable[[bytes], bytes], bytes], bytes] = OrderedDict()
ENCODED_CACHE_ITEMS = 64


def _encoded(encode: Callable[[bytes], bytes], pcm: bytes) -> bytes:
    """``encode(pcm)``, shared by every call playing the same prompt (an LRU)."""
    key = (encode, pcm)  # bytes hash once and compare by identity first: cheap lookups
    found = _ENCODED.get(key)
    if found is None:
        found = _ENCODED[key] = encode(pcm)
        if len(_ENCODED) > ENCODED_CACHE_ITEMS:
            _ENCODED.popitem(last=False)
    else:
        _ENCODED.move_to_end(key)
    return found


class Player:
    """Queue of PCM items played frame by frame; reports when each ends.

    An item is encoded whole when it starts (one C call), so the 20 ms tick only slices.
    """

    def __init__(self, on_done: Callable[[str, bool], None], codec: str) -> None:
        self._items: deque[PlayItem] = deque()
        self._current: PlayItem | None = None
        self._encoded = b""
        self._offset = 0
        self._on_done = on_done  # (mark, interrupted): an item ended
        self.set_codec(codec)

    def set_codec(self, codec: str) -> None:
        """Encode with ``codec`` from the next item on (a re-INVITE may change it)."""
        self._encode = g711.ENCODERS[codec]
        self._pad = g711.SILENCE[codec][:1]

    @property
    def busy(self) -> bool:
        return self._current is not None or bool(self._items)

    def enqueue(self, items: list[PlayItem]) -> None:
        self._items.extend(items)

    def stop(self) -> None:
        """Drop the current and queued items (each reported done, interrupted)."""
        if self._current is not None:
            self._on_done(self._current.mark, True)
            self._current = None
        while self._items:
            self._on_done(self._items.popleft().mark, True)

    def next_frame(self) -> bytes | None:
        """20 ms of encoded audio, or None when there is nothing to play."""
        current = self._current
        if current is not None and self._offset + FRAME_SAMPLES < len(self._encoded):
            self._offset += FRAME_SAMPLES  # the common case: inside an item
            return self._encoded[self._offset - FRAME_SAMPLES : self._offset]
        frame = b""
        while len(frame) < FRAME_SAMPLES:
            if self._current is None:
                if not self._items:
                    break
                self._current = self._items.popleft()
                self._encoded = _encoded(self._encode, self._current.pcm)
                self._offset = 0
            need = FRAME_SAMPLES - len(frame)
            frame += self._encoded[self._offset : self._offset + need]
            self._offset += need
            if self._offset >= len(self._encoded):
                self._on_done(self._current.mark, False)
                self._current = None
        if not frame:
            return None
        return frame + self._pad * (FRAME_SAMPLES - len(frame))


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
        on_played: Callable[[str, bool], None],
    ) -> None:
        self.params = params
        self._rtp_sock, self._rtcp_sock = sockets
        self.local_port = int(self._rtp_sock.getsockname()[1])
        self.pacer = pacer
        self.on_audio = on_audio
        self.on_digit = on_digit
        self.player = Player(on_played, params.codec.name.upper())
        self._transport: asyncio.DatagramTransport | None = None
        self._rtcp_transport: asyncio.BaseTransport | None = None
        self._remote = self._sdp_remote(params)
        self._latched = False
        self._source: tuple[str | int, ...] | None = None  # the latched (host, port, ...)
        self._expected = source_hosts(self._sdp_source(params))
        self.call_id = ""  # for log lines
        self.foreign_packets = 0
        self._first_foreign: tuple[str | int, ...] | None = None
        self._ssrc = random.getrandbits(32)
        self._seq = random.getrandbits(16)
        self._ts = random.getrandbits(32)
        self._talking = False
        self.due = 0.0
        self._configure(params)
        self.sent_packets = 0
        self.send_drops = 0

    def _configure(self, params: MediaParams) -> None:
        codec = params.codec
        self._pt = codec.payload_type
        self._sends = params.direction.sends
        self._receives = params.direction.receives  # looked at for every packet
        self._silence = g711.SILENCE[codec.name.upper()]
        if hasattr(self, "player"):
            self.player.set_codec(codec.name.upper())
        self.receiver = ReceiveStream(
            codec.name.upper(),
            codec.payload_type,
            params.dtmf.payload_type if params.dtmf else None,
        )
        self.inband = InbandDetector() if params.dtmf is None else None

    @staticmethod
    def _sdp_remote(params: MediaParams) -> tuple[str, int] | None:
        return (params.remote_host, params.remote_port) if params.remote_host else None

    @staticmethod
    def _sdp_source(params: MediaParams) -> str | None:
        return params.source_host or params.remote_host

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
        if self._transport is not None and not self._transport.is_closing():
            self._drain_socket()
        if self._first_foreign is not None:  # once per call, however often stop() runs
            log.info(
                "[%s] dropped %d RTP packet(s) from foreign sources (first from %s:%s)",
                self.call_id, self.foreign_packets, *self._first_foreign[:2],
            )  # fmt: skip
            self._first_foreign = None
        tail = self.receiver.flush().pcm
        if tail:
            self.on_audio(tail)
        if self._transport is not None:
            self._transport.close()
        if self._rtcp_transport is not None:
            self._rtcp_transport.close()

    def _drain_socket(self) -> None:
        """Take in what the kernel still holds for this call. A busy worker may handle the
        BYE before the RTP that came just ahead of it: the caller's last words would be
        cut from the recording. Bounded, so that a flood cannot hold the loop."""
        for _ in range(MAX_DRAIN):
            try:
                data, addr = self._rtp_sock.recvfrom(2048)
            except OSError:  # BlockingIOError: nothing left
                return
            self.datagram_received(data, addr)

    def update(self, params: MediaParams) -> None:
        """New negotiated parameters (re-INVITE): direction, address, codec."""
        if params.codec != self.params.codec or params.dtmf != self.params.dtmf:
            self._configure(params)
        self._sends = params.direction.sends
        self._receives = params.direction.receives
        old = (self._sdp_source(self.params), self.params.remote_port)
        new = (self._sdp_source(params), params.remote_port)
        self.params = params
        if new != old and new[0] not in HOLD_ADDRESSES:
            # The media moved (signalled in the dialog): latch afresh onto the new place.
            self._latched = False
            self._source = None
            self._expected = source_hosts(new[0])
        if not self._latched:
            self._remote = self._sdp_remote(params)

    # ----- sending (called by the pacer) -----

    def send_due(self, now: float) -> None:
        behind = int((now - self.due) / PERIOD)
        if behind > MAX_CATCH_UP:  # the loop stalled: skip the lost time rather than burst
            self.due += behind * PERIOD
        while self.due <= now + TICK / 2:
            self.due += PERIOD
            self._send_frame()

    def _send_frame(self) -> None:
        payload = self.player.next_frame()
        marker = False
        if payload is None:
            payload = self._silence
            self._talking = False
        else:
            marker = not self._talking
            self._talking = True
        if self._remote is not None and self._sends:
            header = pack_header(self._pt, marker, self._seq, self._ts, self._ssrc)
            try:
                # The socket itself, not the asyncio transport: this runs 50 times a second
                # a call, and a full send buffer is a dropped packet either way.
                self._rtp_sock.sendto(header + payload, self._remote)
                self.sent_packets += 1
            except (BlockingIOError, InterruptedError):
                self.send_drops += 1
            except OSError as exc:  # e.g. ICMP port unreachable reported on the socket
                log.debug("RTP send to %s failed: %s", self._remote, exc)
        self._seq = (self._seq + 1) & 0xFFFF
        self._ts = (self._ts + g711.FRAME_SAMPLES) & 0xFFFFFFFF

    # ----- receiving -----

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if addr != self._source and not self._accept_source(addr):
            return
        if not self._receives:
            return
        pcm = self.receiver.feed_next(data)  # the common case: no objects made
        if pcm is not None:
            self.on_audio(pcm)
            if self.inband is not None:
                for digit in self.inband.feed(pcm):
                    self.on_digit(digit)
            return
        if is_rtcp(data):
            return
        try:
            packet = parse_rtp(data)
        except ValueError as exc:
            log.debug("ignored a bad RTP packet from %s: %s", addr, exc)
            return
        received = self.receiver.feed(packet)
        if received.pcm:
            self.on_audio(received.pcm)
            if self.inband is not None:
                for digit in self.inband.feed(received.pcm):
                    self.on_digit(digit)
        for digit in received.digits:
            self.on_digit(digit)

    def _accept_source(self, addr: tuple[str | int, ...]) -> bool:
        """A packet from somewhere other than the latched source: latch onto it if it is
        the first from the SDP's address, else drop it (counted, logged once)."""
        if not self._latched and str(addr[0]) in self._expected:
            # Symmetric RTP: answer where the media really comes from (NAT, rtpengine).
            self._source = addr
            self._remote = (str(addr[0]), int(addr[1]))
            self._latched = True
            if addr[1] != self.params.remote_port:
                log.debug(
                    "[%s] RTP latched to %s:%s (the SDP said port %d)",
                    self.call_id, addr[0], addr[1], self.params.remote_port,
                )  # fmt: skip
            return True
        self.foreign_packets += 1
        if self._first_foreign is None and self.foreign_packets == 1:
            self._first_foreign = addr
            log.debug(
                "[%s] RTP from %s:%s dropped: the call's media is %s",
                self.call_id, addr[0], addr[1],
                self._remote if self._latched else f"from {', '.join(sorted(self._expected))}",
            )  # fmt: skip
        return False

    def error_received(self, exc: Exception) -> None:
        log.debug("RTP socket error: %s", exc)
