"""The animator: turns "current emotion, talking or not" plus the time into a pose, frame after frame.

Layers, on top of the emotion's template: a transition towards a new emotion (exponential approach with a fixed
half-life), blinking at random intervals (rapid blinking for a while after switching to ``confusion``), speech (the
mouth follows a viseme track from a start time on), otherwise a random mouth while talking, breathing, and an idle
sway of head, neck and body with a small smooth jitter.

Every layer is a function of time, not of the number of frames: the same seed gives the same motion at 10, 25 or
60 frames per second, up to where the frames sample it. Each layer draws from its own random stream, so the order
in which frames arrive cannot change what another layer does.
"""

from __future__ import annotations

import functools
import math
import threading
from collections.abc import Callable

import numpy as np

from .. import pose as P
from ..emotions import EmotionTemplates
from ..speech import MOUTH_KEYS, Track
from .settings import AnimatorSettings

SWAY_KEYS = ("head_x_index", "head_y_index", "neck_z_index", "body_y_index", "body_z_index")
_SWAY = np.array([P.BY_KEY[k].index for k in SWAY_KEYS])
_EYES = np.array([P.BY_KEY["eye_wink_left_index"].index, P.BY_KEY["eye_wink_right_index"].index])
_MOUTH = P.BY_KEY["mouth_aaa_index"].index
_SPEECH_MOUTH = np.array([P.BY_KEY[k].index for k in MOUTH_KEYS])
SPEECH_BLEND_IN = 0.08   # seconds for the mouth to leave the emotion's shape before the first sound
SPEECH_BLEND_OUT = 0.2   # seconds for it to return to the emotion's shape after the speech
_BREATHING = P.BY_KEY["breathing_index"].index
RAPID_BLINK_EMOTION = "confusion"
# Scheduled events (blinks, sway targets) caught up one by one at most this many per frame; further behind (after a
# long pause) the schedule starts afresh at the current time. Keeps every frame's work bounded.
MAX_CATCH_UP = 64


def _locked(method):
    """Commands arrive from server threads while the render thread asks for poses: one at a time."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)
    return wrapper


def _approach(current: np.ndarray, target: np.ndarray, dt: float, half_life: float) -> np.ndarray:
    """Exponential approach: after ``half_life`` seconds half of the distance is left, however ``dt`` is split."""
    return target + (current - target) * 0.5 ** (dt / half_life)


def _catch_up(due: Callable[[], bool], advance: Callable[[], None], restart: Callable[[], None]) -> None:
    """``advance()`` while ``due()``, at most ``MAX_CATCH_UP`` times; if still due after that, ``restart()``."""
    for _ in range(MAX_CATCH_UP):
        if not due():
            return
        advance()
    if due():
        restart()


def _noise(seed: int, stream: int, knot: int, size: int = 1) -> np.ndarray:
    """Uniform values in [0, 1) that depend only on (seed, stream, knot): value noise with no state."""
    return np.random.default_rng([seed, stream, knot]).random(size)


class Animator:
    """Call :meth:`pose` with the current time (seconds, any monotonic clock) to get the next frame's pose."""

    def __init__(self, templates: EmotionTemplates, settings: AnimatorSettings | None = None, *,
                 emotion: str = "neutral", seed: int | None = None, now: float = 0.0):
        self._lock = threading.RLock()
        self.templates = templates
        self.settings = settings or AnimatorSettings()
        self.seed = int(np.random.SeedSequence(seed).generate_state(1)[0])
        self._blink_rng = np.random.default_rng([self.seed, 1])
        self._sway_rng = np.random.default_rng([self.seed, 2])
        self.emotion = emotion
        self._target = templates.vector(emotion)
        self._base = self._target.copy()
        self.talking = False
        self._time = now
        self._start = now
        self._rapid_until = -math.inf
        self._blink_start = now + self._blink_interval(now)
        self._sway = np.zeros(len(SWAY_KEYS))
        self._sway_target = np.zeros(len(SWAY_KEYS))
        self._retarget_at = now
        self._speech: tuple[Track, float] | None = None

    # ---- commands -------------------------------------------------------------------------------------------------

    @_locked
    def set_emotion(self, name: str, now: float) -> None:
        """Start the transition to ``name`` (raises ``EmotionError`` for an unknown one, changing nothing)."""
        self._target = self.templates.vector(name)
        self.emotion = name
        self._retarget_at = now  # a new mood, a new idle stance
        if name == RAPID_BLINK_EMOTION:
            self._rapid_until = now + self.settings.confusion_blink_spell
            if self._blink_start > now:
                self._blink_start = now

    @_locked
    def set_templates(self, templates: EmotionTemplates, now: float) -> None:
        """New templates; the current emotion moves to its new pose (or to ``neutral`` if it is gone)."""
        self.templates = templates
        self.set_emotion(self.emotion if self.emotion in templates.poses else "neutral", now)

    @_locked
    def set_settings(self, settings: AnimatorSettings) -> None:
        self.settings = settings

    @_locked
    def speak(self, track: Track, start: float) -> None:
        """Let the mouth follow ``track`` from ``start`` (on this animator's clock) on; replaces any speech under
        way. Eyebrows, eyes, blinking and sway go on; after the track the mouth returns to the emotion's shape."""
        self._speech = (track, start)

    @_locked
    def stop_speaking(self) -> None:
        self._speech = None

    @_locked
    def speaking(self, now: float) -> bool:
        """Whether a track is waiting to start or drives the mouth at ``now`` (until its blend-out ends)."""
        return self._speech is not None and now - self._speech[1] <= self._speech[0].end + SPEECH_BLEND_OUT

    @_locked
    def start_talking(self) -> None:
        self.talking = True

    @_locked
    def stop_talking(self) -> None:
        self.talking = False

    # ---- the frame ------------------------------------------------------------------------------------------------

    @_locked
    def pose(self, now: float) -> np.ndarray:
        """The pose at time ``now`` (45 floats, within the parameters' ranges); advances the animation to ``now``."""
        s = self.settings
        dt = max(0.0, now - self._time)
        self._time = max(self._time, now)
        self._base = _approach(self._base, self._target, dt, s.emotion_half_life)
        self._advance_sway(now, dt)
        pose = self._base.copy()
        pose[_SWAY] += self._sway + s.jitter_amount * self._jitter(now)
        pose[_EYES] = np.maximum(pose[_EYES], self._eyes_closed(now))
        pose[_BREATHING] = max(pose[_BREATHING],
                               s.breathing_amount * 0.5 * (1 - math.cos(2 * math.pi * (now - self._start)
                                                                        / s.breathing_period)))
        weight = self._speech_weight(now)
        if weight > 0:
            track, start = self._speech
            spoken = track.mouth_array([now - start])[0]
            pose[_SPEECH_MOUTH] = weight * spoken + (1 - weight) * pose[_SPEECH_MOUTH]
        elif self.talking:
            u = _noise(self.seed, 3, math.floor(now * s.talking_rate))[0]
            pose[_MOUTH] = s.talking_mouth_min + (s.talking_mouth_max - s.talking_mouth_min) * u
        return np.clip(pose, P.LOW, P.HIGH).astype(np.float32)

    def _speech_weight(self, now: float) -> float:
        """How much the track, rather than the emotion, shapes the mouth at ``now``: 0 → 1 in the
        ``SPEECH_BLEND_IN`` before the track starts, 1 while it lasts, 1 → 0 in the ``SPEECH_BLEND_OUT`` after."""
        if self._speech is None:
            return 0.0
        track, start = self._speech
        t = now - start
        if t < -SPEECH_BLEND_IN or t > track.end + SPEECH_BLEND_OUT:
            return 0.0
        if t < 0:
            x = 1 + t / SPEECH_BLEND_IN
        elif t > track.end:
            x = 1 - (t - track.end) / SPEECH_BLEND_OUT
        else:
            return 1.0
        return x * x * (3 - 2 * x)

    def _blink_interval(self, start: float) -> float:
        s = self.settings
        if start < self._rapid_until:
            interval = s.confusion_blink_interval
        else:
            interval = self._blink_rng.uniform(s.blink_interval_min, s.blink_interval_max)
        return max(interval, s.blink_duration)

    def _eyes_closed(self, now: float) -> float:
        """0 (open) … 1 (shut): a triangle over ``blink_duration`` from each blink's start."""
        duration = self.settings.blink_duration

        def next_blink() -> None:
            self._blink_start += self._blink_interval(self._blink_start)

        def restart() -> None:
            self._blink_start = now + self._blink_interval(now)
        _catch_up(lambda: now >= self._blink_start + duration, next_blink, restart)
        phase = (now - self._blink_start) / duration
        return 1.0 - abs(2.0 * phase - 1.0) if phase >= 0 else 0.0

    def _advance_sway(self, now: float, dt: float) -> None:
        s = self.settings

        def next_target() -> None:
            self._sway_target = self._sway_rng.uniform(-s.sway_amount, s.sway_amount, len(SWAY_KEYS))
            self._retarget_at += self._sway_rng.uniform(s.sway_interval_min, s.sway_interval_max)

        def restart() -> None:
            next_target()
            self._retarget_at = now + self._sway_rng.uniform(s.sway_interval_min, s.sway_interval_max)
        _catch_up(lambda: now >= self._retarget_at, next_target, restart)
        self._sway = _approach(self._sway, self._sway_target, dt, s.sway_half_life)

    def _jitter(self, now: float) -> np.ndarray:
        """Smooth value noise in [-1, 1] per sway channel: cosine interpolation between random knots."""
        x = (now - self._start) * self.settings.jitter_rate
        knot = math.floor(x)
        a, b = _noise(self.seed, 4, knot, len(SWAY_KEYS)), _noise(self.seed, 4, knot + 1, len(SWAY_KEYS))
        w = 0.5 - 0.5 * math.cos(math.pi * (x - knot))
        return 2.0 * (a + (b - a) * w) - 1.0
