"""Opt-in repairs of a character image. Each returns a new image; :func:`save_new` writes it to a new file and
never overwrites the input. ``REPAIRS`` names them (the names are the command line's ``repair`` flags)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image, PngImagePlugin
from scipy import ndimage

from ..atomic import write_bytes
from ..character import SIZE
from . import analysis as A
from . import matting
from .analysis import DEFAULT_TEMPLATE, template_alpha
from .background import REMOVED, remove_background, removed_background
from .halo import Halo, find_halo
from .pixels import composite, rgba_array

REGION = 2   # px around the halo pixels that are matted again
RINGING = 2  # bicubic resampling leaves alpha up to this around a silhouette: invisible, but THA3 would animate it
DEBRIS = 16  # ... and a faint strand's tip, resampled, may come apart as specks of alpha up to about this


Placement = tuple[float, float, float, float, float, float]  # the affine map from output to input pixels


def placement(image: Image.Image, template: str | os.PathLike = DEFAULT_TEMPLATE) -> Placement:
    """How :func:`fit_to_template` places ``image`` (any size) on the 512×512 canvas: scale to 512 wide, bring the
    top of the silhouette within reach of the template's, then the scale and shift that :func:`register` finds.
    Returned as the affine map from output pixels to input pixels (PIL's convention)."""
    rgba = image.convert("RGBA")
    base = SIZE / rgba.width
    height = max(1, round(rgba.height * base))
    scaled = np.asarray(rgba.convert("RGBa").resize((SIZE, height), Image.Resampling.LANCZOS).convert("RGBA"))
    reference = template_alpha(template)
    # A tall render may put the head lower than the registration's search reaches: skip rows above it.
    offset = max(0, _top(scaled[..., 3]) - _top(reference) - A.MAX_SHIFT // 2)
    canvas = np.zeros((SIZE, SIZE, 4), np.uint8)
    window = scaled[offset:offset + SIZE]
    canvas[:window.shape[0]] = window
    reg = A.register(canvas[..., 3], reference)
    # Output pixel p samples the canvas at c + (p − d − c) / s (see analysis.register), the scaled image `offset`
    # rows lower, and the input at that divided by `base`.
    c = SIZE / 2
    return (1 / (reg.scale * base), 0.0, (c + (-reg.dx - c) / reg.scale) / base,
            0.0, 1 / (reg.scale * base), (c + (-reg.dy - c) / reg.scale + offset) / base)


def _like(source: Image.Image, rgba: np.ndarray) -> Image.Image:
    """``rgba`` as an image that keeps what ``source`` knows of its removed background (see ``REMOVED``)."""
    out = Image.fromarray(rgba, "RGBA")
    if REMOVED in source.info:
        out.info[REMOVED] = source.info[REMOVED]
    return out


def place(image: Image.Image, where: Placement) -> Image.Image:
    """``image`` on the 512×512 canvas as ``where`` says, resampled with premultiplied alpha (no dark fringes);
    faint debris that resampling detaches from the silhouette (speck-sized, alpha up to DEBRIS) is cleared."""
    placed = image.convert("RGBA").convert("RGBa").transform((SIZE, SIZE), Image.Transform.AFFINE, where,
                                                             resample=Image.Resampling.BICUBIC)
    out = np.array(placed.convert("RGBA"))
    out[out[..., 3] <= RINGING] = 0
    labels, sizes = A.components(out)
    faint = np.flatnonzero(ndimage.maximum(out[..., 3], labels, np.arange(len(sizes))) <= DEBRIS)
    out[A.speck_mask(out) & np.isin(labels, faint)] = 0
    return _like(image, out)


def fit_to_template(image: Image.Image, template: str | os.PathLike = DEFAULT_TEMPLATE) -> Image.Image:
    """Place an RGBA image of any size (a 512×768 Stable Diffusion render, say) on the 512×512 canvas so that its
    head and shoulders overlay the template's (see :func:`placement`)."""
    return place(image, placement(image, template))


def _top(alpha: np.ndarray) -> int:
    """The first row of the silhouette (alpha > 127), or 0."""
    rows = np.flatnonzero((alpha > 127).any(axis=1))
    return int(rows[0]) if len(rows) else 0


def remove_specks(image: Image.Image, max_fraction: float = 0.01) -> Image.Image:
    """Make transparent every part detached from the main silhouette that is smaller than ``max_fraction`` of it."""
    rgba = rgba_array(image)
    rgba[A.speck_mask(rgba, max_fraction)] = 0
    return _like(image, rgba)


def clear_hidden_colour(image: Image.Image) -> Image.Image:
    """Set the colour of fully transparent pixels to black (what THA3 tools expect under zero alpha)."""
    rgba = rgba_array(image)
    rgba[rgba[..., 3] == 0] = 0
    return _like(image, rgba)


def decontaminate_edges(image: Image.Image, halo: Halo | None = None) -> Image.Image:
    """Take the background colour out of the outline: where the halo detector (:func:`find_halo`) finds background
    colour left around the silhouette, composite the image over that colour, as the render it was cut from looked,
    solve the alpha of those pixels again by closed-form matting and un-mix their colours by foreground estimation.
    A ring of background colour becomes transparent; soft edges mixed with it keep their alpha and get their own
    colour back. Nothing else changes; an image without a halo comes back unchanged. ``halo``: the detector's answer
    for this image, when the caller has it already (else it looks for the background :func:`cut_out` removed, when
    the image says which)."""
    rgba = rgba_array(image)
    halo = halo or find_halo(rgba, removed_background(image))
    if not halo.found:
        return _like(image, rgba)
    specks_before = A.speck_mask(rgba)
    region = ndimage.binary_dilation(halo.mask, iterations=REGION) & ndimage.binary_dilation(rgba[..., 3] > 0)
    rendered = composite(rgba, halo.colour).astype(np.float64) / 255.0
    alpha = rgba[..., 3] / 255.0
    trimap = np.where(alpha >= A.OPAQUE / 255, 1.0, np.where(alpha == 0, 0.0, 0.5))
    trimap[region] = 0.5
    solved = np.where(region, matting.snapped(matting.solve_alpha(rendered, trimap)), alpha)
    unmixed = matting.foreground(rendered, solved)
    rgba[..., 3] = np.round(solved * 255).astype(np.uint8)
    rgba[..., :3][region] = np.round(unmixed[region] * 255).astype(np.uint8)
    rgba[A.speck_mask(rgba) & ~specks_before] = 0  # what matting cut off a strand: new specks
    rgba[rgba[..., 3] == 0] = 0
    return _like(image, rgba)


# name → repair, in the order they are best applied (the background first, at the render's size; then the fit: the
# others work on the final canvas)
REPAIRS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "background": remove_background, "fit": fit_to_template, "specks": remove_specks, "hidden": clear_hidden_colour,
    "edges": decontaminate_edges}


def check_new_path(path: str | os.PathLike, *, source: str | os.PathLike | None = None) -> Path:
    """``path`` as a :class:`Path` if :func:`save_new` may write there: a new ``.png`` file, not the input."""
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"{path}: a repaired character is a PNG (it keeps the alpha channel); name it .png")
    if source is not None and path.resolve() == Path(source).resolve():
        raise FileExistsError(f"{path} is the input image: write the repaired one to a new file")
    if path.exists():
        raise FileExistsError(f"{path} exists: choose a new name (repairs never overwrite a file)")
    return path


def save_new(image: Image.Image, path: str | os.PathLike, *, source: str | os.PathLike | None = None) -> Path:
    """Write ``image`` as a PNG to ``path``, atomically; refuses an existing file (the input above all). The
    background a cut-out removed is kept as PNG text, for the edge check."""
    path = check_new_path(path, source=source)
    buffer = io.BytesIO()
    text = PngImagePlugin.PngInfo()
    if removed_background(image) is not None:
        text.add_text(REMOVED, image.info[REMOVED])
    image.save(buffer, "PNG", pnginfo=text)
    return write_bytes(path, buffer.getvalue())
