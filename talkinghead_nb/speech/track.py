"""A viseme track: timed target mouth shapes (and, where the source has audio, its loudness), and the mouth they give
at any time.

Rendering applies coarticulation as a pure function of time. Every keyframe has a weight that is 1 over its own
span, rises over ``attack`` seconds before it (the mouth anticipates the next shape) and falls over ``release``
seconds after it (the last shape lingers); the mouth is the weighted blend of the keyframes' shapes, and wherever the
weights add up to less than 1 the rest is a closed mouth. A closure (b, m, p) is not blended: its weight shuts the
lips over whatever the other shapes give, so they meet when it starts. A ramp never reaches past the middle of the
keyframe (or the gap) beside it, so every keyframe, however short, reaches its own shape at least at its middle: a
60 ms "m" closes the mouth fully, and a change of shape never snaps. An envelope (loudness 0 to 1, sampled evenly
and interpolated) then scales the opening: the mouth closes in a stop's silence and opens wider on a loud vowel.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import pose as P
from ..messages import name_list, short_repr
from .errors import SpeechError, check_unicode

# The THA3 mouth shapes a keyframe can target; "closed" is all of them at zero.
SHAPE_KEYS: dict[str, str] = {shape: P.BY_KEY[key].key for shape, key in (
    ("aaa", "mouth_aaa_index"), ("iii", "mouth_iii_index"), ("uuu", "mouth_uuu_index"),
    ("eee", "mouth_eee_index"), ("ooo", "mouth_ooo_index"), ("delta", "mouth_delta"))}
MOUTH_KEYS: tuple[str, ...] = tuple(SHAPE_KEYS.values())
CLOSED = "closed"
SHAPES: tuple[str, ...] = (*SHAPE_KEYS, CLOSED)
_VECTORS = {shape: np.eye(len(MOUTH_KEYS))[i] for i, shape in enumerate(SHAPE_KEYS)} | {
    CLOSED: np.zeros(len(MOUTH_KEYS))}

MAX_KEYFRAMES = 100_000
MAX_DURATION = 3600.0  # seconds
MAX_RAMP = 0.5  # seconds; the largest attack or release
ENVELOPE_RATES = (10.0, 1000.0)  # samples per second
_FIELDS = ("attack", "release", "duration", "keyframes", "envelope")


@dataclass(frozen=True)
class Keyframe:
    """The mouth takes ``shape``, opened to ``amplitude`` (0 to 1), from ``start`` to ``end`` (seconds)."""

    start: float
    end: float
    shape: str
    amplitude: float = 1.0
    phoneme: str = ""  # what it came from, for figures and debugging


def _number(value: Any, what: str, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:  # refuses NaN
        raise SpeechError(f"{what} must be a number from {low:g} to {high:g}, got {short_repr(value)}")
    return float(value)


def _check_keyframes(keyframes: Sequence[Keyframe]) -> None:
    if len(keyframes) > MAX_KEYFRAMES:
        raise SpeechError(f"a track holds at most {MAX_KEYFRAMES} keyframes, got {len(keyframes)}; "
                          "split the speech into shorter parts")
    previous_end = 0.0
    for i, k in enumerate(keyframes):
        where = f"keyframe {i}"
        start = _number(k.start, f"{where}: start", 0, MAX_DURATION)
        end = _number(k.end, f"{where}: end", 0, MAX_DURATION)
        if end <= start:
            raise SpeechError(f"{where}: end ({end:g}) must be after start ({start:g})")
        if start < previous_end - 1e-9:
            raise SpeechError(f"{where}: starts at {start:g}, before the previous keyframe ends ({previous_end:g}); "
                              "keyframes must be in time order and must not overlap")
        if k.shape not in SHAPES:
            raise SpeechError(f"{where}: unknown shape {short_repr(k.shape)} (shapes: {', '.join(SHAPES)})")
        _number(k.amplitude, f"{where}: amplitude", 0, 1)
        if not isinstance(k.phoneme, str) or len(k.phoneme) > 16:
            raise SpeechError(f"{where}: phoneme must be a string of at most 16 characters, got "
                              f"{short_repr(k.phoneme)}")
        check_unicode(k.phoneme, f"{where}: phoneme")
        previous_end = end


def _check_envelope(envelope: Any, rate: Any) -> np.ndarray:
    rate = _number(rate, "envelope rate", *ENVELOPE_RATES)
    if isinstance(envelope, str | bytes) or not isinstance(envelope, Sequence | np.ndarray):
        raise SpeechError(f"the envelope must be a list of numbers, got {type(envelope).__name__}")
    if len(envelope) > MAX_DURATION * rate:
        raise SpeechError(f"the envelope holds {len(envelope)} values; at {rate:g} a second the limit is "
                          f"{MAX_DURATION * rate:.0f}")
    try:
        values = np.asarray(envelope, dtype=np.float64)
    except (TypeError, ValueError):
        raise SpeechError("the envelope must be a list of numbers from 0 to 1") from None
    if values.ndim != 1 or not np.all((values >= 0) & (values <= 1)):  # refuses NaN
        raise SpeechError("the envelope must be a list of numbers from 0 to 1")
    return values


def _smoothstep(x: np.ndarray) -> np.ndarray:
    x = np.clip(x, 0.0, 1.0)
    return x * x * (3.0 - 2.0 * x)


class Track:
    """Keyframes in time order, without overlaps; gaps between them are a closed mouth.

    ``duration`` is how long the speech lasts (at least the end of the last keyframe); the mouth is closed after it.
    ``envelope``, if given, is the source's loudness (0 to 1) sampled ``envelope_rate`` times a second from time 0;
    it scales the opening (0 outside it).
    """

    def __init__(self, keyframes: Iterable[Keyframe], *, attack: float, release: float,
                 duration: float | None = None, envelope: Sequence[float] | np.ndarray | None = None,
                 envelope_rate: float = 100.0) -> None:
        self.keyframes: tuple[Keyframe, ...] = tuple(keyframes)
        _check_keyframes(self.keyframes)
        self.attack = _number(attack, "attack", 0, MAX_RAMP)
        self.release = _number(release, "release", 0, MAX_RAMP)
        last_end = self.keyframes[-1].end if self.keyframes else 0.0
        self.duration = max(last_end, _number(duration, "duration", 0, MAX_DURATION) if duration is not None else 0)
        self.envelope = None if envelope is None else _check_envelope(envelope, envelope_rate)
        self.envelope_rate = float(envelope_rate)
        self._start = np.array([k.start for k in self.keyframes], dtype=np.float64)
        self._end = np.array([k.end for k in self.keyframes], dtype=np.float64)
        self._target = np.array([_VECTORS[k.shape] * k.amplitude for k in self.keyframes]).reshape(
            len(self.keyframes), len(MOUTH_KEYS))
        self._closes = np.array([k.shape == CLOSED for k in self.keyframes], dtype=bool)
        # What lies before and after each keyframe: the neighbour if it touches, else the gap; a ramp takes at most
        # half of it. Nothing limits the ramps before the first and after the last keyframe.
        length = self._end - self._start
        gap = self._start[1:] - self._end[:-1]
        touching = gap < 1e-9
        self._rise = np.minimum(self.attack, np.r_[np.inf, np.where(touching, length[:-1], gap)] / 2)
        self._fall = np.minimum(self.release, np.r_[np.where(touching, length[1:], gap), np.inf] / 2)

    def __len__(self) -> int:
        return len(self.keyframes)

    @property
    def end(self) -> float:
        """The time from which the mouth stays closed: the speech is over (the last shape's release included)."""
        return max(self.duration, float(self._end[-1] + self._fall[-1])) if self.keyframes else self.duration

    def __repr__(self) -> str:
        envelope = "with" if self.envelope is not None else "without"
        return (f"Track({len(self)} keyframes, {self.duration:.2f} s, attack={self.attack:g}, "
                f"release={self.release:g}, {envelope} envelope)")

    def mouth_array(self, times: Sequence[float] | np.ndarray) -> np.ndarray:
        """The mouth parameters (columns in ``MOUTH_KEYS`` order) at each time: an (N, 6) float array."""
        t = np.asarray(times, dtype=np.float64).reshape(-1)
        if not len(self.keyframes):
            return np.zeros((len(t), len(MOUTH_KEYS)))
        # Only the keyframe under t and its two neighbours can have a weight there (ramps stop half way).
        candidates = np.searchsorted(self._start, t, side="right")[:, None] + np.array([-2, -1, 0])
        valid = (candidates >= 0) & (candidates < len(self.keyframes))
        k = np.clip(candidates, 0, len(self.keyframes) - 1)
        tt = t[:, None]
        rise, fall = self._rise[k], self._fall[k]
        with np.errstate(divide="ignore", invalid="ignore"):
            up = np.where(rise > 0, _smoothstep((tt - self._start[k] + rise) / rise), tt >= self._start[k])
            down = np.where(fall > 0, 1 - _smoothstep((tt - self._end[k]) / fall), tt <= self._end[k])
        weight = np.where(valid, up * down, 0.0)
        # A closure (b, m, p) is not one more shape to blend with: the lips meet at its start, so the shapes around
        # it only fill what its ramps leave open (blended, a vowel's release kept the lips apart ~50 ms too long).
        closing = np.where(self._closes[k], weight, 0.0).max(axis=1)
        weight = np.where(self._closes[k], 0.0, weight)
        mouth = np.einsum("nc,nck->nk", weight, self._target[k]) / np.maximum(1.0, weight.sum(axis=1))[:, None]
        mouth *= (1.0 - closing)[:, None]
        if self.envelope is not None:
            mouth *= np.interp(t * self.envelope_rate, np.arange(len(self.envelope)), self.envelope, left=0, right=0)[
                :, None]
        return mouth

    def mouth(self, t: float) -> dict[str, float]:
        """``{mouth parameter: value}`` at time ``t`` (seconds from the start of the speech)."""
        return dict(zip(MOUTH_KEYS, (float(v) for v in self.mouth_array([t])[0]), strict=True))

    def openness(self, times: Sequence[float] | np.ndarray) -> np.ndarray:
        """How far the mouth is from closed at each time, 0 to 1 (the sum of the mouth parameters)."""
        return self.mouth_array(times).sum(axis=1)

    def to_json(self) -> dict[str, Any]:
        envelope = None if self.envelope is None else {
            "rate": self.envelope_rate, "values": [round(float(v), 4) for v in self.envelope]}
        return {"attack": self.attack, "release": self.release, "duration": round(self.duration, 6),
                "keyframes": [{"start": round(k.start, 6), "end": round(k.end, 6), "shape": k.shape,
                               "amplitude": round(k.amplitude, 4), "phoneme": k.phoneme} for k in self.keyframes],
                "envelope": envelope}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Track:
        """The track :meth:`to_json` wrote (or a client sent); anything malformed raises :class:`SpeechError`."""
        if not isinstance(data, Mapping):
            raise SpeechError(f"a track is a JSON object, got {type(data).__name__}")
        if set(data) != set(_FIELDS):
            raise SpeechError(f"a track has exactly the fields {', '.join(_FIELDS)}; got "
                              f"{name_list(map(short_repr, data))}")
        frames, envelope = data["keyframes"], data["envelope"]
        if not isinstance(frames, list):
            raise SpeechError("a track's keyframes are a list of {start, end, shape, amplitude, phoneme}")
        if len(frames) > MAX_KEYFRAMES:
            raise SpeechError(f"a track holds at most {MAX_KEYFRAMES} keyframes, got {len(frames)}")
        keyframes = []
        for i, frame in enumerate(frames):
            if not isinstance(frame, Mapping) or not {"start", "end", "shape"} <= set(frame) or set(frame) - {
                    "start", "end", "shape", "amplitude", "phoneme"}:
                raise SpeechError(f"keyframe {i}: expected an object with start, end, shape and optionally "
                                  f"amplitude and phoneme, got {short_repr(frame)}")
            keyframes.append(Keyframe(**frame))
        if envelope is not None and not (isinstance(envelope, Mapping) and set(envelope) == {"rate", "values"}):
            raise SpeechError("a track's envelope is null or an object {rate, values}")
        return cls(keyframes, attack=data["attack"], release=data["release"], duration=data["duration"],
                   **({"envelope": envelope["values"], "envelope_rate": envelope["rate"]} if envelope else {}))
