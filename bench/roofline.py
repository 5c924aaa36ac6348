"""This machine's attainable throughput, and each engine path as a fraction of it (issue 15's yardstick).

Attainable: the best of a large matrix product and a large 3×3 convolution, float32 and bfloat16, with the same
threads the engine uses. Achieved: each per-frame network's GFLOP (counted by torch's flop counter on a 512×512
frame) over its measured time on the live-animation pose sequence, with the stage cache off so that every network
runs every frame.

    python bench/roofline.py [--frames 12] [--backends torch,openvino,openvino-bf16] [--out FILE]

Then, for the two big networks (rotator, editor), where the time goes: the share of each kind of operation, from
torch's profiler (torch backend) and OpenVINO's performance counters (openvino backends), on one call each.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine_fps import animation_poses  # noqa: E402
from bench.report import publish  # noqa: E402
from talkinghead_nb.character import load_character  # noqa: E402
from talkinghead_nb.engine import Poser  # noqa: E402
from talkinghead_nb.engine.acceleration import retain_freed_memory  # noqa: E402
from talkinghead_nb.engine.poser import PER_FRAME_NETWORKS  # noqa: E402

# The precision each backend computes in, to pick the matching ceiling.
PRECISION = {"torch": torch.float32, "openvino": torch.float32, "openvino-bf16": torch.bfloat16}


def median_seconds(work, repeats: int = 5) -> float:
    work()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def attainable(dtype: torch.dtype) -> dict[str, float]:
    """GFLOP/s of a 2048³ matrix product and of a 3×3 convolution (128 → 128 channels, 128×128), in ``dtype``."""
    a, b = torch.randn(2048, 2048, dtype=dtype), torch.randn(2048, 2048, dtype=dtype)
    matmul = 2 * 2048 ** 3 / median_seconds(lambda: a @ b) / 1e9
    x, w = torch.randn(1, 128, 128, 128, dtype=dtype), torch.randn(128, 128, 3, 3, dtype=dtype)
    conv = 2 * 128 * 128 * 9 * 128 * 128 / median_seconds(lambda: torch.nn.functional.conv2d(x, w, padding=1)) / 1e9
    return {"matmul": matmul, "conv3x3": conv}


def network_gflop() -> dict[str, float]:
    """GFLOP (multiply-adds × 2) of one call of each per-frame network, counted by torch's flop counter."""
    from torch.utils.flop_counter import FlopCounterMode
    poser = Poser("separable_float", "cpu", stage_cache=False)
    character = load_character("lambda_00")
    poser.render_tensor(character, animation_poses(1)[0])  # the character's one-off decomposition, not counted
    with FlopCounterMode(display=False) as counter:
        poser.render_tensor(character, animation_poses(2)[1])
    counts = counter.get_flop_counts()
    return {name: sum(counts[type(poser.networks[name]).__name__].values()) / 1e9 for name in PER_FRAME_NETWORKS}


def network_seconds(backend: str, frames: int) -> dict[str, float]:
    """Median seconds per call of each per-frame network on the animation, stage cache off."""
    poser = Poser("separable_float", "cpu", backend=backend, stage_cache=False)
    character = load_character("lambda_00")
    calls: dict[str, list[float]] = defaultdict(list)
    for name in PER_FRAME_NETWORKS:
        module, started = poser.networks[name], {}
        module.register_forward_pre_hook(lambda m, args, started=started: started.update(t=time.perf_counter()))
        module.register_forward_hook(lambda m, args, out, name=name, started=started:
                                     calls[name].append(time.perf_counter() - started["t"]))
    poses = animation_poses(frames + 2)
    for pose in poses:
        poser.render_tensor(character, pose)
    return {name: statistics.median(times[2:]) for name, times in calls.items()}  # the first two warm up


def _example_inputs(name: str) -> tuple[torch.Tensor, ...]:
    from talkinghead_nb.engine.openvino_backend import EXAMPLE_SHAPES
    generator = torch.Generator().manual_seed(0)
    return tuple(torch.rand(shape, generator=generator) * 2 - 1 for shape in EXAMPLE_SHAPES[name])


def time_by_operation(backend: str, name: str) -> dict[str, float]:
    """{operation kind: share of the network's time} for one call of network ``name``."""
    inputs = _example_inputs(name)
    poser = Poser("separable_float", "cpu", backend=backend)
    network = poser.networks[name]
    shares: dict[str, float] = defaultdict(float)
    if backend == "torch":
        from torch.profiler import ProfilerActivity, profile
        with torch.inference_mode():
            network(*inputs)
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                network(*inputs)
        for event in prof.key_averages():
            shares[event.key.removeprefix("aten::")] += event.self_cpu_time_total
    else:
        import numpy as np
        import openvino as ov

        model = ov.Core().read_model(network.model_file)
        compiled = ov.Core().compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": network.precision,
                                                          "PERFORMANCE_HINT": "LATENCY", "PERF_COUNT": "YES"})
        request = compiled.create_infer_request()
        arrays = [np.ascontiguousarray(x.numpy()) for x in inputs]
        request.infer(arrays)
        request.infer(arrays)
        for node in request.profiling_info:
            shares[node.node_type] += node.real_time.total_seconds()
    total = sum(shares.values())
    return {kind: spent / total for kind, spent in sorted(shares.items(), key=lambda kv: -kv[1])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--backends", default="torch,openvino,openvino-bf16")
    parser.add_argument("--no-tune-allocator", dest="tune_allocator", action="store_false",
                        help="leave the C allocator as it is (by default tuned, as the command line does)")
    parser.add_argument("--out", type=Path, help="also write the report here")
    args = parser.parse_args()
    if args.tune_allocator:
        retain_freed_memory()
    gflop = network_gflop()
    lines = [f"torch {torch.__version__}, {torch.get_num_threads()} threads, allocator "
             f"{'tuned' if args.tune_allocator else 'as it is'}; GFLOP per frame: "
             + ", ".join(f"{name} {value:.1f}" for name, value in gflop.items()) + f", total {sum(gflop.values()):.1f}"]
    ceilings = {}
    for dtype in (torch.float32, torch.bfloat16):
        found = attainable(dtype)
        ceilings[dtype] = max(found.values())
        lines.append(f"attainable {str(dtype).removeprefix('torch.')}: matmul {found['matmul']:.0f} GFLOP/s, "
                     f"conv3x3 {found['conv3x3']:.0f} GFLOP/s → ceiling {ceilings[dtype]:.0f}")
    for backend in args.backends.split(","):
        try:
            seconds = network_seconds(backend, args.frames)
        except Exception as e:  # noqa: BLE001 — a backend that cannot run here is reported, the others go on
            lines.append(f"{backend}: not measured ({type(e).__name__}: {str(e)[:120]})")
            continue
        ceiling = ceilings[PRECISION[backend]]
        total = sum(seconds.values())
        lines.append(f"{backend} (ceiling {ceiling:.0f} GFLOP/s): all four networks {total * 1e3:.0f} ms a frame, "
                     f"{sum(gflop.values()) / total:.0f} GFLOP/s = {sum(gflop.values()) / total / ceiling:.0%}")
        for name, spent in seconds.items():
            rate = gflop[name] / spent
            lines.append(f"  {name:28} {spent * 1e3:7.1f} ms  {rate:6.0f} GFLOP/s  {rate / ceiling:5.0%} of the "
                         "ceiling")
    lines.append("where the time goes (share of one call, operations above 3 %):")
    for backend in args.backends.split(","):
        for name in ("two_algo_face_body_rotator", "editor"):
            try:
                shares = time_by_operation(backend, name)
            except Exception as e:  # noqa: BLE001
                lines.append(f"  {backend} {name}: not profiled ({type(e).__name__})")
                continue
            lines.append(f"  {backend:14} {name:27} " + ", ".join(
                f"{kind} {share:.0%}" for kind, share in shares.items() if share >= 0.03))
    publish(lines, args.out)


if __name__ == "__main__":
    main()
