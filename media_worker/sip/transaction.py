"""SIP transactions (RFC 3261 17, with RFC 6026's Accepted state), sans-IO.

Each transaction is a state machine whose transitions are a table. Inputs are messages and
the current time; outputs are actions: messages to send, and events for the transaction
user. ``deadline`` says when ``on_timer`` must next be called.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from media_worker.sip.errors import LocalProtocolError
from media_worker.sip.message import Request, Response
from media_worker.sip.timers import DEFAULT_TIMERS, Timers


class State(enum.Enum):
    TRYING = "trying"
    PROCEEDING = "proceeding"
    ACCEPTED = "accepted"  # RFC 6026: a 2xx was sent, waiting for its ACK
    COMPLETED = "completed"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


class Input(enum.Enum):
    REQUEST_AGAIN = "retransmitted request"
    ACK = "ACK"
    PROVISIONAL = "1xx from the TU"
    SUCCESS = "2xx from the TU"
    FAILURE = "3xx-6xx from the TU"
    RESPONSE_1XX = "1xx from the peer"
    RESPONSE_FINAL = "final response from the peer"
    TIMEOUT = "transaction timeout"
    WAIT_OVER = "wait timer fired"


S, I = State, Input  # noqa: E741 - table shorthand
# state -> input -> next state. Absent pairs are protocol misuse or are absorbed (see below).
INVITE_SERVER: dict[State, dict[Input, State]] = {
    S.PROCEEDING: {
        I.REQUEST_AGAIN: S.PROCEEDING,
        I.PROVISIONAL: S.PROCEEDING,
        I.SUCCESS: S.ACCEPTED,
        I.FAILURE: S.COMPLETED,
    },
    S.ACCEPTED: {I.REQUEST_AGAIN: S.ACCEPTED, I.ACK: S.TERMINATED, I.TIMEOUT: S.TERMINATED},
    S.COMPLETED: {I.REQUEST_AGAIN: S.COMPLETED, I.ACK: S.CONFIRMED, I.TIMEOUT: S.TERMINATED},
    S.CONFIRMED: {I.ACK: S.CONFIRMED, I.REQUEST_AGAIN: S.CONFIRMED, I.WAIT_OVER: S.TERMINATED},
    S.TERMINATED: {},
}
NON_INVITE_SERVER: dict[State, dict[Input, State]] = {
    S.TRYING: {
        I.REQUEST_AGAIN: S.TRYING,
        I.PROVISIONAL: S.PROCEEDING,
        I.SUCCESS: S.COMPLETED,
        I.FAILURE: S.COMPLETED,
    },
    S.PROCEEDING: {
        I.REQUEST_AGAIN: S.PROCEEDING,
        I.PROVISIONAL: S.PROCEEDING,
        I.SUCCESS: S.COMPLETED,
        I.FAILURE: S.COMPLETED,
    },
    S.COMPLETED: {I.REQUEST_AGAIN: S.COMPLETED, I.WAIT_OVER: S.TERMINATED},
    S.TERMINATED: {},
}
NON_INVITE_CLIENT: dict[State, dict[Input, State]] = {
    S.TRYING: {
        I.RESPONSE_1XX: S.PROCEEDING,
        I.RESPONSE_FINAL: S.COMPLETED,
        I.TIMEOUT: S.TERMINATED,
    },
    S.PROCEEDING: {
        I.RESPONSE_1XX: S.PROCEEDING,
        I.RESPONSE_FINAL: S.COMPLETED,
        I.TIMEOUT: S.TERMINATED,
    },
    S.COMPLETED: {
        I.RESPONSE_1XX: S.COMPLETED,
        I.RESPONSE_FINAL: S.COMPLETED,
        I.WAIT_OVER: S.TERMINATED,
    },
    S.TERMINATED: {I.RESPONSE_1XX: S.TERMINATED, I.RESPONSE_FINAL: S.TERMINATED},
}


# ----- actions -----


@dataclass(frozen=True)
class Send:
    """Transmit this message to the transaction's peer."""

    message: Request | Response


@dataclass(frozen=True)
class AckTimeout:
    """No ACK came for our 2xx (timer H): the TU should end the call with a BYE."""


@dataclass(frozen=True)
class FinalResponse:
    """A client transaction's outcome for the TU."""

    response: Response


@dataclass(frozen=True)
class RequestTimeout:
    """A client transaction got no final response (timer F): treat as 408."""


Action = Send | AckTimeout | FinalResponse | RequestTimeout


class Transaction:
    """State, table and timer bookkeeping shared by the transaction kinds."""

    TABLE: dict[State, dict[Input, State]]
    INITIAL: State

    def __init__(self, request: Request, *, reliable: bool, timers: Timers = DEFAULT_TIMERS):
        self.request = request
        self.reliable = reliable
        self.timers = timers
        self.state = self.INITIAL
        self.deadline: float | None = None  # when on_timer must run next
        self._retransmit_at: float | None = None
        self._interval = timers.t1
        self._timeout_at: float | None = None
        self._wait_until: float | None = None

    def _go(self, event: Input) -> State:
        try:
            self.state = self.TABLE[self.state][event]
        except KeyError:
            raise LocalProtocolError(
                f"{type(self).__name__}: {event.value} is not allowed in state {self.state.value}"
            ) from None
        return self.state

    def _wait(self, now: float, duration: float) -> None:
        """Start the wait timer (I, J or K); it is zero on reliable transports."""
        if self.reliable:
            self._go(I.WAIT_OVER)
        else:
            self._wait_until = now + duration

    def _check_wait(self, now: float) -> None:
        if self._wait_until is not None and now >= self._wait_until:
            self._wait_until = None
            self._go(I.WAIT_OVER)

    def _update_deadline(self) -> None:
        times = [t for t in (self._retransmit_at, self._timeout_at, self._wait_until) if t]
        self.deadline = min(times) if times and self.state is not S.TERMINATED else None

    @property
    def terminated(self) -> bool:
        return self.state is S.TERMINATED


class ServerTransaction(Transaction):
    """Common to both server kinds: the last response is re-sent on retransmissions."""

    def __init__(self, request: Request, *, reliable: bool, timers: Timers = DEFAULT_TIMERS):
        super().__init__(request, reliable=reliable, timers=timers)
        self.last_response: Response | None = None

    def on_retransmission(self, now: float) -> list[Action]:
        self._go(I.REQUEST_AGAIN)
        return [Send(self.last_response)] if self.last_response is not None else []


class InviteServerTransaction(ServerTransaction):
    TABLE = INVITE_SERVER
    INITIAL = S.PROCEEDING

    def respond(self, response: Response, now: float) -> list[Action]:
        status = response.status
        self._go(I.PROVISIONAL if status < 200 else I.SUCCESS if status < 300 else I.FAILURE)
        self.last_response = response
        if status >= 200:
            # 2xx: the UAS keeps sending it until the ACK (RFC 3261 13.3.1.4), on every
            # transport; a failure is retransmitted by timer G on unreliable ones only.
            if status < 300 or not self.reliable:
                self._interval = self.timers.t1
                self._retransmit_at = now + self._interval
            self._timeout_at = now + self.timers.b  # timer H (or RFC 6026's L)
        self._update_deadline()
        return [Send(response)]

    def on_ack(self, now: float) -> list[Action]:
        if self.state is S.CONFIRMED:
            return []  # a retransmitted ACK for a failure response
        state = self._go(I.ACK)
        self._retransmit_at = self._timeout_at = None
        if state is S.CONFIRMED:
            self._wait(now, self.timers.t4)  # timer I
        self._update_deadline()
        return []

    def on_timer(self, now: float) -> list[Action]:
        actions: list[Action] = []
        if self._timeout_at is not None and now >= self._timeout_at:
            success = self.state is S.ACCEPTED
            self._go(I.TIMEOUT)
            self._retransmit_at = self._timeout_at = None
            if success:
                actions.append(AckTimeout())
        elif self._retransmit_at is not None and now >= self._retransmit_at:
            assert self.last_response is not None
            actions.append(Send(self.last_response))
            self._interval = min(2 * self._interval, self.timers.t2)
            self._retransmit_at = now + self._interval
        self._check_wait(now)
        self._update_deadline()
        return actions


class NonInviteServerTransaction(ServerTransaction):
    TABLE = NON_INVITE_SERVER
    INITIAL = S.TRYING

    def on_retransmission(self, now: float) -> list[Action]:
        if self.state is S.TRYING:  # nothing to re-send yet (RFC 3261 17.2.2)
            return []
        return super().on_retransmission(now)

    def respond(self, response: Response, now: float) -> list[Action]:
        status = response.status
        self._go(I.PROVISIONAL if status < 200 else I.SUCCESS if status < 300 else I.FAILURE)
        self.last_response = response
        if status >= 200:
            self._wait(now, self.timers.b)  # timer J
        self._update_deadline()
        return [Send(response)]

    def on_timer(self, now: float) -> list[Action]:
        self._check_wait(now)
        self._update_deadline()
        return []


class NonInviteClientTransaction(Transaction):
    """For the requests the worker sends: BYE, NOTIFY, PUBLISH, OPTIONS."""

    TABLE = NON_INVITE_CLIENT
    INITIAL = S.TRYING

    def start(self, now: float) -> list[Action]:
        if not self.reliable:
            self._retransmit_at = now + self._interval  # timer E
        self._timeout_at = now + self.timers.b  # timer F
        self._update_deadline()
        return [Send(self.request)]

    def on_response(self, response: Response, now: float) -> list[Action]:
        if self.state in (S.COMPLETED, S.TERMINATED):
            self._go(I.RESPONSE_1XX if response.status < 200 else I.RESPONSE_FINAL)
            return []  # a retransmitted final response
        if response.status < 200:
            self._go(I.RESPONSE_1XX)
            if self._retransmit_at is not None:
                self._interval = self.timers.t2
            self._update_deadline()
            return []
        self._go(I.RESPONSE_FINAL)
        self._retransmit_at = self._timeout_at = None
        self._wait(now, self.timers.t4)  # timer K
        self._update_deadline()
        return [FinalResponse(response)]

    def on_timer(self, now: float) -> list[Action]:
        actions: list[Action] = []
        if self._timeout_at is not None and now >= self._timeout_at:
            self._go(I.TIMEOUT)
            self._retransmit_at = self._timeout_at = None
            actions.append(RequestTimeout())
        elif self._retransmit_at is not None and now >= self._retransmit_at:
            actions.append(Send(self.request))
            cap = self.timers.t2
            self._interval = cap if self.state is S.PROCEEDING else min(2 * self._interval, cap)
            self._retransmit_at = now + self._interval
        self._check_wait(now)
        self._update_deadline()
        return actions
