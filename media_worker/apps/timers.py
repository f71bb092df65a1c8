"""The rules that end a call by time, which the driver applies to every app; time is an
argument.

- The wall clock (``apps.max_call_time``) ends any call, whatever it is doing.
- Inactivity ends a call that waits for the caller and gets nothing the app acts on: a
  key the app ignores is not activity, and the clock is held while a prompt plays or a
  recording runs (those end by themselves; a long greeting or message is not idleness).
- A recording that outlives its maximum length by ``RECORD_GRACE`` (no audio arrives,
  so the length limit is never reached) is stopped.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

RECORD_GRACE = 3.0  # seconds past max_record_time before a silent recording is stopped
POLL = 1.0  # while a prompt plays: look again this often (its end holds the clock)
DRAIN = 2.0  # after the wall-clock limit: seconds to take the events it causes


class Expiry(enum.Enum):
    CALL_TIME = "call time limit"
    INACTIVITY = "inactivity timeout"
    RECORDING = "recording overran"


@dataclass
class CallTimers:
    inactivity: float
    max_call_time: float
    started: float
    last_activity: float = field(init=False)
    record_until: float | None = None
    ended: bool = False  # the wall-clock limit was reached

    def __post_init__(self) -> None:
        self.last_activity = self.started

    def activity(self, now: float) -> None:
        """The app acted on an event (a key it ignored does not count)."""
        self.last_activity = now

    def recording(self, now: float, max_seconds: float) -> None:
        self.record_until = now + max_seconds + RECORD_GRACE
        self.last_activity = now

    def recording_over(self, now: float) -> None:
        self.record_until = None
        self.last_activity = now

    def check(self, now: float, playing: bool) -> Expiry | None:
        """What has run out at ``now``, if anything; each limit is reported once."""
        if self.ended:
            return None
        if now >= self.started + self.max_call_time:
            self.ended = True
            return Expiry.CALL_TIME
        if self.record_until is not None:
            if now >= self.record_until:
                self.recording_over(now)
                return Expiry.RECORDING
            self.last_activity = now
            return None
        if playing:
            self.last_activity = now
            return None
        if now >= self.last_activity + self.inactivity:
            return Expiry.INACTIVITY
        return None

    def wait(self, now: float, playing: bool) -> float:
        """Seconds to wait for the next event before ``check`` has something to say."""
        if self.ended:
            return DRAIN
        deadlines = [self.started + self.max_call_time]
        if self.record_until is not None:
            deadlines.append(self.record_until)
        elif playing:
            deadlines.append(now + POLL)
        else:
            deadlines.append(self.last_activity + self.inactivity)
        return max(min(deadlines) - now, 0.0)
