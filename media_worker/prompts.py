"""Prompts: logical names mapped to audio files per language, with operator overrides.

A prompt set is a directory of WAV files and a catalogue: logical prompt -> the files to
play in a row. Debian's asterisk-core-sounds-en-wav gives the English set. Operators
override any prompt with ``<overrides>/<domain>/<language>/<name>.wav``, looked up as
SEMS does: domain and language, domain, language, then the set itself.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from media_worker.audio import read_wav

if TYPE_CHECKING:
    from media_worker.config import PromptsConfig

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
    # The envelope's date and time (Asterisk's digits/ set; day-0 is Sunday).
    "at": ("digits/at",),
    "today": ("digits/today",),
    "yesterday": ("digits/yesterday",),
    "oclock": ("digits/oclock",),
    "oh": ("digits/oh",),
    "am": ("digits/a-m",),
    "pm": ("digits/p-m",),
    "thousand": ("digits/thousand",),
    "hundred": ("digits/hundred",),
    **{f"weekday_{d}": (f"digits/day-{d}",) for d in range(7)},
    **{f"month_{m}": (f"digits/mon-{m - 1}",) for m in range(1, 13)},
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


def german_number(n: int) -> tuple[str, ...]:
    """Files that say ``n`` (0-999) from the generated German digits (0-99, hundert)."""
    if not 0 <= n <= 999:
        raise ValueError(f"cannot say {n}: 0-999 only")
    hundreds, rest = divmod(n, 100)
    files = (f"digits/{hundreds}", "digits/hundert") if hundreds else ()
    return files + ((f"digits/{rest}",) if rest or not hundreds else ())


def english_ordinal(n: int) -> tuple[str, ...]:
    """Files that say the day ``n`` (1-31) as an ordinal: "first" ... "thirty-first"."""
    if not 1 <= n <= 31:
        raise ValueError(f"cannot say the ordinal {n}: 1-31 only")
    if n <= 20 or n == 30:
        return (f"digits/h-{n}",)
    tens, units = divmod(n, 10)
    return (f"digits/{tens * 10}", f"digits/h-{units}")


def german_ordinal(n: int) -> tuple[str, ...]:
    """The generated German ordinal (1-31, dative: "am ersten")."""
    if not 1 <= n <= 31:
        raise ValueError(f"cannot say the ordinal {n}: 1-31 only")
    return (f"ordinals/{n}",)


_DE_UNITS = ("", "ein", "zwei", "drei", "vier", "fünf", "sechs", "sieben", "acht", "neun")
_DE_TEENS = ("zehn", "elf", "zwölf", "dreizehn", "vierzehn", "fünfzehn", "sechzehn",
             "siebzehn", "achtzehn", "neunzehn")  # fmt: skip
_DE_ORDINAL_STEM = {1: "ers", 3: "drit", 7: "sieb", 8: "ach"}


def german_ordinal_word(n: int) -> str:
    """ "ersten", "zweiten", ..., "neunzehnten", "zwanzigsten", "einunddreißigsten"."""
    if n in _DE_ORDINAL_STEM:
        return _DE_ORDINAL_STEM[n] + "ten"
    if n < 10:
        return _DE_UNITS[n] + "ten"
    if n < 20:
        return _DE_TEENS[n - 10] + "ten"
    tens, units = divmod(n, 10)
    word = {2: "zwanzig", 3: "dreißig"}[tens]
    return (f"{_DE_UNITS[units]}und{word}" if units else word) + "sten"


_DE_WEEKDAYS = ["Sonntag", "Montag", "Dienstag", "Mittwoch", "Donnerstag", "Freitag", "Samstag"]
_DE_MONTHS = ["Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
              "September", "Oktober", "November", "Dezember"]  # fmt: skip

# What `voicemail prompts build LANG` speaks with espeak-ng, for a language without a
# recorded set (German, SEMS' default) or for prompts a recorded set lacks.
TEXTS: dict[str, dict[str, str]] = {
    "en": {
        "greeting_welcome": "Here you record the greeting your callers hear.",
        "greeting_current": "Your current greeting is:",
        "greeting_record_prompt": "Press any key to record a new greeting, "
        "then press any key when you are done.",
        "greeting_confirm": "Press 1 to keep this greeting, or 2 to record it again.",
        "greeting_saved": "Your greeting is saved.",
        "message_menu": "Press 1 to repeat this message, 2 to save it, 3 to delete it, "
        "or 0 for more options.",
        "message_help": "Press 1 to repeat this message, 2 to save it, 3 to delete it, "
        "4 to start over, 5 to hear when it came and who left it, 6 for the next "
        "message, and 7 for the previous one.",
    },
    "de": {
        "greeting_default": "Bitte hinterlassen Sie eine Nachricht nach dem Signalton. "
        "Legen Sie danach einfach auf.",
        "goodbye": "Auf Wiederhören.",
        "you_have": "Sie haben",
        "new_message": "neue Nachricht",
        "new_messages": "neue Nachrichten",
        "saved_message": "gespeicherte Nachricht",
        "saved_messages": "gespeicherte Nachrichten",
        "and": "und",
        "no_messages": "Sie haben keine Nachrichten.",
        "first_message": "Erste Nachricht.",
        "next_message": "Nächste Nachricht.",
        "no_more_messages": "Keine weiteren Nachrichten.",
        "deleted": "Nachricht gelöscht.",
        "saved": "Nachricht gespeichert.",
        "enter_pin": "Bitte geben Sie Ihre PIN ein und drücken Sie die Raute-Taste.",
        "wrong_pin": "Die PIN ist falsch.",
        "record_greeting": "Bitte sprechen Sie Ihre Ansage nach dem Signalton.",
        "received": "Empfangen",
        "at": "um",
        "today": "heute",
        "yesterday": "gestern",
        "oclock": "Uhr",
        "oh": "null",
        "am": "vormittags",
        "pm": "nachmittags",
        "thousand": "tausend",
        "hundred": "hundert",
        **{f"weekday_{d}": f"am {name}" for d, name in enumerate(_DE_WEEKDAYS)},
        **{f"month_{m}": name for m, name in enumerate(_DE_MONTHS, 1)},
        "greeting_welcome": "Hier nehmen Sie die Ansage auf, die Ihre Anrufer hören.",
        "greeting_current": "Ihre aktuelle Ansage ist:",
        "greeting_record_prompt": "Drücken Sie eine Taste, um eine neue Ansage aufzunehmen, "
        "und danach wieder eine Taste, wenn Sie fertig sind.",
        "greeting_confirm": "Drücken Sie 1, um die Ansage zu behalten, oder 2, um sie neu "
        "aufzunehmen.",
        "greeting_saved": "Ihre Ansage ist gespeichert.",
        "from": "von",
        "unknown_caller": "unbekannt",
        "message_menu": "Drücken Sie 1 zum Wiederholen, 2 zum Speichern, 3 zum Löschen, "
        "oder 0 für weitere Möglichkeiten.",
        "message_help": "Drücken Sie 1 zum Wiederholen, 2 zum Speichern, 3 zum Löschen, "
        "4 um von vorn zu beginnen, 5 für Zeit und Absender, 6 für die nächste und 7 "
        "für die vorige Nachricht.",
    },
}
NUMBER_WORDS = {"de": {"hundert": "hundert"}}
# Prompts that are tones, not words: sox synth arguments.
TONES = {"beep": ("synth", "0.3", "sine", "1000", "vol", "0.5")}
NUMBER_RULES: dict[str, Callable[[int], tuple[str, ...]]] = {
    "en": english_number,
    "de": german_number,
}
ORDINAL_RULES: dict[str, Callable[[int], tuple[str, ...]]] = {
    "en": english_ordinal,
    "de": german_ordinal,
}


def build_prompts(language: str, directory: Path, espeak: str = "espeak-ng") -> list[Path]:
    """Speak the language's TEXTS (and digits 0-99) with espeak-ng into 8 kHz WAV files
    under ``directory/<language>``; returns the files written."""
    texts = dict(TEXTS.get(language, {}))
    if not texts:
        raise ValueError(f"no prompt texts for language {language!r} (have: {', '.join(TEXTS)})")
    for tool in (espeak, "sox"):
        if shutil.which(tool) is None:
            raise FileNotFoundError(f"{tool} is needed to build prompts: apt-get install {tool}")
    if language in NUMBER_RULES and language != "en":  # English digits come with Asterisk
        texts |= {f"digits/{n}": str(n) for n in range(100)}
        texts |= {f"digits/{k}": v for k, v in NUMBER_WORDS.get(language, {}).items()}
    if language == "de":
        texts |= {f"ordinals/{n}": german_ordinal_word(n) for n in range(1, 32)}
    target = directory / language
    written = []
    for name, synth in TONES.items():
        if language == "en":
            break  # the recorded English set has its own beep
        out = target / f"{name}.wav"
        out.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["sox", "-n", "-r", "8000", "-c", "1", "-b", "16", str(out), *synth], check=True
        )
        written.append(out)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.wav"
        for name, text in texts.items():
            out = target / f"{name}.wav"
            out.parent.mkdir(parents=True, exist_ok=True)
            subprocess.run([espeak, "-v", language, "-w", str(raw), text], check=True)
            subprocess.run(
                ["sox", str(raw), "-r", "8000", "-c", "1", "-b", "16", "-e", "signed-integer",
                 str(out)],
                check=True,
            )  # fmt: skip
            written.append(out)
    return written


# Every logical prompt the apps ask for, whatever the language.
LOGICAL_PROMPTS = tuple(dict.fromkeys([*CATALOGUE_EN, *TEXTS["en"]]))


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
    generated: Path | None = None  # where `voicemail prompts build` wrote its files
    _cache: dict[Path, bytes] = field(default_factory=dict, repr=False)

    @classmethod
    def configured(cls, config: PromptsConfig) -> PromptLibrary:
        """The library the configuration's ``prompts:`` describes."""
        return cls(
            default_language=config.default_language,
            generated=Path(config.built) if config.built else None,
            overrides=Path(config.overrides) if config.overrides else None,
        )

    def __post_init__(self) -> None:
        if self.generated is None:
            return
        for language in TEXTS:
            directory = self.generated / language
            if not directory.is_dir():
                continue
            if language in self.sets:  # fill what the recorded set lacks
                base, catalogue = self.sets[language]
                # An absolute stem: joined to the set's directory, it stays itself.
                extra = {n: (str(directory / n),) for n in TEXTS[language] if n not in catalogue}
                self.sets[language] = (base, {**catalogue, **extra})
            else:
                names = [*TEXTS[language], *TONES]
                self.sets[language] = (directory, {n: (n,) for n in names})

    def languages(self) -> list[str]:
        return sorted(self.sets)

    def _pcm(self, path: Path) -> bytes:
        pcm = self._cache.get(path)
        if pcm is None:
            pcm = self._cache[path] = read_wav(path.read_bytes(), str(path)).data
        return pcm

    def language_for(self, language: str | None) -> str:
        """The language a caller asking for ``language`` hears."""
        return language if language in self.sets else self.default_language

    def get(self, name: str, language: str | None = None, domain: str | None = None) -> bytes:
        """PCM of a prompt; ``number:N`` says the number N, ``ordinal:N`` the Nth (day)."""
        language = self.language_for(language)
        kind, colon, value = name.partition(":")
        if colon and kind in ("number", "ordinal"):
            directory = self.sets[language][0]
            rules = NUMBER_RULES if kind == "number" else ORDINAL_RULES
            spoken = rules.get(language, rules["en"])(int(value))
            return b"".join(self._pcm(directory / f"{stem}.wav") for stem in spoken)
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
            wanted = dict(catalogue)
            for name in LOGICAL_PROMPTS:
                wanted.setdefault(name, (name,))  # every prompt an app may ask for
            number = NUMBER_RULES.get(language, english_number)
            wanted["numbers"] = tuple(dict.fromkeys(f for n in range(1000) for f in number(n)))
            ordinal = ORDINAL_RULES.get(language, english_ordinal)
            wanted["ordinals"] = tuple(f for n in range(1, 32) for f in ordinal(n))
            for name, files in wanted.items():
                missing += [
                    f"{language}: {name}: {directory / f'{stem}.wav'}"
                    for stem in files
                    if not (directory / f"{stem}.wav").is_file()
                ]
        return missing
