"""What the CPU allocator tuning (`engine/acceleration.retain_freed_memory`) costs in memory and gives in speed.

Each case runs in a fresh process: build the Poser (separable_float, CPU), render one warm-up frame and then
`--frames` frames of the live-animation sequence from a background thread, as the live server does, and read the
resident set size (VmRSS) and its peak (VmHWM) from /proc/self/status, after loading and after rendering.

    python bench/allocator.py [--frames 30] [--runs 2]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.engine_fps import animation_poses  # noqa: E402
from talkinghead_nb.character import load_character  # noqa: E402
from talkinghead_nb.engine import Poser  # noqa: E402
from talkinghead_nb.engine.acceleration import retain_freed_memory  # noqa: E402


def resident_mib() -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (peak resident) of this process, in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
    return {key: int(fields[key].split()[0]) / 1024 for key in ("VmRSS", "VmHWM")}


def measure(tuned: bool, frames: int) -> dict[str, float | bool]:
    """One case, in this process: frames/s from a background thread, and memory after loading and after it."""
    if tuned:
        retain_freed_memory()
    poser = Poser("separable_float", "cpu")
    character = load_character("lambda_00")
    poses = animation_poses(frames)
    result: dict[str, float | bool] = {"tuned": tuned, "loaded_rss": resident_mib()["VmRSS"]}

    def render() -> None:
        poser.render_array(character, poses[0])
        start = time.perf_counter()
        for pose in poses:
            poser.render_array(character, pose)
        result["fps"] = frames / (time.perf_counter() - start)

    thread = threading.Thread(target=render, name="bench-render")
    thread.start()
    thread.join()
    memory = resident_mib()
    result.update(rss=memory["VmRSS"], hwm=memory["VmHWM"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=30)
    parser.add_argument("--runs", type=int, default=2, help="runs of each case, alternating (default: 2)")
    parser.add_argument("--case", choices=("tuned", "plain"), help=argparse.SUPPRESS)  # one case, in this process
    args = parser.parse_args()
    if args.case:
        print(json.dumps(measure(args.case == "tuned", args.frames)))
        return
    print(f"separable_float on the CPU, {args.frames} frames from a background thread, each case a fresh process")
    print(f"\n{'allocator':10} {'frames/s':>9} {'RSS loaded MiB':>15} {'RSS after MiB':>14} {'peak RSS MiB':>13}")
    for _ in range(args.runs):
        for case in ("plain", "tuned"):
            out = subprocess.run([sys.executable, __file__, "--case", case, "--frames", str(args.frames)],
                                 check=True, capture_output=True, text=True).stdout
            r = json.loads(out.strip().splitlines()[-1])
            print(f"{case:10} {r['fps']:9.2f} {r['loaded_rss']:15.0f} {r['rss']:14.0f} {r['hwm']:13.0f}", flush=True)


if __name__ == "__main__":
    main()
