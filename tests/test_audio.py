"""WAV reading and writing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from media_worker import g711
from media_worker.audio import AudioFormatError, read_wav, write_wav

ASTERISK_PROMPT = Path("/usr/share/asterisk/sounds/en_US_f_Allison/vm-intro.wav")


def sox(tmp_path: Path, *args: str) -> bytes:
    out = tmp_path / "out.wav"
    subprocess.run(["sox", "-n", *args, str(out), "synth", "0.5", "sine", "440"], check=True)
    return out.read_bytes()


def test_round_trip() -> None:
    pcm = bytes(range(256)) * 10
    audio = read_wav(write_wav(pcm))
    assert audio.data == pcm
    assert audio.duration == pytest.approx(len(pcm) / 16000)


def test_reads_debian_asterisk_prompts() -> None:
    audio = read_wav(ASTERISK_PROMPT.read_bytes(), ASTERISK_PROMPT.name)
    prompt_seconds = audio.duration  # the length of the recording, not a timing
    assert 1.0 < prompt_seconds < 10.0


@pytest.mark.parametrize(("encoding", "codec"), [("u-law", "PCMU"), ("a-law", "PCMA")])
def test_reads_g711_wav(tmp_path: Path, encoding: str, codec: str) -> None:
    data = sox(tmp_path, "-r", "8000", "-c", "1", "-e", encoding)
    audio = read_wav(data)
    assert audio.duration == pytest.approx(0.5, abs=0.01)
    # The data chunk (the file's last 4000 bytes) decodes exactly as our codec decodes it.
    assert audio.data == g711.DECODERS[codec](data[-4000:])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("-r", "44100", "-c", "2", "-b", "16"), "44100 Hz 2 channels 16-bit PCM"),
        (("-r", "8000", "-c", "1", "-b", "8", "-e", "unsigned-integer"), "8000 Hz mono 8-bit PCM"),
        (("-r", "16000", "-c", "1", "-b", "16"), "16000 Hz mono 16-bit PCM"),
    ],
)
def test_refuses_other_formats_with_a_hint(
    tmp_path: Path, args: tuple[str, ...], message: str
) -> None:
    with pytest.raises(AudioFormatError) as caught:
        read_wav(sox(tmp_path, *args), "greeting.wav")
    assert str(caught.value).startswith(f"greeting.wav: {message};")
    assert "sox IN.wav -r 8000 -c 1 -b 16" in str(caught.value)


def test_not_a_wav() -> None:
    with pytest.raises(AudioFormatError, match=r"x\.mp3: not a WAV file"):
        read_wav(b"ID3\x03" + b"\0" * 40, "x.mp3")
    with pytest.raises(AudioFormatError, match="no audio data"):
        read_wav(b"RIFF\x04\0\0\0WAVE")
