"""Background removal against the truth: each example character composited over plain and gradient backgrounds at
512×768 (as a Stable Diffusion render frames it), cut out again by `prep.remove_background`, then fitted to the
template; alpha errors against the original, time per render, and whether the halo detector flags the result.

    python bench/prep_background.py [--characters lambda_00,crypko_03] [--out bench/results/background.txt]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from talkinghead_nb.prep.background import cut_out  # noqa: E402
from talkinghead_nb.prep.corpus import CHARACTERS, RENDERS, alpha_errors, example_rgba, on_canvas, render  # noqa: E402
from talkinghead_nb.prep.fixes import place, placement  # noqa: E402
from talkinghead_nb.prep.halo import find_halo  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--characters", default=",".join(CHARACTERS))
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    lines, worst, times = [], [], []
    for character in args.characters.split(","):
        original = example_rgba(character)
        truth = on_canvas(original)
        for name, background in RENDERS.items():
            started = time.perf_counter()
            result = cut_out(Image.fromarray(render(original, background), "RGB"))
            elapsed = time.perf_counter() - started
            times.append(elapsed)
            cut = np.asarray(result.image)
            where = placement(result.image)  # the truth goes where the cut-out goes: only the cut-out's error counts
            fitted, fitted_truth = (np.asarray(place(image, where)) for image in (result.image, Image.fromarray(truth)))
            sad, mse = alpha_errors(truth, cut)
            _, fitted_mse = alpha_errors(fitted_truth, fitted)
            halo, own = find_halo(fitted), find_halo(fitted_truth)
            worst.append(max(mse, fitted_mse))
            verdict = "none" if not halo.found else halo.describe() + (" (the original too)" if own.found else "")
            lines.append(f"{character:10} {name:14} alpha SAD {sad:7.1f}  MSE {mse:.5f}  after fit MSE {fitted_mse:.5f}"
                         f"  {elapsed:5.2f} s  confidence {result.confidence:.2f}  halo: {verdict}")
            print(lines[-1], flush=True)
    lines.append(f"{len(worst)} renders: alpha MSE (the larger of before and after the fit) mean {np.mean(worst):.5f}, "
                 f"worst {np.max(worst):.5f}; "
                 f"time mean {np.mean(times):.2f} s, worst {np.max(times):.2f} s")
    print(lines[-1])
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
