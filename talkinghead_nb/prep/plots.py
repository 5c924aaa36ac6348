"""Inspection figures for a character image: backgrounds with zoomed edge insets, the edge heat map with alpha
statistics, and the alignment overlay on the template. Each returns a Figure (shown in Jupyter without pyplot)."""

from __future__ import annotations

import os

import numpy as np
from matplotlib.patches import Rectangle
from PIL import Image
from scipy import ndimage

from ..engine.poser import EYEBROW_BOX, FACE_BOX
from ..plots import Figure
from . import analysis as A
from .checks import DEFAULT_TEMPLATE, template_alpha

BACKGROUNDS = {"dark": (24, 24, 28), "light": (240, 240, 236), "saturated": (0, 200, 80)}


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
    rows = 1 + len(corners)
    fig = Figure(figsize=(9, 3.2 + 2.4 * len(corners)))
    grid = fig.add_gridspec(rows, 3, height_ratios=[3.2] + [2.4] * len(corners))
    for column, (name, colour) in enumerate(BACKGROUNDS.items()):
        ax = fig.add_subplot(grid[0, column])
        ax.imshow(composite(rgba, colour))
        ax.set_title(f"over {name}", fontsize=10)
        ax.set_axis_off()
        for number, (top, left) in enumerate(corners, 1):
            ax.add_patch(Rectangle((left, top), inset_size, inset_size, fill=False, edgecolor="#ff3366", lw=1.2))
            ax.text(left, top - 4, str(number), color="#ff3366", fontsize=8)
        for row, (top, left) in enumerate(corners, 1):
            inset = fig.add_subplot(grid[row, column])
            inset.imshow(composite(rgba[top:top + inset_size, left:left + inset_size], colour),
                         interpolation="nearest")
            inset.set_title(f"edge {row} ({left}, {top}) over {name}", fontsize=8)
            inset.set_axis_off()
    fig.suptitle("Silhouette over different backgrounds: a rim of the old background shows as a halo", fontsize=10)
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
    ax.set_title(f"edge bleed: score {bleed.score:.2f} ({bleed.matte or 'no'} rim)", fontsize=10)
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
    ax.set_title("luma vs alpha: < 0 slope white matte, > 0 black", fontsize=10)
    fig.tight_layout()
    return fig


def alignment_figure(image: Image.Image | np.ndarray, template: str | os.PathLike = DEFAULT_TEMPLATE) -> Figure:
    """The silhouette (orange) over the template's (blue), with the eyebrow and face crops the networks work on."""
    rgba = _rgba(image)
    reference = template_alpha(template)
    registration = A.register(rgba[..., 3], reference)
    overlay = np.ones((*reference.shape, 3), np.float32)
    overlay[reference > 127] = (0.55, 0.7, 0.95)
    mine = rgba[..., 3] > 127
    overlay[mine] = overlay[mine] * 0.35 + np.array((1.0, 0.55, 0.1)) * 0.65
    fig = Figure(figsize=(6, 6.3))
    ax = fig.add_subplot(1, 1, 1)
    ax.imshow(overlay)
    for (top, left, size), name, colour in ((EYEBROW_BOX, "eyebrow crop 128²", "#6a1b9a"),
                                            (FACE_BOX, "face crop 192²", "#c62828")):
        ax.add_patch(Rectangle((left - 0.5, top - 0.5), size, size, fill=False, edgecolor=colour, lw=1.5))
        ax.text(left + 2, top + size - 6, name, color=colour, fontsize=8)
    ax.set_title(f"orange: this character, blue: template\nbest overlay: scale {registration.scale:.2f}, "
                 f"shift ({registration.dx:+d}, {registration.dy:+d}) px, overlap {registration.overlap:.0%}",
                 fontsize=10)
    ax.set_axis_off()
    fig.tight_layout()
    return fig
