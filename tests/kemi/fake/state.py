"""What the script did (replies, relays per branch, rtpengine calls), the tables' rows,
and the message and transaction state the modules change."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from tests.kemi.fake.api import Xval


@dataclass(frozen=True)
class Reply:
    status: int
    reason: str
    via: str  # "sl", "tm", "auth", "registrar", "siputils", "presence"


@dataclass(frozen=True)
class RtpengineCall:
    operation: str  # offer, answer, manage, delete
    flags: str


@dataclass(frozen=True)
class Relay:
    """One branch a t_relay sent: where it went and what it carried, the changes its
    branch route made included (those exist on this branch only)."""

    ruri: str
    dst_uri: str | None
    headers: tuple[tuple[str, str], ...]
    body: str
    route_type: str  # "request" or "failure"
    on_reply: str | None
    on_failure: str | None
    fr_timers: tuple[int, int] | None  # (fr_inv, fr) in ms from t_set_fr
    record_route: bool
    rr_params: tuple[str, ...]
    flags: frozenset[int]
    branch: int = 0  # the transaction's branch index
    on_branch: str | None = None  # the branch route that ran for it
    rtpengine: tuple[RtpengineCall, ...] = ()  # calls its branch route made

    def header_values(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    def header(self, name: str) -> str | None:
        values = self.header_values(name)
        return values[0] if values else None


@dataclass
class Contact:
    uri: str
    methods: frozenset[str] | None = None  # None: every method
    received: str | None = None


@dataclass
class Destination:
    uri: str
    active: bool = True


@dataclass
class _Lump:
    """A header change: applied when the message is sent, invisible to reads before."""

    remove: frozenset[int] = frozenset()  # indexes into the received headers
    add: tuple[str, str] | None = None


@dataclass
class _Dispatch:
    """dispatcher's choice for this call (its _dsdst_ xavps, which tm keeps with the
    transaction): the current worker and those ds_next_dst may still try."""

    candidates: list[Destination] = field(default_factory=list)
    current: Destination | None = None


@dataclass
class _MessageState:
    """What the script changes on a message. R-URI, $du, header lumps and rr params
    belong to one message (copied for each branch and for each failure route); AVPs and
    the dispatcher's xavps live with the transaction, so every copy shares them."""

    ruri: str
    dst_uri: str | None = None
    flags: set[int] = field(default_factory=set)
    bflags: set[int] = field(default_factory=set)
    avps: dict[str, list[Xval]] = field(default_factory=dict)
    lumps: list[_Lump] = field(default_factory=list)
    record_route: bool = False
    rr_params: list[str] = field(default_factory=list)
    ds: _Dispatch = field(default_factory=_Dispatch)
    drop: bool = False  # set_drop() in a branch route: the branch is not sent

    def copy(self) -> _MessageState:
        return replace(
            self,
            flags=set(self.flags),
            bflags=set(self.bflags),
            lumps=list(self.lumps),
            rr_params=list(self.rr_params),
        )


@dataclass
class _Transaction:
    """tm's transaction. ``clone`` is the request tm keeps (shm clone): R-URI and $du as
    they were when the transaction was created (t_newtran, t_relay or t_send_reply), the
    header lumps and rr params of the request route's first t_relay; a failure route
    starts from it, so what one failure route changed is gone in the next. Flags are
    synced into it at every t_relay and when a failure route ends."""

    clone: _MessageState | None = None
    flags: set[int] = field(default_factory=set)
    on_branch: str | None = None
    on_reply: str | None = None
    on_failure: str | None = None
    fr_timers: tuple[int, int] | None = None
    lumps_saved: bool = False
    relayed: bool = False
    branches: int = 0  # branches sent so far


@dataclass
class _FailureContext:
    status: int
    timed_out: bool
    canceled: bool
    reason: str = ""  # $T_reply_reason
