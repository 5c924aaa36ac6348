"""Audio → mouth: openness follows the loudness, the shape follows the vowel; files, bytes and arrays; bad input
refused. Also: the eSpeak track's openness follows its own audio."""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
import soundfile
from scipy import signal

from talkinghead_nb.speech import SpeechError, Track, load_audio, synthesize, track_from_audio
from talkinghead_nb.speech.track import MOUTH_KEYS

RATE = 16_000
SENTENCES = (
    "The birch canoe slid on the smooth planks. Glue the sheet to the dark blue background.",
    "Four hours of steady work faced us. A large size in stockings is hard to sell.",
)
# (F1, F2) of synthetic vowels and the mouth shape each should give
VOWELS = {"a": ((750, 1200), "mouth_aaa_index"), "i": ((300, 2300), "mouth_iii_index"),
          "u": ((320, 800), "mouth_uuu_index"), "e": ((530, 1850), "mouth_eee_index"),
          "o": ((500, 850), "mouth_ooo_index")}


def envelope(audio: np.ndarray, rate: int, times: np.ndarray) -> np.ndarray:
    """The audio's RMS amplitude in a 50 ms Hann window around each time."""
    window = np.hanning(int(0.05 * rate))
    power = np.convolve(audio.astype(np.float64) ** 2, window / window.sum(), mode="same")
    return np.sqrt(np.interp(times, np.arange(len(audio)) / rate, power))


def correlation(track: Track, audio: np.ndarray, rate: int) -> float:
    times = np.arange(0, len(audio) / rate, 0.01)
    return float(np.corrcoef(track.openness(times), envelope(audio, rate, times))[0, 1])


def vowel(formants: tuple[int, int], seconds: float, pitch: float = 120) -> np.ndarray:
    """A vowel: a sawtooth voice through resonators at the formants (and F3), with soft onset and offset."""
    t = np.arange(int(seconds * RATE)) / RATE
    sound = signal.sawtooth(2 * np.pi * pitch * t)
    for frequency, bandwidth in (*zip(formants, (80, 100), strict=True), (2800, 150)):
        r = np.exp(-np.pi * bandwidth / RATE)
        sound = signal.lfilter([1 - r], [1, -2 * r * np.cos(2 * np.pi * frequency / RATE), r * r], sound)
    fade = np.minimum(1, np.minimum(t, t[-1] - t) / 0.04)
    return (0.5 * sound / np.abs(sound).max() * fade).astype(np.float32)


@pytest.fixture(scope="module")
def vowels_and_silences() -> tuple[np.ndarray, list[tuple[float, float, str]]]:
    """a, i, u, e, o at different loudness, each 0.35 s, with 0.25 s of silence around each."""
    pieces, spans, at = [np.zeros(int(0.25 * RATE), np.float32)], [], 0.25
    for (name, (formants, _)), gain in zip(VOWELS.items(), (1.0, 0.3, 0.6, 0.15, 0.8), strict=True):
        pieces += [gain * vowel(formants, 0.35), np.zeros(int(0.25 * RATE), np.float32)]
        spans.append((at, at + 0.35, name))
        at += 0.6
    return np.concatenate(pieces), spans


def test_openness_follows_a_synthetic_vowel_and_silence_signal(vowels_and_silences):
    audio, spans = vowels_and_silences
    track = track_from_audio(audio, RATE)
    assert correlation(track, audio, RATE) >= 0.7
    times = np.arange(0, len(audio) / RATE, 0.01)
    silent = np.ones(len(times), bool)
    for start, end, _ in spans:
        silent &= (times < start - 0.12) | (times > end + 0.12)
    assert track.openness(times[silent]).max() == 0  # closed in the silences


def test_the_shape_follows_the_vowel(vowels_and_silences):
    audio, spans = vowels_and_silences
    track = track_from_audio(audio, RATE)
    for start, end, name in spans:
        mouth = track.mouth_array(np.linspace(start + 0.1, end - 0.1, 20)).mean(axis=0)
        assert MOUTH_KEYS[mouth.argmax()] == VOWELS[name][1], name


@pytest.mark.parametrize("text", SENTENCES)
def test_openness_follows_espeak_audio_from_both_the_espeak_and_the_audio_track(text):
    speech = synthesize(text)
    assert correlation(speech.track, speech.audio, speech.sample_rate) >= 0.7
    assert correlation(track_from_audio(speech.audio, speech.sample_rate), speech.audio, speech.sample_rate) >= 0.7


def test_silence_and_faint_noise_keep_the_mouth_closed():
    times = np.arange(0, 3, 0.01)
    assert track_from_audio(np.zeros(3 * RATE, np.int16), RATE).openness(times).max() == 0
    noise = (10 ** (-70 / 20) * np.random.default_rng(0).standard_normal(3 * RATE)).astype(np.float32)
    track = track_from_audio(noise, RATE)
    assert track.openness(times).max() == 0 and track.duration == pytest.approx(3)


@pytest.mark.parametrize("fmt", ["WAV", "FLAC", "OGG"])
def test_files_and_bytes_give_the_same_track_as_the_array(tmp_path, fmt, vowels_and_silences):
    audio = vowels_and_silences[0]
    path = tmp_path / f"speech.{fmt.lower()}"
    soundfile.write(path, np.stack([audio, audio], axis=1), RATE, format=fmt)  # stereo: averaged to mono
    times = np.arange(0, len(audio) / RATE, 0.01)
    reference = track_from_audio(audio, RATE).mouth_array(times)
    for source in (path, str(path), path.read_bytes()):
        mouth = track_from_audio(source).mouth_array(times)
        assert np.corrcoef(mouth.sum(axis=1), reference.sum(axis=1))[0, 1] > 0.95
        if fmt != "OGG":  # lossless
            assert np.abs(mouth - reference).max() < 0.01


def test_load_audio_scales_integers_and_mixes_channels():
    samples, rate = load_audio(np.array([[32767, -32768], [16384, 16384]], np.int16), 8000)
    assert rate == 8000 and samples.dtype == np.float32
    assert samples == pytest.approx([-0.5 / 32768, 0.5], abs=1e-4)


def _wav(seconds: float, rate: int = 8000) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, np.zeros(int(seconds * rate), np.int16), rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


@pytest.mark.parametrize("source, kwargs, message", [
    (b"", {}, "the audio data is empty"),
    (b"this is not audio at all", {}, "is not audio that can be read (WAV, FLAC, OGG/Vorbis or MP3)"),
    (b"\x89PNG\r\n\x1a\n" + bytes(100), {}, "is not audio"),
    (_wav(0), {}, "holds no samples"),
    (_wav(2.0), {"max_seconds": 1}, "lasts 2 s; the limit is 1 s"),
    (np.zeros(601 * 4000, np.int16), {"sample_rate": 4000}, "lasts 601 s; the limit is 600 s"),
    (np.zeros(0, np.float32), {"sample_rate": RATE}, "the audio holds no samples"),
    (np.zeros(100, np.float32), {}, "needs its sample rate"),
    (np.zeros(100, np.float32), {"sample_rate": 100}, "needs its sample rate"),
    (np.zeros(100, np.float32), {"sample_rate": 16000.5}, "needs its sample rate"),
    (np.array([0.0, np.nan] * 100, np.float32), {"sample_rate": RATE}, "NaN or infinite"),
    (np.zeros((100, 2, 2), np.float32), {"sample_rate": RATE}, "got shape (100, 2, 2)"),
    (np.zeros((100, 40), np.float32), {"sample_rate": RATE}, "at most 16 channels"),
    (np.array(["a", "b"]), {"sample_rate": RATE}, "integers or floats"),
    (_wav(1.0), {"sample_rate": 8000}, "sample_rate goes with an array only"),
    ("/no/such/file.wav", {}, "no such audio file"),
    ([0.0, 0.1, 0.2], {"sample_rate": RATE}, "got list"),
])
def test_bad_audio_is_refused_with_the_reason(source, kwargs, message):
    with pytest.raises(SpeechError, match=re.escape(message)):
        track_from_audio(source, **kwargs)


def test_a_file_that_is_not_audio_is_named(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("just some text", "utf-8")
    with pytest.raises(SpeechError, match="audio file notes.wav is not audio"):
        track_from_audio(path)
