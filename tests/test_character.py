from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from talkinghead_nb.character import CharacterError, example_path, find_character, load_character
from talkinghead_nb.imaging import srgb_to_linear


def _png(image: Image.Image, **kw) -> bytes:
    buf = io.BytesIO()
    image.save(buf, "PNG", **kw)
    return buf.getvalue()


@pytest.fixture(scope="module")
def rgba() -> Image.Image:
    return Image.open(example_path("crypko_01")).convert("RGBA")


def test_load_from_path_bytes_and_pil_agree(rgba):
    path = example_path("crypko_01")
    a, b, c = load_character(path), load_character(path.read_bytes()), load_character(rgba)
    assert a.name == "crypko_01" and a.key == b.key == c.key
    assert a.rgba.shape == (512, 512, 4) and a.rgba.dtype == np.uint8


def test_tensor_is_linear_in_minus_one_to_one_with_hidden_colour_cleared(rgba):
    array = np.array(rgba)
    array[0, 0] = (255, 0, 255, 0)  # colour hidden under zero alpha
    array[1, 1] = (128, 64, 32, 255)
    character = load_character(Image.fromarray(array, "RGBA"))
    t = character.tensor
    assert t.shape == (1, 4, 512, 512) and t.min() >= -1 and t.max() <= 1
    assert t[0, :, 0, 0].tolist() == [-1.0, -1.0, -1.0, -1.0]
    expected = srgb_to_linear(__import__("torch").tensor([128 / 255])) * 2 - 1
    assert abs(t[0, 0, 1, 1].item() - expected.item()) < 1e-6
    assert t[0, 3, 1, 1].item() == 1.0


def test_no_alpha_channel_is_refused_with_the_fix(rgba):
    with pytest.raises(CharacterError, match=r"no alpha channel \(mode RGB\).*export as a PNG with transparency"):
        load_character(_png(rgba.convert("RGB")))


def test_wrong_size_is_refused_unless_fitting(rgba):
    tall = Image.new("RGBA", (512, 768), (0, 0, 0, 0))
    tall.paste(rgba, (0, 128))
    with pytest.raises(CharacterError, match="512×768.*fit=True"):
        load_character(_png(tall))
    fitted = load_character(_png(tall), fit=True)
    assert fitted.rgba.shape == (512, 512, 4)
    assert fitted.rgba[:, :64, 3].max() == 0  # scaled to 341 wide, centred: transparent margins


def test_jpeg_is_refused(rgba):
    buf = io.BytesIO()
    rgba.convert("RGB").save(buf, "JPEG")
    with pytest.raises(CharacterError, match="JPEG file; a character must be a PNG"):
        load_character(buf.getvalue())


def test_palette_png_with_transparency_is_accepted(rgba):
    palette = rgba.convert("P", palette=Image.Palette.ADAPTIVE)
    palette.info["transparency"] = 0
    assert load_character(_png(palette, transparency=0)).rgba[..., 3].min() == 0


def test_fully_transparent_is_refused():
    with pytest.raises(CharacterError, match="fully transparent"):
        load_character(_png(Image.new("RGBA", (512, 512), (255, 255, 255, 0))))


def test_non_image_corrupt_and_missing(tmp_path, rgba):
    with pytest.raises(CharacterError, match="not an image"):
        load_character(b"hello, world")
    truncated = _png(rgba)[:5000]
    with pytest.raises(CharacterError, match="damaged or truncated"):
        load_character(truncated)
    with pytest.raises(CharacterError, match="does not exist"):
        load_character(tmp_path / "nope.png")


def test_decompression_bomb_is_refused():
    bomb = _png(Image.new("L", (20000, 20000)))  # compresses to a few KB
    assert len(bomb) < 1_000_000
    with pytest.raises(CharacterError, match="refusing to decode|decompression bomb"):
        load_character(bomb)


def test_unknown_example_lists_the_available_ones():
    with pytest.raises(CharacterError, match="lambda_00"):
        example_path("example")


def _blank_png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height)).save(out, "PNG", optimize=True)
    return out.getvalue()


@pytest.mark.parametrize(("size", "fit", "message"), [
    ((8192, 8192), False, "8192×8192; THA3 needs exactly 512×512"),
    ((8192, 8192), True, "more than the 16 megapixels"),
    ((600, 700), False, "pass fit=True"),
])
def test_size_is_judged_from_the_header_before_decoding(size, fit, message):
    data = _blank_png(*size)
    opened = []
    original = Image.Image.load

    def load(image):  # record decodes (the real decoder still runs)
        opened.append(image.size)
        return original(image)
    Image.Image.load = load
    try:
        with pytest.raises(CharacterError, match=message) as refused:
            load_character(data, fit=fit)
        assert "damaged" not in str(refused.value)
    finally:
        Image.Image.load = original
    assert size not in opened


def test_example_names_and_paths_resolve_in_one_place(tmp_path):
    assert find_character("lambda_01") == example_path("lambda_01")
    assert load_character("crypko_03").name == "crypko_03"
    local = tmp_path / "mine"
    local.write_bytes(example_path("crypko_03").read_bytes())  # a file without a suffix stays a path
    assert find_character(str(local)) == local
    with pytest.raises(CharacterError, match="no example character 'nobody'"):
        load_character("nobody")
