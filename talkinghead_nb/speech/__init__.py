"""Speech: the avatar's mouth from text, from audio, or from a client's timeline, as a viseme track.

A :class:`Track` is a list of keyframes (start, end, mouth shape, amplitude) with coarticulation, plus the source's
loudness where there is audio; ``track.mouth(t)`` gives the six THA3 mouth parameters at any time (a pure function
of time), ``track.to_json()`` / ``Track.from_json()`` carry it. Three sources::

    speech = synthesize("Hello there!", voice="en-us", rate=175)   # eSpeak NG: audio + track, offline
    speech.audio, speech.sample_rate, speech.track, speech.wav()
    track = track_from_audio("reply.wav")                           # any TTS or a recording (or bytes, or an array)
    track = track_from_timeline({"words": [{"word": "hi", "start": 0, "end": 0.3}]})  # a TTS engine's timing

Phonemes map to shapes through the viseme table (:func:`load_visemes`: factory defaults, then ``visemes.json``
beside ``emotions/``, then overrides). Bad input raises :class:`SpeechError` (a ``ValueError``) with what to fix;
text-to-speech without the optional ``espeakng-loader`` raises :class:`EspeakUnavailable`. Input is bounded before
the work it costs: an audio file by its header (rate, channels, at most ``sound.MAX_SAMPLES`` samples), then decoded
a block at a time into mono; a timeline by its count of items, the characters of the words eSpeak phonemises, and
the keyframes it makes (counted as they are built); text by its length and by being valid Unicode.

This package never imports the engine or the live server: they use it.
"""

from .audio import track_from_audio
from .errors import EspeakUnavailable, SpeechError
from .espeak import Speech, Voice, available, phonemize, synthesize, voices
from .phonemes import TimedPhoneme, track_from_phonemes
from .sound import load_audio, wav_bytes
from .timeline import track_from_timeline
from .track import MOUTH_KEYS, SHAPES, Keyframe, Track
from .visemes import VisemeTable, load_visemes, visemes_file

__all__ = [
    "MOUTH_KEYS", "SHAPES", "EspeakUnavailable", "Keyframe", "Speech", "SpeechError", "TimedPhoneme", "Track",
    "Voice", "VisemeTable", "available", "load_audio", "load_visemes", "phonemize", "synthesize",
    "track_from_audio", "track_from_phonemes", "track_from_timeline", "visemes_file", "voices", "wav_bytes",
]
