"""Small pixel tools the prep modules share: images as arrays, compositing, colour names."""

from __future__ import annotations

import numpy as np
from matplotlib.colors import rgb_to_hsv
from PIL import Image

Colour = tuple[int, int, int]


def rgba_array(image: Image.Image | np.ndarray) -> np.ndarray:
    """A writable ``(H, W, 4) uint8`` copy of ``image`` (a PIL image of any mode, or an RGBA array)."""
    return np.array(image.convert("RGBA") if isinstance(image, Image.Image) else image, dtype=np.uint8)


def composite(rgba: np.ndarray, background: Colour | np.ndarray) -> np.ndarray:
    """``rgba`` over a background (a colour, or an ``(H, W, 3)`` picture), straight alpha, as ``uint8`` RGB."""
    alpha = rgba[..., 3:4].astype(np.float32) / 255.0
    out = rgba[..., :3] * alpha + np.asarray(background, np.float32) * (1.0 - alpha)
    return np.round(out).astype(np.uint8)


def contrasting(colour: np.ndarray | Colour) -> Colour:
    """A flat colour that a halo of ``colour`` (0–255) stands out against: dark for light colours, and vice versa;
    saturated magenta for mid greys."""
    luma = float(np.dot(np.asarray(colour, np.float32), (0.2126, 0.7152, 0.0722)))
    return (20, 20, 24) if luma > 150 else (245, 245, 240) if luma < 90 else (230, 0, 140)


NEUTRAL_CHROMA = 0.06  # largest minus smallest channel (0–1) under which a light colour is white or grey
_HUES = ((15, "red"), (40, "orange"), (70, "yellow"), (165, "green"), (200, "cyan"), (255, "blue"),
         (290, "purple"), (335, "pink"), (360, "red"))


def colour_name(colour: np.ndarray | Colour) -> str:
    """A plain name for an RGB colour (0–255): ``white``, ``light grey``, ``pale pink``, ``green``, ``dark blue``…"""
    rgb = np.asarray(colour, np.float64) / 255.0
    hue, saturation, value = rgb_to_hsv(rgb)
    # A pale colour's tint shows from a few levels of chroma on (#f6e0ea is pale pink), so light colours are grey by
    # their chroma rather than their saturation.
    if (rgb.max() - rgb.min() < NEUTRAL_CHROMA if value > 0.8 else saturation < 0.12) or value < 0.12:
        return next(name for level, name in ((0.92, "white"), (0.7, "light grey"), (0.4, "grey"), (0.15, "dark grey"),
                                            (-1, "black")) if value >= level)
    name = next(name for limit, name in _HUES if hue * 360 < limit)
    if value < 0.45:
        return f"dark {name}"
    return f"pale {name}" if saturation < 0.4 and value > 0.8 else name


def hex_colour(colour: np.ndarray | Colour) -> str:
    """``#rrggbb`` of an RGB colour (0–255)."""
    return "#" + "".join(f"{int(round(float(c))):02x}" for c in colour)
