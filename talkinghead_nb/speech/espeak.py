"""Text → speech audio and its viseme track, offline, with eSpeak NG (through ``espeakng-loader``, an optional extra
that bundles the library and its data; GPL-3.0).

eSpeak reports every phoneme it speaks, in IPA, with the sample where it starts (its synthesis callback with phoneme
events); the track comes from those, so the mouth is exactly in time with the audio. eSpeak keeps global state and is
not re-entrant: every call here holds one lock.
"""

from __future__ import annotations

import ctypes
import functools
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ..messages import name_list, short_repr
from .audio import ENVELOPE_RATE, envelope
from .errors import EspeakUnavailable, SpeechError, check_unicode
from .phonemes import TimedPhoneme, track_from_phonemes
from .sound import wav_bytes
from .track import Track
from .visemes import VisemeTable

MAX_CHARS = 5000
WPM_RANGE = (80, 450)  # words per minute, eSpeak's own limits
DEFAULT_RATE = 175

# speak_lib.h
_SYNCHRONOUS = 2  # AUDIO_OUTPUT_SYNCHRONOUS: espeak_Synth returns when the audio is complete
_PHONEME_EVENTS, _PHONEME_IPA, _DONT_EXIT = 0x0001, 0x0002, 0x8000
_EVENT_PHONEME = 7
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE = 1
_LANGUAGE_SWITCH = re.compile(r"\([^()]*\)")  # "(en)" where eSpeak switches language inside a text


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("unique_identifier", ctypes.c_uint), ("text_position", ctypes.c_int),
                ("length", ctypes.c_int), ("audio_position", ctypes.c_int), ("sample", ctypes.c_int),
                ("user_data", ctypes.c_void_p), ("id", _EventId)]


class _Voice(ctypes.Structure):
    _fields_ = [("name", ctypes.c_char_p), ("languages", ctypes.c_void_p), ("identifier", ctypes.c_char_p),
                ("gender", ctypes.c_ubyte), ("age", ctypes.c_ubyte), ("variant", ctypes.c_ubyte),
                ("xx1", ctypes.c_ubyte), ("score", ctypes.c_int), ("spare", ctypes.c_void_p)]


_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


class Voice(NamedTuple):
    name: str                    # "English (America)"
    identifier: str              # "gmw/en-US"
    languages: tuple[str, ...]   # ("en-us", "en"), most specific first


@dataclass(frozen=True)
class Speech:
    """What :func:`synthesize` returns: the audio (float32 mono, -1 to 1) and its track, in the same time."""

    audio: np.ndarray
    sample_rate: int
    track: Track
    phonemes: tuple[TimedPhoneme, ...]  # eSpeak's phonemes (IPA), with their times

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sample_rate

    def wav(self) -> bytes:
        """The audio as a 16-bit PCM WAV file."""
        return wav_bytes(self.audio, self.sample_rate)


class _Espeak:
    """The loaded library; one per process, used only under ``_LOCK``."""

    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError:
            raise EspeakUnavailable("the espeakng-loader package is not installed") from None
        library, data = espeakng_loader.get_library_path(), espeakng_loader.get_data_path()
        try:
            self.lib = ctypes.CDLL(library)
        except OSError as e:
            raise EspeakUnavailable(f"cannot load {library}: {e}") from None
        lib = self.lib
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_CALLBACK]
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
                                     ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p
        lib.espeak_ListVoices.argtypes = [ctypes.c_void_p]
        lib.espeak_ListVoices.restype = ctypes.POINTER(ctypes.POINTER(_Voice))
        # DONT_EXIT: without it a missing data folder makes eSpeak call exit() on the whole process.
        self.sample_rate = lib.espeak_Initialize(_SYNCHRONOUS, 0, str(Path(data).parent).encode(),
                                                 _PHONEME_EVENTS | _PHONEME_IPA | _DONT_EXIT)
        if self.sample_rate <= 0:
            raise EspeakUnavailable(f"espeak_Initialize failed with the data in {data}")
        self.variants = {p.name for p in (Path(data) / "voices" / "!v").iterdir()}
        self.voices, self.by_language = self._list_voices()
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, str]] = []
        self._callback = _CALLBACK(self._collect)  # kept referenced: eSpeak calls it until the process ends
        lib.espeak_SetSynthCallback(self._callback)

    def _list_voices(self) -> tuple[tuple[Voice, ...], dict[str, str]]:
        """The voices, and for each language the identifier of the voice eSpeak prefers for it."""
        voices, best, table = [], {}, self.lib.espeak_ListVoices(None)
        for i in range(10_000):
            if not table[i]:
                break
            v = table[i].contents
            # languages: (priority byte, NUL-terminated name)…, then a NUL; a lower priority is preferred
            languages, at = [], v.languages
            while priority := ctypes.string_at(at, 1)[0]:
                name = ctypes.string_at(at + 1)
                languages.append(name.decode("utf-8", "replace"))
                if (priority, len(languages)) < best.get(languages[-1], (256, 0))[:2]:
                    best[languages[-1]] = (priority, len(languages), v.identifier.decode())
                at += len(name) + 2
            voices.append(Voice(v.name.decode("utf-8", "replace"), v.identifier.decode(), tuple(languages)))
        return tuple(voices), {language: choice[2] for language, choice in best.items()}

    def _collect(self, wav, count: int, events) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (count,)).copy())
        i = 0
        while events[i].type:
            if events[i].type == _EVENT_PHONEME:
                self._events.append((events[i].sample, events[i].id.string.decode("utf-8", "replace")))
            i += 1
        return 0

    def select(self, voice: str, rate: int = DEFAULT_RATE) -> None:
        if not isinstance(voice, str) or not voice.strip() or len(voice) > 100:
            raise SpeechError(f"voice must be a language such as 'en-us' or a voice name, got {short_repr(voice)}")
        base, _, variant = voice.strip().partition("+")
        wanted = base.lower()
        identifier = next((v.identifier for v in self.voices if wanted in (v.name.lower(), v.identifier.lower())),
                          self.by_language.get(wanted))
        if identifier is None:
            languages = sorted({lang for v in self.voices for lang in v.languages})
            raise SpeechError(f"eSpeak has no voice {short_repr(voice)}; use a language code such as en-us, en-gb, "
                              f"de or fr ({len(languages)} available: {name_list(languages, 12)})")
        if variant and variant not in self.variants:
            raise SpeechError(f"eSpeak has no voice variant {short_repr(variant)}; variants go after a '+', e.g. "
                              f"'en-us+f3' (available: {name_list(sorted(self.variants), 12)})")
        if isinstance(rate, bool) or not isinstance(rate, int | float) or not WPM_RANGE[0] <= rate <= WPM_RANGE[1]:
            raise SpeechError(f"rate must be {WPM_RANGE[0]} to {WPM_RANGE[1]} words per minute, "
                              f"got {short_repr(rate)}")
        name = identifier + (f"+{variant}" if variant else "")
        if self.lib.espeak_SetVoiceByName(name.encode()) != 0:
            raise SpeechError(f"eSpeak could not load the voice {short_repr(voice)}")
        self.lib.espeak_SetParameter(_PARAM_RATE, int(rate), 0)

    def synthesize(self, text: str) -> tuple[np.ndarray, list[tuple[int, str]]]:
        self._chunks, self._events = [], []
        data = text.encode("utf-8")
        if self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None) != 0:
            raise SpeechError("eSpeak could not synthesise this text")
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        events, self._chunks, self._events = self._events, [], []
        return audio.astype(np.float32) / 32768.0, events

    def phonemize(self, text: str) -> str:
        pointer = ctypes.c_char_p(text.encode("utf-8"))
        pieces = []
        while pointer.value:
            pieces.append((self.lib.espeak_TextToPhonemes(ctypes.byref(pointer), _CHARS_UTF8, _PHONEME_IPA)
                           or b"").decode("utf-8", "replace"))
        return _LANGUAGE_SWITCH.sub("", " ".join(pieces)).strip()


_LOCK = threading.Lock()


@functools.cache
def _espeak() -> _Espeak:
    return _Espeak()


def available() -> bool:
    """Whether eSpeak NG can be used here (the optional ``espeakng-loader`` is installed and loads)."""
    try:
        with _LOCK:
            _espeak()
    except EspeakUnavailable:
        return False
    return True


def voices() -> tuple[Voice, ...]:
    """Every voice eSpeak NG offers (each speaks one language and its dialects)."""
    with _LOCK:
        return _espeak().voices


def _check_text(text: str, max_chars: int) -> str:
    if not isinstance(text, str):
        raise SpeechError(f"text must be a string, got {type(text).__name__}")
    if len(text) > max_chars:
        raise SpeechError(f"text is {len(text)} characters long; the limit is {max_chars}: split it into parts")
    check_unicode(text, "text")
    text = text.replace("\0", " ")
    if not text.strip():
        raise SpeechError("text is empty: give the words to say")
    return text


def synthesize(text: str, voice: str = "en-us", rate: int = DEFAULT_RATE, *, table: VisemeTable | None = None,
               max_chars: int = MAX_CHARS) -> Speech:
    """Speak ``text`` with eSpeak NG: the audio and the viseme track, timed by eSpeak's own phoneme events.

    ``voice`` is a language (``en-us``, ``en-gb``, ``de``, ``fr``, …; see :func:`voices`), a voice name or
    identifier, optionally with a variant (``en-us+f3``); ``rate`` is in words per minute (80 to 450).
    """
    text = _check_text(text, max_chars)
    table = table or VisemeTable.factory()
    with _LOCK:
        espeak = _espeak()
        espeak.select(voice, rate)
        audio, events = espeak.synthesize(text)
        sample_rate = espeak.sample_rate
    ends = [sample for sample, _ in events[1:]] + [len(audio)]
    phonemes = tuple(TimedPhoneme(start / sample_rate, end / sample_rate, name)
                     for (start, name), end in zip(events, ends, strict=True) if end > start)
    track = track_from_phonemes(phonemes, table, duration=len(audio) / sample_rate,
                                envelope=envelope(audio, sample_rate), envelope_rate=ENVELOPE_RATE)
    return Speech(audio, sample_rate, track, phonemes)


def phonemize(text: str, voice: str = "en-us", *, max_chars: int = MAX_CHARS) -> str:
    """The IPA eSpeak NG would speak for ``text`` (stress marks included, words separated by spaces)."""
    text = _check_text(text, max_chars)
    with _LOCK:
        espeak = _espeak()
        espeak.select(voice)
        return espeak.phonemize(text)
