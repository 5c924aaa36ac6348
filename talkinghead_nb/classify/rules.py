"""The rules that turn a message into a score per emotion, reading the cues of a :class:`~.lexicon.Lexicon`.

- Roleplay actions (``*blushes*``) are strong cues: their weights count ``ACTION_BOOST`` times. SillyTavern strips the
  asterisks before it asks, so the action words are cues without them too.
- Negation: a cue up to ``NEGATION_WINDOW`` words after "not", "never", "don't"… gives its weight to the emotions
  the lexicon names for it ("not happy" → disappointment, sadness), within the clause (a comma or "but" ends it).
- Intensifiers ("very", "so") and diminishers ("a bit") just before a cue, a cue written in ALL CAPS or stretched
  ("sooo"), and "!" in the sentence scale it.
- A question adds curiosity; "?!" adds surprise, "??" confusion.
- Long messages: every sentence counts, later ones more (the last ``1 + RECENCY`` times the first).
- Overlapping emotions (the lexicon's neighbours) get ``NEIGHBOUR_SHARE`` of each other's score; ``neutral`` starts
  at ``NEUTRAL_BASE``, so a message without cues is neutral.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping

from .lexicon import Lexicon, tokens

ACTION_BOOST = 1.5
NEGATION_WINDOW = 3
INTENSIFIER_WINDOW = 2
INTENSIFIER = 1.5
DIMINISHER = 0.6
CAPS = 1.5
STRETCHED = 1.3
EXCLAMATION = 0.15      # per "!", up to three
QUESTION = 1.0          # curiosity for a question
QUESTION_SURPRISE = 1.5  # "?!" or "!?"
QUESTION_CONFUSION = 0.8  # "??"
SHOUTING = 0.8          # anger and excitement, when most words of a sentence are in capitals
RECENCY = 0.6
NEIGHBOUR_SHARE = 0.2
NEUTRAL_BASE = 1.2
NEGATED_DEFAULT = {"neutral": 0.5}

ACTION = re.compile(r"\*([^*]+)\*")
SENTENCE_END = re.compile(r"(?<=[.!?…])\s+|\n+")
STRETCH = re.compile(r"(\w)\1{2,}")
CLAUSE_END = frozenset({",", ";", ".", "!", "?", "…", "but"})


def parts(text: str) -> Iterator[tuple[str, bool]]:
    """The sentences of ``text`` in order, each with whether it is a roleplay action (between asterisks)."""
    at = 0
    for action in ACTION.finditer(text):
        yield from ((s, False) for s in SENTENCE_END.split(text[at:action.start()]) if s.strip())
        yield action.group(1), True
        at = action.end()
    yield from ((s, False) for s in SENTENCE_END.split(text[at:]) if s.strip())


def sentence_scores(lexicon: Lexicon, sentence: str, action: bool, symbols: bool = True) -> dict[str, float]:
    """The cues of one sentence, with the rules above applied; ``symbols=False``: the message has no emoji or
    emoticons (a faster path)."""
    scores: dict[str, float] = defaultdict(float)
    plain = sentence
    if symbols:
        for symbol in lexicon.symbol_pattern.findall(sentence):
            for emotion, weight in lexicon.symbols[symbol.lower()].items():
                scores[emotion] += weight
        plain = lexicon.symbol_pattern.sub(" ", sentence)
    written = tokens(plain)
    words = [STRETCH.sub(r"\1", w.lower()) if STRETCH.search(w) else w.lower() for w in written]
    negated_until = scaled_until = -1
    scale = 1.0
    i = 0
    while i < len(words):
        cue = lexicon.match(words, i)
        if cue is None:
            word = words[i]
            if word in CLAUSE_END:
                negated_until = -1
            elif word in lexicon.negators:
                negated_until = i + NEGATION_WINDOW
            elif word in lexicon.intensifiers or word in lexicon.diminishers:
                scaled_until, scale = i + INTENSIFIER_WINDOW, INTENSIFIER if word in lexicon.intensifiers \
                    else DIMINISHER
            i += 1
            continue
        span = written[i:i + len(cue.words)]
        factor = (scale if i <= scaled_until else 1.0) * (ACTION_BOOST if action else 1.0)
        if any(len(w) > 1 and w.isupper() for w in span):
            factor *= CAPS
        if any(STRETCH.search(w) for w in span):
            factor *= STRETCHED
        for emotion, weight in cue.weights.items():
            if i <= negated_until:
                for target, share in lexicon.negated.get(emotion, NEGATED_DEFAULT).items():
                    scores[target] += weight * factor * share
            else:
                scores[emotion] += weight * factor
        i += len(cue.words)
    _punctuation(scores, sentence, written)
    return scores


def _punctuation(scores: dict[str, float], sentence: str, written: list[str]) -> None:
    """Questions, exclamations and shouting."""
    if "?!" in sentence or "!?" in sentence:
        scores["surprise"] += QUESTION_SURPRISE
    elif "??" in sentence:
        scores["confusion"] += QUESTION_CONFUSION
    if written[-1:] == ["?"]:
        scores["curiosity"] += QUESTION
    bangs = min(sentence.count("!"), 3)
    if bangs:
        for emotion in scores:
            scores[emotion] *= 1 + EXCLAMATION * bangs
    letters = [w for w in written if w.isalpha() and len(w) > 1]
    if len(letters) >= 2 and sum(w.isupper() for w in letters) * 2 > len(letters):
        scores["anger"] += SHOUTING
        scores["excitement"] += SHOUTING


def message_scores(lexicon: Lexicon, text: str) -> dict[str, float]:
    """Raw scores (≥ 0) of every emotion of the lexicon for a whole message."""
    sentences = list(parts(text))
    symbols = lexicon.symbol_pattern.search(text) is not None
    total = dict.fromkeys(lexicon.labels, 0.0)
    for k, (sentence, action) in enumerate(sentences):
        weight = 1 + RECENCY * (k / (len(sentences) - 1) if len(sentences) > 1 else 1.0)
        for emotion, score in sentence_scores(lexicon, sentence, action, symbols).items():
            total[emotion] += weight * score
    shared = dict(total)
    for emotion, score in total.items():
        for neighbour in lexicon.neighbours.get(emotion, ()):
            shared[neighbour] += NEIGHBOUR_SHARE * score
    shared["neutral"] += NEUTRAL_BASE
    return shared


def softmax(scores: Mapping[str, float]) -> dict[str, float]:
    """Scores in [0, 1] that sum to 1."""
    top = max(scores.values())
    exps = {label: math.exp(score - top) for label, score in scores.items()}
    total = sum(exps.values())
    return {label: value / total for label, value in exps.items()}
