"""A call's state table (RFC 3261 13, the UAS side): early, answered, confirmed, ended.

``SipCore`` (core.py) moves a call with ``go``; an input the table does not allow in the
call's state is the application's misuse and raises ``LocalProtocolError``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from media_worker.sip.address import Peer
from media_worker.sip.dialog import Dialog
from media_worker.sip.errors import LocalProtocolError
from media_worker.sip.message import Request
from media_worker.sip.transaction import InviteServerTransaction


class CallState(enum.Enum):
    EARLY = "early"  # INVITE received, not answered
    ANSWERED = "answered"  # 2xx sent, no ACK yet
    CONFIRMED = "confirmed"
    ENDED = "ended"


class CallInput(enum.Enum):
    PROVISIONAL = "1xx to the INVITE"
    ANSWER = "2xx to the INVITE"
    REFUSE = "3xx-6xx to the INVITE"
    ACK = "ACK of the 2xx"
    ACK_TIMEOUT = "no ACK of the 2xx"
    CANCEL = "CANCEL"
    BYE = "BYE from the peer"
    HANG_UP = "BYE from us"


C, CI = CallState, CallInput  # table shorthand
# state -> input -> next state; an absent pair is the application's misuse.
CALL: dict[CallState, dict[CallInput, CallState]] = {
    C.EARLY: {
        CI.PROVISIONAL: C.EARLY,
        CI.ANSWER: C.ANSWERED,
        CI.REFUSE: C.ENDED,
        CI.CANCEL: C.ENDED,
        CI.BYE: C.ENDED,  # RFC 3261 15: the caller may end an early dialog with BYE
    },
    C.ANSWERED: {
        CI.ACK: C.CONFIRMED,
        CI.ACK_TIMEOUT: C.ENDED,
        CI.BYE: C.ENDED,
        CI.HANG_UP: C.ENDED,
    },
    C.CONFIRMED: {CI.BYE: C.ENDED, CI.HANG_UP: C.ENDED},
    C.ENDED: {},
}


@dataclass(eq=False)
class Call:
    invite: Request
    source: Peer
    dialog: Dialog
    transaction: InviteServerTransaction
    state: CallState = CallState.EARLY
    reinvite: InviteServerTransaction | None = None

    @property
    def call_id(self) -> str:
        return self.dialog.call_id

    def go(self, event: CallInput) -> CallState:
        try:
            self.state = CALL[self.state][event]
        except KeyError:
            raise LocalProtocolError(
                f"call {self.call_id}: {event.value} is not allowed in state {self.state.value}"
            ) from None
        return self.state


def answer_input(status: int) -> CallInput:
    """What our response with ``status`` to the INVITE is to the call."""
    if status < 200:
        return CallInput.PROVISIONAL
    return CallInput.ANSWER if status < 300 else CallInput.REFUSE
