"""Prompts: logical names mapped to audio files per language, with operator overrides.

A prompt set is a directory of WAV files and a catalogue: logical prompt -> the files to
play in a row. Debian's asterisk-core-sounds-en-wav gives the English set. Operators
override any prompt with ``<overrides>/<domain>/<language>/<name>.wav``, looked up as
SEMS does: domain and language, domain, language, then the set itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from media_worker.audio import read_wav

ASTERISK_EN = Path("/usr/share/asterisk/sounds/en_US_f_Allison")

# Logical prompt -> files of Debian's English Asterisk set, played in a row.
CATALOGUE_EN: dict[str, tuple[str, ...]] = {
    "greeting_default": ("vm-intro",),  # please leave your message after the tone
    "beep": ("beep",),
    "goodbye": ("vm-goodbye",),
    "you_have": ("vm-youhave",),
    "new_message": ("vm-INBOX", "vm-message"),
    "new_messages": ("vm-INBOX", "vm-messages"),
    "saved_message": ("vm-Old", "vm-message"),
    "saved_messages": ("vm-Old", "vm-messages"),
    "and": ("vm-and",),
    "no_messages": ("vm-youhave", "vm-no", "vm-messages"),
    "first_message": ("vm-first", "vm-message"),
    "next_message": ("vm-next", "vm-message"),
    "no_more_messages": ("vm-nomore",),
    "deleted": ("vm-deleted",),
    "saved": ("vm-saved",),
    "enter_pin": ("vm-password",),
    "wrong_pin": ("vm-incorrect",),
    "record_greeting": ("vm-rec-unv",),
    "received": ("vm-received",),
    "from": ("vm-from",),
    "unknown_caller": ("vm-unknown-caller",),
}


def english_number(n: int) -> tuple[str, ...]:
    """Files that say ``n`` (0-999) with Asterisk's English digits."""
    if not 0 <= n <= 999:
        raise ValueError(f"cannot say {n}: 0-999 only")
    if n <= 20:
        return (f"digits/{n}",)
    if n < 100:
        tens, units = divmod(n, 10)
        return (f"digits/{tens * 10}",) + ((f"digits/{units}",) if units else ())
    hundreds, rest = divmod(n, 100)
    return (f"digits/{hundreds}", "digits/hundred") + (english_number(rest) if rest else ())


class PromptMissing(LookupError):
    """No audio for a prompt in any place it is looked for."""


@dataclass
class PromptLibrary:
    """Resolves (prompt, language, domain) to 8 kHz PCM, caching what it decoded."""

    sets: dict[str, tuple[Path, dict[str, tuple[str, ...]]]] = field(
        default_factory=lambda: {"en": (ASTERISK_EN, CATALOGUE_EN)}
    )
    default_language: str = "en"
    overrides: Path | None = None
    _cache: dict[Path, bytes] = field(default_factory=dict, repr=False)

    def _pcm(self, path: Path) -> bytes:
        pcm = self._cache.get(path)
        if pcm is None:
            pcm = self._cache[path] = read_wav(path.read_bytes(), str(path)).data
        return pcm

    def get(self, name: str, language: str | None = None, domain: str | None = None) -> bytes:
        language = language if language in self.sets else self.default_language
        if self.overrides is not None:
            for parts in ((domain, language), (domain,), (language,)):
                if None in parts:
                    continue
                path = self.overrides.joinpath(*[p for p in parts if p]) / f"{name}.wav"
                if path.is_file():
                    return self._pcm(path)
        directory, catalogue = self.sets[language]
        files = catalogue.get(name)
        if files is None:
            raise PromptMissing(f"prompt {name!r} is not in the {language} catalogue")
        return b"".join(self._pcm(directory / f"{stem}.wav") for stem in files)

    def check(self) -> list[str]:
        """Files a catalogue names that are missing: what `voicemail prompts check` lists."""
        missing = []
        for language, (directory, catalogue) in self.sets.items():
            for name, files in catalogue.items():
                missing += [
                    f"{language}: {name}: {directory / f'{stem}.wav'}"
                    for stem in files
                    if not (directory / f"{stem}.wav").is_file()
                ]
        return missing
