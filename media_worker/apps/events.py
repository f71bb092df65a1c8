"""Events the driver feeds to an app, and the actions an app answers with.

Apps are pure state machines: no audio, no sockets, no clock. Every call flow can be
tested by feeding events and reading actions. The media session's events are defined
once, in ``media_worker/media_events.py``; this module adds those only apps see.
"""

from __future__ import annotations

from dataclasses import dataclass

from media_worker.media_events import (
    Dtmf,
    Hangup,
    MediaEvent,
    PlaybackDone,
    RecordingStopped,
    StopReason,
)

__all__ = [
    "Action",
    "CancelTimer",
    "CheckPin",
    "DeleteMessage",
    "DeliverMessage",
    "Dtmf",
    "EndCall",
    "Event",
    "Hangup",
    "MarkRead",
    "MediaEvent",
    "PinChecked",
    "Play",
    "PlayEnvelope",
    "PlayMessage",
    "PlaybackDone",
    "Record",
    "RecordingStopped",
    "SaveGreeting",
    "StartTimer",
    "Started",
    "StopPlayback",
    "StopReason",
    "StopRecording",
    "Timeout",
]

# ----- events -----


@dataclass(frozen=True)
class Started:
    """The call is answered and media flows."""


@dataclass(frozen=True)
class Timeout:
    name: str


@dataclass(frozen=True)
class PinChecked:
    """The driver's answer to CheckPin; ``locked``: too many failures, no more tries."""

    ok: bool
    locked: bool = False


Event = Started | PlaybackDone | Dtmf | RecordingStopped | Timeout | Hangup | PinChecked

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
class EndCall:
    """End the call from our side, once the last prompt is heard."""


@dataclass(frozen=True)
class CancelTimer:
    name: str


@dataclass(frozen=True)
class CheckPin:
    digits: str


@dataclass(frozen=True)
class PlayMessage:
    """Play a stored message (voicebox), reporting PlaybackDone(mark)."""

    name: str
    mark: str


@dataclass(frozen=True)
class PlayEnvelope:
    """Say when a message came and from whom, reporting PlaybackDone(mark)."""

    name: str
    mark: str


@dataclass(frozen=True)
class MarkRead:
    name: str


@dataclass(frozen=True)
class DeleteMessage:
    name: str


@dataclass(frozen=True)
class SaveGreeting:
    """Keep the last recording as the mailbox's greeting (annrecorder)."""


Action = (
    Play
    | StopPlayback
    | Record
    | StopRecording
    | StartTimer
    | CancelTimer
    | DeliverMessage
    | EndCall
    | CheckPin
    | PlayMessage
    | PlayEnvelope
    | MarkRead
    | DeleteMessage
    | SaveGreeting
)
