"""SIP over UDP and TCP on one port, IPv4 or IPv6: the I/O under the sans-IO core.

Incoming bytes become parsed messages handed to ``on_message`` with the Peer they came
from; a malformed request gets 400 (or the parser's status) where a response is possible
and is otherwise dropped with a log line (rate-limited: a flood does not flood the log).
Outgoing messages go to a Peer: over UDP by sendto, over TCP on the connection they
belong to, or on a new connection. A TCP connection from an untrusted address is closed as it is
accepted; a trusted one is closed after ``idle_timeout`` seconds without a byte.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections.abc import Callable

from media_worker.sip.address import Peer
from media_worker.sip.message import (
    MAX_MESSAGE_BYTES,
    Message,
    Request,
    Response,
    SipParseError,
    StreamParser,
    parse_message,
    response_to,
    serialize,
)

log = logging.getLogger("voicemail.sip")

MessageHandler = Callable[[Message, Peer], None]
TCP_IDLE_TIMEOUT = 120.0  # seconds without a byte before a TCP connection is closed
LOG_BURST, LOG_PERIOD = 10, 10.0  # at most this many lines per period about bad input


class _LogThrottle:
    """Lets ``burst`` lines through per ``period`` seconds; counts the ones held back."""

    def __init__(self, burst: int = LOG_BURST, period: float = LOG_PERIOD) -> None:
        self.burst, self.period = burst, period
        self._window = -math.inf
        self._lines = 0
        self._held = 0

    def allow(self, now: float) -> str | None:
        """None: hold this line back; else a suffix telling how many were held back."""
        if now - self._window >= self.period:
            self._window, self._lines = now, 0
        if self._lines >= self.burst:
            self._held += 1
            return None
        self._lines += 1
        held, self._held = self._held, 0
        return f" ({held} similar lines not logged)" if held else ""


def _short(data: bytes) -> str:
    first = data.split(b"\r\n", 1)[0][:80]
    return first.decode("utf-8", "replace")


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, transport: SipTransport) -> None:
        self.owner = transport

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        host, port = str(addr[0]), int(addr[1])
        if data.strip(b"\r\n") == b"":
            return  # keep-alive
        self.owner.handle_bytes(data, Peer("udp", host, port), stream=False)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)


class _Tcp(asyncio.Protocol):
    def __init__(self, owner: SipTransport, *, outgoing: bool = False) -> None:
        self.owner = owner
        self.outgoing = outgoing
        self.conn_id = next(owner.conn_ids)
        self.parser = StreamParser()
        self.transport: asyncio.Transport | None = None
        self.peer = ("", 0)
        self.last_activity = 0.0
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        peer = transport.get_extra_info("peername")
        self.peer = (str(peer[0]), int(peer[1]))
        if not self.outgoing and not self.owner.trusted(self.peer[0]):
            # Nothing from there is served: hold no buffer and no socket for it.
            self.owner.note("closed a TCP connection from untrusted %s:%d", *self.peer)
            transport.abort()
            return
        self.owner.connections[self.conn_id] = self
        self.touch()
        self._idle = asyncio.get_running_loop().call_later(
            self.owner.idle_timeout, self._check_idle
        )

    def touch(self) -> None:
        self.last_activity = asyncio.get_running_loop().time()

    def _check_idle(self) -> None:
        loop = asyncio.get_running_loop()
        idle = loop.time() - self.last_activity
        if idle < self.owner.idle_timeout:
            self._idle = loop.call_later(self.owner.idle_timeout - idle, self._check_idle)
            return
        log.debug("closing TCP connection with %s:%d, idle for %.0f s", *self.peer, idle)
        if self.transport is not None:
            self.transport.close()

    def data_received(self, data: bytes) -> None:
        self.touch()
        source = Peer("tcp", self.peer[0], self.peer[1], self.conn_id)
        for item in self.parser.feed(data):
            if isinstance(item, bytes):
                if self.transport is not None:
                    self.transport.write(b"\r\n")  # RFC 5626 pong
            elif isinstance(item, SipParseError):
                self.owner.handle_error(item, source, b"")
                if item.framing_lost:  # the next message's start is unknown
                    if self.transport is not None:
                        self.transport.close()
                    return
            else:
                self.owner.deliver(item, source)

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle is not None:
            self._idle.cancel()
        self.owner.connections.pop(self.conn_id, None)


class SipTransport:
    """Listens on one port for UDP and TCP; sends what the core asks to send."""

    def __init__(
        self,
        host: str,
        port: int,
        on_message: MessageHandler,
        trusted: Callable[[str], bool] = lambda host: True,
    ) -> None:
        self.host = host
        self.port = port
        self.on_message = on_message
        self.trusted = trusted
        self.conn_ids = itertools.count(1)
        self.connections: dict[int, _Tcp] = {}
        self.idle_timeout = TCP_IDLE_TIMEOUT
        self._throttle = _LogThrottle()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp: asyncio.Server | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        any_port = self.port == 0
        for _ in range(20 if any_port else 1):
            self._udp, _ = await loop.create_datagram_endpoint(
                lambda: _Udp(self), local_addr=(self.host, 0 if any_port else self.port)
            )
            port = int(self._udp.get_extra_info("sockname")[1])
            try:
                # Port 0: UDP picks, TCP takes the same number (or we try another).
                self._tcp = await loop.create_server(lambda: _Tcp(self), self.host, port)
            except OSError:
                self._udp.close()
                self._udp = None
                if not any_port:
                    raise
                continue
            self.port = port
            return
        raise OSError(f"no port on {self.host} free for both UDP and TCP")

    async def stop(self) -> None:
        if self._tcp is not None:
            self._tcp.close()
            for conn in list(self.connections.values()):
                if conn.transport is not None:
                    conn.transport.close()
            with contextlib.suppress(TimeoutError):  # never hang a shutdown on a peer
                await asyncio.wait_for(self._tcp.wait_closed(), 5)
            self._tcp = None
        if self._udp is not None:
            self._udp.close()
            self._udp = None

    # ----- incoming -----

    def note(self, message: str, *args: object) -> None:
        """An INFO line about bad input from the network, rate-limited."""
        suffix = self._throttle.allow(time.monotonic())
        if suffix is not None:
            log.info(message + "%s", *args, suffix)

    def handle_bytes(self, data: bytes, source: Peer, *, stream: bool) -> None:
        if len(data) > MAX_MESSAGE_BYTES:
            self.note("dropped a %d-byte datagram from %s:%d", len(data), source.host, source.port)
            return
        try:
            message = parse_message(data, stream=stream)
        except SipParseError as exc:
            self.handle_error(exc, source, data)
            return
        self.deliver(message, source)

    def deliver(self, message: Message, source: Peer) -> None:
        try:
            self.on_message(message, source)
        except Exception:
            log.exception(
                "error handling %s from %s:%d", _describe(message), source.host, source.port
            )

    def handle_error(self, exc: SipParseError, source: Peer, data: bytes) -> None:
        request = exc.request
        if request is None or request.method == "ACK" or not self.trusted(source.host):
            self.note(
                "dropped a malformed message from %s:%d (%s): %r",
                source.host, source.port, exc, _short(data),
            )  # fmt: skip
            return
        self.note(
            "answered %d to a malformed %s from %s:%d (Call-ID %r): %s",
            exc.status, request.method, source.host, source.port, request.call_id, exc,
        )  # fmt: skip
        response = response_to(request, exc.status, str(exc)[:100])
        self.send(response, _reply_destination(request, source))

    # ----- outgoing -----

    def send(self, message: Request | Response, dest: Peer) -> None:
        data = serialize(message)
        if dest.transport == "udp":
            if self._udp is not None:
                self._udp.sendto(data, (dest.host, dest.port))
            return
        conn = self.connections.get(dest.connection) if dest.connection else None
        if conn is None:
            conn = next(
                (c for c in self.connections.values() if c.peer == (dest.host, dest.port)), None
            )
        if conn is not None and conn.transport is not None and not conn.transport.is_closing():
            conn.touch()
            conn.transport.write(data)
            return
        asyncio.get_running_loop().create_task(self._connect_and_send(data, dest))

    async def _connect_and_send(self, data: bytes, dest: Peer) -> None:
        loop = asyncio.get_running_loop()
        try:
            _, protocol = await asyncio.wait_for(
                loop.create_connection(lambda: _Tcp(self, outgoing=True), dest.host, dest.port),
                timeout=5,
            )
        except (OSError, TimeoutError) as exc:
            log.warning("cannot connect to %s:%d over TCP: %s", dest.host, dest.port, exc)
            return
        assert protocol.transport is not None
        protocol.transport.write(data)


def _describe(message: Message) -> str:
    if isinstance(message, Request):
        return f"{message.method} (Call-ID {message.call_id})"
    return f"{message.status} response (Call-ID {message.call_id})"


def _reply_destination(request: Request, source: Peer) -> Peer:
    return source if source.reliable else Peer("udp", source.host, source.port)
