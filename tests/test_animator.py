"""The animator's motion, asserted on poses sampled at known times (seeded, with an explicit clock)."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from talkinghead_nb import pose as P
from talkinghead_nb.emotions import EmotionError, EmotionLibrary
from talkinghead_nb.live import Animator, AnimatorSettings, load_settings
from talkinghead_nb.speech import MOUTH_KEYS, track_from_timeline

EYE = P.BY_KEY["eye_wink_left_index"].index
MOUTH = P.BY_KEY["mouth_aaa_index"].index
BREATHING = P.BY_KEY["breathing_index"].index
HEAD_X = P.BY_KEY["head_x_index"].index


@pytest.fixture(scope="module")
def templates():
    return EmotionLibrary().load()


def sample(animator: Animator, fps: float, seconds: float, start: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    times = start + np.arange(int(round(seconds * fps))) / fps
    return times, np.stack([animator.pose(t) for t in times])


def blink_starts(times: np.ndarray, eyes: np.ndarray) -> np.ndarray:
    closed = eyes > 0
    return times[1:][closed[1:] & ~closed[:-1]]


def test_blinks_come_at_random_intervals_within_the_configured_range(templates):
    settings = AnimatorSettings(blink_interval_min=1.5, blink_interval_max=3.0)
    times, poses = sample(Animator(templates, settings, seed=4), fps=100, seconds=40)
    intervals = np.diff(blink_starts(times, poses[:, EYE]))
    assert len(intervals) >= 12
    assert intervals.min() >= 1.5 - 0.011 and intervals.max() <= 3.0 + 0.011
    assert intervals.std() > 0.1  # random, not periodic
    assert poses[:, EYE].max() > 0.9  # the eyes really shut


def test_confusion_starts_a_spell_of_rapid_blinking(templates):
    settings = AnimatorSettings(blink_interval_min=4.0, blink_interval_max=5.0, confusion_blink_spell=2.0,
                                confusion_blink_interval=0.3)
    animator = Animator(templates, settings, seed=1)
    sample(animator, 50, 1.0)
    animator.set_emotion("confusion", now=1.0)
    times, poses = sample(animator, 100, 2.0, start=1.0)
    assert len(blink_starts(np.r_[0.99, times], np.r_[0.0, poses[:, EYE]])) >= 6  # ~every 0.3 s
    times, poses = sample(animator, 100, 3.0, start=3.5)
    assert len(blink_starts(times, poses[:, EYE])) <= 1  # back to the calm rhythm


@pytest.mark.parametrize("fps", [10, 25, 60])
def test_an_emotion_change_is_half_way_at_its_half_life_at_any_frame_rate(templates, fps):
    settings = AnimatorSettings(emotion_half_life=0.2)
    animator = Animator(templates, settings, emotion="neutral", seed=0)
    start, target = templates.vector("neutral"), templates.vector("anger")
    eyebrows = np.flatnonzero(np.abs(target[P.EYEBROW_SLICE] - start[P.EYEBROW_SLICE]) > 0.1)
    assert eyebrows.size
    animator.pose(1.0)
    animator.set_emotion("anger", now=1.0)
    times, poses = sample(animator, fps, 0.4, start=1.0 + 1 / fps)
    at_half_life = poses[np.argmin(np.abs(times - 1.2))][eyebrows]
    assert np.allclose(at_half_life, (start[eyebrows] + target[eyebrows]) / 2, atol=1e-5)
    assert times[-1] == pytest.approx(1.4)  # two half-lives: three quarters of the way
    assert np.allclose(poses[-1][eyebrows], start[eyebrows] + (target[eyebrows] - start[eyebrows]) * 0.75,
                       atol=1e-5)


def test_breathing_has_the_configured_period(templates):
    animator = Animator(templates, AnimatorSettings(breathing_period=3.0), seed=0)
    times, poses = sample(animator, 50, 12.0)
    breathing = poses[:, BREATHING]
    peaks = times[1:-1][(breathing[1:-1] > breathing[:-2]) & (breathing[1:-1] >= breathing[2:])]
    assert np.allclose(np.diff(peaks), 3.0, atol=0.021)
    assert breathing.min() < 0.01 and breathing.max() > 0.99


def test_talking_moves_the_mouth_at_its_rate_and_stops_on_command(templates):
    settings = AnimatorSettings(talking_rate=12.0)
    animator = Animator(templates, settings, emotion="neutral", seed=3)
    animator.start_talking()
    times, poses = sample(animator, 120, 2.0)
    changes = np.count_nonzero(np.diff(poses[:, MOUTH]))
    assert 20 <= changes <= 24  # ≈ 12 new shapes a second
    assert settings.talking_mouth_min <= poses[:, MOUTH].min() and poses[:, MOUTH].max() <= settings.talking_mouth_max
    animator.stop_talking()
    assert animator.pose(2.5)[MOUTH] == pytest.approx(templates.vector("neutral")[MOUTH])


def test_idle_sway_stays_within_its_bound_and_moves(templates):
    settings = AnimatorSettings(sway_amount=0.2, jitter_amount=0.01)
    _, poses = sample(Animator(templates, settings, seed=5), 25, 20.0)
    base = templates.vector("neutral")[HEAD_X]
    head = poses[:, HEAD_X] - base
    assert np.abs(head).max() <= 0.2 + 0.01 + 1e-6
    assert head.max() - head.min() > 0.1


def test_same_seed_same_motion_and_frame_rate_does_not_change_blinks_or_mouth(templates):
    def run(fps):
        animator = Animator(templates, seed=11)
        animator.start_talking()
        return sample(animator, fps, 10.0)
    p10, p50 = run(10)[1], run(50)[1]
    assert np.array_equal(run(10)[1], p10)
    common = p50[::5]
    for index in (EYE, MOUTH, BREATHING):
        assert np.allclose(common[:, index], p10[:, index], atol=1e-6)


def test_unknown_emotion_changes_nothing(templates):
    animator = Animator(templates, seed=0)
    with pytest.raises(EmotionError, match="unknown emotion 'glee'"):
        animator.set_emotion("glee", now=0.5)
    assert animator.emotion == "neutral"


def test_settings_cascade_defaults_project_file_overrides(tmp_path):
    project = tmp_path / "animator.json"
    project.write_text(json.dumps({"blink_duration": 0.3, "breathing_period": "slow", "wobble": 2,
                                   "talking_rate": -1}))
    settings, problems = load_settings(project, {"blink_duration": 0.25, "sway_amount": 0.1})
    assert settings.blink_duration == 0.25 and settings.sway_amount == 0.1
    assert settings.breathing_period == AnimatorSettings().breathing_period
    assert settings.talking_rate == AnimatorSettings().talking_rate
    text = "\n".join(problems)
    assert "breathing_period must be a number" in text and "unknown setting 'wobble'" in text
    assert "talking_rate must be between 0.5 and 30 Hz" in text and str(project) in text


def test_broken_project_file_falls_back_to_defaults(tmp_path):
    project = tmp_path / "animator.json"
    project.write_text("{not json")
    settings, problems = load_settings(project)
    assert settings == AnimatorSettings() and "not readable JSON" in problems[0]


def test_inconsistent_ranges_are_refused_by_name():
    settings, problems = AnimatorSettings().merged({"blink_interval_min": 9.0}, "test")
    assert settings.blink_interval_min == AnimatorSettings().blink_interval_min
    assert "blink_interval_min (9.0) is above blink_interval_max" in problems[0]


def test_every_setting_is_documented_with_a_range_that_holds_its_default():
    docs = AnimatorSettings.documentation()
    assert len(docs) >= 15 and all(len(d["doc"]) > 15 for d in docs.values())
    assert all(d["min"] <= d["default"] <= d["max"] for d in docs.values())


HOSTILE_SETTINGS = [
    ({"sway_interval_min": 1e-300, "sway_interval_max": 1e-300}, "sway_interval_min must be between 0.1 and 60 s"),
    ({"blink_interval_min": 1e-9, "blink_interval_max": 1e-9}, "blink_interval_min must be between"),
    ({"breathing_period": 1e-12}, "breathing_period must be between"),
    ({"target_fps": 1e-12}, "target_fps must be between 1 and 60 Hz"),
    ({"target_fps": 1e9}, "target_fps must be between 1 and 60 Hz"),
    ({"target_fps": 10**400}, "target_fps must be between"),
    ({"jitter_rate": float("nan")}, "jitter_rate must be between"),
    ({"x" * 10_000: 1}, "unknown setting 'xxxx"),
]


@pytest.mark.parametrize(("update", "message"), HOSTILE_SETTINGS)
def test_settings_outside_their_range_are_refused_by_name_and_range(update, message):
    settings, problems = AnimatorSettings().merged(update, "test")
    assert settings == AnimatorSettings()
    assert message in problems[0] and len(problems[0]) < 600
    with pytest.raises(ValueError, match="must be between"):
        AnimatorSettings(target_fps=0.5)


def test_a_frame_costs_bounded_work_however_far_the_clock_jumps(templates):
    """Blinks and sway targets are caught up one by one only for a short while; after a long pause (or the
    smallest intervals allowed) the schedule restarts, so no frame loops for long while holding the lock."""
    fastest = AnimatorSettings(blink_interval_min=0.5, blink_interval_max=0.5, blink_duration=0.05,
                               sway_interval_min=0.1, sway_interval_max=0.1)
    animator = Animator(templates, fastest, seed=3)
    animator.pose(0.0)
    result = {}
    worker = threading.Thread(target=lambda: result.update(pose=animator.pose(1e12)))  # 30 000 years later
    worker.start()
    worker.join(20)  # one event at a time, this would take 1e13 steps: it would never return
    assert not worker.is_alive() and np.isfinite(result["pose"]).all()
    assert animator._retarget_at > 1e12 and animator._blink_start > 1e12 - 1
    times, poses = sample(animator, 100, 3.0, start=1e12)  # and the animation goes on blinking from there
    assert len(blink_starts(times, poses[:, EYE])) >= 4


MAMA = [{"phoneme": p, "start": 0.1 * i, "end": 0.1 * (i + 1)} for i, p in enumerate("mama")]
SPEECH_MOUTH = [P.BY_KEY[k].index for k in MOUTH_KEYS]


@pytest.fixture(scope="module")
def mama():
    return track_from_timeline(MAMA, phonemize=False)


@pytest.mark.parametrize("fps", [10, 25, 60])
def test_speech_is_the_same_pose_at_the_same_time_at_any_frame_rate(templates, mama, fps):
    reference = Animator(templates, seed=5, emotion="joy")
    reference.speak(mama, start=1.0)
    animator = Animator(templates, seed=5, emotion="joy")
    animator.speak(mama, start=1.0)
    sample(animator, fps, 1.0, start=0.6)  # frames at this rate up to t = 1.6
    assert np.allclose(animator.pose(1.6), reference.pose(1.6), atol=1e-6)


def test_speech_drives_the_mouth_and_keeps_the_emotion_elsewhere(templates, mama):
    animator = Animator(templates, seed=2, emotion="joy")
    animator.pose(0.0)
    animator.speak(mama, start=1.0)
    joy = templates.vector("joy")
    at = {t: animator.pose(t) for t in (0.5, 1.05, 1.15, 1.25, 3.0)}
    assert np.allclose(at[0.5][SPEECH_MOUTH], joy[SPEECH_MOUTH], atol=1e-3)  # before: the emotion's mouth
    assert at[1.05][SPEECH_MOUTH].sum() < 0.05  # "m": closed
    assert at[1.15][SPEECH_MOUTH].sum() > 0.3  # "a": open
    assert at[1.25][SPEECH_MOUTH].sum() < 0.05  # "m" again
    eyebrows = [P.BY_KEY[k].index for k in P.KEYS if k.startswith("eyebrow")]
    assert np.allclose(at[1.15][eyebrows], joy[eyebrows], atol=1e-3)  # the emotion keeps its eyebrows
    assert np.allclose(at[3.0][SPEECH_MOUTH], joy[SPEECH_MOUTH], atol=1e-3)  # after: back to the emotion
    assert not animator.speaking(3.0) and animator.speaking(1.2)


def test_blinking_and_sway_go_on_while_speaking(templates):
    """Over 12 s of speech the eyes still blink and the head still sways, exactly as they would in silence."""
    long = track_from_timeline([{"phoneme": p, "start": 0.1 * i, "end": 0.1 * (i + 1)}
                                for i, p in enumerate("mama" * 30)], phonemize=False)
    settings = AnimatorSettings(blink_interval_min=1.5, blink_interval_max=3.0, sway_amount=0.2)
    speaking, silent = Animator(templates, settings, seed=4), Animator(templates, settings, seed=4)
    speaking.speak(long, start=0.0)
    times, poses = sample(speaking, fps=50, seconds=12)
    _, quiet = sample(silent, fps=50, seconds=12)
    assert speaking.speaking(6.0) and len(blink_starts(times, poses[:, EYE])) >= 4
    assert np.ptp(poses[:, HEAD_X]) > 0.1
    others = [i for i in range(P.NUM_PARAMETERS) if i not in SPEECH_MOUTH]
    assert np.allclose(poses[:, others], quiet[:, others], atol=1e-6)  # only the mouth differs


def test_talking_without_a_track_keeps_the_random_mouth(templates, mama):
    animator = Animator(templates, seed=1)
    animator.start_talking()
    mouths = {round(float(animator.pose(t)[MOUTH]), 3) for t in np.arange(0, 2, 0.05)}
    assert len(mouths) > 5
    animator.speak(mama, start=2.0)
    assert animator.pose(2.05)[SPEECH_MOUTH].sum() < 0.05  # a track wins over the random mouth
