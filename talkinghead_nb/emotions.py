"""Emotion templates: an emotion name → a pose, stored as JSON in the established talkinghead format.

Files (all ``{"<emotion>": {<pose key>: value, ...}, ...}``):

- ``emotions/_defaults.json``: factory settings for the 28 emotions and ``zero``, the rest pose (every parameter 0,
  as in the original's file): a pose, not an emotion, so listings show it apart. Never edited by hand;
  ``factory_reset`` copies from it.
- ``emotions/<emotion>.json``: the editable template of one emotion (an empty file means "use the factory setting").
- ``<character folder>/_emotions.json``: optional per-character overrides of any emotions.

Each emotion comes from the first of these with a valid entry: character file, per-emotion file, factory default.
A broken entry is reported (file and key named) and that emotion falls back to the next source; the others are
unaffected.
"""

from __future__ import annotations

import json
import os
import re
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import atomic
from . import pose as P
from .messages import name_list, short_repr
from .paths import emotions_dir

EMOTIONS: tuple[str, ...] = (
    "admiration", "amusement", "anger", "annoyance", "approval", "caring", "confusion", "curiosity", "desire",
    "disappointment", "disapproval", "disgust", "embarrassment", "excitement", "fear", "gratitude", "grief", "joy",
    "love", "nervousness", "neutral", "optimism", "pride", "realization", "relief", "remorse", "sadness", "surprise",
)
ZERO = "zero"  # the rest pose: every pose parameter 0; it can be shown, but it is not one of the emotions
# An emotion name becomes a file name (emotions/<name>.json, sprites/<name>.png): letters, digits, '-' and '_'.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
MAX_EMOTIONS = 256  # per set of templates: a client cannot make a session hold a million names
DEFAULTS_FILE = "_defaults.json"
CHARACTER_FILE = "_emotions.json"


class EmotionError(ValueError):
    """An unknown emotion, or an emotion file that cannot be used (the message names file and key)."""


@dataclass
class EmotionTemplates:
    """The effective templates after the fallback, where each came from, and what went wrong on the way."""

    poses: dict[str, np.ndarray]
    sources: dict[str, Path]
    problems: list[str] = field(default_factory=list)

    @property
    def names(self) -> list[str]:
        """Every template, the rest pose ``zero`` included."""
        return list(self.poses)

    @property
    def emotions(self) -> list[str]:
        """The emotions: every template but the rest pose ``zero``."""
        return [name for name in self.poses if name != ZERO]

    def vector(self, name: str) -> np.ndarray:
        if name not in self.poses:
            raise EmotionError(f"unknown emotion {short_repr(name)}; known: {name_list(self.poses)}")
        return self.poses[name].copy()

    def pose(self, name: str) -> dict[str, float]:
        return P.to_dict(self.vector(name))

    def to_json(self) -> dict[str, dict[str, float]]:
        """All templates in the established file format (what a sprite export writes as ``_emotions.json``)."""
        return {name: P.to_dict(v) for name, v in self.poses.items()}


def parse_templates(data: object, source: str) -> tuple[dict[str, np.ndarray], list[str]]:
    """Validate ``{"<emotion>": {<pose key>: value}}``; returns the good entries and one message per bad one."""
    if not isinstance(data, Mapping):
        return {}, [f"{source}: the top level must be a JSON object {{\"<emotion>\": {{...}}}}, "
                    f"not {type(data).__name__}"]
    if len(data) > MAX_EMOTIONS:
        return {}, [f"{source}: {len(data)} emotions, more than the {MAX_EMOTIONS} a set of templates may hold"]
    good, problems = {}, []
    for name, template in data.items():
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            problems.append(f"{source}: {short_repr(name)} is not a usable emotion name: 1–64 letters, digits, "
                            "'-' or '_', starting with a letter or digit")
            continue
        if not isinstance(template, Mapping):
            problems.append(f"{source}: emotion {name!r} must map pose keys to numbers, not {type(template).__name__}")
            continue
        try:
            good[name] = P.to_vector(template)
        except P.PoseError as e:
            problems.append(f"{source}: emotion {name!r}: {e}")
    return good, problems


def read_templates(path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
    """Read one emotion file. An empty file reads as no templates (the established "reset me" convention)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        return {}, [f"{path}: cannot be read ({e.strerror})"]
    if not text.strip():
        return {}, []
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        return {}, [f"{path}: malformed JSON at line {e.lineno}, column {e.colno} ({e.msg}); fix it, or reset "
                    "this emotion to its factory setting"]
    return parse_templates(data, str(path))


class EmotionLibrary:
    """The emotion templates in a folder: load with fallback, save atomically, factory reset."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.directory = Path(directory) if directory is not None else emotions_dir()

    @property
    def defaults_path(self) -> Path:
        return self.directory / DEFAULTS_FILE

    def path_for(self, name: str) -> Path:
        _check_name(name)
        return self.directory / f"{name}.json"

    def factory_defaults(self) -> dict[str, np.ndarray]:
        """The factory templates. Unlike the editable files, a broken ``_defaults.json`` is an error."""
        if not self.defaults_path.is_file():
            raise EmotionError(f"{self.defaults_path} is missing: it holds the factory emotion templates; restore "
                               "it from the project (git checkout emotions/_defaults.json)")
        defaults, problems = read_templates(self.defaults_path)
        if problems:
            raise EmotionError("; ".join(problems) + " (restore it: git checkout emotions/_defaults.json)")
        return defaults

    def load(self, character_dir: str | os.PathLike | None = None, *, strict: bool = False) -> EmotionTemplates:
        """The effective templates: character overrides → per-emotion files → factory defaults, emotion by emotion.

        Custom emotions (``<name>.json`` files with other names) are included. Problems are collected in
        ``.problems`` and issued as warnings; with ``strict=True`` the first one raises ``EmotionError``.
        """
        defaults = self.factory_defaults()
        poses = dict(defaults)
        sources = dict.fromkeys(defaults, self.defaults_path)
        problems: list[str] = []
        layers = [p for p in sorted(self.directory.glob("*.json")) if not p.name.startswith("_")]
        if character_dir is not None:
            layers.append(Path(character_dir) / CHARACTER_FILE)
        for path in layers:
            if not path.is_file():
                continue
            templates, file_problems = read_templates(path)
            problems += file_problems
            for name, vector in templates.items():
                if path.parent == self.directory and name != path.stem:
                    problems.append(f"{path}: holds emotion {name!r}, but a per-emotion file must hold only "
                                    f"{path.stem!r}; ignored")
                    continue
                poses[name], sources[name] = vector, path
        if problems:
            if strict:
                raise EmotionError(problems[0])
            for problem in problems:
                warnings.warn(problem, stacklevel=2)
        return EmotionTemplates(poses, sources, problems)

    def save(self, name: str, pose: P.PoseLike) -> Path:
        """Write one emotion's template to ``<name>.json`` atomically (validated first; all 45 keys written)."""
        vector = P.to_vector(pose)
        return atomic.write_json(self.path_for(name), {name: P.to_dict(vector)})

    def factory_reset(self, name: str | None = None) -> list[Path]:
        """Restore one emotion (or, with no name, all 28) to the factory setting. Returns the files written."""
        defaults = self.factory_defaults()
        names = EMOTIONS if name is None else (name,)
        for n in names:
            if n not in defaults:
                raise EmotionError(f"{n!r} has no factory setting; emotions with one: {', '.join(EMOTIONS)}")
        return [self.save(n, defaults[n]) for n in names]


def _check_name(name: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise EmotionError(f"{short_repr(name)} is not a usable emotion name: 1–64 letters, digits, '-' or '_', "
                           "starting with a letter or digit")
