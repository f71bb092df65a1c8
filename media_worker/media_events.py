"""The events a call's media session reports, as the apps consume them.

Pure data (no asyncio, no sockets), so that the pure apps can import them: the session
(``media_worker/session.py``) puts them on its queue, ``apps/events.py`` re-exports them
beside the events only the apps add.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


@dataclass(frozen=True)
class PlaybackDone:
    """A marked item ended: played out, or cut short (``interrupted``)."""

    mark: str
    interrupted: bool = False


@dataclass(frozen=True)
class Dtmf:
    digit: str


class StopReason(enum.StrEnum):
    """Why a recording stopped; a str, so apps compare it with plain text."""

    MAX_DURATION = "max-duration"
    STOPPED = "stopped"
    HANGUP = "hangup"


@dataclass(frozen=True)
class RecordingStopped:
    seconds: float
    reason: StopReason


@dataclass(frozen=True)
class Hangup:
    """The caller is gone (or the call was ended as if they were)."""

    reason: str = "bye"  # "bye", "cancel", "ack-timeout", "hangup", "call time limit"


MediaEvent = PlaybackDone | Dtmf | RecordingStopped | Hangup
