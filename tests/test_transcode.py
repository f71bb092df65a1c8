"""Audio conversion: stored WAV to MP3 and Ogg/Opus, uploads of any kind to the worker's
8 kHz mono WAV, and the refusals of everything else."""

from __future__ import annotations

import io
import math
import struct
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from media_worker import transcode
from media_worker.audio import read_wav, write_wav
from media_worker.transcode import AudioFormatError, AudioTooLong, encode, normalise

AMPLITUDE = 0.5


def tone(freq: float, rate: int, seconds: float, channels: int = 1) -> np.ndarray:
    n = np.arange(round(rate * seconds))
    mono = (AMPLITUDE * np.sin(2 * np.pi * freq * n / rate)).astype(np.float32)
    return np.stack([mono] * channels, axis=1) if channels > 1 else mono


def file_of(samples: np.ndarray, rate: int, fmt: str, subtype: str) -> bytes:
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, rate, format=fmt, subtype=subtype)
    return buffer.getvalue()


def stored_message(seconds: float, freq: float = 1000.0) -> bytes:
    """A message as the worker stores it: 8 kHz 16-bit mono PCM WAV."""
    samples = np.rint(tone(freq, 8000, seconds) * 32767).astype("<i2")
    return write_wav(samples.tobytes())


def level_db(wav: bytes) -> float:
    """RMS of the worker's PCM relative to the test tone's, in dB, edges left out."""
    pcm = np.frombuffer(read_wav(wav).data, "<i2").astype(np.float64) / 32767
    middle = pcm[800:-800]
    rms = math.sqrt(float(np.mean(middle**2))) + 1e-12
    return 20 * math.log10(rms / (AMPLITUDE / math.sqrt(2)))


# ----- encode -----


def test_wav_is_handed_back_unchanged() -> None:
    wav = stored_message(0.5)
    assert encode(wav, "wav") is wav


def test_mp3_is_16_khz_constant_24_kbit_s_and_decodes_to_the_message() -> None:
    mp3 = encode(stored_message(5.0), "mp3")
    with soundfile.SoundFile(io.BytesIO(mp3)) as audio:
        assert (audio.format, audio.samplerate, audio.channels) == ("MP3", 16000, 1)
    kbit_s = len(mp3) * 8 / 5.0 / 1000
    assert 22 <= kbit_s <= 27  # 24 kbit/s and the encoder's header frame
    back = normalise(mp3, max_seconds=10)
    assert read_wav(back).duration == pytest.approx(5.0, abs=0.1)
    assert level_db(back) == pytest.approx(0.0, abs=0.5)


def test_opus_is_ogg_at_8_khz_about_16_kbit_s_and_decodes_to_the_message() -> None:
    opus = encode(stored_message(5.0), "opus")
    assert opus[:4] == b"OggS"
    with soundfile.SoundFile(io.BytesIO(opus)) as audio:
        assert (audio.format, audio.subtype, audio.channels) == ("OGG", "OPUS", 1)
    kbit_s = len(opus) * 8 / 5.0 / 1000
    assert 10 <= kbit_s <= 22
    back = normalise(opus, max_seconds=10)
    assert read_wav(back).duration == pytest.approx(5.0, abs=0.1)
    assert level_db(back) == pytest.approx(0.0, abs=1.0)


def test_encode_reads_g711_wav_from_a_sems_spool() -> None:
    ulaw = file_of(tone(1000, 8000, 1.0), 8000, "WAV", "ULAW")
    back = normalise(encode(ulaw, "mp3"), max_seconds=5)
    assert level_db(back) == pytest.approx(0.0, abs=0.5)


def test_encode_refuses_an_unknown_format() -> None:
    with pytest.raises(
        ValueError, match=r"^unknown audio format 'flac' \(known: wav, mp3, opus\)$"
    ):
        encode(stored_message(0.1), "flac")


def test_the_tables_name_the_same_formats() -> None:
    assert set(transcode.CONTENT_TYPES) == set(transcode.EXTENSIONS) == {"wav", "mp3", "opus"}
    assert transcode.CONTENT_TYPES == {"wav": "audio/wav", "mp3": "audio/mpeg", "opus": "audio/ogg"}


def test_conversions_in_parallel_threads_give_the_serial_result() -> None:
    # Callers run encode in asyncio.to_thread: several at once must not disturb each other.
    wav = stored_message(1.0)
    serial = encode(wav, "mp3")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: encode(wav, "mp3"), range(8)))
    assert all(result == serial for result in results)


# ----- normalise -----

UPLOADS = [
    ("WAV", "PCM_16", 44100, 2),
    ("WAV", "PCM_24", 48000, 1),
    ("WAV", "FLOAT", 16000, 1),
    ("WAV", "PCM_U8", 11025, 1),
    ("WAV", "ALAW", 8000, 1),
    ("WAVEX", "PCM_16", 22050, 6),
    ("MP3", "MPEG_LAYER_III", 44100, 2),
    ("MP3", "MPEG_LAYER_III", 8000, 1),
    ("OGG", "VORBIS", 48000, 2),
    ("OGG", "OPUS", 48000, 1),
]


@pytest.mark.parametrize(("fmt", "subtype", "rate", "channels"), UPLOADS)
def test_uploads_become_8_khz_mono_16_bit_wav(
    fmt: str, subtype: str, rate: int, channels: int
) -> None:
    data = file_of(tone(1000, rate, 1.0, channels), rate, fmt, subtype)
    out = normalise(data, max_seconds=5)
    assert out[:4] == b"RIFF"
    assert read_wav(out).duration == pytest.approx(1.0, abs=0.06)  # the worker can play it
    tolerance = 1.5 if fmt in ("MP3", "OGG") or subtype == "PCM_U8" else 0.2
    assert level_db(out) == pytest.approx(0.0, abs=tolerance)


@pytest.mark.parametrize("rate", [44100, 48000, 32000, 11025])
def test_resampling_keeps_the_voice_band(rate: int) -> None:
    for freq in (300, 1000, 3000):
        out = normalise(file_of(tone(freq, rate, 0.5), rate, "WAV", "FLOAT"), max_seconds=1)
        assert level_db(out) == pytest.approx(0.0, abs=0.1), freq


@pytest.mark.parametrize(
    ("rate", "freq"), [(44100, 5000), (48000, 4500), (16000, 7000), (11025, 5500)]
)
def test_resampling_does_not_fold_high_frequencies_into_the_voice_band(
    rate: int, freq: int
) -> None:
    # Without a low-pass, 5 kHz at 8 kHz would be heard as 3 kHz at full level.
    out = normalise(file_of(tone(freq, rate, 0.5), rate, "WAV", "FLOAT"), max_seconds=1)
    assert level_db(out) < -70


@pytest.mark.parametrize("rate", [44101, 7999, 192000, 12345])
def test_odd_and_high_rates_keep_the_voice_band_and_fold_nothing(rate: int) -> None:
    for freq, low, high in ((1000, -0.1, 0.1), (3000, -0.1, 0.1), (4500, -200, -70)):
        if freq >= rate / 2:
            continue  # not a tone at this rate
        out = normalise(file_of(tone(freq, rate, 0.5), rate, "WAV", "FLOAT"), max_seconds=1)
        assert low <= level_db(out) <= high, (rate, freq)


@pytest.mark.parametrize(
    ("rate", "target"), [(44100, 8000), (48000, 8000), (8000, 16000), (11025, 8000)]
)
def test_both_ways_of_filtering_give_the_same_samples(rate: int, target: int) -> None:
    samples = np.random.default_rng(7).uniform(-0.5, 0.5, rate).astype(np.float32)
    g = math.gcd(rate, target)
    up, down = target // g, rate // g
    taps, half, phases = transcode._kernel(up, down)
    assert phases == up  # the table holds every phase: the fast way applies
    count = len(samples) * up // down
    padded = np.concatenate(
        [np.zeros(half, np.float32), samples, np.zeros(half + 1 + down, np.float32)]
    )
    fast = transcode._by_phase(padded, taps, up, down, count)
    slow = transcode._by_position(padded, taps, half, up, down, count)
    assert fast.shape == slow.shape == (count,)
    assert float(np.abs(fast - slow).max()) < 1e-5


def test_stereo_is_mixed_down_not_one_channel_taken() -> None:
    left = tone(1000, 8000, 0.5)
    both = np.stack([left, np.zeros_like(left)], axis=1)
    out = normalise(file_of(both, 8000, "WAV", "FLOAT"), max_seconds=1)
    assert level_db(out) == pytest.approx(-6.02, abs=0.1)


def test_samples_beyond_full_scale_are_clipped() -> None:
    loud = np.full(8000, 3.0, np.float32)
    out = normalise(file_of(loud, 8000, "WAV", "FLOAT"), max_seconds=1)
    assert set(np.frombuffer(read_wav(out).data, "<i2")) == {32767}


def test_audio_at_the_limit_is_taken() -> None:
    out = normalise(file_of(tone(440, 16000, 3.0), 16000, "WAV", "PCM_16"), max_seconds=3)
    assert read_wav(out).duration == pytest.approx(3.0, abs=0.01)


def test_audio_over_the_limit_is_refused_from_its_header() -> None:
    data = file_of(tone(440, 16000, 3.0), 16000, "WAV", "PCM_16")
    with pytest.raises(AudioTooLong, match=r"^the audio lasts 3\.0 s, over the limit of 2 s$"):
        normalise(data, max_seconds=2)


@pytest.mark.parametrize(
    ("fmt", "subtype"), [("WAV", "PCM_16"), ("MP3", "MPEG_LAYER_III"), ("OGG", "OPUS")]
)
def test_audio_a_little_over_the_limit_is_refused_while_decoding(fmt: str, subtype: str) -> None:
    # Within the margin allowed to a header's estimate: the decoded length decides.
    data = file_of(tone(440, 16000, 3.0), 16000, fmt, subtype)
    with pytest.raises(AudioTooLong, match=r"^the audio is longer than the limit of 2\.9 s$"):
        normalise(data, max_seconds=2.9)


def test_too_long_is_a_format_error_too() -> None:
    assert issubclass(AudioTooLong, AudioFormatError)
    assert issubclass(AudioFormatError, ValueError)


def wav_header(rate: int, channels: int, data: bytes, tag: int = 1, bits: int = 16) -> bytes:
    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * block, block, bits)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


REFUSALS = [
    (b"", r"^not a file of a supported kind: expected WAV"),
    (b"hello, this is text", r"^not a file of a supported kind"),
    (b"fLaC\x00\x00\x00\x22" + bytes(64), r"^not a file of a supported kind"),
    (b"FORM\x00\x00\x00\x04AIFF", r"^not a file of a supported kind"),
    (wav_header(8000, 1, b""), r"^the WAV file holds no audio$"),
    (
        wav_header(200000, 1, bytes(400)),
        r"^a sample rate of 200000 Hz is outside 4000\.\.192000 Hz$",
    ),
    (wav_header(2000, 1, bytes(400)), r"^a sample rate of 2000 Hz is outside"),
    (wav_header(8000, 9, bytes(9 * 2 * 100)), r"^9 channels is outside 1\.\.8$"),
    (
        wav_header(8000, 1, bytes(100), tag=0x11, bits=4),
        r"^unreadable WAV audio: Error in WAV/W64/RF64 file\. Malformed 'fmt ' chunk\.$",
    ),
    (
        file_of(tone(440, 8000, 0.1), 8000, "WAV", "IMA_ADPCM"),
        r"^WAV IMA_ADPCM audio is not supported: expected WAV \(PCM, float, µ-law, A-law\), MP3, Ogg Opus or Ogg Vorbis$",
    ),
    (file_of(tone(440, 8000, 0.1), 8000, "OGG", "VORBIS")[:100], r"^unreadable OGG audio: "),
    (
        b"RIFF\x10\x00\x00\x00WAVEjunk",
        r"^unreadable WAV audio: Error in WAV file\. No 'data' chunk marker\.$",
    ),
    (
        b"OggS" + bytes(60),
        r"^unreadable OGG audio: File contains data in an unimplemented format\.$",
    ),
    (
        b"ID3\x04\x00\x00\x00\x00\x00\x00" + bytes(200),
        r"^unreadable MP3 audio: Format not recognised\.$",
    ),
]


@pytest.mark.parametrize(("data", "message"), REFUSALS)
def test_refusals_say_why(data: bytes, message: str) -> None:
    with pytest.raises(AudioFormatError, match=message):
        normalise(data, max_seconds=10)


def test_samples_that_are_not_numbers_are_refused() -> None:
    samples = tone(440, 8000, 0.1)
    samples[10] = np.nan
    with pytest.raises(
        AudioFormatError, match=r"^the WAV file holds samples that are not numbers$"
    ):
        normalise(file_of(samples, 8000, "WAV", "FLOAT"), max_seconds=1)


@pytest.mark.parametrize(
    ("start", "fmt", "subtype"),
    [(b"\xff\xfb", "AU", "PCM_16"), (b"OggS", "FLAC", "PCM_16"), (b"RIFF", "OGG", "VORBIS")],
)
def test_a_known_start_does_not_pass_off_another_kind(start: bytes, fmt: str, subtype: str) -> None:
    # libsndfile recognises many kinds by their content: what it finds must be the kind
    # the first bytes promised, or a file in any of its formats would be parsed.
    other = file_of(tone(440, 8000, 0.2), 8000, fmt, subtype)
    with pytest.raises(AudioFormatError):
        normalise(start + other[len(start) :], max_seconds=1)


# ----- hostile input -----

SEEDS = {
    "wav": file_of(tone(440, 16000, 0.05, 2), 16000, "WAV", "PCM_16"),
    "mp3": file_of(tone(440, 16000, 0.3), 16000, "MP3", "MPEG_LAYER_III"),
    "vorbis": file_of(tone(440, 16000, 0.2), 16000, "OGG", "VORBIS"),
    "opus": file_of(tone(440, 16000, 0.2), 16000, "OGG", "OPUS"),
}
FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def only_format_errors(data: bytes) -> None:
    try:
        out = normalise(data, max_seconds=2)
    except AudioFormatError:
        return
    assert read_wav(out).duration <= 2.0


@FUZZ
@given(st.binary(max_size=2048))
def test_arbitrary_bytes_raise_only_format_errors(data: bytes) -> None:
    only_format_errors(data)


@FUZZ
@given(
    st.sampled_from([b"RIFF\x00\x01\x00\x00WAVE", b"OggS", b"ID3", b"\xff\xfb"]),
    st.binary(max_size=2048),
)
def test_bytes_after_a_known_start_raise_only_format_errors(start: bytes, rest: bytes) -> None:
    only_format_errors(start + rest)


@FUZZ
@given(
    st.sampled_from(sorted(SEEDS)),
    st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 255)), max_size=12),
    st.integers(0, 10**6),
)
def test_damaged_real_files_raise_only_format_errors(
    seed: str, changes: list[tuple[int, int]], cut: int
) -> None:
    data = bytearray(SEEDS[seed])
    for position, value in changes:
        data[position % len(data)] = value
    only_format_errors(bytes(data[: max(1, len(data) - cut % len(data))]))


@pytest.mark.parametrize(("rate", "channels"), [(44100, 2), (48000, 1), (22050, 1)])
def test_a_long_mp3_upload_decodes_without_glitches(rate: int, channels: int) -> None:
    # libsndfile's MP3 reader garbles samples when read in parts: a pure tone shows any
    # sample that is off.
    seconds, freq = 8.0, 1000.0
    out = normalise(
        file_of(tone(freq, rate, seconds, channels), rate, "MP3", "MPEG_LAYER_III"), max_seconds=10
    )
    pcm = np.frombuffer(read_wav(out).data, "<i2").astype(np.float64) / 32767
    n = np.arange(len(pcm))
    basis = np.stack(
        [np.sin(2 * np.pi * freq * n / 8000), np.cos(2 * np.pi * freq * n / 8000)], axis=1
    )
    middle = slice(4000, len(pcm) - 4000)  # the encoder's start and end are not a tone
    fit, *_ = np.linalg.lstsq(basis[middle], pcm[middle], rcond=None)
    residual = pcm[middle] - basis[middle] @ fit
    assert float(np.hypot(*fit)) == pytest.approx(AMPLITUDE, rel=0.05)
    assert float(np.abs(residual).max()) < 0.05  # coding noise; a garbled sample is off by 0.1+
