"""Rendering a viseme track: a pure function of time, coarticulated (no snap, no lag), serialisable, and strict
about what it accepts."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from talkinghead_nb.speech import MOUTH_KEYS, Keyframe, SpeechError, Track, synthesize, track_from_timeline
from talkinghead_nb.speech.track import SHAPE_KEYS


@pytest.fixture(scope="module")
def spoken() -> Track:
    return synthesize("Peter Piper picked a peck of pickled peppers, and Bob bought a big blue balloon.").track


def test_the_same_pose_at_the_same_time_at_10_25_and_60_fps(spoken):
    sampled = {}
    for fps in (10, 25, 60):
        times = np.arange(int(spoken.duration * fps) + 1) / fps
        sampled[fps] = {round(t, 6): spoken.mouth(t) for t in times}  # one call per frame, in order, like a player
    common = set(sampled[10]) & set(sampled[25]) & set(sampled[60])
    assert len(common) >= spoken.duration / 0.2 - 1  # every 0.2 s
    for t in common:
        assert sampled[10][t] == sampled[25][t] == sampled[60][t]
    assert any(sum(sampled[10][t].values()) > 0.3 for t in common)  # the mouth does move
    backwards = np.arange(0, spoken.duration, 0.04)[::-1]  # order does not matter either
    assert np.array_equal(spoken.mouth_array(backwards), spoken.mouth_array(backwards[::-1])[::-1])


def test_the_mouth_neither_snaps_nor_lags():
    timeline = [{"phoneme": p, "start": 0.1 + i * 0.08, "end": 0.1 + (i + 1) * 0.08}
                for i, p in enumerate(["h", "ɛ", "l", "o", "m", "ɑ", "m", "i"])]
    track = track_from_timeline(timeline)
    times = np.arange(0, 1.0, 0.001)
    mouth = track.mouth_array(times)
    assert np.abs(np.diff(mouth, axis=0)).max() < 0.1  # at most 0.1 per millisecond: no snap
    for k in track.keyframes:  # every shape is reached at the middle of its phoneme: no lag
        target = np.zeros(len(MOUTH_KEYS))
        if k.shape != "closed":
            target[MOUTH_KEYS.index(SHAPE_KEYS[k.shape])] = k.amplitude
        assert track.mouth_array([(k.start + k.end) / 2])[0] == pytest.approx(target)
    first = track.keyframes[0]
    assert 0 < track.openness([first.start - track.attack / 2])[0] < track.openness([first.start])[0]  # anticipates
    assert track.end == pytest.approx(track.duration + track.release)
    assert track.openness([0.0, track.end]) == pytest.approx([0, 0])  # closed before and after


def test_a_short_closure_closes_the_mouth_fully():
    keyframes = [Keyframe(0.0, 0.2, "aaa"), Keyframe(0.2, 0.24, "closed"), Keyframe(0.24, 0.5, "ooo")]
    track = Track(keyframes, attack=0.1, release=0.1)
    assert track.openness([0.22])[0] == pytest.approx(0)
    assert track.openness([0.1, 0.4]) == pytest.approx([1, 1])


def test_the_envelope_scales_the_opening():
    track = Track([Keyframe(0.0, 1.0, "aaa", 0.8)], attack=0.05, release=0.05, envelope=[0, 0.5, 1, 1],
                  envelope_rate=10)
    assert track.mouth_array([0.05, 0.15, 0.25])[:, 0] == pytest.approx([0.2, 0.6, 0.8])
    assert track.openness([0.0, 0.35]) == pytest.approx([0, 0])  # from 0 at time 0, and 0 after its end


def test_json_round_trip(spoken):
    data = json.loads(json.dumps(spoken.to_json()))
    again = Track.from_json(data)
    assert again.to_json() == data
    times = np.arange(0, spoken.duration, 0.01)
    assert np.abs(again.mouth_array(times) - spoken.mouth_array(times)).max() < 1e-3
    assert Track.from_json(Track([], attack=0, release=0).to_json()).openness([0.5]) == [0]


def _track_json(**changes) -> dict:
    data = {"attack": 0.05, "release": 0.05, "duration": 1.0, "envelope": None,
            "keyframes": [{"start": 0.0, "end": 0.2, "shape": "aaa"}, {"start": 0.2, "end": 0.4, "shape": "closed"}]}
    return data | changes


@pytest.mark.parametrize("data, message", [
    ([], "a track is a JSON object"),
    ({"keyframes": []}, "exactly the fields"),
    (_track_json(extra=1), "exactly the fields"),
    (_track_json(keyframes="none"), "keyframes are a list"),
    (_track_json(keyframes=[{"start": 0, "end": 1}]), "keyframe 0: expected an object"),
    (_track_json(keyframes=[{"start": 0, "end": 1, "shape": "aaa", "colour": 1}]), "keyframe 0: expected"),
    (_track_json(keyframes=[{"start": 0, "end": 1, "shape": "grin"}]), "unknown shape 'grin'"),
    (_track_json(keyframes=[{"start": 0.5, "end": 0.2, "shape": "aaa"}]), "end (0.2) must be after start"),
    (_track_json(keyframes=[{"start": 0, "end": 0.5, "shape": "aaa"}, {"start": 0.3, "end": 0.6, "shape": "ooo"}]),
     "keyframe 1: starts at 0.3, before the previous keyframe ends"),
    (_track_json(keyframes=[{"start": float("nan"), "end": 1, "shape": "aaa"}]), "keyframe 0: start must be"),
    (_track_json(keyframes=[{"start": 0, "end": 1e9, "shape": "aaa"}]), "keyframe 0: end must be"),
    (_track_json(keyframes=[{"start": 0, "end": 1, "shape": "aaa", "amplitude": 2}]), "amplitude must be"),
    (_track_json(keyframes=[{"start": 0, "end": 1, "shape": "aaa", "phoneme": 7}]), "phoneme must be a string"),
    (_track_json(keyframes=[{"start": 0, "end": 1, "shape": "aaa"}] * 100_001), "at most 100000 keyframes"),
    (_track_json(attack=True), "attack must be a number"),
    (_track_json(release=9), "release must be a number"),
    (_track_json(duration="long"), "duration must be a number"),
    (_track_json(envelope=[1, 2]), "envelope is null or an object"),
    (_track_json(envelope={"rate": 100, "values": [0.5, 1.5]}), "numbers from 0 to 1"),
    (_track_json(envelope={"rate": 100, "values": ["a"]}), "numbers from 0 to 1"),
    (_track_json(envelope={"rate": 100, "values": "loud"}), "must be a list of numbers"),
    (_track_json(envelope={"rate": 0, "values": [1]}), "envelope rate must be"),
])
def test_a_malformed_track_is_refused_with_the_reason(data, message):
    with pytest.raises(SpeechError, match=re.escape(message)):
        Track.from_json(data)
