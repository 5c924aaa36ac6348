"""How well the halo detector (`prep.halo.find_halo`) tells contaminated cut-outs from clean ones, on the generated
corpus (`prep/corpus.py`): the calibration plan and the held-out plan.

    python bench/prep_halo.py [--plan calibration|held-out|both] [--misses 20] [--out bench/results/halo.txt]

Prints, per plan: cases, false-negative rate (a visible halo that is not reported), false-positive rate (a clean or
invisible case that is), the slowest case, and the misclassified cases. Borderline cases
(a visible share in the corpus's don't-care band) are counted apart and left out of both rates.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import publish  # noqa: E402
from talkinghead_nb.prep.corpus import CALIBRATION, HELD_OUT, CorpusPlan, cases  # noqa: E402
from talkinghead_nb.prep.halo import find_halo  # noqa: E402

PLANS = {"calibration": CALIBRATION, "held-out": HELD_OUT}


def evaluate(name: str, plan: CorpusPlan, misses: int) -> list[str]:
    """The lines of one plan's report."""
    counts, slowest, wrong, borderline = Counter(), (0.0, ""), [], Counter()
    for case in cases(plan):
        started = time.perf_counter()
        halo = find_halo(case.rgba)
        elapsed = time.perf_counter() - started
        slowest = max(slowest, (elapsed, case.label))
        if case.borderline:
            borderline[halo.found] += 1
            continue
        truth = "positive" if case.halo else "negative"
        counts[truth, halo.found] += 1
        if halo.found != case.halo:
            wrong.append(f"    {'missed' if case.halo else 'false alarm'}: {case.label} — {halo.describe()}")
    lines = [f"{name}: {sum(counts.values())} cases ({counts['positive', True] + counts['positive', False]} with a "
             f"visible halo) and {borderline.total()} borderline ones left out ({borderline[True]} reported), "
             f"slowest {slowest[0]:.2f} s ({slowest[1]})"]
    positives = counts["positive", True] + counts["positive", False]
    negatives = counts["negative", True] + counts["negative", False]
    lines.append(f"  false negatives {counts['positive', False]}/{positives} = "
                 f"{counts['positive', False] / max(positives, 1):.1%}, false positives "
                 f"{counts['negative', True]}/{negatives} = {counts['negative', True] / max(negatives, 1):.1%}")
    lines += wrong[:misses] + ([f"    … and {len(wrong) - misses} more"] if len(wrong) > misses else [])
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plan", choices=(*PLANS, "both"), default="both")
    parser.add_argument("--misses", type=int, default=20, help="how many misclassified cases to list per plan")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    lines = []
    for name, plan in PLANS.items():
        if args.plan in (name, "both"):
            lines += evaluate(name, plan, args.misses)
    publish(lines, args.out)


if __name__ == "__main__":
    main()
