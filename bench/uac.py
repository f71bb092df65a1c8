"""The benchmarks' SIP UAC: just enough to set calls up and tear them down over UDP.

Each benchmark says what its requests carry (``headers``); this class sends them, matches
final responses to their transaction, retransmits as timer E would, and hands requests
from the server (a BYE, an OPTIONS) to ``on_request``.
"""

from __future__ import annotations

import abc
import asyncio
import random
from typing import Generic, Protocol, TypeVar, cast

from media_worker.sip.message import Request, Response, parse_message, serialize


class HasCallId(Protocol):
    @property
    def call_id(self) -> str: ...


C = TypeVar("C", bound=HasCallId)


class Uac(asyncio.DatagramProtocol, abc.ABC, Generic[C]):
    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.waiting: dict[tuple[str, str], asyncio.Future[Response]] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.host = "127.0.0.1"
        self.port = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)
        self.host, self.port = transport.get_extra_info("sockname")[:2]

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        try:
            message = parse_message(data)
        except Exception:  # noqa: BLE001 - a stray datagram is no reason to stop
            return
        if isinstance(message, Request):
            self.on_request(message, cast(tuple[str, int], addr[:2]))
        elif message.status >= 200:
            future = self.waiting.pop((message.call_id, message.cseq()[1]), None)
            if future is not None and not future.done():
                future.set_result(message)

    def on_request(self, request: Request, addr: tuple[str, int]) -> None:
        """A request from the server; by default left unanswered."""

    @abc.abstractmethod
    def headers(self, method: str, call: C, seq: int, via: str) -> list[str]:
        """The request line and headers of ``method`` in ``call`` (``via``: our Via)."""

    def request(self, method: str, call: C, seq: int, body: bytes = b"") -> None:
        branch = f"z9hG4bK{random.getrandbits(48):x}"
        via = f"Via: SIP/2.0/UDP {self.host}:{self.port};branch={branch};rport"
        lines = self.headers(method, call, seq, via)
        if body:
            lines.append("Content-Type: application/sdp")
        message = parse_message(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        assert isinstance(message, Request)
        assert self.transport is not None
        self.transport.sendto(serialize(message), self.target)

    async def transaction(self, method: str, call: C, seq: int, body: bytes = b"") -> Response:
        future: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.waiting[(call.call_id, method)] = future
        for attempt in range(6):  # timer E style retransmission, in case of loss
            self.request(method, call, seq, body)
            try:
                return await asyncio.wait_for(asyncio.shield(future), 0.5 * 2**attempt)
            except TimeoutError:
                continue
        raise TimeoutError(f"{method} for {call.call_id}: no final response")
