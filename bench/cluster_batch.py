"""Sprites for many characters: characters per minute with 1 and 2 engines, as worker processes and on a local Ray,
against the plain single-process export (``export_sprites`` for one character after another), same machine.

    python bench/cluster_batch.py [--characters 4] [--names 4] [--device cpu] [--out bench/results/FILE.txt]

Each configuration runs in a fresh process. The wall time of a run counts everything a user waits for: building the
engines, the checks, rendering, encoding and writing. For Ray, starting the local Ray is timed apart ("ray start"),
and the run after it ("run"); Ray's overhead is the difference to the plain export. ``--names`` renders the first N
emotions of each character (28 for the full set): figures per character are for that many sprites.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import publish  # noqa: E402

CONFIGS = ("plain", "pool-1", "pool-2", "ray-1", "ray-2")


def run_one(config: str, inputs: Path, out: Path, names: list[str], device: str) -> dict:
    """One configuration, in this process: its wall time (and Ray's start apart)."""
    from talkinghead_nb.cluster import export_many
    start = time.perf_counter()
    if config == "plain":
        from talkinghead_nb.character import load_character
        from talkinghead_nb.emotions import EmotionLibrary
        from talkinghead_nb.engine import Poser
        from talkinghead_nb.engine.acceleration import retain_freed_memory
        from talkinghead_nb.sprites import export_sprites
        retain_freed_memory()
        poser, templates = Poser("auto", device), EmotionLibrary().load()
        begin, paths = time.perf_counter(), sorted(inputs.iterdir())
        for path in paths:
            export_sprites(poser, load_character(path), out / path.stem, templates, names, progress=False)
        return {"run": time.perf_counter() - start, "ray start": 0.0,
                "per char": (time.perf_counter() - begin) / len(paths)}
    kind, workers = config.split("-")
    ray_start = 0.0
    if kind == "ray":
        from talkinghead_nb.cluster.ray_setup import connect
        connection = connect("local", int(workers))
        ray_start = time.perf_counter() - start
    result = export_many(inputs, out, names=names, ray="local" if kind == "ray" else None, workers=int(workers),
                         device=device, progress=False)
    assert len(result.rendered) == len(list(inputs.iterdir())), result
    run = time.perf_counter() - start - ray_start
    if kind == "ray":
        connection.close()
    seconds = [c["seconds"] for c in json.loads(result.manifest.read_text())["characters"].values()]
    return {"run": run, "ray start": ray_start, "per char": sum(seconds) / len(seconds)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--characters", type=int, default=4)
    parser.add_argument("--names", type=int, default=4, help="emotions per character (28: all)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--configs", default=",".join(CONFIGS))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--one", default=None, help=argparse.SUPPRESS)  # a configuration, in a process of its own
    parser.add_argument("--inputs", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    from talkinghead_nb.emotions import EMOTIONS
    names = list(EMOTIONS[:args.names])
    if args.one:
        with tempfile.TemporaryDirectory() as out:
            print(json.dumps(run_one(args.one, args.inputs, Path(out), names, args.device)))
        return

    from talkinghead_nb.character import example_path
    lines = [f"{args.characters} characters × {len(names)} sprites on {args.device}, {os.cpu_count()} cores; each "
             "configuration in a fresh process, one after another", "",
             f"{'configuration':14} {'ray start s':>11} {'run s':>7} {'chars/min':>10} {'s/char':>7} "
             f"{'× plain':>8} {'engine s/char':>14} {'load avg':>9}"]
    plain = None
    with tempfile.TemporaryDirectory() as inputs:
        for i in range(args.characters):
            name = f"crypko_{i % 8:02}"
            (Path(inputs) / f"{name}-{i}.png").write_bytes(example_path(name).read_bytes())
        for config in args.configs.split(","):
            answer = subprocess.run([sys.executable, __file__, "--one", config, "--inputs", inputs, "--names",
                                     str(args.names), "--device", args.device], capture_output=True, text=True)
            if answer.returncode:
                raise SystemExit(answer.stderr)
            figures = json.loads(answer.stdout.strip().splitlines()[-1])
            total = figures["run"] + figures["ray start"]
            plain = plain or total
            lines.append(f"{config:14} {figures['ray start']:11.1f} {figures['run']:7.1f} "
                         f"{60 * args.characters / total:10.2f} {total / args.characters:7.1f} "
                         f"{plain / total:8.2f} {figures['per char']:14.1f} {os.getloadavg()[0]:9.1f}")
            print(lines[-1], flush=True)
    lines += ["", "chars/min and s/char count the whole wait (Ray's start included); × plain: speed against the plain "
              "export; engine s/char: one character's checks and renders on its worker (the manifest's seconds; "
              "plain: its renders), what a long batch costs per character and engine once everything has started; "
              "load avg: the machine's 1-minute load when the configuration ended (other work on the same cores "
              "slows every figure)"]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
