"""The bookkeeping of a sprite batch: the time to record N characters' results in its manifest (``_batch.json``),
before and after the journal, with no rendering at all.

    python bench/batch_manifest.py [--counts 500,1000,2000,10000] [--limit 180] [--out bench/results/FILE.txt]

"before" is the manifest as of git's HEAD (``--before REV`` for another), loaded from ``git show`` into a module of
its own: it rewrites and fsyncs the whole ``_batch.json`` after every result. "after" is the working tree's: one
journal line per result, ``_batch.json`` rewritten from time to time and when the run ends. Each count starts from an
empty folder; a configuration that takes longer than ``--limit`` seconds is stopped and its progress reported.
"resume" is the time a run takes to open the manifest that a run killed after N results left behind (for "after",
folding its journal into ``_batch.json``).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import publish  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MANIFEST = "talkinghead_nb/cluster/manifest.py"


def manifest_module(rev: str | None) -> ModuleType:
    """The manifest module of the working tree (``rev`` None), or of ``rev`` loaded from git as a module of its own
    inside the package (so that its relative imports resolve)."""
    if rev is None:
        from talkinghead_nb.cluster import manifest
        return manifest
    source = subprocess.run(["git", "show", f"{rev}:{MANIFEST}"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    path = Path(tempfile.mkdtemp()) / "manifest_before.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location("talkinghead_nb.cluster.manifest_before", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def result(i: int) -> dict:
    """A worker's answer as the batch records it: 28 sprites, one warning."""
    from talkinghead_nb.cluster.worker import DONE, outcome
    return outcome(f"character_{i:05}", f"/data/characters/character_{i:05}.png", DONE, seconds=2.5 + i % 7 / 10,
                   findings=[{"check": "margin", "level": "warning", "message": "the head touches the top edge",
                              "fix": "leave a margin above the head"}],
                   files={f"emotion_{k:02}.png": b"" for k in range(28)})


def record(module: ModuleType, out: Path, count: int, limit: float) -> tuple[float, int]:
    """Seconds to record ``count`` results (the manifest closed at the end, where it has a close), and how many were
    recorded: fewer when ``limit`` seconds ran out first."""
    results = [result(i) for i in range(count)]
    start = time.perf_counter()
    manifest = module.Manifest(out)
    done = 0
    with manifest if hasattr(manifest, "__enter__") else contextlib.nullcontext(manifest):
        for answer in results:
            manifest.record(answer)
            done += 1
            if time.perf_counter() - start > limit:
                break
    return time.perf_counter() - start, done


def resume(rev: str | None, out: Path, count: int) -> float:
    """Seconds to open the manifest that a run killed after ``count`` results left in ``out``."""
    subprocess.run([sys.executable, __file__, "--killed", str(count), "--dir", str(out), "--before", rev or ""],
                   check=True)
    module = manifest_module(rev)
    start = time.perf_counter()
    module.Manifest(out)
    return time.perf_counter() - start


def killed(rev: str | None, out: Path, count: int) -> None:
    """Record ``count`` results and end the process at once, as a kill would (nothing closed)."""
    module = manifest_module(rev)
    manifest = module.Manifest(out)
    if hasattr(manifest, "__enter__"):
        manifest.__enter__()
    for i in range(count):
        manifest.record(result(i))
    os._exit(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", default="500,1000,2000,10000")
    parser.add_argument("--limit", type=float, default=180.0, help="seconds per count and configuration")
    parser.add_argument("--before", default="HEAD", help="the git revision to measure as 'before'")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--killed", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--dir", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.killed is not None:
        killed(args.before or None, args.dir, args.killed)

    lines = [f"recording N results in a batch manifest (no rendering); {os.cpu_count()} cores; before = {MANIFEST} "
             f"at {args.before}, after = the working tree; a configuration is stopped after {args.limit:g} s", "",
             f"{'results':>8} {'config':7} {'record s':>9} {'ms/result':>10} {'resume s':>9} {'load avg':>9}"]
    for count in (int(c) for c in args.counts.split(",")):
        for config, rev in (("before", args.before), ("after", None)):
            with tempfile.TemporaryDirectory() as out:
                seconds, done = record(manifest_module(rev), Path(out), count, args.limit)
            figures = f"{seconds:9.2f} {1000 * seconds / done:10.2f}"
            if done < count:
                figures = f"{'>' + format(seconds, '.0f'):>9} {1000 * seconds / done:10.2f}  (stopped: {done} recorded)"
                lines.append(f"{count:8} {config:7} {figures}")
                print(lines[-1], flush=True)
                continue
            with tempfile.TemporaryDirectory() as out:
                again = resume(rev, Path(out), count)
            lines.append(f"{count:8} {config:7} {figures} {again:9.2f} {os.getloadavg()[0]:9.1f}")
            print(lines[-1], flush=True)
    lines += ["", "record s: recording every result, the manifest closed at the end (after: the journal folded into "
              "_batch.json); ms/result: per result; resume s: opening the manifest that a run killed after N results "
              "left (after: its journal folded in); load avg: the machine's 1-minute load then (other work on the "
              "same cores slows every figure). The manifests are written under the system's temporary folder (here "
              "the ext4 disk of the checkout)."]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
