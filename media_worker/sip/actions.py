"""What the SIP core and the worker exchange: the core's actions (messages to transmit,
call events), and the answer of an admission hook or an application: a Rejection.
"""

from __future__ import annotations

from dataclasses import dataclass

from media_worker.sip.address import Peer
from media_worker.sip.call import Call
from media_worker.sip.message import Request, Response


@dataclass(frozen=True)
class Rejection:
    """Refuse a request thus: an admission hook's answer to an out-of-dialog request, or
    an application's to an INVITE (``Application.admit``)."""

    status: int
    reason: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Transmit:
    message: Request | Response
    destination: Peer


@dataclass(frozen=True)
class IncomingCall:
    call: Call


@dataclass(frozen=True)
class CallConfirmed:
    call: Call
    ack: Request  # carries the SDP answer when the INVITE had no offer


@dataclass(frozen=True)
class CallCancelled:
    call: Call


@dataclass(frozen=True)
class CallEnded:
    call: Call
    reason: str  # "bye" (peer hung up), "ack-timeout", "hangup" (we ended it)


@dataclass(frozen=True)
class ReInvite:
    call: Call
    request: Request


@dataclass(frozen=True)
class RequestDone:
    """A request we sent got its final response (None: it timed out)."""

    request: Request
    response: Response | None


Action = (
    Transmit | IncomingCall | CallConfirmed | CallCancelled | CallEnded | ReInvite | RequestDone
)
