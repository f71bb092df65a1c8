"""The worker's SIP user agent core: matches messages to transactions and calls.

Sans-IO: ``receive`` takes a parsed message, where it came from and the time, and returns
actions: messages to transmit (with a destination) and call events for the application
layer. The application answers calls through ``respond``, ``hangup`` and
``answer_reinvite``, which return actions too (``actions.py``; a call's states: ``call.py``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from media_worker.sip.actions import (
    Action,
    CallCancelled,
    CallConfirmed,
    CallEnded,
    IncomingCall,
    ReInvite,
    Rejection,
    RequestDone,
    Transmit,
)
from media_worker.sip.address import NameAddr, Peer, Via
from media_worker.sip.call import Call, CallInput, CallState, answer_input
from media_worker.sip.dialog import Dialog
from media_worker.sip.errors import LocalProtocolError, RemoteProtocolError
from media_worker.sip.message import Request, Response, response_to
from media_worker.sip.numbers import parse_number
from media_worker.sip.routing import response_destination, stamp_via
from media_worker.sip.timers import DEFAULT_TIMERS, Timers
from media_worker.sip.transaction import (
    AckTimeout,
    FinalResponse,
    InviteServerTransaction,
    NonInviteClientTransaction,
    NonInviteServerTransaction,
    RequestTimeout,
    Send,
    State,
)

ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS"
KNOWN_METHODS = frozenset(
    {"INVITE", "ACK", "CANCEL", "BYE", "OPTIONS", "REGISTER", "INFO", "UPDATE", "PRACK"}
    | {"REFER", "MESSAGE", "SUBSCRIBE", "NOTIFY", "PUBLISH"}
)
BRANCH_MAGIC = "z9hG4bK"


def _server_key(request: Request) -> tuple[str, str, str]:
    via = Via.parse(request.headers.get("Via") or "")
    method = "INVITE" if request.method == "ACK" else request.method
    return (via.branch or "", f"{via.host}:{via.port or 5060}", method)


@dataclass
class SipCore:
    via_host: str
    via_port: int
    trusted: Callable[[str], bool] = lambda host: True
    timers: Timers = DEFAULT_TIMERS
    new_id: Callable[[], str] = field(default=lambda: secrets.token_hex(8))
    user_agent: str = "kamailio-voicemail"
    # Sees each out-of-dialog request but OPTIONS and CANCEL before anything is set up
    # for it (a signature, a call limit); a Rejection is answered in a transaction.
    admit: Callable[[Request, Peer], Rejection | None] = lambda request, source: None

    def __post_init__(self) -> None:
        self._servers: dict[
            tuple[str, str, str], NonInviteServerTransaction | InviteServerTransaction
        ] = {}
        self._server_dest: dict[int, Peer] = {}
        self._clients: dict[str, tuple[NonInviteClientTransaction, Peer]] = {}
        self.calls: dict[tuple[str, str], Call] = {}  # (Call-ID, local tag)

    # ----- timers -----

    def next_deadline(self) -> float | None:
        deadlines = [t.deadline for t in self._servers.values() if t.deadline is not None]
        deadlines += [t.deadline for t, _ in self._clients.values() if t.deadline is not None]
        return min(deadlines, default=None)

    def on_timer(self, now: float) -> list[Action]:
        actions: list[Action] = []
        for key, txn in list(self._servers.items()):
            if txn.deadline is not None and txn.deadline <= now:
                for action in txn.on_timer(now):
                    if isinstance(action, Send):
                        actions.append(Transmit(action.message, self._server_dest[id(txn)]))
                    elif isinstance(action, AckTimeout) and isinstance(
                        txn, InviteServerTransaction
                    ):
                        actions += self._ack_timeout(txn, now)
            if txn.terminated:
                del self._servers[key]
                self._server_dest.pop(id(txn), None)
        for branch, (client, dest) in list(self._clients.items()):
            if client.deadline is not None and client.deadline <= now:
                for client_action in client.on_timer(now):
                    if isinstance(client_action, Send):
                        actions.append(Transmit(client_action.message, dest))
                    elif isinstance(client_action, RequestTimeout):
                        actions.append(RequestDone(client.request, None))
            if client.terminated:
                del self._clients[branch]
        return actions

    def _ack_timeout(self, txn: InviteServerTransaction, now: float) -> list[Action]:
        for call in list(self.calls.values()):
            if call.transaction is txn and call.state is CallState.ANSWERED:
                actions = self._send_bye(call, now)
                self._end(call, CallInput.ACK_TIMEOUT)
                return [*actions, CallEnded(call, "ack-timeout")]
        return []

    # ----- incoming -----

    def receive(self, message: Request | Response, source: Peer, now: float) -> list[Action]:
        if isinstance(message, Response):
            return self._receive_response(message, now)
        request = message
        if not self.trusted(source.host):
            if request.method == "ACK":
                return []
            # A stateless refusal, no transaction, no call; sent to where the packet came
            # from, never to its Via, so that a forged Via cannot aim it at a third party.
            response = response_to(
                request, 403, "Forbidden (untrusted source)", to_tag=self.new_id()
            )
            return [Transmit(response, source)]
        try:
            stamp_via(request, source)
            key = _server_key(request)
        except RemoteProtocolError:
            return []  # no Via to answer by (the parser lets none of these through)
        existing = self._servers.get(key)
        if existing is not None:
            return self._retransmission_or_ack(existing, request, now)
        try:
            return self._new_request(request, source, key, now)
        except RemoteProtocolError as exc:
            if request.method == "ACK":
                return []
            return [self._stateless(request, source, exc.status, str(exc))]

    def _stateless(self, request: Request, source: Peer, status: int, reason: str) -> Transmit:
        response = response_to(request, status, reason, to_tag=self.new_id())
        if status in (405, 501):
            response.headers.add("Allow", ALLOW)
        return Transmit(response, response_destination(request, source))

    def _retransmission_or_ack(
        self,
        txn: InviteServerTransaction | NonInviteServerTransaction,
        request: Request,
        now: float,
    ) -> list[Action]:
        dest = self._server_dest[id(txn)]
        if request.method == "ACK" and isinstance(txn, InviteServerTransaction):
            txn.on_ack(now)  # ACK of a failure response: same branch as the INVITE
            return []
        return [
            Transmit(a.message, dest) for a in txn.on_retransmission(now) if isinstance(a, Send)
        ]

    def _new_server(
        self,
        request: Request,
        source: Peer,
        key: tuple[str, str, str],
    ) -> InviteServerTransaction | NonInviteServerTransaction:
        kind = InviteServerTransaction if request.method == "INVITE" else NonInviteServerTransaction
        txn = kind(request, reliable=source.reliable, timers=self.timers)
        self._servers[key] = txn
        self._server_dest[id(txn)] = response_destination(request, source)
        return txn

    def _reply(
        self,
        txn: InviteServerTransaction | NonInviteServerTransaction,
        response: Response,
        now: float,
    ) -> list[Action]:
        dest = self._server_dest[id(txn)]
        actions: list[Action] = [
            Transmit(a.message, dest) for a in txn.respond(response, now) if isinstance(a, Send)
        ]
        if txn.terminated:
            self._servers = {k: t for k, t in self._servers.items() if t is not txn}
            self._server_dest.pop(id(txn), None)
        return actions

    def _new_request(
        self, request: Request, source: Peer, key: tuple[str, str, str], now: float
    ) -> list[Action]:
        method = request.method
        if method == "ACK":
            return self._dialog_ack(request, now)
        max_forwards = request.headers.get("Max-Forwards")
        hops = None if max_forwards is None else parse_number(max_forwards, "Max-Forwards", 0, 255)
        if hops == 0 and method != "OPTIONS":
            raise RemoteProtocolError("Too Many Hops", status=483)
        to_tag = NameAddr.parse(request.headers.get("To") or "").tag
        if method == "CANCEL":
            return self._cancel(request, source, key, now)
        if not to_tag and method != "OPTIONS":
            rejection = self.admit(request, source)
            if rejection is not None:
                txn = self._new_server(request, source, key)
                refusal = response_to(
                    request, rejection.status, rejection.reason, to_tag=self.new_id()
                )
                for name, value in rejection.headers:
                    refusal.headers.add(name, value)
                return self._reply(txn, refusal, now)
        if method == "INVITE" and not to_tag:
            return self._new_call(request, source, key, now)
        txn = self._new_server(request, source, key)
        if method == "OPTIONS":
            ok = response_to(request, 200, to_tag=to_tag or self.new_id())
            ok.headers.add("Allow", ALLOW)
            ok.headers.add("Accept", "application/sdp")
            return self._reply(txn, ok, now)
        if method not in KNOWN_METHODS:
            return self._reply(txn, self._refusal(request, 501, to_tag), now)
        call = self.calls.get((request.call_id, to_tag or ""))
        if call is None or call.state is CallState.ENDED:
            if method in ("BYE", "INVITE"):
                return self._reply(txn, response_to(request, 481), now)
            return self._reply(txn, self._refusal(request, 405, to_tag), now)
        try:
            call.dialog.check_request(request)
        except RemoteProtocolError as exc:
            return self._reply(txn, response_to(request, exc.status, str(exc)), now)
        if method == "BYE":
            self._end(call, CallInput.BYE)
            return [*self._reply(txn, response_to(request, 200), now), CallEnded(call, "bye")]
        if method == "INVITE":
            if call.reinvite is not None or call.state is not CallState.CONFIRMED:
                return self._reply(txn, response_to(request, 491), now)
            assert isinstance(txn, InviteServerTransaction)
            call.reinvite = txn
            return [*self._reply(txn, response_to(request, 100), now), ReInvite(call, request)]
        return self._reply(txn, self._refusal(request, 405, to_tag), now)

    def _refusal(self, request: Request, status: int, to_tag: str | None) -> Response:
        response = response_to(request, status, to_tag=to_tag or self.new_id())
        response.headers.add("Allow", ALLOW)
        return response

    def _new_call(
        self, request: Request, source: Peer, key: tuple[str, str, str], now: float
    ) -> list[Action]:
        dialog = Dialog.from_invite(request, self.new_id(), local_seq=secrets.randbelow(2**16))
        txn = self._new_server(request, source, key)
        assert isinstance(txn, InviteServerTransaction)
        call = Call(request, source, dialog, txn)
        self.calls[(dialog.call_id, dialog.local_tag)] = call
        return [*self._reply(txn, response_to(request, 100), now), IncomingCall(call)]

    def _cancel(
        self, request: Request, source: Peer, key: tuple[str, str, str], now: float
    ) -> list[Action]:
        txn = self._new_server(request, source, key)
        invite_txn = self._servers.get((key[0], key[1], "INVITE"))
        call = next((c for c in self.calls.values() if c.transaction is invite_txn), None)
        if invite_txn is None or call is None:
            return self._reply(txn, response_to(request, 481), now)
        actions = self._reply(txn, response_to(request, 200, to_tag=call.dialog.local_tag), now)
        if call.state is CallState.EARLY:
            terminated = response_to(call.invite, 487, to_tag=call.dialog.local_tag)
            actions += self._reply(invite_txn, terminated, now)
            self._end(call, CallInput.CANCEL)
            actions.append(CallCancelled(call))
        return actions

    def _dialog_ack(self, ack: Request, now: float) -> list[Action]:
        to_tag = NameAddr.parse(ack.headers.get("To") or "").tag or ""
        call = self.calls.get((ack.call_id, to_tag))
        if call is None:
            return []
        seq = ack.cseq()[0]
        if call.reinvite is not None and seq == call.reinvite.request.cseq()[0]:
            call.reinvite.on_ack(now)
            call.reinvite = None
            return []
        if call.state is CallState.ANSWERED and call.transaction.state is State.ACCEPTED:
            call.transaction.on_ack(now)
            call.go(CallInput.ACK)
            return [CallConfirmed(call, ack)]
        return []

    def _receive_response(self, response: Response, now: float) -> list[Action]:
        via = Via.parse(response.headers.get("Via") or "")
        entry = self._clients.get(via.branch or "")
        if entry is None:
            return []  # a stray or late response: nothing waits for it
        client, _ = entry
        actions: list[Action] = []
        for action in client.on_response(response, now):
            if isinstance(action, FinalResponse):
                actions.append(RequestDone(client.request, action.response))
        return actions

    # ----- called by the application -----

    def respond(
        self,
        call: Call,
        status: int,
        now: float,
        *,
        reason: str | None = None,
        body: bytes = b"",
    ) -> list[Action]:
        """Answer the call's INVITE (1xx, 2xx, or a refusal)."""
        call.go(answer_input(status))
        response = response_to(call.invite, status, reason, to_tag=call.dialog.local_tag)
        if 101 <= status < 300:
            for route in call.dialog.route_set:
                response.headers.add("Record-Route", route)
            response.headers.add("Contact", self._contact())
        if status >= 200:
            response.headers.add("Allow", ALLOW)
            response.headers.add("Server", self.user_agent)
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        if call.state is CallState.ENDED:
            self._forget(call)
        return self._reply(call.transaction, response, now)

    def answer_reinvite(
        self, call: Call, status: int, now: float, *, body: bytes = b""
    ) -> list[Action]:
        txn = call.reinvite
        if txn is None:
            raise LocalProtocolError(f"call {call.call_id} has no re-INVITE to answer")
        response = response_to(txn.request, status, to_tag=call.dialog.local_tag)
        if 200 <= status < 300:
            response.headers.add("Contact", self._contact())
        if body:
            response.headers.add("Content-Type", "application/sdp")
            response.body = body
        if status >= 300:
            call.reinvite = None
        return self._reply(txn, response, now)

    def hangup(self, call: Call, now: float, status: int = 480) -> list[Action]:
        """End the call from our side: BYE once answered, else refuse the INVITE."""
        if call.state is CallState.ENDED:
            return []
        if call.state is CallState.EARLY:
            return [*self.respond(call, status, now), CallEnded(call, "hangup")]
        actions = self._send_bye(call, now)
        self._end(call, CallInput.HANG_UP)
        return [*actions, CallEnded(call, "hangup")]

    def _send_bye(self, call: Call, now: float) -> list[Action]:
        hop = call.dialog.next_hop()
        dest = Peer.from_uri(hop)
        if call.source.reliable and dest.transport == call.source.transport:
            dest = Peer(dest.transport, dest.host, dest.port, call.source.connection)
        bye = call.dialog.new_request("BYE", self._via(dest.transport))
        return self.send_request(bye, dest, now)

    def _contact(self) -> str:
        return f"<sip:{self.via_host}:{self.via_port}>"

    def _via(self, transport: str) -> Via:
        return Via(
            transport.upper(),
            self.via_host,
            self.via_port,
            (("branch", BRANCH_MAGIC + self.new_id()), ("rport", None)),
        )

    def send_request(self, request: Request, dest: Peer, now: float) -> list[Action]:
        """Send a non-INVITE request (BYE, OPTIONS, NOTIFY, PUBLISH) in a client transaction."""
        if not request.headers.get("Via"):
            request.headers.prepend("Via", str(self._via(dest.transport)))
        branch = Via.parse(request.headers.get("Via") or "").branch or ""
        client = NonInviteClientTransaction(
            request, reliable=dest.transport != "udp", timers=self.timers
        )
        self._clients[branch] = (client, dest)
        return [Transmit(a.message, dest) for a in client.start(now) if isinstance(a, Send)]

    def _end(self, call: Call, event: CallInput) -> None:
        call.go(event)
        self._forget(call)

    def _forget(self, call: Call) -> None:
        self.calls.pop((call.call_id, call.dialog.local_tag), None)
