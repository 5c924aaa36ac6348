"""The phoneme (IPA) → THA3 mouth shape table: data, loaded by the same cascade as the animator settings.

Factory defaults (``visemes.json`` inside this package) → the project file (``visemes.json`` beside ``emotions/``,
or ``$TALKINGHEAD_NB_VISEMES``; optional) → per-call overrides. Each layer is a JSON object with any of::

    {"settings": {"pause_close": 0.1, "attack": 0.08, "release": 0.06},
     "unknown": ["aaa", 0.4],
     "phonemes": {"ɑ": "aaa", "t": ["iii", 0.3], "m": "closed", "ː": "keep"}}

A phoneme maps to a shape (``aaa iii uuu eee ooo delta``, fully open), to ``[shape, amount]`` (opened to
``amount``), to ``closed``, or to ``keep`` (stress and length marks: no shape of its own, the previous one holds
on). ``["keep", n]`` gives the previous shape ``n`` more shares of the phoneme's time (``keep`` alone: 1, as for
the length mark; 0 for stress marks, which take no time). ``unknown`` stands for symbols the table lacks.

Settings: ``pause_close``, a pause at least this long (seconds) closes the mouth, shorter ones hold the shape;
``attack``, how long before a shape starts the mouth begins moving to it; ``release``, how long after a shape ends
it lingers while the next one takes over. A bad entry is reported by name and skipped; every other entry applies.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import os
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

from ..cascade import load_cascade
from ..messages import name_list, short_repr
from ..paths import PROJECT_ROOT
from .track import CLOSED, MAX_RAMP, SHAPE_KEYS

KEEP = "keep"
FACTORY_FILE = Path(__file__).with_name("visemes.json")
MAX_SYMBOL = 4  # characters in one table key
SETTINGS: dict[str, tuple[float, float]] = {"pause_close": (0.02, 5.0), "attack": (0.0, MAX_RAMP),
                                             "release": (0.0, MAX_RAMP)}  # seconds: (lowest, highest)


def visemes_file() -> Path:
    """``$TALKINGHEAD_NB_VISEMES``, else the project's ``visemes.json`` (optional: the factory table applies)."""
    return Path(os.environ.get("TALKINGHEAD_NB_VISEMES") or PROJECT_ROOT / "visemes.json")


class Viseme(NamedTuple):
    shape: str      # a key of SHAPE_KEYS, "closed" or "keep"
    amount: float = 1.0


class Part(NamedTuple):
    """One piece of a phoneme: a diphthong has two. ``weight`` is its share of the phoneme's time."""

    symbol: str
    shape: str
    amount: float
    weight: float


def _viseme(value: Any, keep: bool = True) -> Viseme:
    """A table value as a :class:`Viseme`; raises ``ValueError`` with the reason."""
    allowed = [*SHAPE_KEYS, CLOSED, KEEP] if keep else [*SHAPE_KEYS, CLOSED]
    shapes = f"one of {', '.join(allowed)}, or [shape, amount]"
    if isinstance(value, str):
        if value in allowed:
            return Viseme(value)
        raise ValueError(f"unknown shape {short_repr(value)} (expected {shapes})")
    if isinstance(value, list) and len(value) == 2 and value[0] in allowed and value[0] != CLOSED:
        amount = value[1]
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not 0 <= amount <= 1:
            raise ValueError(f"the amount must be a number from 0 to 1, got {short_repr(amount)}")
        return Viseme(value[0], float(amount))
    raise ValueError(f"expected {shapes}, got {short_repr(value)}")


@dataclass(frozen=True)
class VisemeTable:
    """Build one with :func:`load_visemes` or :meth:`factory`; the values are in the factory ``visemes.json``."""

    phonemes: Mapping[str, Viseme] = dataclasses.field(repr=False)  # keys in Unicode NFD
    unknown: Viseme                  # for symbols not in ``phonemes``
    pause_close: float
    attack: float
    release: float

    @classmethod
    def factory(cls) -> VisemeTable:
        """The table shipped with the package."""
        return _factory()

    def merged(self, updates: Any, source: str) -> tuple[VisemeTable, list[str]]:
        """This table with the valid entries of ``updates`` applied, and one message per rejected entry."""
        if not isinstance(updates, Mapping):
            return self, [f"{source}: expected a JSON object with settings, unknown and phonemes, "
                          f"got {type(updates).__name__}"]
        problems = [f"unknown section {short_repr(key)} (sections: settings, unknown, phonemes)"
                    for key in updates if key not in ("settings", "unknown", "phonemes")]
        changes = _settings(updates.get("settings", {}), problems)
        if "unknown" in updates:
            try:
                changes["unknown"] = _viseme(updates["unknown"], keep=False)
            except ValueError as e:
                problems.append(f"unknown: {e}")
        table = _phonemes(updates.get("phonemes", {}), dict(self.phonemes), problems)
        return dataclasses.replace(self, phonemes=table, **changes), [f"{source}: {p}" for p in problems]

    def to_json(self) -> dict[str, Any]:
        return {"settings": {key: getattr(self, key) for key in SETTINGS},
                "unknown": list(self.unknown),
                "phonemes": {k: v.shape if v.amount == 1 or v.shape == CLOSED else list(v)
                             for k, v in self.phonemes.items()}}

    def parts(self, phoneme: str) -> list[Part]:
        """The shapes of one phoneme, in order, by longest match on the table's symbols: "aɪ" gives two parts,
        "ˈɑː" one (the stress mark has nothing before it to hold; the length mark doubles the ɑ's weight).
        Combining diacritics (nasal, syllabic, …), spaces, punctuation and other non-letters add nothing; letters
        and digits not in the table take ``unknown``."""
        text = unicodedata.normalize("NFD", phoneme)
        parts: list[Part] = []
        i = 0
        while i < len(text):
            for n in range(min(MAX_SYMBOL, len(text) - i), 0, -1):
                symbol = text[i:i + n]
                viseme = self.phonemes.get(symbol)
                if viseme is not None:
                    break
            else:
                viseme = None if unicodedata.category(symbol)[0] in "CMPSZ" else self.unknown
            i += len(symbol)
            if viseme is None:
                continue
            if viseme.shape == KEEP:
                if parts:
                    parts[-1] = parts[-1]._replace(weight=parts[-1].weight + viseme.amount)
            else:
                parts.append(Part(symbol, viseme.shape, viseme.amount, 1.0))
        return parts

    def unmapped(self, phoneme: str) -> list[str]:
        """The symbols of ``phoneme`` that the table does not know (they fall back to ``unknown``)."""
        return [p.symbol for p in self.parts(phoneme) if p.symbol not in self.phonemes]


def _settings(settings: Any, problems: list[str]) -> dict[str, float]:
    """The valid settings among ``settings``; a message in ``problems`` for each other one."""
    if not isinstance(settings, Mapping):
        problems.append(f"settings must be an object, got {short_repr(settings)}")
        return {}
    good = {}
    for key, value in settings.items():
        if key not in SETTINGS:
            problems.append(f"unknown setting {short_repr(key)} (settings: {name_list(SETTINGS)})")
            continue
        low, high = SETTINGS[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
            problems.append(f"{key} must be a number from {low:g} to {high:g} seconds, got {short_repr(value)}")
        else:
            good[key] = float(value)
    return good


def _phonemes(phonemes: Any, table: dict[str, Viseme], problems: list[str]) -> dict[str, Viseme]:
    """``table`` with the valid entries of ``phonemes`` set; a message in ``problems`` for each other one."""
    if not isinstance(phonemes, Mapping):
        problems.append(f"phonemes must be an object of symbol: shape, got {short_repr(phonemes)}")
        return table
    for symbol, value in phonemes.items():
        key = unicodedata.normalize("NFD", symbol) if isinstance(symbol, str) else ""
        if not key or len(key) > MAX_SYMBOL or any(c.isspace() for c in key):
            problems.append(f"phoneme {short_repr(symbol)}: a symbol is 1 to {MAX_SYMBOL} characters without spaces")
            continue
        try:
            table[key] = _viseme(value)
        except ValueError as e:
            problems.append(f"phoneme {short_repr(symbol)}: {e}")
    return table


@functools.cache
def _factory() -> VisemeTable:
    blank = VisemeTable({}, Viseme(KEEP), math.nan, math.nan, math.nan)
    table, problems = blank.merged(json.loads(FACTORY_FILE.read_text(encoding="utf-8")), str(FACTORY_FILE))
    if problems or table.unknown.shape == KEEP or any(math.isnan(getattr(table, key)) for key in SETTINGS):
        raise RuntimeError("the factory viseme table is broken: " + "; ".join(problems))
    return table


def load_visemes(project_file: str | os.PathLike | None = None,
                 overrides: Mapping[str, Any] | None = None) -> tuple[VisemeTable, list[str]]:
    """Factory table, then the project file (:func:`visemes_file` unless named; a missing file is fine), then
    ``overrides``. Returns the table and the problems met on the way."""
    return load_cascade(VisemeTable.factory(), project_file, visemes_file(), overrides,
                        fallback="the factory viseme table")
