"""A client's timeline → track: the formats TTS engines return, words phonemised or spread, strict validation."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from talkinghead_nb.speech import SpeechError, phonemize, track_from_timeline
from talkinghead_nb.speech.timeline import MAX_ITEMS


def test_phonemes_with_times_mama_closes_between_the_vowels():
    timeline = [{"phoneme": p, "start": s, "end": e} for p, s, e in
                [("m", 0.0, 0.08), ("ˈɑː", 0.08, 0.25), ("m", 0.25, 0.31), ("ɐ", 0.31, 0.4)]]
    track = track_from_timeline(timeline)
    assert [k.shape for k in track.keyframes] == ["closed", "aaa", "closed", "aaa"]
    assert track.openness([0.165])[0] == pytest.approx(1) and track.openness([0.28])[0] == pytest.approx(0)
    assert track.envelope is None and track.duration == 0.4


def test_words_are_phonemised_with_espeak_and_share_their_time():
    track = track_from_timeline({"words": [{"word": "hello", "start": 0.1, "end": 0.5},
                                           {"word": "mama", "start": 0.55, "end": 1.0}]})
    assert "".join(k.phoneme for k in track.keyframes) == phonemize("hello mama").replace("ˈ", "").replace(
        "ː", "").replace(" ", "")
    hello = track.keyframes[:5]
    assert [k.phoneme for k in hello] == ["h", "ə", "l", "o", "ʊ"]
    assert np.allclose([k.start for k in hello], [0.1, 0.18, 0.26, 0.34, 0.42])  # evenly
    assert hello[-1].end == 0.55  # a 50 ms gap holds the shape (shorter than pause_close)...
    long_gap = track_from_timeline([{"word": "hello", "start": 0, "end": 0.4}, {"word": "you", "start": 1, "end": 1.3}])
    assert long_gap.openness([0.7])[0] == 0  # ...a long one closes the mouth


def test_without_phonemiser_letters_are_spread_evenly_over_the_word():
    track = track_from_timeline([{"word": "Mama!", "start": 0, "end": 0.4}], phonemize=False)
    assert [(k.phoneme, k.shape) for k in track.keyframes] == [
        ("m", "closed"), ("a", "aaa"), ("m", "closed"), ("a", "aaa")]
    assert [k.start for k in track.keyframes] == pytest.approx([0, 0.1, 0.2, 0.3])


def test_kokoro_formats_are_understood():
    fastapi = {"audio": "UklGR…", "timestamps": [{"word": "Hi", "start_time": 0.0, "end_time": 0.3},
                                                   {"word": "Bob", "start_time": 0.3, "end_time": 0.7}]}
    tokens = [{"text": "Hi", "phonemes": "hˈI", "start_ts": 0.0, "end_ts": 0.3, "whitespace": " "},  # misaki's aɪ
              {"text": ",", "phonemes": ",", "start_ts": 0.3, "end_ts": 0.3},
              {"text": "Bob", "phonemes": "bˈɑb", "start_ts": 0.3, "end_ts": 0.7}]
    for timeline in (fastapi, json.dumps(fastapi), json.dumps(tokens).encode(), tokens):
        track = track_from_timeline(timeline)
        assert [k.shape for k in track.keyframes][-3:] == ["closed", "aaa", "closed"]
        assert track.keyframes[1].shape == "aaa" and track.keyframes[1].amplitude == 1
        assert track.duration == pytest.approx(0.7)


def _items(n: int = 2, **changes) -> list[dict]:
    items = [{"word": "hi", "start": i * 0.5, "end": i * 0.5 + 0.4} for i in range(n)]
    items[-1] = items[-1] | changes
    return items


@pytest.mark.parametrize("timeline, message", [
    ("{not json", "the timeline is not valid JSON"),
    (b"\xff\xfe", "the timeline is not valid JSON"),
    ("x" * 4_000_001, "the limit is 4000000"),
    (42, "a timeline is a list of items"),
    ([], "the timeline is empty"),
    ({"words": [], "phonemes": []}, "exactly one of words, phonemes, tokens, timestamps; found words, phonemes"),
    ({"sentences": []}, "found none"),
    ([{"word": "hi", "start": 0, "end": 0.1}] * (MAX_ITEMS + 1), f"the limit is {MAX_ITEMS}"),
    (["hi"], "timeline item 0: expected an object"),
    (_items(end=None), "timeline item 1: end must be a number"),
    (_items(start="0"), "timeline item 1: start must be a number"),
    (_items(start=True), "timeline item 1: start must be a number"),
    (_items(start=-1), "timeline item 1: start must be a number of seconds from 0 to 600"),
    (_items(end=601), "timeline item 1: end must be a number of seconds from 0 to 600"),
    ('[{"word": "hi", "start": NaN, "end": 1}]', "timeline item 0: start must be"),
    ('[{"word": "hi", "start": 0, "end": Infinity}]', "timeline item 0: end must be"),
    ([{"word": "hi", "start": 0, "end": 1e400}], "timeline item 0: end must be"),
    (_items(start=0.6, end=0.55), "timeline item 1: end (0.55) is before start (0.6)"),
    (_items(start=0.2), "timeline item 1: starts at 0.2, before the previous item ends (0.4)"),
    ([{"start": 0, "end": 1}], "timeline item 0: needs a phoneme (or phonemes) or a word (or text)"),
    ([{"word": "hi", "end": 1}], "timeline item 0: missing start / start_time / start_ts"),
    ([{"word": "hi", "start": 0, "start_ts": 0, "end": 1}], "timeline item 0: give only one of start, start_ts"),
    ([{"word": "hi", "text": "hi", "start": 0, "end": 1}], "give only one of word, text"),
    (_items(word="x" * 101), "timeline item 1: word must be a string of at most 100 characters"),
    (_items(word=["hi"]), "timeline item 1: word must be a string"),
    (_items(phonemes="a" * 101), "timeline item 1: phonemes must be a string of at most 100 characters"),
])
def test_a_malformed_timeline_is_refused_with_the_reason(timeline, message):
    with pytest.raises(SpeechError, match=re.escape(message)):
        track_from_timeline(timeline)


def test_an_unknown_language_for_phonemising_is_refused():
    with pytest.raises(SpeechError, match="eSpeak has no voice 'elvish'"):
        track_from_timeline(_items(), voice="elvish")
    assert len(track_from_timeline(_items(), voice="de")) > 0
