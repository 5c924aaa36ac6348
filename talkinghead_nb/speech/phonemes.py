"""Timed phonemes (from eSpeak, a client's timeline or the audio analysis) → a viseme track, through the table."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import NamedTuple

import numpy as np

from .errors import SpeechError
from .track import MAX_KEYFRAMES, Keyframe, Track
from .visemes import VisemeTable


class TimedPhoneme(NamedTuple):
    """A phoneme (IPA, any number of symbols: a diphthong, a whole word) spoken from ``start`` to ``end`` seconds.
    An empty or blank phoneme is a pause."""

    start: float
    end: float
    phoneme: str


def track_from_phonemes(phonemes: Iterable[TimedPhoneme], table: VisemeTable, duration: float | None = None, *,
                        envelope: Sequence[float] | np.ndarray | None = None, envelope_rate: float = 100.0) -> Track:
    """One keyframe per part of each phoneme (its time shared by the parts' weights). A pause (a phoneme without
    parts: blank, punctuation, only "keep" symbols) or a gap lasting at least ``table.pause_close`` leaves the mouth
    closed; a shorter one holds the shape before it. ``duration`` and the loudness ``envelope`` go to the
    :class:`Track`."""
    keyframes: list[Keyframe] = []

    def hold(until: float) -> None:
        """Stretch the last keyframe to ``until``, unless the silence since it is a pause that closes the mouth."""
        if keyframes and keyframes[-1].end < until < keyframes[-1].end + table.pause_close:
            keyframes[-1] = dataclasses.replace(keyframes[-1], end=until)

    for start, end, phoneme in phonemes:
        parts = table.parts(phoneme) if end > start else []
        if not parts:  # a pause counts from the last keyframe, however many pieces it comes in
            continue
        if len(keyframes) + len(parts) > MAX_KEYFRAMES:  # refused before building more than the track may hold
            raise SpeechError(f"these phonemes make more than the {MAX_KEYFRAMES} keyframes a track may hold: "
                              "split the speech into shorter parts")
        hold(start)
        total, done, at = sum(p.weight for p in parts), 0.0, start
        for part in parts:
            done += part.weight
            until = end if done == total else start + (end - start) * done / total
            keyframes.append(Keyframe(at, until, part.shape, part.amount, part.symbol))
            at = until
    return Track(keyframes, attack=table.attack, release=table.release, duration=duration, envelope=envelope,
                 envelope_rate=envelope_rate)
