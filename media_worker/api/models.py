"""The JSON bodies of the API, for validation and for the OpenAPI description."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictStr


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MessageOut(BaseModel):
    name: str = Field(description="the message's name in its mailbox, used in its URLs")
    new: bool = Field(description="true until it is listened to or marked read")
    received_at: str = Field(description="time of the call, RFC 3339 UTC")
    received_at_unix: int
    sender: str = Field(description="the caller, as the From header named them")
    duration_s: float
    size: int = Field(description="bytes of the stored WAV")
    audio_url: str


class MessageList(BaseModel):
    messages: list[MessageOut]


class MessagePatch(Strict):
    new: StrictBool = Field(description="false: mark read (saved); true: mark new again")


class GreetingOut(BaseModel):
    type: str
    size: int
    duration_s: float | None
    audio_url: str


class Settings(BaseModel):
    mode: Literal["voicemail", "box", "both", "ann"] | None
    email: str | None
    language: str | None
    greeting_type: str | None


class SettingsPatch(Strict):
    """Fields to change; null removes the preference (the worker's default applies)."""

    mode: Literal["voicemail", "box", "both", "ann"] | None = None
    email: StrictStr | None = None
    language: StrictStr | None = None
    greeting_type: StrictStr | None = None


class MailboxOut(BaseModel):
    domain: str
    user: str
    new: int
    saved: int
    greetings: list[GreetingOut]
    settings: Settings


class PinIn(Strict):
    pin: StrictStr = Field(description="4 to 16 digits")


class Problem(BaseModel):
    detail: str
