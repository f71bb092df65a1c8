"""What the calls of every app are given: one context object per worker, not the service.

It holds the settings, the store, the prompts, the email outbox and templates, and the
journal bookkeeping that redelivery shares with calls in progress.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from media_worker.apps.redelivery import Redelivery
from media_worker.config import AppsConfig, EmailConfig, VoicemailConfig
from media_worker.mail.outbox import Outbox
from media_worker.mail.template import EmailTemplate
from media_worker.prompts import PromptLibrary
from storage import Storage


@dataclass(frozen=True)
class Inactivity:
    """Seconds a call may wait for the caller with nothing its app acts on; then the
    driver ends it (``CallTimers``), without a goodbye. The voicebox says goodbye before
    that by its own timer (``VoiceboxSettings.wait_for_key``)."""

    voicemail: float = 30.0
    voicebox: float = 30.0
    annrecorder: float = 60.0  # a new greeting takes some thinking


@dataclass(frozen=True)
class ServiceSettings:
    """The configuration's ``apps:``, ``voicemail:`` and ``email:``, and what the worker adds."""

    journal_dir: Path = Path("/var/lib/voicemail/journal")
    apps: AppsConfig = field(default_factory=AppsConfig)
    voicemail: VoicemailConfig = field(default_factory=VoicemailConfig)
    email: EmailConfig = field(default_factory=EmailConfig)  # its extra_variables
    drop_silent: bool = True
    inactivity: Inactivity = field(default_factory=Inactivity)
    # The HTTP API's public base URL (api.public_url), for the %audio_url% of emails;
    # None: no API, and the template lines that use %audio_url% are left out.
    audio_link_base: str | None = None


@dataclass(eq=False)
class AppContext:
    settings: ServiceSettings
    store: Storage
    prompts: PromptLibrary
    outbox: Outbox
    templates: Mapping[str, EmailTemplate]
    redelivery: Redelivery
    journals: set[str]  # ids of the journals calls in progress write (redelivery skips them)
