"""Background removal against the truth: each example character composited over plain and gradient backgrounds at
512×768 (as a Stable Diffusion render frames it), cut out again by `prep.remove_background`, then fitted to the
template; alpha errors against the original, time per render, and whether the halo detector flags the result.
Then two harder sets, each with a calibration part and a held-out part that no threshold was tuned on: characters
with whitened (near-white) garments on off-white, grainy backgrounds (holes cut into the character), and every
character on pale backgrounds (background colour left on the hair tips: the fringe; stray specks after the fit).

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

from talkinghead_nb.prep.analysis import specks  # noqa: E402
from talkinghead_nb.prep.background import BackgroundError, cut_out  # noqa: E402
from talkinghead_nb.prep.corpus import (  # noqa: E402
    CHARACTERS,
    GRAINY,
    GRAINY_HELD_OUT,
    PASTELS,
    PASTELS_HELD_OUT,
    RENDERS,
    alpha_errors,
    example_rgba,
    fringe_share,
    grainy_renders,
    hole_share,
    on_canvas,
    render,
)
from talkinghead_nb.prep.fixes import fit_to_template, place, placement  # noqa: E402
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
    for name, plan in (("calibration", GRAINY), ("held-out", GRAINY_HELD_OUT)):
        lines += holes(name, plan)
    for name, backgrounds in (("calibration", PASTELS), ("held-out", PASTELS_HELD_OUT)):
        lines += fringes(name, backgrounds, args.characters.split(","))
    if args.out:
        args.out.write_text("\n".join(lines) + "\n")


def holes(name: str, plan) -> list[str]:
    """Near-white garments on grainy off-white: the share of each character's inner opaque pixels cut out."""
    shares, lines = [], []
    for label, truth, picture in grainy_renders(plan):
        try:
            shares.append(hole_share(truth, np.asarray(cut_out(Image.fromarray(picture, "RGB")).image)))
        except BackgroundError:
            lines.append(f"  {label:55} refused")
            continue
        lines.append(f"  {label:55} holes {shares[-1]:.3%}")
    lines.append(f"grainy off-white, {name}: {len(shares)} renders cut out, holes mean {np.mean(shares):.3%}, "
                 f"worst {np.max(shares):.3%}")
    print("\n".join(lines), flush=True)
    return lines


def fringes(name: str, backgrounds: dict, characters: list[str]) -> list[str]:
    """Pale backgrounds: background colour left on soft pixels (share of the outline) and stray specks after the
    fit."""
    shares, speckled, lines = [], 0, []
    for character in characters:
        original = example_rgba(character)
        for label, background in backgrounds.items():
            try:
                image = cut_out(Image.fromarray(render(original, background), "RGB")).image
            except BackgroundError:
                lines.append(f"  {character:10} {label:20} refused")
                continue
            shares.append(fringe_share(on_canvas(original), np.asarray(image), background))
            count = len(specks(np.asarray(fit_to_template(image))))
            speckled += count > 0
            lines.append(f"  {character:10} {label:20} fringe {shares[-1]:.2%} of the outline, specks after the fit "
                         f"{count}")
    lines.append(f"pale backgrounds, {name}: {len(shares)} renders cut out, fringe mean {np.mean(shares):.2%}, worst "
                 f"{np.max(shares):.2%}; {speckled} with stray specks")
    print("\n".join(lines), flush=True)
    return lines


if __name__ == "__main__":
    main()
