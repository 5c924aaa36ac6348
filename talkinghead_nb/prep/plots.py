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
from .background import Cutout
from .halo import find_halo
from .pixels import composite, contrasting, hex_colour, rgba_array

BACKGROUNDS = {"dark": (24, 24, 28), "light": (240, 240, 236), "saturated": (0, 200, 80)}
MARK = "#ff3366"  # frames and circles drawn over the character


def backgrounds_figure(image: Image.Image | np.ndarray, *, insets: int = 3, inset_size: int = 48) -> Figure:
    """The character over dark, light and saturated backgrounds, and zoomed insets of the edge regions that show the
    most background colour (the halo detector's visible deviation), each inset over all three backgrounds."""
    rgba = rgba_array(image)
    corners = A.worst_windows(find_halo(rgba).error, insets, inset_size)
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
    """Where the halo detector (:func:`find_halo`) finds background colour around the silhouette: the halo pixels
    marked over a background that contrasts with the estimated colour, each examined pixel's visible deviation as a
    heat map, the estimated background colour, and the alpha histogram."""
    rgba = rgba_array(image)
    halo = find_halo(rgba)
    fig = Figure(figsize=(16, 4.6))
    grid = fig.add_gridspec(1, 4, width_ratios=[3, 3, 1.4, 2.2])
    ax = fig.add_subplot(grid[0])
    behind = contrasting(halo.colour) if halo.colour is not None else BACKGROUNDS["dark"]
    marked = composite(rgba, behind)
    marked[ndimage.binary_dilation(halo.mask)] = _mark_for(behind, *([halo.colour] if halo.colour else []))
    ax.imshow(marked, interpolation="nearest")
    ax.set_title(f"halo pixels marked ({'found' if halo.found else 'below the reporting level'}), over "
                 f"{hex_colour(behind)}", fontsize=10)
    ax.set_axis_off()

    ax = fig.add_subplot(grid[1])
    ax.imshow(composite(rgba, (60, 60, 60)) // 3 + 40)
    # The rim is one or two pixels wide: thicken it for the eye.
    shown = ndimage.grey_dilation(np.nan_to_num(halo.error, nan=-1.0), size=3)
    heat = ax.imshow(np.where(shown < 0, np.nan, shown), cmap="inferno", vmin=0, vmax=0.5, interpolation="nearest")
    fig.colorbar(heat, ax=ax, fraction=0.046, label="visible deviation (alpha × colour distance)")
    ax.set_title("how far each rim pixel shows the estimated background", fontsize=10)
    ax.set_axis_off()

    ax = fig.add_subplot(grid[2])
    ax.set_xticks([])
    ax.set_yticks([])  # the frame stays: a white swatch on a white figure
    if halo.colour is not None:
        ax.imshow(np.full((8, 8, 3), halo.colour, np.uint8))
        ax.set_title(f"estimated background:\n{halo.colour_name} {hex_colour(halo.colour)}", fontsize=10)
    else:
        ax.set_title("no background colour\nstands out", fontsize=10)

    alpha = rgba[..., 3]
    ax = fig.add_subplot(grid[3])
    ax.hist(alpha[alpha > 0].ravel(), bins=64, color="#4a78b5", log=True)
    ax.set_xlabel("alpha (visible pixels)")
    ax.set_ylabel("pixels (log)")
    ax.set_title(f"alpha: {A.alpha_shares(rgba).semi_transparent:.1%} semi-transparent", fontsize=10)
    fig.suptitle(f"edges: {halo.describe()}", fontsize=11)
    fig.tight_layout()
    return fig


_MARKS = ((255, 51, 102), (0, 220, 255), (255, 230, 0), (40, 40, 255))


def _mark_for(*colours: tuple[int, int, int]) -> tuple[int, int, int]:
    """The marking colour that stands out most from all of ``colours`` (the background and the halo's)."""
    return max(_MARKS, key=lambda mark: min(np.abs(np.subtract(mark, c)).sum() for c in colours))


def cutout_figure(render: Image.Image | np.ndarray, cutout: Cutout, *, insets: int = 2, inset_size: int = 64
                  ) -> Figure:
    """A background removal: the render, the trimap that matting solved (grey: the band it decided), and the
    character over a checkerboard and over a colour that contrasts with the old background, with zoomed insets
    where the edge is softest (hair strands)."""
    rgba = rgba_array(cutout.image)
    shape = rgba.shape[:2]
    old = np.round(cutout.background.picture(shape).mean(axis=(0, 1)) * 255)
    trimap = np.round(np.repeat(cutout.trimap[..., None], 3, axis=-1) * 255).astype(np.uint8)
    columns = {"render": np.asarray(render.convert("RGB") if isinstance(render, Image.Image) else render),
               "trimap (grey: matted)": trimap,
               "result over a checkerboard": composite(rgba, checkerboard(shape)),
               f"result over {hex_colour(contrasting(old))}": composite(rgba, contrasting(old))}
    soft = ((rgba[..., 3] > 0) & (rgba[..., 3] < 255)).astype(np.float32)
    return _with_insets(columns, A.worst_windows(soft, insets, inset_size), inset_size, "edge",
                        f"background removal: {cutout.describe()}")


def checkerboard(shape: tuple[int, int], square: int = 16) -> np.ndarray:
    """An ``(H, W, 3)`` grey checkerboard, as image editors show transparency."""
    rows, columns = np.indices(shape)
    light = ((rows // square + columns // square) % 2).astype(bool)
    return np.where(light[..., None], np.uint8(204), np.uint8(153)).repeat(3, axis=-1)


def specks_figure(image: Image.Image | np.ndarray) -> Figure:
    """The stray specks, circled: over a dark background (what a viewer sees; faint specks are invisible) and on the
    silhouette as THA3 sees it (every pixel with alpha > 0), with the specks in red."""
    rgba = rgba_array(image)
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
    alpha, reference = rgba_array(image)[..., 3], template_alpha(template)
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
    old, new = rgba_array(before), rgba_array(after)
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
