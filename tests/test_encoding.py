"""Every feed format decodes back to exactly the frame (lossless, alpha kept)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from talkinghead_nb.encoding import ENCODERS, check_format, encode_png


@pytest.fixture(scope="module")
def frame() -> np.ndarray:
    rng = np.random.default_rng(0)
    rgba = np.zeros((512, 512, 4), np.uint8)
    rgba[100:400, 150:350] = rng.integers(0, 256, (300, 200, 4), dtype=np.uint8)  # noise: the hard case
    rgba[0:50] = (10, 20, 30, 128)
    return rgba


@pytest.mark.parametrize("fmt", sorted(ENCODERS))
def test_formats_are_lossless_with_alpha(frame, fmt):
    data = ENCODERS[fmt](frame)
    if fmt == "qoi":
        import qoi
        decoded = qoi.decode(data)
    else:
        image = Image.open(io.BytesIO(data))
        assert image.mode == "RGBA"
        decoded = np.asarray(image)
    assert np.array_equal(decoded, frame)


def test_png_is_a_valid_file_for_strict_decoders(frame):
    data = encode_png(frame)
    image = Image.open(io.BytesIO(data))
    image.verify()  # checks the chunk CRCs
    assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="expected \\(H, W, 4\\) uint8"):
        encode_png(np.zeros((4, 4, 3), np.uint8))
    with pytest.raises(ValueError, match="unknown frame format 'gif'"):
        check_format("gif")
