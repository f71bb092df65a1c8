"""Values the storage API returns and the change events it publishes."""

from __future__ import annotations

import enum
import io
import time
import wave
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple


class MessageInfo(NamedTuple):
    """One message as a mailbox listing shows it (no audio); cheap to build by the ten
    thousand, hence a named tuple."""

    name: str
    new: bool
    size: int  # bytes of the stored audio file
    received_at: int  # unix seconds (the call's answer time)
    sender: str
    duration: float | None  # seconds; None when it cannot be told without reading the audio


@dataclass(frozen=True, slots=True)
class Message:
    """A message with its audio (normally a WAV file)."""

    info: MessageInfo
    audio: bytes


@dataclass(frozen=True, slots=True)
class Counts:
    """Message counts of a mailbox; empty (0-byte) messages are never counted."""

    new: int
    saved: int

    @property
    def total(self) -> int:
        return self.new + self.saved

    @classmethod
    def of(cls, messages: Iterable[MessageInfo]) -> Counts:
        """The counts of a listing: callers holding one need not ask the store again."""
        new = saved = 0
        for message in messages:
            if message.new:
                new += 1
            else:
                saved += 1
        return cls(new=new, saved=saved)


@dataclass(frozen=True, slots=True)
class PinRecord:
    """A mailbox's own PIN (hashed; None: no PIN) and its failed attempts."""

    hash: str | None = None
    failures: tuple[float, ...] = ()  # unix times of recent failures
    locked_until: float = 0.0


class ChangeKind(enum.Enum):
    NEW = "new"  # a message was stored
    READ = "read"  # a new message was marked read (saved)
    UNREAD = "unread"  # a read message was marked new again
    DELETED = "deleted"  # a message was deleted
    GREETING = "greeting"  # a greeting was stored or replaced
    GREETING_DELETED = "greeting_deleted"

    @property
    def moves_lamp(self) -> bool:
        """Whether the change can alter the mailbox's new/saved counts (MWI)."""
        return self not in (ChangeKind.GREETING, ChangeKind.GREETING_DELETED)


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """A change to a mailbox; ``name`` is the message name or, for greetings, the type.

    ``info`` is the message as it is after the change (as it was, for DELETED) when the
    backend knew it without extra work; None for greetings and when unknown.
    ``occurred_at`` is the unix time the change was made. Neither takes part in equality:
    two events are the same change when kind, mailbox and name agree.
    """

    kind: ChangeKind
    domain: str
    user: str
    name: str
    info: MessageInfo | None = field(default=None, compare=False)
    occurred_at: float = field(default_factory=time.time, compare=False)


def wav_duration(audio: bytes) -> float | None:
    """Duration of a WAV file in seconds, or None if ``audio`` is not a readable WAV."""
    try:
        with wave.open(io.BytesIO(audio), "rb") as wav:
            rate = wav.getframerate()
            return wav.getnframes() / rate if rate else None
    except (wave.Error, EOFError, ValueError):
        return None


# Size of the canonical 44-byte WAV header and the data rate of the 8 kHz 16-bit mono PCM
# files the worker writes; used to tell a message's length from its size alone.
WAV_HEADER_BYTES = 44
PCM16_8K_BYTES_PER_S = 16000


def estimated_duration(size: int) -> float:
    """Duration of an 8 kHz 16-bit mono WAV of ``size`` bytes, without reading it."""
    return max(size - WAV_HEADER_BYTES, 0) / PCM16_8K_BYTES_PER_S
