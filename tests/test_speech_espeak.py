"""Text → speech with eSpeak NG: real synthesis, several languages, the mouth in time with eSpeak's own phonemes."""

from __future__ import annotations

import io
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
import soundfile

from talkinghead_nb.speech import SpeechError, VisemeTable, phonemize, synthesize, voices
from talkinghead_nb.speech.espeak import MAX_CHARS

BILABIAL_SENTENCE = "Peter Piper picked a peck of pickled peppers; Bob bought a big blue balloon for Mom."


def test_english_speech_comes_with_its_track():
    speech = synthesize("Hello there, how are you today?")
    assert speech.sample_rate == 22050 and speech.audio.dtype == np.float32 and speech.audio.ndim == 1
    assert 1.0 < speech.duration < 4.0 and np.abs(speech.audio).max() <= 1 and np.abs(speech.audio).max() > 0.1
    assert speech.track.duration == pytest.approx(speech.duration)
    assert len(speech.track) >= 15 and speech.track.envelope is not None
    assert [p.phoneme for p in speech.phonemes][:4] == ["h", "ə", "l", "ˈoʊ"]
    audio, rate = soundfile.read(io.BytesIO(speech.wav()), dtype="float32")
    assert rate == speech.sample_rate and len(audio) == len(speech.audio)
    assert np.abs(audio - speech.audio).max() < 1e-4


@pytest.mark.parametrize("voice, text, expected", [
    ("de", "Ich möchte heute Abend in die Küche gehen.", {"ç", "œ", "ʏ"}),
    ("fr", "Bonjour, je voudrais un bon vin blanc.", {"ʁ", "ɔ̃", "ɑ̃"}),
])
def test_other_languages_speak_and_every_phoneme_lands_on_a_shape(voice, text, expected):
    speech = synthesize(text, voice)
    spoken = {p.phoneme.lstrip("ˈˌ") for p in speech.phonemes}
    assert expected <= spoken
    assert not [p for p in speech.phonemes if VisemeTable.factory().unmapped(p.phoneme)]
    assert speech.track.openness(np.arange(0, speech.duration, 0.01)).max() > 0.5


def test_voice_variants_and_rate():
    slow = synthesize("The rain in Spain stays mainly in the plain.", "en-gb", rate=120)
    fast = synthesize("The rain in Spain stays mainly in the plain.", "en-gb+f3", rate=300)
    assert fast.duration < 0.6 * slow.duration
    assert [p.phoneme for p in fast.phonemes if p.phoneme] == [p.phoneme for p in slow.phonemes if p.phoneme]
    assert {"en-us", "en-gb", "de", "fr"} <= {language for voice in voices() for language in voice.languages}


def test_mama_closes_the_mouth_between_the_vowels():
    speech = synthesize("mama")
    phonemes = [p for p in speech.phonemes if p.phoneme]
    assert [p.phoneme for p in phonemes] == ["m", "ˈɑː", "m", "ɐ"]
    first, middle, second = phonemes[1], phonemes[2], phonemes[3]
    openness = speech.track.openness
    between = openness(np.arange(first.end - 0.03, second.start + 0.03, 0.002))
    assert openness(np.linspace(first.start, first.end, 20)).max() > 0.6
    assert openness(np.linspace(second.start, second.end, 20)).max() > 0.2
    assert between.min() < 0.02  # shut, not just narrower
    assert middle.start - 0.04 <= float(np.arange(first.end - 0.03, second.start + 0.03, 0.002)[between.argmin()]) \
        <= middle.end + 0.04


def test_the_track_closes_the_mouth_within_40_ms_of_every_bilabial_event():
    speech = synthesize(BILABIAL_SENTENCE)
    table = VisemeTable.factory()
    bilabials = [p for p in speech.phonemes if any(part.shape == "closed" for part in table.parts(p.phoneme))]
    assert len(bilabials) >= 15
    for p in bilabials:  # the rendered mouth really shuts, and does so within 40 ms of the event's start
        times = np.arange(p.start - 0.04, p.start + 0.04, 0.001)
        assert speech.track.openness(times).min() < 0.02, p
    closures = [k for k in speech.track.keyframes if k.shape == "closed"]
    assert len(closures) == len(bilabials)
    for k in closures:  # and each closure of the track sits on a bilabial
        middle = (k.start + k.end) / 2
        assert any(p.start - 0.04 <= middle <= p.end + 0.04 for p in bilabials), k


def test_phonemize_gives_espeaks_ipa():
    assert phonemize("Hello world") == "həlˈoʊ wˈɜːld"
    assert phonemize("Guten Morgen", "de").startswith("ɡˈuːtən")


@pytest.mark.parametrize("kwargs, message", [
    ({"text": ""}, "text is empty"),
    ({"text": "  \n\0 "}, "text is empty"),
    ({"text": "a" * (MAX_CHARS + 1)}, f"the limit is {MAX_CHARS}"),
    ({"text": "x" * 100_000}, "split it into parts"),
    ({"text": b"bytes"}, "text must be a string"),
    ({"text": "hi", "voice": "elvish"}, "eSpeak has no voice 'elvish'"),
    ({"text": "hi", "voice": "en-us+nobody"}, "no voice variant 'nobody'"),
    ({"text": "hi", "voice": ""}, "voice must be a language"),
    ({"text": "hi", "rate": 10}, "rate must be 80 to 450"),
    ({"text": "hi", "rate": True}, "rate must be 80 to 450"),
])
def test_bad_requests_are_refused_with_the_reason(kwargs, message):
    with pytest.raises(SpeechError) as caught:
        synthesize(**kwargs)
    assert message in str(caught.value)


def test_concurrent_calls_are_serialised():
    texts = ["One two three four five.", "Six seven eight nine ten.", "Eleven twelve thirteen.", "Mama papa baby."]
    expected = {text: [p.phoneme for p in synthesize(text).phonemes] for text in texts}
    results: dict[str, list] = {text: [] for text in texts}

    def speak(text: str) -> None:
        for _ in range(3):
            results[text].append(synthesize(text))

    threads = [threading.Thread(target=speak, args=(text,)) for text in texts]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for text, speeches in results.items():
        for speech in speeches:
            assert [p.phoneme for p in speech.phonemes] == expected[text]
            assert speech.phonemes[-1].end == pytest.approx(speech.duration)


def test_without_the_optional_extra_the_message_says_what_to_install():
    script = textwrap.dedent("""
        import sys
        sys.modules["espeakng_loader"] = None  # as if it were not installed
        from talkinghead_nb.speech import EspeakUnavailable, available, synthesize, track_from_timeline
        assert not available()
        try:
            synthesize("hello")
        except EspeakUnavailable as e:
            print(e)
        print(len(track_from_timeline([{"word": "mama", "start": 0, "end": 0.4}])))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    message, keyframes = done.stdout.strip().splitlines()
    assert "pip install espeakng-loader" in message and "GPL-3.0" in message and "not installed" in message
    assert keyframes == "4"  # the timeline still works: the word's letters, spread over its time
