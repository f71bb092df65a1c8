"""Events the session driver feeds to an app, and the actions an app answers with.

Apps are pure state machines: no audio, no sockets, no clock. Every call flow can be
tested by feeding events and reading actions.
"""

from __future__ import annotations

from dataclasses import dataclass

# ----- events -----


@dataclass(frozen=True)
class Started:
    """The call is answered and media flows."""


@dataclass(frozen=True)
class PlaybackDone:
    mark: str


@dataclass(frozen=True)
class Dtmf:
    digit: str


@dataclass(frozen=True)
class RecordingStopped:
    seconds: float
    reason: str  # "max-duration", "stopped", "hangup"


@dataclass(frozen=True)
class Timeout:
    name: str


@dataclass(frozen=True)
class Hangup:
    """The caller is gone."""


Event = Started | PlaybackDone | Dtmf | RecordingStopped | Timeout | Hangup

# ----- actions -----


@dataclass(frozen=True)
class Play:
    """Play logical prompts (catalogue names, or "greeting" for the mailbox's greeting),
    reporting PlaybackDone(mark) at the end."""

    prompts: tuple[str, ...]
    mark: str


@dataclass(frozen=True)
class StopPlayback:
    pass


@dataclass(frozen=True)
class Record:
    max_seconds: float


@dataclass(frozen=True)
class StopRecording:
    pass


@dataclass(frozen=True)
class StartTimer:
    name: str
    seconds: float


@dataclass(frozen=True)
class DeliverMessage:
    """Hand the recording to storage and/or email, per the call's mode."""


@dataclass(frozen=True)
class HangUp:
    """End the call from our side."""


Action = Play | StopPlayback | Record | StopRecording | StartTimer | DeliverMessage | HangUp
