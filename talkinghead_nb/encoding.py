"""Frame encodings for the live feed, sprites and the pose panel, all lossless and with alpha.

- ``png`` (default): what browsers and the established clients expect. Pillow at its fastest level takes ≈18 ms for
  a 512×512 RGBA frame here; writing the PNG ourselves, unfiltered, with ISA-L's deflate (``isal``) takes ≈1.3 ms
  for a file of the same size (measured: docs/engine.md, "Speed").
- ``qoi``: the Quite OK Image format, faster still, for Python clients (``qoi.decode``).
- ``webp``: lossless WebP, smaller, for clients that prefer it; slower to encode.
"""

from __future__ import annotations

import io
import struct
import zlib
from collections.abc import Callable

import numpy as np
from isal import isal_zlib
from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def encode_png(rgba: np.ndarray, level: int = 1) -> bytes:
    """An 8-bit RGBA PNG, rows unfiltered, deflated by ISA-L at ``level`` (0–3)."""
    height, width, channels = rgba.shape
    if channels != 4 or rgba.dtype != np.uint8:
        raise ValueError(f"expected (H, W, 4) uint8, got {rgba.shape} {rgba.dtype}")
    rows = np.zeros((height, width * 4 + 1), np.uint8)  # each row starts with its filter type: 0, none
    rows[:, 1:] = rgba.reshape(height, width * 4)
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)  # 8 bits, RGBA, deflate, no filter, no interlace
    return (PNG_SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", isal_zlib.compress(rows.data, level))
            + _chunk(b"IEND", b""))


def encode_qoi(rgba: np.ndarray) -> bytes:
    import qoi
    return qoi.encode(np.ascontiguousarray(rgba))


def encode_webp(rgba: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, "WEBP", lossless=True, quality=0, method=0, exact=True)
    return out.getvalue()


ENCODERS: dict[str, Callable[[np.ndarray], bytes]] = {"png": encode_png, "qoi": encode_qoi, "webp": encode_webp}
MEDIA_TYPES = {"png": "image/png", "qoi": "image/qoi", "webp": "image/webp"}
DEFAULT_FORMAT = "png"


def check_format(name: str) -> str:
    if name not in ENCODERS:
        raise ValueError(f"unknown frame format {name!r}; choose one of: {', '.join(ENCODERS)}")
    return name
