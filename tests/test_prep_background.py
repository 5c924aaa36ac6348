"""Background removal with ground truth: example characters composited over plain and gradient backgrounds at 512×768
are cut out again, fitted to the template and compared with the original; busy backgrounds are refused; the edge
repair takes a halo out; the command line walks the whole road."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from scipy import ndimage

from talkinghead_nb import prep
from talkinghead_nb.cli import main
from talkinghead_nb.prep.corpus import CHARACTERS, RENDERS, alpha_errors, example_rgba, on_canvas, render, ring
from talkinghead_nb.prep.fixes import place, placement
from talkinghead_nb.prep.halo import find_halo

MAX_ALPHA_MSE = 0.005
# Every example character, over the four backgrounds in turn (lambda_00 over all of them).
CASES = sorted({("lambda_00", name) for name in RENDERS}
               | {(character, list(RENDERS)[i % len(RENDERS)]) for i, character in enumerate(CHARACTERS)})


@pytest.mark.parametrize(("character", "background"), CASES)
def test_a_render_on_a_simple_background_comes_back_as_the_character(character, background):
    original = example_rgba(character)
    truth = on_canvas(original)
    result = prep.cut_out(Image.fromarray(render(original, RENDERS[background]), "RGB"))
    cut = np.asarray(result.image)
    assert cut.shape == truth.shape  # the render's size
    sad, mse = alpha_errors(truth, cut)
    where = placement(result.image)  # the truth goes where the cut-out goes: only the cut-out's error counts
    fitted, fitted_truth = (np.asarray(place(image, where)) for image in (result.image, Image.fromarray(truth)))
    _, fitted_mse = alpha_errors(fitted_truth, fitted)
    print(f"{character} on {background}: alpha SAD {sad:.0f}, MSE {mse:.5f}, after the fit {fitted_mse:.5f}; "
          f"{result.describe()}")
    assert mse <= MAX_ALPHA_MSE and fitted_mse <= MAX_ALPHA_MSE
    assert result.confidence >= 0.8
    # No halo that the character does not have anyway (the detector's few false alarms are on characters' own rims).
    assert not find_halo(fitted).found or find_halo(fitted_truth).found, find_halo(fitted).describe()


def test_the_background_model_names_the_colour_and_the_gradient():
    original = example_rgba("lambda_00")
    flat = prep.cut_out(Image.fromarray(render(original, RENDERS["green screen"]), "RGB"))
    assert flat.describe().startswith("background: green (#00b140), flat")
    graded = prep.cut_out(Image.fromarray(render(original, RENDERS["blue gradient"]), "RGB"))
    assert "a gradient from" in graded.describe()


def _busy(shape: tuple[int, int], seed: int = 0) -> np.ndarray:
    """A photo-like background: smooth random blobs of every colour."""
    noise = np.random.default_rng(seed).random((*shape, 3))
    return np.clip(ndimage.gaussian_filter(noise, (12, 12, 0)) * 4 - 1.5, 0, 1) * 255


def test_a_busy_background_is_refused_with_a_suggestion():
    original = example_rgba("lambda_00")
    busy = render(original, _busy((768, 512)))
    with pytest.raises(prep.BackgroundError, match="not (simple|plain).*rembg"):
        prep.remove_background(Image.fromarray(busy, "RGB"))
    noisy = render(original, np.clip(np.random.default_rng(1).normal(230, 25, (768, 512, 3)), 0, 255))
    with pytest.raises(prep.BackgroundError, match="not (simple|plain)"):
        prep.remove_background(Image.fromarray(noisy, "RGB"))


def test_an_image_with_transparency_has_no_background_to_remove():
    with pytest.raises(prep.BackgroundError, match="already has transparency"):
        prep.remove_background(Image.fromarray(example_rgba("lambda_00"), "RGBA"))


@pytest.mark.parametrize("colour", [(255, 255, 255), (0, 177, 64), (128, 128, 128)])
def test_the_edge_repair_takes_the_halo_out(colour):
    original = example_rgba("crypko_05")
    dirty = ring(original, colour, 2, 0.6)
    assert find_halo(dirty).found
    repaired = np.asarray(prep.decontaminate_edges(Image.fromarray(dirty, "RGBA")))
    assert not find_halo(repaired).found, find_halo(repaired).describe()
    _, mse = alpha_errors(original, repaired)
    assert mse <= MAX_ALPHA_MSE  # the ring became transparent again; the silhouette is the original's


def test_the_edge_repair_leaves_a_clean_character_alone():
    original = example_rgba("lambda_00")
    assert np.array_equal(np.asarray(prep.decontaminate_edges(Image.fromarray(original, "RGBA"))), original)


def test_the_command_line_walks_from_a_render_to_a_checked_character(tmp_path, capsys):
    source = tmp_path / "render.png"
    Image.fromarray(render(example_rgba("lambda_01"), RENDERS["white"]), "RGB").save(source)
    cut, fitted = tmp_path / "cut.png", tmp_path / "character.png"
    assert main(["repair", str(source), str(cut), "--background"]) == 0
    assert Image.open(cut).size == (512, 768) and Image.open(cut).mode == "RGBA"
    assert main(["repair", str(source), str(fitted), "--background", "--edges", "--fit"]) == 0
    out = capsys.readouterr().out
    assert "background: removed; background: white (#ffffff), flat" in out and "fit: placed on 512×512" in out
    report = prep.check_character(fitted)
    assert report.ok and not report.halo.found, report.text()


def test_the_check_offers_background_removal_for_a_render_without_alpha(tmp_path, capsys):
    source = tmp_path / "render.png"
    Image.fromarray(render(example_rgba("lambda_00"), RENDERS["grey"]), "RGB").save(source)
    assert main(["check", str(source)]) == 1
    assert "--background" in capsys.readouterr().out


def test_a_busy_render_fails_on_the_command_line_with_the_reason(tmp_path, capsys):
    source = tmp_path / "photo.png"
    Image.fromarray(render(example_rgba("lambda_00"), _busy((768, 512))), "RGB").save(source)
    assert main(["repair", str(source), str(tmp_path / "out.png"), "--background"]) == 1
    assert "the background is not" in capsys.readouterr().err
    assert not (tmp_path / "out.png").exists()
