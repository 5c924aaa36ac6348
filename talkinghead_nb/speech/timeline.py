"""A client's timeline → viseme track: phonemes or words with start and end times, as TTS engines return them.

Accepted JSON (a list of items, or an object holding it under ``words``, ``phonemes``, ``tokens`` or ``timestamps``;
other keys, such as Kokoro-FastAPI's ``audio`` or a token's ``whitespace``, are ignored)::

    [{"phoneme": "h", "start": 0.00, "end": 0.05}, …]                       phonemes (IPA)
    [{"word": "hello", "start": 0.0, "end": 0.42, "phonemes": "həlˈoʊ"}, …]  words, with their IPA if known
    {"timestamps": [{"word": "hello", "start_time": 0.0, "end_time": 0.42}]}   Kokoro-FastAPI
    [{"text": "hello", "phonemes": "həlˈoʊ", "start_ts": 0.0, "end_ts": 0.42}]  Kokoro tokens

Kokoro's phonemes (misaki's notation, with A I O Q W Y for diphthongs) are in the viseme table too. A word's
phonemes share its time evenly. A word without phonemes is phonemised with eSpeak NG when it is installed;
otherwise its letters stand for its sounds. Everything is validated before use: bounded counts and lengths (the
count first, before any work on the items; the words eSpeak phonemises; the keyframes they make), valid Unicode,
finite times in order, with errors that name the item and the field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from ..messages import short_repr
from . import espeak
from .errors import SpeechError, check_unicode
from .phonemes import TimedPhoneme, track_from_phonemes
from .sound import MAX_SECONDS
from .track import Track
from .visemes import VisemeTable

MAX_ITEMS = 20_000
MAX_JSON_BYTES = 4_000_000
MAX_WORD = 100       # characters
MAX_PHONEMES = 100   # characters of IPA for one item
MAX_WORD_CHARS = 4 * espeak.MAX_CHARS  # characters of the different words eSpeak phonemises for one timeline
LISTS = ("words", "phonemes", "tokens", "timestamps")
STARTS = ("start", "start_time", "start_ts")
ENDS = ("end", "end_time", "end_ts")
TOLERANCE = 0.005  # seconds an item may start before the previous one ends (rounding in the client's times)


def _items(timeline: Any) -> list:
    if isinstance(timeline, str | bytes | bytearray):
        if len(timeline) > MAX_JSON_BYTES:
            raise SpeechError(f"the timeline is {len(timeline)} bytes; the limit is {MAX_JSON_BYTES}")
        try:
            timeline = json.loads(timeline)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise SpeechError(f"the timeline is not valid JSON: {e}") from None
    if isinstance(timeline, Mapping):
        found = [key for key in LISTS if key in timeline]
        if len(found) != 1:
            raise SpeechError(f"a timeline object holds its items under exactly one of {', '.join(LISTS)}; "
                              f"found {', '.join(found) or 'none'}")
        timeline = timeline[found[0]]
    if not isinstance(timeline, list):
        raise SpeechError(f"a timeline is a list of items with start and end times, got {type(timeline).__name__}")
    if not timeline:
        raise SpeechError("the timeline is empty: give at least one word or phoneme with its times")
    if len(timeline) > MAX_ITEMS:
        raise SpeechError(f"the timeline has {len(timeline)} items; the limit is {MAX_ITEMS}")
    return timeline


def _field(item: Mapping, names: tuple[str, ...], where: str, required: bool = True) -> Any:
    present = [name for name in names if name in item]
    if len(present) > 1:
        raise SpeechError(f"{where}: give only one of {', '.join(present)}")
    if not present:
        if required:
            raise SpeechError(f"{where}: missing {' / '.join(names)}")
        return None
    return item[present[0]]


def _time(item: Mapping, names: tuple[str, ...], where: str, max_seconds: float) -> float:
    value = _field(item, names, where)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= max_seconds:  # no NaN
        raise SpeechError(f"{where}: {names[0]} must be a number of seconds from 0 to {max_seconds:g}, "
                          f"got {short_repr(value)}")
    return float(value)


def _text(value: Any, name: str, where: str, limit: int) -> str:
    if not isinstance(value, str) or len(value) > limit:
        raise SpeechError(f"{where}: {name} must be a string of at most {limit} characters, got {short_repr(value)}")
    check_unicode(value, f"{where}: {name}")
    return value


def _parse(timeline: Any, max_seconds: float) -> list[tuple[float, float, str, bool]]:
    """(start, end, text, is_phonemes) per item, validated."""
    parsed = []
    previous_end = 0.0
    for i, item in enumerate(_items(timeline)):
        where = f"timeline item {i}"
        if not isinstance(item, Mapping):
            raise SpeechError(f"{where}: expected an object with a word or phoneme and its times, "
                              f"got {short_repr(item)}")
        start, end = _time(item, STARTS, where, max_seconds), _time(item, ENDS, where, max_seconds)
        if end < start:
            raise SpeechError(f"{where}: end ({end:g}) is before start ({start:g})")
        if start < previous_end - TOLERANCE:
            raise SpeechError(f"{where}: starts at {start:g}, before the previous item ends ({previous_end:g}); "
                              "items must be in time order without overlapping")
        start = max(start, previous_end)
        previous_end = max(end, start)
        word = _field(item, ("word", "text"), where, required=False)
        phoneme = _field(item, ("phoneme", "phonemes"), where, required=False)
        if phoneme is not None:
            parsed.append((start, previous_end, _text(phoneme, "phonemes", where, MAX_PHONEMES), True))
        elif word is not None:
            parsed.append((start, previous_end, _text(word, "word", where, MAX_WORD), False))
        else:
            raise SpeechError(f"{where}: needs a phoneme (or phonemes) or a word (or text)")
    return parsed


def track_from_timeline(timeline: Any, *, voice: str = "en-us", phonemize: bool = True,
                        table: VisemeTable | None = None, max_seconds: float = MAX_SECONDS) -> Track:
    """The track for a timeline (parsed JSON, or its text). ``voice`` is the language eSpeak phonemises words in;
    ``phonemize=False`` (or eSpeak not installed) spreads a word's letters over its time instead."""
    parsed = _parse(timeline, max_seconds)
    spoken = dict.fromkeys(text for _, _, text, is_phonemes in parsed if not is_phonemes and text.strip())
    words: dict[str, str] = {}
    if phonemize and spoken and espeak.available():
        if (chars := sum(map(len, spoken))) > MAX_WORD_CHARS:
            raise SpeechError(f"the timeline's different words add up to {chars} characters; eSpeak phonemises at "
                              f"most {MAX_WORD_CHARS} for one timeline: split it, or send the words' phonemes")
        # One eSpeak call (and lock) per word: text-to-speech for other requests goes on in between.
        words = {word: espeak.phonemize(word, voice) for word in spoken}
    phonemes = [TimedPhoneme(start, end, text if is_phonemes else words.get(text, _letters(text)))
                for start, end, text, is_phonemes in parsed]
    return track_from_phonemes(phonemes, table or VisemeTable.factory())


def _letters(word: str) -> str:
    """A word's letters as rough phonemes (most Latin letters are IPA symbols too), when eSpeak cannot say it."""
    return "".join(c for c in word.lower() if c.isalpha())
