"""The live server on Ray Serve: feed parts per second for each of several sessions spread over renderers, through
the ingress, and the frames each session's renderer made in that time.

    python bench/cluster_serve.py [--replicas 2] [--sessions 4] [--fps 25] [--seconds 10] [--engine real|fake]
                                  [--out bench/results/FILE.txt]

``--engine fake`` renders with the stand-in of the tests (about a millisecond a frame): what is left is the cost of
the routing and streaming (encoding, Serve's proxy, the ingress, Ray's streaming calls). ``--engine real`` is the
THA3 engine on this machine's CPU: parts keep their rate (the newest frame is sent again), frames rendered show what
the engines manage.
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import threading
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.report import publish  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def watch(url: str, seconds: float, out: dict) -> None:
    """Parts of one feed per second over ``seconds`` from its first part, and their mean size."""
    with httpx.stream("GET", url, timeout=300) as response:
        out["replica"] = response.headers["x-talkinghead-replica"]
        parts, size, start = 0, 0, None
        for chunk in response.iter_bytes():
            if start is None and b"--frame" in chunk:
                start = time.monotonic()
                continue
            if start is not None:
                parts += chunk.count(b"--frame\r\n")
                size += len(chunk)
                if time.monotonic() - start >= seconds:
                    break
        out["rate"], out["kib"] = parts / (time.monotonic() - start), size / max(1, parts) / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--replicas", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=4)
    parser.add_argument("--fps", type=float, default=25)
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--engine", choices=("real", "fake"), default="fake")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from talkinghead_nb.cluster import EngineSpec, serve_live
    engine = EngineSpec(device="cpu")
    if args.engine == "fake":
        from tests.cluster_fakes import CpuFakePoser
        engine = EngineSpec(make_poser=CpuFakePoser)
    start = time.perf_counter()
    with serve_live("crypko_00", replicas=args.replicas, address="local", port=free_port(), engine=engine) as live:
        ready = time.perf_counter() - start
        with httpx.Client(base_url=live.url, timeout=60) as client:
            ids = [client.post("/api/sessions").json()["id"] for _ in range(args.sessions)]
            before = {s: client.get(f"/api/sessions/{s}/stats").json()["frames_rendered"] for s in ids}
            watched_from = time.monotonic()
            feeds = {s: {} for s in ids}
            threads = [threading.Thread(target=watch, args=(f"{live.feed_url(s)}?fps={args.fps}", args.seconds,
                                                            feeds[s])) for s in ids]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            rendered = {s: client.get(f"/api/sessions/{s}/stats").json()["frames_rendered"] - before[s] for s in ids}
            elapsed = time.monotonic() - watched_from
    lines = [f"Ray Serve, {args.replicas} renderer(s), {args.sessions} sessions, {args.engine} engine, feeds asked "
             f"for {args.fps:g} parts/s (png), {args.seconds:g} s each, {os.cpu_count()} cores; deployed in "
             f"{ready:.0f} s (Ray started here)", "",
             f"{'session':14} {'renderer':11} {'parts/s':>8} {'KiB/part':>9} {'frames/s rendered':>18}"]
    for s in ids:
        lines.append(f"{s:14} {feeds[s]['replica']:11} {feeds[s]['rate']:8.1f} {feeds[s]['kib']:9.0f} "
                     f"{rendered[s] / elapsed:18.2f}")
    total = sum(f["rate"] for f in feeds.values())
    mib = sum(f["rate"] * f["kib"] for f in feeds.values()) / 1024
    lines += ["", f"all feeds together: {total:.1f} parts/s, {mib:.1f} MiB/s through the ingress; load avg at the "
              f"end {os.getloadavg()[0]:.1f}"]
    publish(lines, args.out)


if __name__ == "__main__":
    main()
