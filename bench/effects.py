"""The cost of every effect (at its defaults), of every preset and of DEFAULT_CHAIN on 512×512 frames, at batch 1 and
8, against the render of one THA3 frame by the same process on the same device (target: DEFAULT_CHAIN ≤ 10 % of it).

    python bench/effects.py [--repeat 10] [--devices cpu,cuda] [--threads 1,2] [--out PATH]

Times are medians per frame (a batch of 8 divided by 8), float32, after a warm-up call; the allocator is tuned as the
command line tunes it. CUDA is measured when available; the tables are also written to ``--out`` (default:
``bench/results/effects-<devices>-<date>.txt``). On a machine shared with busy processes, torch's threads wait for
each other: compare with ``--threads 1``.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from talkinghead_nb.atomic import write_bytes  # noqa: E402
from talkinghead_nb.character import load_character  # noqa: E402
from talkinghead_nb.effects import DEFAULT_CHAIN, EFFECTS, PRESETS, EffectChain, make_step, to_display  # noqa: E402
from talkinghead_nb.engine import Poser  # noqa: E402
from talkinghead_nb.engine.acceleration import retain_freed_memory  # noqa: E402

BATCHES = (1, 8)
TARGET = 0.10


def seconds_per_call(action: Callable[[], object], repeat: int, device: torch.device) -> float:
    """The median of ``repeat`` calls after a warm-up: robust to another process taking a core for a while."""
    def once() -> float:
        start = time.perf_counter()
        action()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start
    once()
    return statistics.median(once() for _ in range(repeat))


def chains() -> dict[str, EffectChain]:
    return {**{name: EffectChain((make_step(name),)) for name in EFFECTS},
            **{f"preset {name}": chain for name, chain in PRESETS.items()},
            "DEFAULT_CHAIN": DEFAULT_CHAIN}


def bench_device(device: torch.device, repeat: int) -> list[str]:
    character = load_character("lambda_00")
    poser = Poser("separable_float", device)
    poser.render_tensor(character, {})  # warm-up: compilation, allocator, caches
    render = seconds_per_call(lambda: poser.render_tensor(character, {}), max(3, repeat // 2), device)
    frame = to_display(poser.render_tensor(character, {}))
    lines = [f"{device.type}: one THA3 frame (separable_float, batch 1) renders in {render * 1e3:.0f} ms",
             "", f"{'effects':24} " + " ".join(f"{f'ms/frame b{n}':>12} {f'% render b{n}':>13}" for n in BATCHES)]
    shares = {}
    for name, chain in chains().items():
        cells = []
        for n in BATCHES:
            frames = frame.expand(n, -1, -1, -1).contiguous()
            times = [0.5 + i / 25 for i in range(n)]
            cost = seconds_per_call(lambda c=chain, f=frames, t=times: c.apply(f, t), repeat, device) / n
            shares[name, n] = cost / render
            cells.append(f"{cost * 1e3:12.2f} {cost / render * 100:12.1f}%")
        lines.append(f"{name:24} " + " ".join(cells))
    worst = max(shares["DEFAULT_CHAIN", n] for n in BATCHES)
    lines += ["", f"DEFAULT_CHAIN = {[step.name for step in DEFAULT_CHAIN.steps]}: at most {worst * 100:.1f} % of a "
                  f"render (target ≤ {TARGET * 100:.0f} %): {'met' if worst <= TARGET else 'NOT met'}", ""]
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--devices", default="cpu,cuda", help="those not available are left out")
    parser.add_argument("--out", type=Path, help="default: bench/results/effects-<devices>-<today>.txt")
    parser.add_argument("--threads", default=str(torch.get_num_threads()),
                        help="CPU thread counts for torch, each measured in turn (default: torch's choice, "
                             f"{torch.get_num_threads()}); on a machine shared with busy processes, 1 avoids threads "
                             "waiting for a core")
    args = parser.parse_args()
    retain_freed_memory()
    devices = [torch.device(d) for d in args.devices.split(",") if d != "cuda" or torch.cuda.is_available()]
    lines = [f"effects on 512×512 frames, torch {torch.__version__}", ""]
    for threads in (int(n) for n in args.threads.split(",")):
        torch.set_num_threads(threads)
        for device in devices:
            lines += [f"---- {device.type}, {threads} CPU thread(s)"] + bench_device(device, args.repeat)
    text = "\n".join(lines)
    print(text)
    name = "-".join(d.type for d in devices)
    out = args.out or Path(__file__).parent / "results" / f"effects-{name}-{datetime.date.today()}.txt"
    write_bytes(out, text.encode())
    print(f"written to {out}")


if __name__ == "__main__":
    main()
