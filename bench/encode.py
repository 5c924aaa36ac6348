"""Encoding one rendered 512×512 RGBA frame in each live-feed format, against Pillow's PNG at its fastest level
(what a straightforward server does), on this machine.

    python bench/encode.py [--repeat 50]
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from talkinghead_nb.character import example_path, load_character  # noqa: E402
from talkinghead_nb.emotions import EmotionLibrary  # noqa: E402
from talkinghead_nb.encoding import ENCODERS  # noqa: E402
from talkinghead_nb.engine import Poser  # noqa: E402


def pillow_png(rgba: np.ndarray) -> bytes:
    out = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, "PNG", compress_level=1)
    return out.getvalue()


def timed(encode, rgba: np.ndarray, repeat: int) -> tuple[float, int]:
    data = encode(rgba)
    start = time.perf_counter()
    for _ in range(repeat):
        encode(rgba)
    return (time.perf_counter() - start) / repeat * 1e3, len(data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=50)
    args = parser.parse_args()
    character = load_character(example_path("lambda_00"))
    rgba = Poser("separable_float", "cpu").render_array(character, EmotionLibrary().load().vector("joy"))[0]
    base_ms, base_size = timed(pillow_png, rgba, args.repeat)
    print(f"{'format':26} {'ms/frame':>9} {'KiB':>7} {'× Pillow PNG':>13}  lossless")
    print(f"{'Pillow PNG, level 1':26} {base_ms:9.2f} {base_size / 1024:7.0f} {1:13.2f}")
    for name, encode in ENCODERS.items():
        ms, size = timed(encode, rgba, args.repeat)
        decoded = np.asarray(Image.open(io.BytesIO(encode(rgba)))) if name != "qoi" else __import__("qoi").decode(
            encode(rgba))
        print(f"{name + (' (default)' if name == 'png' else ''):26} {ms:9.2f} {size / 1024:7.0f} "
              f"{base_ms / ms:13.2f}  {np.array_equal(decoded, rgba)}")


if __name__ == "__main__":
    main()
