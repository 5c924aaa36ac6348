"""Animator settings: every constant of the animation, named, documented, and loaded by a cascade
(built-in defaults → project file → per-call overrides) in which one bad entry spoils nothing else."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from typing import Any

from ..cascade import load_cascade
from ..messages import short_repr
from ..paths import animator_settings_file


def _setting(default: float, doc: str, low: float, high: float, unit: str = "") -> Any:
    """A setting with its documented range: values outside ``[low, high]`` are refused, so that no client can make
    the animation schedule degenerate (a blink every 1e-300 s) or the feed rate absurd."""
    return field(default=default, metadata={"doc": doc, "range": (low, high), "unit": unit})


@dataclass(frozen=True)
class AnimatorSettings:
    """Times in seconds, rates in Hz, amounts in pose-parameter units (head/neck/body range over [-1, 1]).

    Every setting has a range (``AnimatorSettings.documentation()``); constructing one outside it raises
    ``ValueError``, and :meth:`merged` reports such entries instead of applying them.
    """

    target_fps: float = _setting(25.0, "frames per second sent to every viewer", 1, 60, "Hz")
    emotion_half_life: float = _setting(
        0.15, "time for a change of emotion to get half way (exponential approach, the same at any frame rate)",
        0.01, 10, "s")
    blink_interval_min: float = _setting(2.0, "shortest time between the starts of two blinks", 0.5, 60, "s")
    blink_interval_max: float = _setting(5.0, "longest time between the starts of two blinks", 0.5, 60, "s")
    blink_duration: float = _setting(0.18, "one blink: the eyes closing and opening again", 0.05, 2, "s")
    confusion_blink_spell: float = _setting(2.0, "how long the rapid blinking lasts after switching to confusion",
                                            0, 30, "s")
    confusion_blink_interval: float = _setting(0.35, "time between blinks during the rapid-blink spell",
                                               0.1, 10, "s")
    talking_rate: float = _setting(12.0, "new mouth shapes per second while talking", 0.5, 30, "Hz")
    talking_mouth_min: float = _setting(0.1, "smallest mouth opening while talking (mouth_aaa)", 0, 1)
    talking_mouth_max: float = _setting(0.9, "largest mouth opening while talking (mouth_aaa)", 0, 1)
    breathing_period: float = _setting(4.0, "the time of one full breath, in and out", 0.5, 60, "s")
    breathing_amount: float = _setting(1.0, "depth of breathing, 0 (none) to 1 (the full breathing parameter)",
                                       0, 1)
    sway_amount: float = _setting(0.25, "largest idle offset of head, neck and body from the emotion's pose", 0, 1)
    sway_half_life: float = _setting(0.8, "time for the idle sway to get half way to its current target",
                                     0.01, 30, "s")
    sway_interval_min: float = _setting(1.5, "shortest time before the sway picks a new target", 0.1, 60, "s")
    sway_interval_max: float = _setting(4.0, "longest time before the sway picks a new target", 0.1, 60, "s")
    jitter_amount: float = _setting(0.015, "amplitude of the small, smooth jitter on top of the sway", 0, 0.5)
    jitter_rate: float = _setting(1.5, "how many independent jitter values per second (smoothly interpolated)",
                                  0.05, 30, "Hz")

    def __post_init__(self) -> None:
        for spec in dataclasses.fields(self):
            problem = _check(spec, spec.name, getattr(self, spec.name))
            if problem:
                raise ValueError(problem)

    @classmethod
    def documentation(cls) -> dict[str, dict[str, Any]]:
        """``{name: {"default", "min", "max", "unit", "doc"}}`` of every setting."""
        return {f.name: {"default": f.default, "min": f.metadata["range"][0], "max": f.metadata["range"][1],
                         "unit": f.metadata["unit"], "doc": f.metadata["doc"]} for f in dataclasses.fields(cls)}

    def to_json(self) -> dict[str, float]:
        return dataclasses.asdict(self)

    def merged(self, updates: dict[str, Any], source: str) -> tuple[AnimatorSettings, list[str]]:
        """These settings with the valid entries of ``updates`` applied, and one message per rejected entry."""
        if not isinstance(updates, dict):
            return self, [f"{source}: expected a JSON object of settings, got {type(updates).__name__}"]
        fields = {f.name: f for f in dataclasses.fields(self)}
        good: dict[str, float] = {}
        problems = []
        for key, value in updates.items():
            problem = _check(fields.get(key), key, value)
            if problem:
                problems.append(f"{source}: {problem}")
            else:
                good[key] = float(value)
        merged = dataclasses.replace(self, **good)
        for low, high in (("blink_interval_min", "blink_interval_max"), ("sway_interval_min", "sway_interval_max"),
                          ("talking_mouth_min", "talking_mouth_max")):
            if getattr(merged, low) > getattr(merged, high):
                problems.append(f"{source}: {low} ({getattr(merged, low)}) is above {high} "
                                f"({getattr(merged, high)}); both kept as they were")
                merged = dataclasses.replace(merged, **{low: getattr(self, low), high: getattr(self, high)})
        return merged, problems


def _check(spec: dataclasses.Field | None, key: Any, value: Any) -> str | None:
    if spec is None:
        known = ", ".join(f.name for f in dataclasses.fields(AnimatorSettings))
        return f"unknown setting {short_repr(key)} (known: {known})"
    if isinstance(value, bool) or not isinstance(value, int | float):
        return f"{key} must be a number, got {short_repr(value)}"
    low, high = spec.metadata["range"]
    unit = f" {spec.metadata['unit']}" if spec.metadata["unit"] else ""
    if not low <= value <= high:  # NaN fails this too; ints of any size compare exactly
        return f"{key} must be between {low:g} and {high:g}{unit}, got {short_repr(value)}"
    return None


def load_settings(project_file: str | os.PathLike | None = None,
                  overrides: dict[str, Any] | None = None) -> tuple[AnimatorSettings, list[str]]:
    """Built-in defaults, then the project file (``animator.json`` beside ``emotions/`` unless named; a missing
    file is fine), then ``overrides``. Returns the settings and the problems met on the way."""
    return load_cascade(AnimatorSettings(), project_file, animator_settings_file(), overrides,
                        fallback="the built-in defaults")
