"""RFC 3261 timer values (17.1.1.1, table 4)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Timers:
    t1: float = 0.5  # round-trip estimate
    t2: float = 4.0  # longest retransmit interval for non-INVITE requests and responses
    t4: float = 5.0  # longest a message stays in the network

    @property
    def b(self) -> float:  # also F, H and J
        return 64 * self.t1


DEFAULT_TIMERS = Timers()
