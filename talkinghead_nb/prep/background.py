"""Background removal for renders on a simple background (white, grey, pastel, a green screen, a soft gradient).

The background is modelled from the image's border (a flat colour, or a smooth surface for a gradient), fitted
robustly so that where the character runs off the edge does not count; the pixels that match it, alone and as a
neighbourhood (its mean colour and its grain), and reach the border are the background, and so is an enclosed gap
that looks like it throughout (see :func:`trimap`): a near-white garment on an off-white background stays whole. A
band around the character's outline is left to closed-form matting, and the colours of its soft pixels are
un-mixed from the background by foreground estimation; parts that matting detaches from the character are cleared.
The cut-out records the background colour it removed (``removed_background``), for the edge check. A busy or noisy
background is refused with a suggestion rather than cut badly.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from PIL import Image
from scipy import ndimage

from . import matting
from .pixels import colour_name, hex_colour

BORDER = 6             # px of the image's edge that sample the background
FIT_LEVEL = 0.05       # a border pixel this close (0–1, largest channel) to the model fits it
MIN_FIT = 0.5          # share of the border the background model must fit ...
MAX_NOISE = 0.03       # ... with at most this spread (0–1, ≈ 8 levels): else the background is not simple
NEAR_FIT = 0.05        # a model that fits this little less of the border than the best one explains it as well
TOLERANCE = 3.5        # the background is within this many noise spreads of the model (at least MIN_TOLERANCE)
MIN_TOLERANCE = 3 / 255
UNKNOWN = 3            # px on each side of the outline that matting decides
WINDOW = 7             # px: the neighbourhood whose mean colour and grain must match the background's too
HOLE_PIXELS = 24       # an enclosed patch of background colour smaller than this in the matting band is background;
                       # a larger one may be a see-through gap (between arm and body) ...
HOLE_CONTRAST = 0.25   # ... with an outline this far (0–1) from the background colour ...
PLAIN_SHARE = 0.9      # ... and plain over this share of it
GRAIN_SHARE = 0.5      # plain background has this share of the border's usual grain at least (RMS of the pixels'
                       # own deviations from their 3×3 mean, over a WINDOW) ...
MIN_GRAIN = 1 / 255    # ... when it has this much (8-bit rounding has less)
EXACT_ALPHA = 0.3      # from this alpha on, a soft pixel's colour is un-mixed exactly from the known background
REMOVED = "removed background"  # the key of a cut-out's info (and PNG text) that names the background removed


class BackgroundError(ValueError):
    """The background is not simple enough to remove automatically; the message says what to do instead."""


@dataclass(frozen=True)
class BackgroundModel:
    """The background as a polynomial surface over the image (``degree`` 0: one flat colour, 1: a linear gradient,
    2: a curved one). ``fit``: share of the border it explains; ``noise``: the spread (0–1) of the border pixels
    it explains."""

    coefficients: np.ndarray
    degree: int
    fit: float
    noise: float

    def picture(self, shape: tuple[int, int]) -> np.ndarray:
        """The modelled background over an image of ``shape`` = (H, W), as ``(H, W, 3)`` (0–1)."""
        rows, columns = np.mgrid[0:shape[0], 0:shape[1]]
        return np.clip(_terms(rows, columns, shape, self.degree) @ self.coefficients, 0.0, 1.0)

    def describe(self, shape: tuple[int, int]) -> str:
        """``white (#ffffff), flat`` or ``a gradient from pale blue (#ebf2ff) at the top to … at the bottom``."""
        picture = self.picture(shape)
        top, bottom = (np.round(picture[row].mean(axis=0) * 255) for row in (0, -1))
        if self.degree == 0 or np.abs(top - bottom).max() < 6:
            return f"{colour_name(top)} ({hex_colour(top)}), flat"
        return (f"a gradient from {colour_name(top)} ({hex_colour(top)}) at the top to {colour_name(bottom)} "
                f"({hex_colour(bottom)}) at the bottom")


def _terms(rows: np.ndarray, columns: np.ndarray, shape: tuple[int, int], degree: int) -> np.ndarray:
    """Polynomial terms of the pixel coordinates (scaled to −1…1) up to ``degree``."""
    y = rows / max(shape[0] - 1, 1) * 2 - 1
    x = columns / max(shape[1] - 1, 1) * 2 - 1
    terms = [np.ones_like(y, dtype=np.float64)]
    if degree >= 1:
        terms += [x, y]
    if degree >= 2:
        terms += [x * x, x * y, y * y]
    return np.stack(terms, axis=-1)


def _border(shape: tuple[int, int]) -> np.ndarray:
    mask = np.zeros(shape, bool)
    mask[:BORDER], mask[-BORDER:], mask[:, :BORDER], mask[:, -BORDER:] = True, True, True, True
    return mask


def fit_background(rgb: np.ndarray, degree: int) -> BackgroundModel:
    """The background surface of ``degree`` that fits most of the border: least squares on the pixels it explains,
    iterated from the border's median colour. ``fit`` counts the border pixels within FIT_LEVEL of it."""
    border = _border(rgb.shape[:2])
    rows, columns = np.nonzero(border)
    terms = _terms(rows, columns, rgb.shape[:2], degree)
    colours = rgb[border].astype(np.float64)
    coefficients = np.vstack([np.median(colours, axis=0, keepdims=True), np.zeros((terms.shape[1] - 1, 3))])
    for _ in range(6):
        residual = np.abs(colours - terms @ coefficients).max(axis=1)
        inliers = residual <= max(3 * np.median(residual), FIT_LEVEL)
        if inliers.sum() < terms.shape[1] * 4:
            break
        coefficients = np.linalg.lstsq(terms[inliers], colours[inliers], rcond=None)[0]
    residual = np.abs(colours - terms @ coefficients).max(axis=1)
    fits = residual <= FIT_LEVEL
    noise = float(np.sqrt(np.mean(residual[fits] ** 2))) if fits.any() else 1.0
    return BackgroundModel(coefficients, degree, float(fits.mean()), noise)


def estimate_background(rgb: np.ndarray) -> BackgroundModel:
    """The simplest background model (flat, then a gradient) that explains the border about as well as any, with
    about as little spread (a faint gradient fits within FIT_LEVEL as a flat colour too, but as a noisy one)."""
    models = [fit_background(rgb, degree) for degree in (0, 1, 2)]
    best = max(model.fit for model in models)
    good = [model for model in models if model.fit >= best - NEAR_FIT]
    quietest = min(model.noise for model in good)
    return next(model for model in good if model.noise <= 1.5 * quietest + 1 / 255)


@dataclass(frozen=True)
class Cutout:
    """The result of :func:`cut_out`: the RGBA ``image``, the ``background`` model, the ``trimap`` matting used
    (0 background, 0.5 unknown, 1 foreground), and a ``confidence`` (0–1) with the ``reasons`` that lowered it."""

    image: Image.Image
    background: BackgroundModel
    trimap: np.ndarray
    confidence: float
    reasons: tuple[str, ...]

    def describe(self) -> str:
        shape = self.trimap.shape
        why = f" ({'; '.join(self.reasons)})" if self.reasons else ""
        return (f"background: {self.background.describe(shape)}; {self.background.fit:.0%} of the border fits it; "
                f"confidence {self.confidence:.2f}{why}")


def _refuse(model: BackgroundModel) -> None:
    advice = ("render the character on a plain background (a Stable Diffusion prompt: \"simple white background\"), "
              "or cut it out with rembg or an image editor's select tool and save a PNG with transparency")
    if model.fit < MIN_FIT:
        raise BackgroundError(f"the background is not simple: only {model.fit:.0%} of the image's border fits one "
                              f"plain colour or soft gradient (at least {MIN_FIT:.0%} must); {advice}")
    if model.noise > MAX_NOISE:
        raise BackgroundError(f"the background is not plain: it varies by about {model.noise * 255:.0f} levels "
                              f"around its colour (at most {MAX_NOISE * 255:.0f}); {advice}")


def trimap(rgb: np.ndarray, model: BackgroundModel) -> np.ndarray:
    """0 for sure background, 1 for sure foreground, 0.5 for the band matting decides.

    A pixel is background-coloured when it is within the model's noise of it; it is plain background when, besides,
    the mean of its neighbourhood is as close as the border's are and it is about as grainy as the border (a
    near-white garment on an off-white, grainy background passes the first test, not the others). The background
    is the plain background that reaches the image's border (what the model was fitted on) and the background-
    coloured pixels next to it; what the border reaches only through a thin gap in an outline, and enclosed
    patches, stay foreground, unless a patch is a little pocket in the matting band (between strands of hair) or a
    see-through gap (:func:`_is_see_through`)."""
    shape = rgb.shape[:2]
    residual = rgb - model.picture(shape)
    distance = np.abs(residual).max(axis=-1)
    candidate = distance <= max(TOLERANCE * model.noise, MIN_TOLERANCE)
    # The neighbourhood's mean over its background-coloured pixels: a dark line next to the pixel does not count.
    weight = ndimage.uniform_filter(candidate.astype(np.float64), WINDOW)
    local = np.abs(ndimage.uniform_filter(residual * candidate[..., None], (WINDOW, WINDOW, 0))
                   / np.maximum(weight, 1e-6)[..., None]).max(axis=-1)
    grain = np.abs(residual - ndimage.uniform_filter(residual, (3, 3, 0))).max(axis=-1)
    local_grain = np.sqrt(np.maximum(ndimage.uniform_filter(grain ** 2, WINDOW), 0.0))
    # The border's own pixels (where they fit) show how far the background's neighbourhood means wander, and how
    # grainy it is: a painted patch is smoother than a grainy background.
    reference = _border(shape) & candidate
    usual_grain = float(np.median(local_grain[reference]))
    grainy = candidate & (local_grain >= GRAIN_SHARE * usual_grain if usual_grain >= MIN_GRAIN else True)
    plain = grainy & (local <= max(2 * np.percentile(local[reference], 90), MIN_TOLERANCE))
    # Background reaches the border; a thin gap in an outline does not let it in.
    labels, _ = ndimage.label(ndimage.binary_erosion(plain))
    touching = np.unique(labels[reference & (labels > 0)])
    background = np.isin(labels, touching) & (labels > 0)
    background = ndimage.binary_dilation(background) & grainy
    band = ndimage.binary_dilation(background, iterations=UNKNOWN)
    holes, count = ndimage.label(candidate & ~background)
    for label in range(1, count + 1):
        hole = holes == label
        # A little pocket of the background's colour in the band (between strands of hair) shows the background:
        # left to matting, it would get some alpha, and un-mixing give it the background's colour (a fringe).
        if (hole.sum() < HOLE_PIXELS and (hole & band).any()) or _is_see_through(hole, distance, plain):
            background |= hole
    result = np.full(shape, 0.5)
    result[~band] = 1.0
    # Any pixel of the band within a level or three of the background's colour shows the background too.
    result[background | (band & (distance <= MIN_TOLERANCE))] = 0.0
    return result


def _is_see_through(hole: np.ndarray, distance: np.ndarray, plain: np.ndarray) -> bool:
    """Whether an enclosed patch of background colour is a gap the background shows through (between an arm and
    the body): large, drawn round like the silhouette with a contrasting outline, and plain (see :func:`trimap`)
    over PLAIN_SHARE of it away from its outline (a white garment's shading wanders off the background's colour;
    on a grainy background, it is smoother)."""
    if hole.sum() < HOLE_PIXELS:
        return False
    ring = ndimage.binary_dilation(hole, iterations=2) & ~hole
    if np.median(distance[ring]) < HOLE_CONTRAST:
        return False
    inner = ndimage.binary_erosion(hole, iterations=WINDOW // 2)
    return plain[inner if inner.any() else hole].mean() >= PLAIN_SHARE


def cut_out(image: Image.Image | np.ndarray) -> Cutout:
    """Remove a simple background from ``image`` (an RGB render; an RGBA one must be fully opaque). Raises
    :class:`BackgroundError` when the background is not simple."""
    rgba = np.asarray(image.convert("RGBA") if isinstance(image, Image.Image) else image)
    if rgba.ndim == 3 and rgba.shape[-1] == 4 and (rgba[..., 3] < 255).any():
        raise BackgroundError("the image already has transparency, so there is no background to remove: "
                              "check it with prep.check_character, or repair its edges with "
                              "prep.decontaminate_edges")
    rgb = rgba[..., :3].astype(np.float64) / 255.0
    model = estimate_background(rgb)
    _refuse(model)
    known = trimap(rgb, model)
    if not (known == 0).any() or not (known == 1).any():
        raise BackgroundError("no character stands out from the background colour: check that the image is a render "
                              "of a character on a plain background")
    alpha = _anchored(matting.snapped(matting.solve_alpha(rgb, known)), known)
    colour = _unmixed(rgb, alpha, model.picture(rgb.shape[:2]))
    out = np.dstack([np.where(alpha[..., None] > 0, colour, 0.0), alpha])
    confidence, reasons = _confidence(model, known)
    cut = Image.fromarray(np.round(out * 255).astype(np.uint8), "RGBA")
    # The background as it was around the character's outline: what a fringe left by the cut-out would be.
    cut.info[REMOVED] = hex_colour(np.median(model.picture(rgb.shape[:2])[known == 0.5], axis=0) * 255)
    return Cutout(cut, model, known, confidence, reasons)


def _anchored(alpha: np.ndarray, known: np.ndarray) -> np.ndarray:
    """``alpha`` without the parts that matting made away from the character: every part of the silhouette (8-connected,
    alpha > 0) that holds no sure foreground pixel is cleared (they would be stray specks)."""
    labels, _ = ndimage.label(alpha > 0, structure=np.ones((3, 3), bool))
    kept = np.unique(labels[(known == 1) & (labels > 0)])
    return np.where(np.isin(labels, kept), alpha, 0.0)


def _unmixed(rgb: np.ndarray, alpha: np.ndarray, background: np.ndarray) -> np.ndarray:
    """The foreground colour of every pixel: where it is opaque enough, solved exactly from the known background
    (``rgb = alpha F + (1 − alpha) B``); in the faintest pixels, where that division would amplify noise, the
    matting library's smooth estimate."""
    estimate = matting.foreground(rgb, alpha)
    a = alpha[..., None]
    exact = np.clip((rgb - (1 - a) * background) / np.maximum(a, 1e-6), 0.0, 1.0)
    return np.where(a >= EXACT_ALPHA, exact, estimate)


def _confidence(model: BackgroundModel, known: np.ndarray) -> tuple[float, tuple[str, ...]]:
    """1 for a clean flat background that surrounds the character; lower for a partial fit, noise, or a character
    that covers most of the image."""
    factors = {
        f"{1 - model.fit:.0%} of the border does not fit the background": min(1.0, model.fit / 0.9),
        f"background noise {model.noise * 255:.1f} levels": 1 - model.noise / (2 * MAX_NOISE),
        f"only {(known == 0).mean():.0%} of the image is background": min(1.0, (known == 0).mean() / 0.2),
    }
    return min(factors.values()), tuple(reason for reason, factor in factors.items() if factor < 0.95)


def removed_background(image: Image.Image) -> tuple[int, int, int] | None:
    """The background colour that :func:`cut_out` removed from ``image`` (kept in its info and in a PNG that
    ``prep.save_new`` wrote), or None."""
    text = str(image.info.get(REMOVED, ""))
    return tuple(int(text[i:i + 2], 16) for i in (1, 3, 5)) if re.fullmatch("#[0-9a-f]{6}", text) else None


def remove_background(image: Image.Image) -> Image.Image:
    """The character of a render on a simple background as RGBA at the render's size (see :func:`cut_out`, which
    also reports the background it found and a confidence)."""
    return cut_out(image).image
