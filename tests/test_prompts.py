"""Prompt catalogue, numbers, espeak-ng built languages, overrides, and the CLI."""

from __future__ import annotations

from pathlib import Path

import pytest

from media_worker.audio import read_wav, write_wav
from media_worker.cli import main
from media_worker.prompts import (
    ASTERISK_EN,
    PromptLibrary,
    PromptMissing,
    build_prompts,
    english_number,
    german_number,
)
from tests.support.audio_match import read_pcm


@pytest.mark.parametrize(
    ("n", "files"),
    [
        (0, ("digits/0",)),
        (20, ("digits/20",)),
        (21, ("digits/20", "digits/1")),
        (40, ("digits/40",)),
        (100, ("digits/1", "digits/hundred")),
        (347, ("digits/3", "digits/hundred", "digits/40", "digits/7")),
    ],
)
def test_english_numbers(n: int, files: tuple[str, ...]) -> None:
    assert english_number(n) == files


def test_german_numbers() -> None:
    assert german_number(21) == ("digits/21",)
    assert german_number(0) == ("digits/0",)
    assert german_number(300) == ("digits/3", "digits/hundert")
    assert german_number(347) == ("digits/3", "digits/hundert", "digits/47")
    with pytest.raises(ValueError, match="0-999"):
        german_number(1000)


def test_english_prompts_come_from_debians_asterisk_set() -> None:
    library = PromptLibrary()
    greeting = library.get("greeting_default", "en")
    assert greeting == read_pcm_bytes(ASTERISK_EN / "vm-intro.wav")
    three = library.get("number:3")
    assert three == read_pcm_bytes(ASTERISK_EN / "digits" / "3.wav")
    with pytest.raises(PromptMissing, match="'nonsense' is not in the en catalogue"):
        library.get("nonsense")
    # An unknown language falls back to the default one.
    assert library.get("goodbye", "xx") == library.get("goodbye", "en")


def read_pcm_bytes(path: Path) -> bytes:
    return read_wav(path.read_bytes()).data


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("prompts")
    build_prompts("de", directory)
    build_prompts("en", directory)
    return directory


def test_german_is_built_with_espeak(built: Path) -> None:
    library = PromptLibrary(generated=built)
    assert "de" in library.languages()
    assert library.check() == []
    you_have = library.get("you_have", "de")
    assert 0.3 < len(you_have) / 16000 < 3
    assert library.get("number:21", "de") == read_pcm_bytes(built / "de" / "digits" / "21.wav")
    beep = library.get("beep", "de")
    assert abs(len(beep) / 16000 - 0.3) < 0.01
    # English keeps its recorded prompts and gains the built menu prompts.
    assert library.get("message_menu", "en") == read_pcm_bytes(built / "en" / "message_menu.wav")
    assert library.get("goodbye", "en") == read_pcm_bytes(ASTERISK_EN / "vm-goodbye.wav")


def test_overrides_per_domain_and_language(tmp_path: Path) -> None:
    own = tmp_path / "overrides"
    (own / "lab.example" / "en").mkdir(parents=True)
    (own / "en").mkdir(parents=True)
    domain_pcm, language_pcm = b"\x01\x02" * 800, b"\x03\x04" * 800
    (own / "lab.example" / "en" / "goodbye.wav").write_bytes(write_wav(domain_pcm))
    (own / "en" / "goodbye.wav").write_bytes(write_wav(language_pcm))
    library = PromptLibrary(overrides=own)
    assert library.get("goodbye", "en", "lab.example") == domain_pcm
    assert library.get("goodbye", "en", "other.example") == language_pcm
    assert library.get("beep", "en", "lab.example") == read_pcm_bytes(ASTERISK_EN / "beep.wav")


def test_cli_build_and_check(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["prompts", "check", "--dir", str(tmp_path)]) == 1
    assert "missing: en: message_menu" in capsys.readouterr().out
    assert main(["prompts", "build", "en", "--dir", str(tmp_path)]) == 0
    assert main(["prompts", "check", "--dir", str(tmp_path)]) == 0
    assert "all prompts present" in capsys.readouterr().out
    assert main(["prompts", "build", "xx", "--dir", str(tmp_path)]) == 1
    assert "no prompt texts for language 'xx'" in capsys.readouterr().err


def test_the_built_german_greeting_is_audible_and_long_enough(built: Path) -> None:
    pcm = read_pcm(built / "de" / "greeting_default.wav")
    assert max(abs(x) for x in pcm) > 3000
    assert len(pcm) / 8000 > 3.0  # two sentences
