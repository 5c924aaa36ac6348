"""The lexicon: cue terms with their emotions and weights, emoji and emoticons, and the word lists the rules read
(negators, intensifiers, diminishers), loaded from ``lexicon.json`` next to this file.

A cue term is one or more words; a word ending in ``*`` matches every word that starts with it (``blush*``:
blush, blushes, blushing). Punctuation the rules read (``! ? . , ; …``) can be part of a term (``what?!``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*|[!?.,;…]", re.IGNORECASE)
TERM_TOKEN = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*\*?|[!?.,;…]")  # a word of a cue may end in '*'
KEY_LENGTH = 3  # a '*' word is found by its first three letters, so it needs at least three before the '*'
LEXICON_FILE = "lexicon.json"


def tokens(text: str) -> list[str]:
    """The words (with inner apostrophes and hyphens: "don't", "d-don't") and punctuation marks of ``text``, in the
    case they were written (the rules read ALL CAPS)."""
    return TOKEN.findall(text.replace("’", "'"))


def _literal(word: str) -> str:
    return word[:-1] if word.endswith("*") else word


def _word_matches(token: str, word: str) -> bool:
    return token.startswith(word[:-1]) if word.endswith("*") else token == word


@dataclass(frozen=True)
class Cue:
    """A term and the emotions it suggests."""

    words: tuple[str, ...]
    weights: Mapping[str, float]

    def matches(self, words: Sequence[str], start: int) -> bool:
        """Whether the lowercase ``words`` from ``start`` on begin with this term."""
        end = start + len(self.words)
        return end <= len(words) and all(map(_word_matches, words[start:end], self.words))


@dataclass(frozen=True)
class Lexicon:
    """Everything the rules look up. Build it with :meth:`load` (the package's file) or :meth:`from_json`."""

    labels: tuple[str, ...]
    phrases: Mapping[str, tuple[Cue, ...]]     # terms of several words by their first word, longest first
    words: Mapping[str, Cue]                     # one-word terms without '*'
    prefixes: Mapping[str, tuple[Cue, ...]]    # one-word terms with '*', by their first KEY_LENGTH letters
    symbols: Mapping[str, Mapping[str, float]]  # emoji or emoticon (lowercase) -> weights
    symbol_pattern: re.Pattern[str]
    negated: Mapping[str, Mapping[str, float]]
    neighbours: Mapping[str, tuple[str, ...]]
    negators: frozenset[str]
    intensifiers: frozenset[str]
    diminishers: frozenset[str]

    @classmethod
    def load(cls, path: str | Path | None = None) -> Lexicon:
        """The lexicon in ``path``, or the one shipped with the package."""
        if path is None:
            text = resources.files(__package__).joinpath(LEXICON_FILE).read_text(encoding="utf-8")
        else:
            text = Path(path).read_text(encoding="utf-8")
        return cls.from_json(json.loads(text))

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Lexicon:
        """Build from the structure of ``lexicon.json``; a term that cannot work is a ``ValueError`` naming it."""
        labels = tuple(sorted(data["cues"]))
        terms: dict[tuple[str, ...], dict[str, float]] = {}
        for emotion, entries in data["cues"].items():
            for term, weight in entries.items():
                words = tuple(TERM_TOKEN.findall(term.lower().replace("’", "'")))
                if not words or (len(words) == 1 and words[0].endswith("*") and len(words[0]) <= KEY_LENGTH) or \
                        (len(words) > 1 and words[0].endswith("*")):
                    raise ValueError(f"lexicon: cue {term!r} of {emotion!r}: a '*' word needs {KEY_LENGTH} letters "
                                     "before the '*' and cannot begin a term of several words")
                terms.setdefault(words, {})[emotion] = float(weight)
        phrases: dict[str, list[Cue]] = {}
        prefixes: dict[str, list[Cue]] = {}
        for words, weights in terms.items():
            if len(words) > 1:
                phrases.setdefault(_literal(words[0]), []).append(Cue(words, weights))
            elif words[0].endswith("*"):
                prefixes.setdefault(words[0][:KEY_LENGTH], []).append(Cue(words, weights))
        for found in (*phrases.values(), *prefixes.values()):
            found.sort(key=lambda c: (-len(c.words), -sum(len(_literal(w)) for w in c.words)))
        symbols: dict[str, dict[str, float]] = {}
        for emotion, entries in data["symbols"].items():
            for symbol, weight in entries.items():
                symbols.setdefault(symbol.lower(), {})[emotion] = float(weight)
        unknown = {e for part in ("negated", "neighbours", "symbols") for e in data[part]} - set(labels)
        if unknown:
            raise ValueError(f"lexicon: {sorted(unknown)} are not among the emotions of 'cues'")
        return cls(labels=labels,
                   phrases={key: tuple(found) for key, found in phrases.items()},
                   words={w[0]: Cue(w, weights) for w, weights in terms.items() if len(w) == 1 and "*" not in w[0]},
                   prefixes={key: tuple(found) for key, found in prefixes.items()},
                   symbols=symbols,
                   symbol_pattern=_symbol_pattern(symbols),
                   negated=data["negated"],
                   neighbours={e: tuple(n) for e, n in data["neighbours"].items()},
                   negators=frozenset(data["negators"]),
                   intensifiers=frozenset(data["intensifiers"]),
                   diminishers=frozenset(data["diminishers"]))

    def match(self, words: Sequence[str], start: int) -> Cue | None:
        """The cue that the lowercase ``words`` begin with at ``start``, if any: the longest term, and of one-word
        terms an exact one before a ``*`` one."""
        word = words[start]
        for cue in self.phrases.get(word, ()):
            if cue.matches(words, start):
                return cue
        if word in self.words:
            return self.words[word]
        return next((cue for cue in self.prefixes.get(word[:KEY_LENGTH], ()) if word.startswith(cue.words[0][:-1])),
                    None)


def _symbol_pattern(symbols: Mapping[str, object]) -> re.Pattern[str]:
    """One pattern for all emoji and emoticons, longest first; an emoticon that starts or ends with a letter or
    digit (":d", "<3") must not touch a word (":done" and "<30" do not count)."""
    parts = []
    for symbol in sorted(symbols, key=len, reverse=True):
        before = r"(?<!\w)" if symbol[0].isalnum() else ""
        after = r"(?!\w)" if symbol[-1].isalnum() else ""
        parts.append(before + re.escape(symbol) + after)
    return re.compile("|".join(parts), re.IGNORECASE)
