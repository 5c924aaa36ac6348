"""Character checks, repairs and inspection plots on the example characters and on broken copies of them."""

from __future__ import annotations

import io
import re
import subprocess
import sys

import numpy as np
import pytest
from matplotlib.patches import Circle
from PIL import Image
from scipy import ndimage

from talkinghead_nb.character import example_path, load_character
from talkinghead_nb.prep import (
    ERROR,
    PASS,
    REPAIRS,
    WARNING,
    alignment_figure,
    backgrounds_figure,
    check_character,
    decontaminate_edges,
    edge_figure,
    fit_to_template,
    remove_specks,
    repair_figure,
    save_new,
    specks_figure,
)
from talkinghead_nb.prep.analysis import (
    OPAQUE,
    Speck,
    register,
    speck_mask,
    specks,
    template_alpha,
)
from talkinghead_nb.prep.halo import find_halo

EXAMPLES = ["lambda_00", "lambda_01"] + [f"crypko_0{i}" for i in range(8)]


def rgba_of(name: str) -> np.ndarray:
    return np.array(Image.open(example_path(name)).convert("RGBA"))


def png(image: Image.Image | np.ndarray, fmt: str = "PNG") -> bytes:
    image = Image.fromarray(image) if isinstance(image, np.ndarray) else image
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def with_matte_rim(rgba: np.ndarray, matte: int) -> np.ndarray:
    """What a cut-out from a white (255) or black (0) background looks like with a careless mask: the
    semi-transparent pixels composited over the matte, and a one-pixel rim of matte colour around the silhouette."""
    out = rgba.astype(np.float32)
    alpha = out[..., 3:4] / 255
    semi = (rgba[..., 3] > 0) & (rgba[..., 3] < OPAQUE)
    out[..., :3][semi] = (alpha * out[..., :3] + (1 - alpha) * matte)[semi]
    rim = (rgba[..., 3] >= OPAQUE) & ndimage.binary_dilation(rgba[..., 3] < OPAQUE, iterations=1)
    out[..., :3][rim] = matte
    return np.round(out).astype(np.uint8)


def levels(report) -> dict[str, str]:
    return {f.check: f.level for f in report.findings}


def test_a_good_character_passes_everything():
    report = check_character(example_path("lambda_00"))
    assert report.ok and not report.warnings, str(report)
    assert set(levels(report)) == {"format", "size", "alpha", "coverage", "specks", "hidden", "edges", "alignment"}
    assert "lambda_00" in str(report) and "<table>" in report._repr_html_()


@pytest.mark.parametrize(("make", "check", "level", "words"), [
    (lambda a: png(Image.fromarray(a).convert("RGB")), "alpha", ERROR, "no alpha channel"),
    (lambda a: png(Image.fromarray(a).convert("RGB"), "JPEG"), "format", ERROR, "JPEG"),
    (lambda a: png(Image.fromarray(a).resize((512, 768))), "size", ERROR, "512×768"),
    (lambda a: png(Image.fromarray(a).convert("RGB").convert("P")), "alpha", ERROR, "mode P"),
    (lambda a: png(np.zeros_like(a)), "coverage", ERROR, "fully transparent"),
    (lambda a: png(np.dstack([a[..., :3], np.full(a.shape[:2], 255, np.uint8)])), "coverage", ERROR,
     "no transparent background"),
    (lambda a: png(a)[:3000], "file", ERROR, "damaged or truncated"),
    (lambda a: b"definitely not an image", "file", ERROR, "not an image"),
])
def test_broken_inputs_get_an_error_finding_with_the_fix(make, check, level, words):
    report = check_character(make(rgba_of("crypko_00")))
    finding = next(f for f in report.findings if f.check == check)
    assert finding.level == level and words in finding.message, str(report)
    assert not report.ok
    assert finding.fix or check == "file"  # a file that cannot be read: the message itself says what to do


def test_palette_png_with_transparency_is_a_warning_about_jagged_edges():
    rgba = rgba_of("crypko_00")
    palette = Image.fromarray(rgba).convert("P", palette=Image.Palette.ADAPTIVE)
    cut = np.array(palette)
    cut[rgba[..., 3] < 128] = 255
    palette = Image.fromarray(cut, "P")
    palette.putpalette(Image.fromarray(rgba).convert("P", palette=Image.Palette.ADAPTIVE).getpalette())
    data = io.BytesIO()
    palette.save(data, "PNG", transparency=255)
    report = check_character(data.getvalue())
    assert levels(report)["alpha"] == WARNING and "jagged" in str(report)


def test_specks_hidden_colour_and_see_through_bodies_are_warnings():
    rgba = rgba_of("crypko_00")
    rgba[5:9, 5:9] = (200, 30, 30, 255)          # a speck in the corner
    rgba[(rgba[..., 3] == 0)] = (255, 255, 255, 0)  # a white background left under zero alpha
    report = check_character(png(rgba))
    assert levels(report)["specks"] == WARNING and "stray speck" in str(report)
    assert speck_mask(rgba)[5:9, 5:9].all()
    assert Speck(5, 5, 4, 4, 16, 255) in specks(rgba) and specks(rgba)[0].pixels >= specks(rgba)[-1].pixels
    assert "fix: prep.remove_specks(image), or erase them in an image editor" in str(report)
    assert levels(report)["hidden"] == WARNING
    cleaned = np.array(remove_specks(Image.fromarray(rgba)))
    kept = ~speck_mask(rgba)
    assert cleaned[5:9, 5:9, 3].max() == 0 and np.array_equal(cleaned[kept], rgba[kept])
    ghost = rgba_of("crypko_00")
    ghost[..., 3] = np.where(ghost[..., 3] > 0, 160, 0)
    assert levels(check_character(png(ghost)))["coverage"] == WARNING


@pytest.mark.parametrize("name", ["lambda_01", "crypko_01", "crypko_06"])
def test_edge_check_reports_a_white_rim_by_its_colour(name):
    rim = with_matte_rim(rgba_of(name), 255)
    report = check_character(png(rim))
    edges = next(f for f in report.findings if f.check == "edges")
    assert edges.level == WARNING and "a white halo" in edges.message and "#ffffff" in edges.message, edges.message
    assert report.halo.found and report.halo.colour == (255, 255, 255)


def test_decontamination_removes_an_injected_rim_and_nothing_else():
    rim = with_matte_rim(rgba_of("crypko_01"), 255)
    repaired = np.array(decontaminate_edges(Image.fromarray(rim)))
    assert levels(check_character(png(repaired)))["edges"] == PASS
    outline = ndimage.binary_dilation(rim[..., 3] < OPAQUE, iterations=4)
    assert np.array_equal(repaired[~outline], rim[~outline])  # the inside is untouched


def test_misaligned_character_is_reported_and_fit_to_template_places_it():
    rgba = rgba_of("lambda_01")
    shifted = np.roll(rgba, (40, -30), axis=(0, 1))
    report = check_character(png(shifted))
    assert levels(report)["alignment"] == WARNING
    alignment = next(f for f in report.findings if f.check == "alignment")
    assert "the face crop is rows 32–224, columns 160–352" in alignment.message
    assert (report.registration.dx, report.registration.dy) == (pytest.approx(30, abs=3), pytest.approx(-40, abs=3))
    # A 600×900 canvas with the character smaller and off-centre, as a Stable Diffusion render might be.
    canvas = Image.new("RGBA", (600, 900))
    canvas.paste(Image.fromarray(rgba).resize((440, 440), Image.Resampling.LANCZOS), (100, 40))
    fitted = fit_to_template(canvas)
    assert fitted.size == (512, 512)
    placed = register(np.asarray(fitted)[..., 3], template_alpha(), scales=(1.0,))
    assert abs(placed.dx) <= 16 and abs(placed.dy) <= 16 and placed.overlap > 0.75
    report = check_character(png(fitted))
    assert report.ok and levels(report)["alignment"] == PASS, str(report)


def test_repairs_never_overwrite(tmp_path):
    source = tmp_path / "in.png"
    source.write_bytes(png(rgba_of("crypko_00")))
    with pytest.raises(FileExistsError, match="input image"):
        save_new(Image.open(source), source, source=source)
    target = save_new(Image.open(source), tmp_path / "out.png", source=source)
    with pytest.raises(FileExistsError, match="exists"):
        save_new(Image.open(source), target)
    with pytest.raises(ValueError, match="a repaired character is a PNG"):
        save_new(Image.open(source), tmp_path / "out.jpg")
    assert load_character(target).name == "out"


def test_inspection_plots_return_figures_with_content():
    rim = with_matte_rim(rgba_of("crypko_01"), 255)
    for figure in (backgrounds_figure(rim), edge_figure(rim), alignment_figure(rim)):
        png_bytes = figure._repr_png_()
        assert Image.open(io.BytesIO(png_bytes)).size[0] > 300
        assert len(figure.axes) >= 1
    assert "a white halo" in edge_figure(rim)._suptitle.get_text()
    assert len(backgrounds_figure(rim).axes) == 3 + 3 * 3  # three backgrounds, three insets each


def test_character_and_template_are_example_names_or_paths(tmp_path):
    copy = tmp_path / "my_template.png"
    copy.write_bytes(example_path("lambda_01").read_bytes())
    assert np.array_equal(template_alpha("lambda_01"), template_alpha(copy))
    assert not np.array_equal(template_alpha("lambda_01"), template_alpha())
    assert np.array_equal(check_character("lambda_01").rgba, rgba_of("lambda_01"))
    assert "no example character 'lambda_99'" in check_character("lambda_99").findings[0].message


def test_character_prep_needs_no_engine():
    """The crop boxes live in a ground-floor module; the checks and figures load neither the networks nor pyplot."""
    script = ("import sys, talkinghead_nb.layout; assert 'torch' not in sys.modules; "
              "from talkinghead_nb import prep; prep.specks_figure(prep.check_character('lambda_01').rgba); "
              "assert 'matplotlib.pyplot' not in sys.modules, 'figures must not touch pyplot'; "
              "print(sorted(m for m in sys.modules if m.startswith('talkinghead_nb.eng')))")
    out = subprocess.run([sys.executable, "-c", script], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_report_and_alignment_figure_label_their_numbers_alike():
    """The check moves the character only; the fit also scales it: the figure shows both, each named."""
    report = check_character(example_path("lambda_01"))
    position = report.registration
    assert position.scale == 1.0
    finding = next(f for f in report.findings if f.check == "alignment")
    assert finding.message == f"best overlay on the template without scaling: {position.describe()}"
    left, right = alignment_figure(report.rgba).axes
    assert "the check (no scaling)" in left.get_title() and position.describe() in left.get_title()
    fitted = register(report.rgba[..., 3], template_alpha())
    assert fitted.scale != 1.0 and "fit_to_template" in right.get_title()
    assert fitted.describe() in right.get_title() and fitted.describe().startswith(f"scale {fitted.scale:.2f}, ")


@pytest.mark.parametrize("matte", [None, 255])
def test_edge_figure_says_what_the_check_says(matte):
    rgba = rgba_of("lambda_01") if matte is None else with_matte_rim(rgba_of("lambda_01"), matte)
    figure = edge_figure(rgba)
    finding = next(f for f in check_character(png(rgba)).findings if f.check == "edges")
    assert figure._suptitle.get_text() == f"edges: {find_halo(rgba).describe()}"
    assert finding.message.startswith(find_halo(rgba).describe())
    titles = " ".join(ax.get_title() for ax in figure.axes)
    assert ("estimated background:\nwhite #ffffff" in titles) if matte else ("halo pixels marked" in titles)


def _circles(axes) -> int:
    return sum(isinstance(patch, Circle) for patch in axes.patches)


def test_specks_figure_marks_every_speck():
    found = specks(rgba_of("lambda_01"))
    figure = specks_figure(rgba_of("lambda_01"))
    assert [_circles(ax) for ax in figure.axes] == [len(found)] * 2 == [12, 12]
    assert figure._suptitle.get_text().startswith(f"12 stray speck(s), circled: {sum(s.pixels for s in found)} px")
    clean = specks_figure(rgba_of("lambda_00"))
    assert [_circles(ax) for ax in clean.axes] == [0, 0] and clean._suptitle.get_text().startswith("no stray specks")


def test_repair_figure_shows_before_after_and_the_changes():
    rim = with_matte_rim(rgba_of("crypko_01"), 255)
    repaired = decontaminate_edges(Image.fromarray(rim))
    figure = repair_figure(rim, repaired, title="decontaminate_edges", insets=2)
    changed = int((rim != np.asarray(repaired)).any(axis=-1).sum())
    assert figure._suptitle.get_text() == f"decontaminate_edges: {changed} pixels changed, over dark"
    assert {"before", "after", "changed pixels (yellow)"} <= {ax.get_title() for ax in figure.axes}
    assert len(figure.axes) == 3 * 3 and Image.open(io.BytesIO(figure._repr_png_())).size[0] > 300
    tall = Image.fromarray(rgba_of("crypko_01")).resize((512, 768))
    fitted = repair_figure(tall, fit_to_template(tall), title="fit")
    assert len(fitted.axes) == 2 and fitted._suptitle.get_text() == "fit: 512×768 → 512×512"


def test_report_text_names_repairs_as_the_caller_writes_them():
    report = check_character(png(with_matte_rim(rgba_of("crypko_01"), 255)))
    assert list(REPAIRS) == ["background", "fit", "specks", "hidden", "edges"]
    assert "fix: prep.decontaminate_edges(image), or erase it by hand" in str(report)
    text = report.text(lambda repair: f"talkinghead-nb repair in.png out.png --{repair}")
    assert "fix: talkinghead-nb repair in.png out.png --edges, or erase it by hand" in text
    assert "prep." not in text and "`" not in text
    html = report._repr_html_()
    cells = re.findall(r"<(td|th) style='([^']*)'", html)
    assert len(cells) == 4 * (1 + len(report.findings)) and all(s.startswith("text-align:left") for _, s in cells)
