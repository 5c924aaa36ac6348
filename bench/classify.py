"""How well the offline classifier (talkinghead_nb.classify) labels our own chat sentences, and how fast.

In bench/classify_data/ (each row: emotion<TAB>text, all our own sentences): tuning.tsv is what the lexicon and rules
were adjusted to; heldout.tsv was written before the lexicon and never used to tune it (but by the same author, so its
figures flatter); indirect.tsv was written after the lexicon, on purpose without the obvious emotion words, and never
used to tune (a lower bound). Each part is scored as written and as SillyTavern sends it (without asterisks and
quotes).

    .venv/bin/python bench/classify.py [--errors tuning] > bench/results/classify-cpu-<date>.txt
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections import Counter
from pathlib import Path

from talkinghead_nb.classify import MAX_CHARS, Classifier

DATA = Path(__file__).resolve().parent / "classify_data"
PARTS = ("tuning", "heldout", "indirect")

# Pairs of emotions a reader could also give to many of these sentences; a top-1 answer with the other one of its
# pair is counted apart ("near"), never as right.
NEAR_PAIRS: dict[frozenset[str], str] = {
    frozenset({"joy", "excitement"}): "both are happy; excitement is joy about what is coming",
    frozenset({"sadness", "grief"}): "grief is sadness about a death or a loss",
    frozenset({"annoyance", "anger"}): "the same feeling at two strengths",
    frozenset({"nervousness", "fear"}): "the same feeling at two strengths",
    frozenset({"admiration", "approval"}): "praise of a person vs. of a choice; 'good job' is either",
    frozenset({"disappointment", "sadness"}): "disappointment is sadness about a hope that failed",
    frozenset({"surprise", "realization"}): "both are a sudden 'oh!'; realization is a surprise from within",
}


def load(part: str) -> list[tuple[str, str]]:
    rows = []
    for line in (DATA / f"{part}.tsv").read_text(encoding="utf-8").splitlines():
        if line and not line.startswith("#"):
            label, text = line.split("\t", 1)
            rows.append((label, text))
    return rows


def as_sillytavern_sends(text: str) -> str:
    return text.replace("*", "").replace('"', "")


def evaluate(classifier: Classifier, rows: list[tuple[str, str]]) -> tuple[float, float, float, Counter, list]:
    """Top-1, top-3, top-1 counting near pairs, confusions (truth, answer), and the wrong rows."""
    top1 = top3 = near = 0
    confusions: Counter[tuple[str, str]] = Counter()
    wrong = []
    for label, text in rows:
        ranked = [name for name, _ in classifier.classify(text)]
        top1 += ranked[0] == label
        top3 += label in ranked[:3]
        near += ranked[0] == label or frozenset({label, ranked[0]}) in NEAR_PAIRS
        if ranked[0] != label:
            confusions[(label, ranked[0])] += 1
            wrong.append((label, ranked[:3], text))
    n = len(rows)
    return top1 / n, top3 / n, near / n, confusions, wrong


def timing(classifier: Classifier, texts: list[str], repeats: int) -> tuple[float, float, float]:
    """Median wall-clock ms, median CPU ms and worst wall-clock ms per message over ``repeats`` passes (the CPU time
    is what the machine's other load cannot inflate)."""
    wall, cpu = [], []
    for _ in range(repeats):
        for text in texts:
            start, start_cpu = time.perf_counter(), time.process_time()
            classifier.classify(text)
            cpu.append((time.process_time() - start_cpu) * 1000)
            wall.append((time.perf_counter() - start) * 1000)
    return statistics.median(wall), statistics.median(cpu), max(wall)


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else ():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--errors", choices=PARTS[:1], help="list the wrong answers of the tuning part (the "
                        "others' are not listed: they are not for tuning)")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    classifier = Classifier()
    data = {part: load(part) for part in PARTS}
    print(f"talkinghead_nb.classify on {cpu_name()}, Python "
          f"{platform.python_version()}; {len(classifier.labels)} labels")
    for part, rows in data.items():
        per_label = Counter(label for label, _ in rows)
        print(f"\n{part}: {len(rows)} sentences, {min(per_label.values())}-{max(per_label.values())} per emotion")
        for form, convert in (("as written", str), ("as SillyTavern sends", as_sillytavern_sends)):
            top1, top3, near, confusions, wrong = evaluate(classifier, [(lab, convert(t)) for lab, t in rows])
            print(f"  {form:<22} top-1 {top1:6.1%}   top-3 {top3:6.1%}   top-1 or its near pair {near:6.1%}")
            if part != "tuning" and form == "as written":
                print("  most confused (truth -> answer):",
                      ", ".join(f"{t}->{a} ×{n}" for (t, a), n in confusions.most_common(10)))
            if part == args.errors and form == "as written":
                for label, top, text in wrong:
                    print(f"    {label:<15} {'/'.join(top):<40} {text[:110]}")
    print("\nnear pairs (counted apart, never as right):")
    for pair, why in NEAR_PAIRS.items():
        print(f"  {'/'.join(sorted(pair)):<28} {why}")
    texts = [text for rows in data.values() for _, text in rows]
    classifier.classify(texts[0])  # warm
    wall, cpu, worst = timing(classifier, texts, args.repeats)
    longest = " ".join(texts) * 3
    long_wall, long_cpu, _ = timing(classifier, [longest], 5)
    print(f"\ntime per message ({len(texts)} messages × {args.repeats}, load average "
          f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores): median {wall:.3f} ms ({cpu:.3f} ms CPU), worst "
          f"{worst:.3f} ms; one {len(longest):,}-character message (read from its last {MAX_CHARS:,}): "
          f"{long_wall:.2f} ms ({long_cpu:.2f} ms CPU)")

if __name__ == "__main__":
    main()
