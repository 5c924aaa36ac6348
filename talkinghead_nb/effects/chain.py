"""Effect chains: JSON lists of effects, validated like the animator settings, applied to batches of frames."""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from ..messages import name_list, short_repr, summary
from .table import EFFECTS, Effect

MAX_EFFECTS = 16
MAX_PROBLEMS = 5  # problems an error lists; the rest are counted
EXAMPLE = '[{"name": "bloom", "strength": 0.6}, {"name": "scanlines", "spacing": 3}]'


class EffectError(ValueError):
    """An effect chain that cannot be used; the message names the effect, the parameter and its range."""


@dataclass(frozen=True)
class Step:
    """One effect of a chain with all its parameters (defaults filled in). Make one with :func:`make_step`."""

    name: str
    params: Mapping[str, float | bool]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, **self.params}


def make_step(name: str, params: Mapping[str, Any] | None = None, *, where: str = "") -> Step:
    """A checked :class:`Step`: ``EffectError`` names the bad parameters with their ranges (the first few, and how
    many more). ``where`` begins the message (``"effect 2"``)."""
    step, problems = _checked(name, params, where)
    if step is None:
        raise EffectError(summary(problems, MAX_PROBLEMS))
    return step


def _checked(name: Any, params: Mapping[str, Any] | None, where: str) -> tuple[Step | None, list[str]]:
    """The step, or None and every problem with it (each message begun by ``where``)."""
    prefix = f"{where}: " if where else ""
    effect = EFFECTS.get(name)
    if effect is None:
        return None, [f"{prefix}unknown effect {short_repr(name)}{_did_you_mean(name, EFFECTS)}; "
                      f"the effects are {name_list(EFFECTS, len(EFFECTS))}"]
    params = dict(params or {})
    problems = [prefix + problem for key, value in params.items() if (problem := _check(effect, key, value))]
    if problems:
        return None, problems
    values = {key: spec.default for key, spec in effect.params.items()}
    values.update({key: value if effect.params[key].switch else float(value) for key, value in params.items()})
    return Step(name, values), []


def _check(effect: Effect, key: Any, value: Any) -> str | None:
    spec = effect.params.get(key)
    if spec is None:
        return (f"{effect.name} has no parameter {short_repr(key)}{_did_you_mean(key, effect.params)}; "
                f"its parameters are {name_list(effect.params, len(effect.params))}")
    where = f"{effect.name}.{key}"
    if spec.switch:
        return None if isinstance(value, bool) else f"{where} must be true or false, got {short_repr(value)}"
    allowed = f"between {spec.low:g} and {spec.high:g}{' ' + spec.unit if spec.unit else ''}"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{where} must be a number {allowed}, got {short_repr(value)}"
    if not spec.low <= value <= spec.high:  # NaN fails this too
        return f"{where} must be {allowed}, got {short_repr(value)}"
    return None


def _did_you_mean(word: Any, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(word), list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


@dataclass(frozen=True)
class EffectChain:
    """Effects applied one after the other. ``EffectChain()`` is the identity: ``apply`` returns its input."""

    steps: tuple[Step, ...] = ()

    def __post_init__(self) -> None:
        if len(self.steps) > MAX_EFFECTS:
            raise EffectError(f"an effect chain has at most {MAX_EFFECTS} effects, got {len(self.steps)}")

    def __len__(self) -> int:
        return len(self.steps)

    @property
    def animated(self) -> bool:
        """Whether the picture moves with time: then a still pose still needs a new frame at every tick."""
        return any(EFFECTS[step.name].animated for step in self.steps)

    def apply(self, frames: Tensor, t: float | Sequence[float] | Tensor = 0.0) -> Tensor:
        """``frames`` (N, 4, H, W) sRGB [0, 1], straight alpha, float32 or float16 on any device → new frames
        alike. ``t``: the time in seconds, one for all frames or one per frame."""
        if not self.steps:
            return frames
        times = _times(frames, t)
        with torch.no_grad():
            for step in self.steps:
                frames = EFFECTS[step.name].function(frames, times, **step.params)
        return frames

    def to_json(self) -> list[dict[str, Any]]:
        return [step.to_json() for step in self.steps]

    def appended(self, name: str, params: Mapping[str, Any] | None = None) -> EffectChain:
        return EffectChain((*self.steps, make_step(name, params)))

    def removed(self, index: int) -> EffectChain:
        return EffectChain(self.steps[:index] + self.steps[index + 1:])

    def updated(self, index: int, params: Mapping[str, Any]) -> EffectChain:
        """The chain with some parameters of its ``index``-th effect changed (checked)."""
        step = self.steps[index]
        new = make_step(step.name, {**step.params, **params})
        return EffectChain(self.steps[:index] + (new,) + self.steps[index + 1:])


def parse_chain(data: Any) -> EffectChain:
    """A chain from JSON (text, or parsed): ``[{"name": "bloom", "strength": 0.6}, ...]`` or ``{"effects": [...]}``;
    parameters left out keep their defaults. The problems are reported in one ``EffectError`` (the first
    ``MAX_PROBLEMS``, and how many more)."""
    if isinstance(data, str | bytes):
        try:
            data = json.loads(data)
        except json.JSONDecodeError as e:
            raise EffectError(f"the effect chain is not valid JSON: {e}") from None
    if isinstance(data, dict) and "effects" in data:
        data = data["effects"]
    if not isinstance(data, list):
        raise EffectError(f"an effect chain is a JSON list such as {EXAMPLE} (or {{\"effects\": [...]}}), "
                          f"got {short_repr(data)}")
    if len(data) > MAX_EFFECTS:
        raise EffectError(f"an effect chain has at most {MAX_EFFECTS} effects, got {len(data)}")
    steps, problems = [], []
    for number, entry in enumerate(data, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            problems.append(f"effect {number} must be an object with a \"name\" (one of "
                            f"{name_list(EFFECTS, len(EFFECTS))}), got {short_repr(entry)}")
            continue
        step, wrong = _checked(entry["name"], {k: v for k, v in entry.items() if k != "name"}, f"effect {number}")
        steps.append(step)
        problems += wrong
    if problems:
        raise EffectError(summary(problems, MAX_PROBLEMS))
    return EffectChain(tuple(steps))


def _times(frames: Tensor, t: float | Sequence[float] | Tensor) -> Tensor:
    """(N,) float32 seconds on the frames' device, after checking both arguments."""
    if frames.ndim != 4 or frames.shape[1] != 4 or not frames.is_floating_point():
        raise ValueError(f"frames must be a float tensor (N, 4, H, W), got {frames.dtype} {tuple(frames.shape)}")
    times = torch.as_tensor(t, dtype=torch.float64).reshape(-1)
    n = frames.shape[0]
    if len(times) not in (1, n) or not torch.isfinite(times).all():
        raise ValueError(f"t must be one finite time in seconds or one per frame ({n}), got {short_repr(t)}")
    return times.to(device=frames.device, dtype=torch.float32).expand(n)


PRESETS: dict[str, EffectChain] = {name: parse_chain(chain) for name, chain in {
    "crt": [{"name": "scanlines", "spacing": 3, "strength": 0.4}, {"name": "chromatic_aberration", "shift": 1.5},
            {"name": "bloom", "strength": 0.3}, {"name": "vignette", "strength": 0.6}],
    "hologram": [{"name": "hologram"}, {"name": "bloom", "strength": 0.5, "threshold": 0.5, "spill": True},
                 {"name": "chromatic_aberration", "shift": 1.0, "spill": True}],
    "vhs": [{"name": "vhs"}, {"name": "chromatic_aberration", "shift": 2.5},
            {"name": "tint", "saturation": 0.7, "amount": 0.0}, {"name": "noise", "amount": 0.08},
            {"name": "scanlines", "spacing": 2, "strength": 0.2}],
    "dreamy": [{"name": "bloom", "strength": 0.6, "threshold": 0.6, "radius": 24, "spill": True},
               {"name": "tint", "saturation": 0.85, "hue": 320, "amount": 0.12},
               {"name": "vignette", "strength": 0.35}],
    "noir": [{"name": "tint", "saturation": 0.0, "amount": 0.0}, {"name": "vignette", "strength": 0.7},
             {"name": "noise", "amount": 0.06}],
}.items()}

DEFAULT_CHAIN = parse_chain([{"name": "bloom", "strength": 0.3}, {"name": "chromatic_aberration", "shift": 1.5},
                             {"name": "vignette", "strength": 0.4}])
