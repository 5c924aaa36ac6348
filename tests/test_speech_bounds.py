"""Hostile input costs little: audio is refused from its header and decoded a block at a time into mono, timelines
are counted before the work, text that is not Unicode is a SpeechError, and error messages stay short and clean."""

from __future__ import annotations

import io
import json
import re
import string
import tracemalloc

import numpy as np
import pytest
import soundfile
from scipy import signal

from talkinghead_nb.speech import (
    Keyframe,
    SpeechError,
    Track,
    load_audio,
    phonemize,
    synthesize,
    track_from_audio,
    track_from_timeline,
)
from talkinghead_nb.speech.audio import ANALYSIS_RATE, _resampled
from talkinghead_nb.speech.sound import BLOCK_FRAMES, MAX_SAMPLES
from talkinghead_nb.speech.timeline import MAX_WORD_CHARS
from talkinghead_nb.speech.track import MAX_KEYFRAMES

STREAMINFO_TOTAL = 8 + 13  # byte of a FLAC file where STREAMINFO's 36-bit total sample count begins (its low 4 bits)


def flac(rate: int, channels: int, seconds: float, *, claim: int | None = None) -> bytes:
    """A FLAC file of a quiet tone; ``claim``: the number of frames its header says it holds instead (0: unknown)."""
    t = np.arange(int(seconds * rate)) / rate
    tone = (0.3 * np.sin(2 * np.pi * 220 * t)).astype(np.float32)
    out = io.BytesIO()
    soundfile.write(out, np.repeat(tone[:, None], channels, axis=1), rate, format="FLAC")
    data = bytearray(out.getvalue())
    if claim is not None:
        field = int.from_bytes(data[STREAMINFO_TOTAL:STREAMINFO_TOTAL + 5], "big")
        data[STREAMINFO_TOTAL:STREAMINFO_TOTAL + 5] = (field & ~(2 ** 36 - 1) | claim).to_bytes(5, "big")
    return bytes(data)


def wav(rate: int, channels: int) -> bytes:
    out = io.BytesIO()
    soundfile.write(out, np.zeros((100, channels), np.int16), rate, format="WAV")
    return out.getvalue()


@pytest.fixture
def reads(monkeypatch) -> list[int]:
    """The frames every SoundFile.read was asked for (soundfile itself does the reading)."""
    asked: list[int] = []
    read = soundfile.SoundFile.read

    def spy(self, frames=-1, *args, **kwargs):
        asked.append(frames)
        return read(self, frames, *args, **kwargs)

    monkeypatch.setattr(soundfile.SoundFile, "read", spy)
    return asked


@pytest.fixture(scope="module")
def eight_channels() -> bytes:
    """60 s of 48 kHz audio in 8 channels: 92 MB once decoded whole, 11.5 MB as mono."""
    return flac(48_000, 8, 60)


@pytest.mark.parametrize("data, message", [
    # 599 s of 384 kHz, and of 8 channels at 48 kHz: 840 KB and 240 KB of silence took 2.6 and 1.1 GB to decode
    pytest.param(flac(384_000, 1, 0.1, claim=599 * 384_000), "holds 230016000 samples over its channels; the limit "
                 f"is {MAX_SAMPLES} (ten minutes of 48 kHz stereo)", id="384 kHz"),
    pytest.param(flac(48_000, 8, 0.1, claim=599 * 48_000), "holds 230016000 samples over its channels",
                 id="8 channels"),
    pytest.param(flac(655_350, 1, 0.1, claim=300 * 655_350), "has a sample rate of 655350 Hz; the rates that can be "
                 "used are 4000 to 384000 Hz", id="655 kHz"),
    pytest.param(flac(48_000, 1, 0.1, claim=0), "does not say how long it is (a stream?): save it as a complete file",
                 id="length unknown"),
    pytest.param(wav(16_000, 20), "has 20 channels; the limit is 16: mix it down to mono", id="20 channels"),
])
def test_audio_too_big_is_refused_from_its_header_before_any_decoding(data, message, reads):
    with pytest.raises(SpeechError, match="^the audio data " + re.escape(message)):
        track_from_audio(data)
    assert reads == []


def test_a_file_is_decoded_a_block_at_a_time_into_mono(eight_channels, reads):
    mono_bytes = 60 * 48_000 * 4
    tracemalloc.start()
    try:
        samples, rate = load_audio(eight_channels)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert rate == 48_000 and samples.shape == (60 * 48_000,) and samples.dtype == np.float32
    assert reads and max(reads) == BLOCK_FRAMES and sum(reads) == len(samples)
    assert peak < 3 * mono_bytes  # the mono samples (in blocks, then joined): not the 8 channels (8×)
    whole = soundfile.read(io.BytesIO(eight_channels), dtype="float32")[0].mean(axis=1)
    assert np.array_equal(samples, whole)


def test_track_from_audio_keeps_only_the_analysis_rate_samples(eight_channels, reads):
    tracemalloc.start()
    try:
        track = track_from_audio(eight_channels)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert track.duration == pytest.approx(60, abs=0.01) and track.envelope is not None
    assert max(reads) == BLOCK_FRAMES
    assert peak < 60 * 48_000 * 8 * 4 / 4  # the samples at 12 kHz and a block of analysis, not the 8 decoded channels


def test_a_header_that_claims_fewer_frames_bounds_the_decoding(reads):
    samples, _ = load_audio(flac(16_000, 2, 3, claim=16_000))  # 3 s of audio, 1 s in the header
    assert len(samples) == 16_000 and sum(reads) == 16_000


@pytest.mark.parametrize("rate", [8000, 11025, 22050, 44100, 48000])
def test_resampling_a_block_at_a_time_is_exactly_resample_poly(rate):
    x = np.random.default_rng(rate).standard_normal(300_001).astype(np.float32)
    blocks = np.split(x, [1, 4097, 70_000, 70_001, 200_000])
    y, frames = _resampled(iter(blocks), rate)
    ratio = np.gcd(ANALYSIS_RATE, rate)
    assert frames == len(x)
    assert np.array_equal(y, signal.resample_poly(x, ANALYSIS_RATE // ratio, rate // ratio))


def test_an_unreadable_file_is_described_without_the_object_behind_it():
    with pytest.raises(SpeechError) as caught:
        track_from_audio(b"this is not audio at all")
    assert str(caught.value) == ("the audio data is not audio that can be read (WAV, FLAC, OGG/Vorbis or MP3): "
                                 "Format not recognised")


def test_a_timeline_that_makes_too_many_keyframes_is_refused_while_they_are_built():
    timeline = [{"phonemes": "a" * 100, "start": i * 0.1, "end": i * 0.1 + 0.05} for i in range(2000)]  # 200000
    with pytest.raises(SpeechError, match=f"^these phonemes make more than the {MAX_KEYFRAMES} keyframes a track "
                                          "may hold: split the speech into shorter parts$"):
        track_from_timeline(timeline)


def test_the_words_espeak_phonemises_for_one_timeline_are_bounded():
    letters = string.ascii_lowercase
    words = ["".join(letters[(i * 7 + j) % 26] for j in range(96)) + f"{i:03}" for i in range(MAX_WORD_CHARS // 99 + 1)]
    timeline = [{"word": word, "start": i * 0.5, "end": i * 0.5 + 0.4} for i, word in enumerate(words)]
    chars = sum(map(len, words))
    with pytest.raises(SpeechError, match=f"different words add up to {chars} characters; eSpeak phonemises at most "
                                          f"{MAX_WORD_CHARS} for one timeline"):
        track_from_timeline(timeline)
    assert len(track_from_timeline(timeline, phonemize=False)) > 0  # spreading letters costs no eSpeak call
    repeated = [{"word": words[0], "start": i * 0.5, "end": i * 0.5 + 0.4} for i in range(len(words))]
    assert len(track_from_timeline(repeated)) > 0  # one word many times is phonemised once


SURROGATE = "must be valid Unicode: character 3 is a lone surrogate (U+D800, half of a UTF-16 pair"


@pytest.mark.parametrize("speak, message", [
    pytest.param(lambda: synthesize("hi \ud800 there"), "text " + SURROGATE, id="synthesize"),
    pytest.param(lambda: phonemize("hi \ud800"), "text " + SURROGATE, id="phonemize"),
    pytest.param(lambda: track_from_timeline([{"word": "hey\ud800", "start": 0, "end": 0.3}]),
                 "timeline item 0: word " + SURROGATE, id="timeline word"),
    pytest.param(lambda: track_from_timeline('[{"word": "hey\\ud800", "start": 0, "end": 0.3}]'),
                 "word " + SURROGATE, id="timeline JSON escape"),
    pytest.param(lambda: track_from_timeline([{"word": "hey\ud800", "start": 0, "end": 0.3}], phonemize=False),
                 "word " + SURROGATE, id="timeline word, letters"),
    pytest.param(lambda: track_from_timeline(json.dumps({"tokens": [{"text": "hi", "phonemes": "hɑɪ\ud800",
                                                                     "start_ts": 0, "end_ts": 0.3}]})),
                 "timeline item 0: phonemes " + SURROGATE, id="timeline phonemes"),
    pytest.param(lambda: Track([Keyframe(0, 1, "aaa", 1, "ɑːm\ud800")], attack=0, release=0),
                 "keyframe 0: phoneme " + SURROGATE, id="track keyframe"),
])
def test_lone_surrogates_are_a_speech_error_that_says_so(speak, message):
    with pytest.raises(SpeechError, match=re.escape(message)):
        speak()
