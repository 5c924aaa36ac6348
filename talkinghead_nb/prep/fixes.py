"""Opt-in repairs of a character image. Each returns a new image; :func:`save_new` writes it to a new file and
never overwrites the input. ``REPAIRS`` names them (the names are the command line's ``repair`` flags)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
from PIL import Image

from ..atomic import write_bytes
from ..character import SIZE
from . import analysis as A
from .analysis import DEFAULT_TEMPLATE, template_alpha


def _rgba(image: Image.Image | np.ndarray) -> np.ndarray:
    return np.array(image.convert("RGBA") if isinstance(image, Image.Image) else image, dtype=np.uint8)


def fit_to_template(image: Image.Image, template: str | os.PathLike = DEFAULT_TEMPLATE) -> Image.Image:
    """Place an RGBA image of any size (a 512×768 Stable Diffusion render, say) on the 512×512 canvas so that its
    head and shoulders overlay the template's: scale to 512 wide, then the scale and shift that :func:`register`
    finds. Resampled with premultiplied alpha, so no dark fringes appear."""
    rgba = image.convert("RGBA")
    base = SIZE / rgba.width
    height = max(1, round(rgba.height * base))
    first = rgba.convert("RGBa").resize((SIZE, height), Image.Resampling.LANCZOS)
    canvas = np.zeros((SIZE, SIZE, 4), np.uint8)
    top = np.asarray(first.convert("RGBA"))[:SIZE]
    canvas[:top.shape[0]] = top
    reg = A.register(canvas[..., 3], template_alpha(template))
    # Output pixel p samples the scaled image at c + (p − d − c) / s (see analysis.register).
    c = SIZE / 2
    matrix = (1 / (reg.scale * base), 0.0, (c + (-reg.dx - c) / reg.scale) / base,
              0.0, 1 / (reg.scale * base), (c + (-reg.dy - c) / reg.scale) / base)
    placed = rgba.convert("RGBa").transform((SIZE, SIZE), Image.Transform.AFFINE, matrix,
                                            resample=Image.Resampling.BICUBIC)
    return placed.convert("RGBA")


def remove_specks(image: Image.Image, max_fraction: float = 0.01) -> Image.Image:
    """Make transparent every part detached from the main silhouette that is smaller than ``max_fraction`` of it."""
    rgba = _rgba(image)
    rgba[A.speck_mask(rgba, max_fraction)] = 0
    return Image.fromarray(rgba, "RGBA")


def clear_hidden_colour(image: Image.Image) -> Image.Image:
    """Set the colour of fully transparent pixels to black (what THA3 tools expect under zero alpha)."""
    rgba = _rgba(image)
    rgba[rgba[..., 3] == 0] = 0
    return Image.fromarray(rgba, "RGBA")


def decontaminate_edges(image: Image.Image, sigma: float = 1.5) -> Image.Image:
    """Replace the colour of the outer ring and of semi-transparent pixels by an estimate of the true foreground
    colour there: the local mean of the opaque pixels just inside the ring. Alpha is kept."""
    rgba = _rgba(image)
    outer, _ = A.edge_rings(rgba)
    alpha = rgba[..., 3]
    source = (alpha >= A.OPAQUE) & ~outer
    rgb = rgba[..., :3].astype(np.float32) / 255.0
    colour, defined = A.local_mean(rgb, source, sigma)
    wide, wide_defined = A.local_mean(rgb, source, sigma * 4)  # for pixels far from any interior
    colour[~defined & wide_defined] = wide[~defined & wide_defined]
    target = (outer | ((alpha > 0) & (alpha < A.OPAQUE))) & (defined | wide_defined)
    rgba[..., :3][target] = np.round(colour[target] * 255).astype(np.uint8)
    return Image.fromarray(rgba, "RGBA")


# name → repair, in the order they are best applied (fit first: the others then work on the final canvas)
REPAIRS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "fit": fit_to_template, "specks": remove_specks, "hidden": clear_hidden_colour, "edges": decontaminate_edges}


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
    """Write ``image`` as a PNG to ``path``, atomically; refuses an existing file (the input above all)."""
    path = check_new_path(path, source=source)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return write_bytes(path, buffer.getvalue())
