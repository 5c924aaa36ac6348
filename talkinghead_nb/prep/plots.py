"""Inspection figures for a character image: backgrounds with zoomed edge insets, the edge heat map with alpha
statistics, the stray specks, the alignment overlay on the template, and a repair's before and after. Each returns a
Figure (shown in Jupyter without pyplot)."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.axes import Axes
from matplotlib.patches import Circle, Rectangle
from PIL import Image
from scipy import ndimage

from ..layout import EYEBROW_BOX, FACE_BOX
from ..plots import Figure
from . import analysis as A
from .analysis import DEFAULT_TEMPLATE, template_alpha

BACKGROUNDS = {"dark": (24, 24, 28), "light": (240, 240, 236), "saturated": (0, 200, 80)}
MARK = "#ff3366"  # frames and circles drawn over the character


def _rgba(image: Image.Image | np.ndarray) -> np.ndarray:
    return np.asarray(image.convert("RGBA") if isinstance(image, Image.Image) else image, dtype=np.uint8)


def composite(rgba: np.ndarray, colour: tuple[int, int, int]) -> np.ndarray:
    """``rgba`` over a flat background (straight alpha, sRGB)."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    out = rgba[..., :3] * alpha + np.array(colour, np.float32) * (1.0 - alpha)
    return np.round(out).astype(np.uint8)


def backgrounds_figure(image: Image.Image | np.ndarray, *, insets: int = 3, inset_size: int = 48) -> Figure:
    """The character over dark, light and saturated backgrounds, and zoomed insets of the edge regions with the
    strongest pull toward a matte (where bleed would show), each inset over all three backgrounds."""
    rgba = _rgba(image)
    corners = A.worst_windows(A.edge_bleed(rgba).deviation, insets, inset_size)
    columns = {f"over {name}": composite(rgba, colour) for name, colour in BACKGROUNDS.items()}
    return _with_insets(columns, corners, inset_size, "edge",
                        "Silhouette over different backgrounds: a rim of the old background shows as a halo")


def _with_insets(columns: dict[str, np.ndarray], corners: list[tuple[int, int]], size: int, label: str,
                 title: str) -> Figure:
    """One column per picture: the whole picture with the ``size``² windows at ``corners`` framed and numbered,
    then each window zoomed, one row per window."""
    fig = Figure(figsize=(3 * len(columns), 3.2 + 2.4 * len(corners)))
    grid = fig.add_gridspec(1 + len(corners), len(columns), height_ratios=[3.2] + [2.4] * len(corners))
    for column, (name, picture) in enumerate(columns.items()):
        ax = fig.add_subplot(grid[0, column])
        ax.imshow(picture)
        ax.set_title(name, fontsize=10)
        ax.set_axis_off()
        for number, (top, left) in enumerate(corners, 1):
            ax.add_patch(Rectangle((left, top), size, size, fill=False, edgecolor=MARK, lw=1.2))
            ax.text(left, top - 4, str(number), color=MARK, fontsize=8)
            inset = fig.add_subplot(grid[number, column])
            inset.imshow(picture[top:top + size, left:left + size], interpolation="nearest")
            inset.set_title(f"{label} {number} ({left}, {top}) {name}", fontsize=8)
            inset.set_axis_off()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def edge_figure(image: Image.Image | np.ndarray) -> Figure:
    """Heat map of the outer ring's pull toward white or black, the alpha histogram, and luma against alpha for the
    semi-transparent pixels (the fitted slope: < 0 a white matte, > 0 a black one)."""
    rgba = _rgba(image)
    bleed = A.edge_bleed(rgba)
    fig = Figure(figsize=(13, 4.2))
    ax = fig.add_subplot(1, 3, 1)
    ax.imshow(composite(rgba, (60, 60, 60)) // 3 + 40)
    # The ring is one pixel wide: thicken it for the eye.
    shown = ndimage.grey_dilation(np.nan_to_num(bleed.deviation, nan=-1.0), size=3)
    heat = ax.imshow(np.where(shown < 0, np.nan, shown), cmap="inferno", vmin=0, vmax=1, interpolation="nearest")
    fig.colorbar(heat, ax=ax, fraction=0.046, label="pull toward a matte colour")
    ax.set_title(f"edge bleed: score {bleed.score:.2f}, {_verdict(bleed)}", fontsize=10)
    ax.set_axis_off()

    alpha = rgba[..., 3]
    ax = fig.add_subplot(1, 3, 2)
    ax.hist(alpha[alpha > 0].ravel(), bins=64, color="#4a78b5", log=True)
    ax.set_xlabel("alpha (visible pixels)")
    ax.set_ylabel("pixels (log)")
    shares = A.alpha_shares(rgba)
    ax.set_title(f"alpha: {shares.semi_transparent:.1%} semi-transparent", fontsize=10)

    ax = fig.add_subplot(1, 3, 3)
    rgb = rgba[..., :3].astype(np.float32) / 255
    _, inner = A.edge_rings(rgba)
    reference, defined = A.local_mean(rgb, inner, A.LOCAL_SIGMA)
    semi = (alpha > 5) & (alpha < A.OPAQUE) & defined
    luma = np.array([0.2126, 0.7152, 0.0722], np.float32)
    x, y = alpha[semi] / 255, (rgb[semi] - reference[semi]) @ luma
    ax.scatter(x, y, s=2, alpha=0.3, color="#333333")
    if len(x) >= 2:
        xs = np.linspace(0, 1, 2)
        ax.plot(xs, y.mean() + bleed.matte_slope * (xs - x.mean()), color="#d62728",
                label=f"slope {bleed.matte_slope:+.2f}")
        ax.legend(loc="upper right", fontsize=8)
    ax.axhline(0, color="#999999", lw=0.8)
    ax.set_xlabel("alpha")
    ax.set_ylabel("luma minus the nearby interior's")
    ax.set_title(f"luma vs alpha: slope {bleed.matte_slope:+.2f}, leaning "
                 f"{'black' if bleed.matte_slope > 0 else 'white'}\nverdict (bleed score {bleed.score:.2f}): "
                 f"{_verdict(bleed)}", fontsize=10)
    ax.text(0.02, 0.02, "a matte rim steepens the slope (< 0 white, > 0 black);\ndark line art leans black too: "
            "the score decides", transform=ax.transAxes, fontsize=7, color="#555555",
            bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "none"})
    fig.tight_layout()
    return fig


def _verdict(bleed: A.EdgeBleed) -> str:
    return f"a {bleed.matte} rim" if bleed.matte else "no rim"


def specks_figure(image: Image.Image | np.ndarray) -> Figure:
    """The stray specks, circled: over a dark background (what a viewer sees; faint specks are invisible) and on the
    silhouette as THA3 sees it (every pixel with alpha > 0), with the specks in red."""
    rgba = _rgba(image)
    specks = A.specks(rgba)
    silhouette = np.where(rgba[..., 3:4] > 0, np.uint8(150), np.uint8(236)).repeat(3, axis=-1)
    silhouette[A.speck_mask(rgba)] = (220, 0, 60)
    fig = Figure(figsize=(10, 5.6), layout="constrained")
    for column, (name, picture) in enumerate((("over dark: what a viewer sees", composite(rgba, BACKGROUNDS["dark"])),
                                              ("alpha > 0: what THA3 animates", silhouette)), 1):
        ax = fig.add_subplot(1, 2, column)
        ax.imshow(picture, interpolation="nearest")
        for speck in specks:
            radius = max(speck.height, speck.width) / 2 + 7
            ax.add_patch(Circle((speck.left + speck.width / 2, speck.top + speck.height / 2), radius, fill=False,
                                edgecolor=MARK, lw=1.2))
        ax.set_title(name, fontsize=10)
        ax.set_axis_off()
    summary = (f"{len(specks)} stray speck(s), circled: {sum(s.pixels for s in specks)} px, alpha up to "
               f"{max(s.max_alpha for s in specks)}" if specks else "no stray specks")
    fig.suptitle(f"{summary}\nparts detached from the silhouette: they float in place while the character moves",
                 fontsize=10)
    return fig


def alignment_figure(image: Image.Image | np.ndarray, template: str | os.PathLike = DEFAULT_TEMPLATE) -> Figure:
    """The silhouette (orange) over the template's (blue), with the eyebrow and face crops the networks work on: as
    it is, with the check's numbers (the best shift, no scaling), and as the fit repair (``fit_to_template``) would
    place it (the best scale and shift)."""
    alpha, reference = _rgba(image)[..., 3], template_alpha(template)
    as_is = A.register(alpha, reference, scales=A.POSITION_ONLY)
    fitted = A.register(alpha, reference)
    fig = Figure(figsize=(11, 6.4), layout="constrained")
    for column, (mask, title) in enumerate((
            (alpha > 127, f"as it is; the check (no scaling) finds:\n{as_is.describe()}"),
            (A.placed(alpha, fitted), f"moved as the fit repair (fit_to_template) would:\n{fitted.describe()}")), 1):
        ax = fig.add_subplot(1, 2, column)
        _draw_overlay(ax, mask, reference > 127)
        ax.set_title(title, fontsize=10)
    fig.suptitle("orange: this character, blue: the template, with the crops the networks work on", fontsize=10)
    return fig


def _draw_overlay(ax: Axes, mine: np.ndarray, template: np.ndarray) -> None:
    """Two silhouettes, the template's in blue under this one in orange, and the networks' crops."""
    overlay = np.ones((*template.shape, 3), np.float32)
    overlay[template] = (0.55, 0.7, 0.95)
    overlay[mine] = overlay[mine] * 0.35 + np.array((1.0, 0.55, 0.1)) * 0.65
    ax.imshow(overlay)
    for (top, left, size), name, colour in ((EYEBROW_BOX, "eyebrow", "#6a1b9a"), (FACE_BOX, "face", "#c62828")):
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), size, size, fill=False, edgecolor=colour, lw=1.5))
        ax.text(left + 2, top + size - 6, f"{name} crop {size}²", color=colour, fontsize=8)
    ax.set_axis_off()


def repair_figure(before: Image.Image | np.ndarray, after: Image.Image | np.ndarray, *, title: str = "repair",
                  background: str = "dark", insets: int = 2, inset_size: int = 48) -> Figure:
    """Before and after a repair over one of ``BACKGROUNDS``, and the changed pixels in yellow, with zoomed insets
    where most changed. Images of different sizes (the fit) are shown side by side only."""
    old, new = _rgba(before), _rgba(after)
    colour = BACKGROUNDS[background]
    columns = {"before": composite(old, colour), "after": composite(new, colour)}
    if old.shape != new.shape:
        return _with_insets(columns, [], inset_size, "", f"{title}: {old.shape[1]}×{old.shape[0]} → "
                            f"{new.shape[1]}×{new.shape[0]}")
    changed = (old != new).any(axis=-1)
    columns["changed pixels (yellow)"] = np.where(changed[..., None], np.array((255, 210, 0), np.uint8),
                                               columns["before"] // 3 + 40)
    corners = A.worst_windows(changed.astype(np.float32), insets, inset_size)
    return _with_insets(columns, corners, inset_size, "change",
                        f"{title}: {int(changed.sum())} pixels changed, over {background}")
