"""An offline emotion classifier for chat messages: our own lexicon and rules, no model, nothing downloaded.

``classify(text)`` answers every emotion of the project (the 28 of ``emotions/``, ``neutral`` included) with a score
in [0, 1], best first, the scores summing to 1. It is what ``POST /api/classify`` answers SillyTavern with.

- A text with no feeling (or nothing but whitespace) comes out ``neutral``.
- A text over ``MAX_CHARS`` characters is read from its tail: the last ``MAX_CHARS`` characters (from a word start),
  since the end of a reply carries the current feeling.
- ``labels`` keeps only those emotions (custom names are ignored: they are never guessed); ``mapping`` renames
  labels to the user's own emotions, and labels mapped to the same name add their scores.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import cache

from .lexicon import Lexicon
from .rules import message_scores, softmax

__all__ = ["MAX_CHARS", "ClassifyError", "Classifier", "Lexicon", "classify", "default_classifier"]

MAX_CHARS = 4_000  # ≈ 700 words, under 5 ms here; SillyTavern sends at most about 500 characters
WHITESPACE = re.compile(r"\s+")


class ClassifyError(ValueError):
    """Input the classifier cannot read (the message names the problem)."""


class Classifier:
    """The lexicon and the rules; :func:`classify` uses one shared instance."""

    def __init__(self, lexicon: Lexicon | None = None):
        self.lexicon = lexicon or Lexicon.load()

    @property
    def labels(self) -> tuple[str, ...]:
        """Every emotion the classifier can answer, sorted."""
        return self.lexicon.labels

    def classify(self, text: str, *, labels: Sequence[str] | None = None,
                 mapping: Mapping[str, str] | None = None) -> list[tuple[str, float]]:
        """``(label, score)`` for every label kept, best first, scores summing to 1 (see the module's notes)."""
        if not isinstance(text, str):
            raise ClassifyError(f"text must be a string, not {type(text).__name__}")
        kept = self._kept(labels)
        renames = self._renames(mapping)
        if len(text) > MAX_CHARS:
            tail = text[-MAX_CHARS:]
            text = WHITESPACE.split(tail, maxsplit=1)[-1]  # not a half word
        scores = message_scores(self.lexicon, text)
        merged: dict[str, float] = {}
        for label, score in softmax({label: scores[label] for label in kept}).items():
            target = renames.get(label, label)
            merged[target] = merged.get(target, 0.0) + score
        return sorted(merged.items(), key=lambda item: (-item[1], item[0]))

    def _kept(self, labels: Sequence[str] | None) -> tuple[str, ...]:
        if labels is None:
            return self.labels
        if isinstance(labels, str) or not all(isinstance(label, str) for label in labels):
            raise ClassifyError("labels must be a list of emotion names")
        wanted = set(labels)
        kept = tuple(label for label in self.labels if label in wanted)
        if not kept:
            raise ClassifyError(f"none of the labels {sorted(wanted)[:8]} is an emotion the classifier knows: "
                                f"{', '.join(self.labels)}")
        return kept

    def _renames(self, mapping: Mapping[str, str] | None) -> Mapping[str, str]:
        if mapping is None:
            return {}
        if not isinstance(mapping, Mapping):
            raise ClassifyError("mapping must be a dict {classifier label: your emotion}")
        for source, target in mapping.items():
            if source not in self.labels:
                raise ClassifyError(f"mapping: {source!r} is not a label of the classifier; its labels are "
                                    f"{', '.join(self.labels)}")
            if not isinstance(target, str) or not target:
                raise ClassifyError(f"mapping: {source!r} must map to an emotion name, not {target!r}")
        return mapping


@cache
def default_classifier() -> Classifier:
    """The classifier with the package's lexicon, loaded once."""
    return Classifier()


def classify(text: str, *, labels: Sequence[str] | None = None,
             mapping: Mapping[str, str] | None = None) -> list[tuple[str, float]]:
    """Classify one message with the package's lexicon; see :meth:`Classifier.classify`."""
    return default_classifier().classify(text, labels=labels, mapping=mapping)
