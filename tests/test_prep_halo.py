"""The halo detector (`prep.halo`) on the example characters and on a sample of the generated corpus
(`prep.corpus`): clean cut-outs give no halo; rings of background colour are found, with their colour."""

from __future__ import annotations

import numpy as np
import pytest

from talkinghead_nb.prep.corpus import CALIBRATION, CHARACTERS, cases, example_rgba, ring
from talkinghead_nb.prep.halo import find_halo
from talkinghead_nb.prep.pixels import colour_name

RINGS = {"white": (255, 255, 255), "green screen": (0, 177, 64), "mid grey": (128, 128, 128), "black": (0, 0, 0),
         "navy": (20, 30, 80)}  # dark ones count beyond the line art
STRIDE = 13  # every 13th case of the calibration corpus: each character, injection and clean variant comes up


@pytest.mark.parametrize("character", CHARACTERS)
def test_clean_originals_have_no_halo(character: str) -> None:
    halo = find_halo(example_rgba(character))
    assert not halo.found, halo.describe()


@pytest.mark.parametrize("character", ["lambda_00", "crypko_01"])
@pytest.mark.parametrize("name", RINGS)
def test_rings_are_found_with_their_colour(character: str, name: str) -> None:
    colour = RINGS[name]
    halo = find_halo(ring(example_rgba(character), colour, width=2, alpha=0.6))
    assert halo.found, halo.describe()
    assert np.abs(np.subtract(halo.colour, colour)).max() <= 20, halo.colour
    assert colour_name(colour) in halo.describe()


def test_sampled_corpus_error_rates() -> None:
    sample = [case for case in cases(CALIBRATION, STRIDE) if not case.borderline]
    positives = [case for case in sample if case.halo]
    negatives = [case for case in sample if not case.halo]
    missed = [case.label for case in positives if not find_halo(case.rgba).found]
    alarms = [case.label for case in negatives if find_halo(case.rgba).found]
    false_negatives, false_positives = len(missed) / len(positives), len(alarms) / len(negatives)
    print(f"sampled corpus: {len(positives)} positives, false negatives {false_negatives:.1%} {missed}; "
          f"{len(negatives)} negatives, false positives {false_positives:.1%} {alarms}")
    assert negatives and positives
    assert false_negatives <= 0.05 and false_positives <= 0.05
