"""The 28-emotion sprite batch of one character: our engine against the reference rendering them one by one,
same machine, same run.

    python bench/sprites.py [--character lambda_00] [--device cpu] [--backends torch,openvino,openvino-bf16]

'setup' is building the engine (loading weights; for OpenVINO, converting the networks, or reading the converted
ones from the cache); 'render' is the 28 sprites. The ratio is of render times; the one with setup is given too.
Our engine runs with the allocator tuned, as `talkinghead-nb sprites` runs it (after the reference, which runs as it
leaves the allocator).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine_fps import psnr, reference_renderer  # noqa: E402
from talkinghead_nb.character import example_path, load_character  # noqa: E402
from talkinghead_nb.emotions import EMOTIONS, EmotionLibrary  # noqa: E402
from talkinghead_nb.engine import Poser  # noqa: E402
from talkinghead_nb.engine.acceleration import retain_freed_memory  # noqa: E402
from talkinghead_nb.sprites import render_emotions  # noqa: E402
from talkinghead_nb.weights import embedded_folder  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--character", default="lambda_00")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--backends", default="torch,openvino,openvino-bf16")
    args = parser.parse_args()
    device = torch.device(args.device)
    character = load_character(example_path(args.character))
    templates = EmotionLibrary().load()
    poses = [templates.vector(name) for name in EMOTIONS]

    start = time.perf_counter()
    reference = reference_renderer("separable_float", embedded_folder(), device, character.tensor)
    ref_setup = time.perf_counter() - start
    start = time.perf_counter()
    expected = torch.cat([reference(p[None]) for p in poses]).float().cpu()
    ref_render = time.perf_counter() - start
    print(f"{len(poses)} sprites of {character.name} on {device}, torch {torch.__version__}", flush=True)
    print(f"\n{'engine':22} {'setup s':>8} {'render s':>9} {'× ref':>6} {'× ref w/ setup':>15} {'PSNR vs ref':>12}")
    print(f"{'reference, 1 by 1':22} {ref_setup:8.1f} {ref_render:9.1f} {1:6.2f} {1:15.2f}")
    if device.type == "cpu":
        retain_freed_memory()
    for backend in args.backends.split(","):
        start = time.perf_counter()
        poser = Poser("separable_float", device, backend=backend)
        setup = time.perf_counter() - start
        start = time.perf_counter()
        images = render_emotions(poser, character, templates, EMOTIONS)
        render = time.perf_counter() - start
        ours = poser.render_tensor(character, poses[:4]).float().cpu()
        quality = psnr(ours, expected[:4])
        print(f"{'ours ' + backend:22} {setup:8.1f} {render:9.1f} {ref_render / render:6.2f} "
              f"{(ref_setup + ref_render) / (setup + render):15.2f} {quality:9.1f} dB", flush=True)
        assert len(images) == len(EMOTIONS)


if __name__ == "__main__":
    main()
