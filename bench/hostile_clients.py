"""Hostile and careless clients against the live server: does it answer, keep its feed and keep rendering?

Each attack runs against a fresh `talkinghead-nb serve crypko_00 --offline` subprocess (real THA3 engine, CPU when
there is no GPU; `--engine fake`: the stand-in renderer of tests/fake_engine.py) started from `--repo`. A watcher
reads the default feed; once its first part arrives it counts parts for 2 s, the attack runs, and it counts on for
`--after` seconds (default 3) after the attack's last answer. Per attack: the attack's answers (status and content
type, or timeout / connection error), the feed's parts/s before, during (the attack and the time after it) and after
the attack, and its longest gap, whether GET /api/talkinghead/stats answers within 5 s afterwards and whether
`frames_rendered` still grows over 3 s, the server's peak resident memory growth (VmHWM) and a figure of the attack's
own. Only 127.0.0.1 is contacted; every request has a timeout and every loop a bound.

    python bench/hostile_clients.py [--repo DIR] [--engine real|fake] [--only sway_tiny,png_bomb] [--after 20]
                                    [--json OUT]
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import os
import re
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from itertools import pairwise
from pathlib import Path

HOST = "127.0.0.1"
KEY = "k3y"
FEED = "/api/talkinghead/result_feed"
STATS = "/api/talkinghead/stats"
SETTINGS = "/api/talkinghead/load_animator_settings"
TEMPLATES = "/api/talkinghead/load_emotion_templates"
SET_EMOTION = "/api/talkinghead/set_emotion"
REQUEST_TIMEOUT_S = 30.0
START_TIMEOUT_S = 180.0
BEFORE_S, AFTER_S, STATS_TIMEOUT_S = 2.0, 3.0, 5.0
BIG_INTEGER = "1" + "0" * 399


@dataclass
class Answer:
    """One HTTP answer: status ("timeout" and "connection error" when there is none), content type, body."""

    status: str
    content_type: str = ""
    body: bytes = b""

    def __str__(self) -> str:
        kind = self.content_type.split(";")[0].split("/")[-1]
        return f"{self.status} {kind}".strip()

    def json(self) -> object:
        try:
            return json.loads(self.body)
        except ValueError:
            return None


def summarize(answers: list[Answer]) -> str:
    """'413 json' for one answer, '4×413 json' for four alike, '2×200 json, 2×429 json' otherwise."""
    counts = Counter(str(a) for a in answers)
    return ", ".join(text if n == 1 else f"{n}×{text}" for text, n in counts.items())


def multipart(field_name: str, filename: str, data: bytes) -> tuple[bytes, str]:
    """A multipart/form-data body with one file, and its content type."""
    boundary = "hostile-clients-boundary"
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field_name}"; filename="{filename}"\r\n'
            "Content-Type: image/png\r\n\r\n").encode()
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


@dataclass
class Server:
    """A running server subprocess and how to talk to it."""

    process: subprocess.Popen
    port: int
    key: str | None
    log: Path | None = None  # what it printed, while it runs

    def request(self, method: str, path: str, body: bytes | None = None, content_type: str = "application/json",
                key: bool = True, timeout: float = REQUEST_TIMEOUT_S) -> Answer:
        headers = {"Content-Type": content_type} if body is not None else {}
        if key and self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        connection = http.client.HTTPConnection(HOST, self.port, timeout=timeout)
        try:
            try:
                connection.request(method, path, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError):
                pass  # a server may answer (413) and close before the whole body is sent: read that answer
            response = connection.getresponse()
            content = response.getheader("Content-Type", "")
            limit = 1 << 16 if content.startswith("multipart/") else 1 << 26  # a feed never ends
            return Answer(str(response.status), content, response.read(limit))
        except TimeoutError:
            return Answer("timeout")
        except (OSError, http.client.HTTPException):
            return Answer("connection error")
        finally:
            connection.close()

    def post(self, path: str, data: object, **options) -> Answer:
        body = data if isinstance(data, bytes) else json.dumps(data).encode()
        return self.request("POST", path, body, **options)

    def frames_rendered(self) -> int | None:
        """The default session's frames_rendered, or None when stats does not answer within 5 s."""
        stats = self.request("GET", STATS, timeout=STATS_TIMEOUT_S).json()
        return stats.get("frames_rendered") if isinstance(stats, dict) else None

    def memory_mib(self, name: str) -> float | None:
        """VmRSS (resident now) or VmHWM (peak resident) of the server process in MiB; None once it has exited."""
        try:
            status = Path(f"/proc/{self.process.pid}/status").read_text()
        except OSError:
            return None
        found = re.search(rf"^{name}:\s+(\d+) kB", status, re.M)
        return int(found.group(1)) / 1024 if found else None


def wait_for_port(process: subprocess.Popen, log: Path, deadline: float) -> int:
    """The port from the server's 'serving … at http://127.0.0.1:PORT' line."""
    while time.monotonic() < deadline and process.poll() is None:
        found = re.search(r"serving .* at http://127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
        if found:
            return int(found.group(1))
        time.sleep(0.2)
    raise RuntimeError(f"the server did not start:\n{log.read_text(errors='replace')[-2000:]}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def serve_fake(key: str | None) -> None:
    """The server process of `--engine fake`: crypko_00 behind the stand-in renderer, on a free port, until killed."""
    from talkinghead_nb.character import example_path, load_character
    from talkinghead_nb.live import LiveServer
    from tests.fake_engine import FakePoser
    server = LiveServer(load_character(example_path("crypko_00")), poser=FakePoser(), port=0, seed=0,
                        api_key=key).start()
    print(f"serving crypko_00 with the stand-in renderer at {server.url}", flush=True)
    while server.running:
        time.sleep(1)


@contextmanager
def running_server(repo: Path, key: str | None, engine: str = "real") -> Iterator[Server]:
    """A fresh `serve crypko_00` from `repo` on a free port (THA3, or with ``engine="fake"`` the stand-in renderer),
    answering GET /api/modules; stopped afterwards."""
    if engine == "fake":
        command = [sys.executable, str(Path(__file__).resolve()), "--serve-fake"]
    else:
        command = [sys.executable, "-m", "talkinghead_nb.cli", "serve", "crypko_00", "--port", "0", "--offline"]
    command += ["--api-key", key] if key else []
    env = {**os.environ, "PYTHONPATH": str(repo), "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory(prefix="hostile-") as folder:
        log = Path(folder) / "server.log"
        with log.open("wb") as output:
            process = subprocess.Popen(command, cwd=repo, env=env, stdout=output, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + START_TIMEOUT_S
            server = Server(process, wait_for_port(process, log, deadline), key, log)
            while server.request("GET", "/api/modules", timeout=5).status != "200":
                if time.monotonic() > deadline:
                    raise RuntimeError("the server does not answer GET /api/modules")
                time.sleep(0.2)
            yield server
        finally:
            stop(process)


class FeedWatcher(threading.Thread):
    """Reads a multipart feed (parts start with '--frame' and carry Content-Length) and notes when each arrives."""

    def __init__(self, port: int, path: str = FEED, limit_s: float = 600.0, timeout: float = 5.0) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.limit_s, self.timeout = port, path, limit_s, timeout
        self.arrivals: list[float] = []
        self.error: str | None = None
        self.started_at = time.monotonic()
        self._stopping = threading.Event()

    def run(self) -> None:
        deadline = time.monotonic() + self.limit_s
        connection = http.client.HTTPConnection(HOST, self.port, timeout=self.timeout)
        try:
            connection.request("GET", self.path)
            response = connection.getresponse()
            buffer = b""
            while not self._stopping.is_set() and time.monotonic() < deadline:
                chunk = response.read1(1 << 16)
                if not chunk:
                    self.error = "feed ended"
                    break
                buffer = self._take_parts(buffer + chunk)
        except TimeoutError:
            self.error = f"no feed data for {self.timeout:g} s"
        except (OSError, http.client.HTTPException) as e:
            self.error = f"feed: {type(e).__name__}"
        finally:
            connection.close()

    def _take_parts(self, buffer: bytes) -> bytes:
        """Notes each complete part in `buffer`; returns what is left of it."""
        while True:
            start = buffer.find(b"--frame\r\n")
            if start < 0:
                return buffer[-16:]
            headers_end = buffer.find(b"\r\n\r\n", start)
            if headers_end < 0:
                return buffer[start:]
            length = re.search(rb"Content-Length:\s*(\d+)", buffer[start:headers_end], re.I)
            body_end = headers_end + 4 + (int(length.group(1)) if length else 0)
            if len(buffer) < body_end:
                return buffer[start:]
            self.arrivals.append(time.monotonic())
            buffer = buffer[body_end:]

    def wait_first_part(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.arrivals and self.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)

    def finish(self) -> None:
        self._stopping.set()
        self.join(10)

    def rate(self, start: float, end: float) -> float:
        """Parts per second that arrived between `start` and `end`."""
        return sum(start <= t < end for t in self.arrivals) / (end - start)

    def longest_gap(self, start: float, end: float) -> float:
        """The longest time between `start`, the parts that arrived until `end`, and `end`."""
        times = [start, *(t for t in self.arrivals if start <= t < end), end]
        return max(b - a for a, b in pairwise(times))


@dataclass
class Outcome:
    """What an attack reports: its answers and one figure of its own."""

    answer: str
    extra: str = ""


@dataclass(frozen=True)
class Attack:
    run: Callable[[Server], Outcome]
    needs_key: bool = False


ATTACKS: dict[str, Attack] = {}


def attack(name: str, needs_key: bool = False) -> Callable[[Callable[[Server], Outcome]], Callable]:
    def register(function: Callable[[Server], Outcome]) -> Callable[[Server], Outcome]:
        ATTACKS[name] = Attack(function, needs_key)
        return function
    return register


def settings_attack(settings: dict[str, float]) -> Callable[[Server], Outcome]:
    return lambda server: Outcome(str(server.post(SETTINGS, settings)))


ATTACKS["sway_tiny"] = Attack(settings_attack({"sway_interval_min": 1e-300, "sway_interval_max": 1e-300}))
ATTACKS["blink_tiny"] = Attack(settings_attack({"blink_interval_min": 1e-9, "blink_interval_max": 1e-9}))
ATTACKS["breathing_tiny"] = Attack(settings_attack({"breathing_period": 1e-12}))


@attack("fps_tiny")
def fps_tiny(server: Server) -> Outcome:
    """target_fps 1e-12 for 1 s, then the defaults again: the session must render again."""
    tiny = server.post(SETTINGS, {"target_fps": 1e-12})
    time.sleep(1)
    return Outcome(f"{tiny}; restore {server.post(SETTINGS, {})}")


@attack("fps_huge")
def fps_huge(server: Server) -> Outcome:
    """target_fps 1e9, then a second viewer reads the feed for 2 s."""
    answer = server.post(SETTINGS, {"target_fps": 1e9})
    second = FeedWatcher(server.port)
    second.start()
    time.sleep(2)
    second.finish()
    end = time.monotonic()
    return Outcome(str(answer), f"2nd feed {second.rate(second.started_at, end):.1f}/s {second.error or ''}".strip())


@attack("bigint")
def bigint(server: Server) -> Outcome:
    """A 400-digit integer as target_fps and as a template value; then the session shows that template."""
    fps = server.post(SETTINGS, f'{{"target_fps": {BIG_INTEGER}}}'.encode())
    template = server.post(TEMPLATES, f'{{"joy": {{"mouth_aaa_index": {BIG_INTEGER}}}}}'.encode())
    joy = server.post(SET_EMOTION, {"emotion_name": "joy"})
    return Outcome(f"{fps}; {template}", f"set joy: {joy}")


def bomb_png() -> bytes:
    """An 8192×8192 RGBA PNG of zeros: ~255 KiB on the wire, 256 MiB once decoded."""
    from PIL import Image
    data = io.BytesIO()
    Image.new("RGBA", (8192, 8192)).save(data, "PNG", optimize=True)
    return data.getvalue()


@attack("png_bomb")
def png_bomb(server: Server) -> Outcome:
    """Four uploads of the PNG bomb at once to /load?fit=true (peak memory growth: the +peak column)."""
    body, content_type = multipart("file", "bomb.png", bomb_png())
    answers: list[Answer] = []

    def upload() -> None:
        answers.append(server.request("POST", "/api/talkinghead/load?fit=true", body, content_type, timeout=120))

    threads = [threading.Thread(target=upload) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(130)
    return Outcome(summarize(answers), f"{len(body) // 1024} KiB each")


def error_length(answer: Answer) -> int:
    """Bytes in the answer's JSON 'error' message (the whole body when it has none)."""
    data = answer.json()
    message = data.get("error") if isinstance(data, dict) else None
    return len(message.encode()) if isinstance(message, str) else len(answer.body)


@attack("templates_10mb")
def templates_10mb(server: Server) -> Outcome:
    """10 MB of emotion templates (700 000 names), then an unknown emotion: how long is the error?"""
    body = b"{" + b",".join(b'"emo%06d":{}' % i for i in range(700_000)) + b"}"
    answer = server.post(TEMPLATES, body, timeout=120)
    rss = server.memory_mib("VmRSS")
    unknown = server.post(SET_EMOTION, {"emotion_name": "nope"})
    return Outcome(f"{answer}; set nope {unknown}", f"RSS {rss or 0:.0f} MiB, error {error_length(unknown)} B")


@attack("sessions_flood")
def sessions_flood(server: Server) -> Outcome:
    """POST /api/sessions until refused or 50 created."""
    for accepted in range(50):
        answer = server.request("POST", "/api/sessions")
        if answer.status != "200":
            return Outcome(str(answer), f"{accepted} accepted")
    return Outcome("none refused", "50 accepted")


def raw_request(port: int, data: bytes) -> Answer:
    """Sends bytes as they are; the answer's status line and headers (its body is not read)."""
    received = b""
    try:
        with socket.create_connection((HOST, port), timeout=5) as connection:
            connection.sendall(data)
            while b"\r\n\r\n" not in received and len(received) < 1 << 16:
                chunk = connection.recv(4096)
                if not chunk:
                    break
                received += chunk
    except TimeoutError:
        return Answer("timeout")
    except OSError:
        return Answer("connection error")
    status_line, *headers = received.split(b"\r\n\r\n")[0].decode("latin-1").split("\r\n")
    content_type = next((h.split(":", 1)[1].strip() for h in headers if h.lower().startswith("content-type:")), "")
    parts = status_line.split()
    return Answer(parts[1] if len(parts) > 1 else "connection error", content_type)


@attack("host_header", needs_key=True)
def host_header(server: Server) -> Outcome:
    """GET stats without the key, with a Host header that makes a rebuilt URL's path end in /result_feed."""
    answer = raw_request(server.port, b"GET /api/talkinghead/stats HTTP/1.1\r\n"
                                      b"Host: x/api/talkinghead/result_feed#\r\nConnection: close\r\n\r\n")
    return Outcome(str(answer), "key held" if answer.status == "401" else "KEY BYPASSED")


@attack("session_ids_leak", needs_key=True)
def session_ids_leak(server: Server) -> Outcome:
    """Create a session with the key; does an unknown session's feed, asked without the key, name it?"""
    created = server.request("POST", "/api/sessions").json()
    session_id = created.get("id") if isinstance(created, dict) else None
    if not session_id:
        return Outcome("create failed")
    answer = server.request("GET", "/api/sessions/nope/result_feed", key=False)
    leaked = session_id.encode() in answer.body
    return Outcome(str(answer), "ID LEAKED" if leaked else "id not shown")


@attack("labels_reload")
def labels_reload(server: Server) -> Outcome:
    """SillyTavern's GET /api/classify/labels and GET /api/talkinghead/reload."""
    labels = server.request("GET", "/api/classify/labels")
    reload = server.request("GET", "/api/talkinghead/reload")
    names = labels.json()
    count = len(names.get("labels", [])) if isinstance(names, dict) else 0
    return Outcome(f"{labels}; {reload}", f"{count} labels")


def feed_and_leave(port: int, fps: int, pipelined: bool) -> Answer:
    """Opens the default feed at ``?fps=``, reads about two parts and drops the connection mid-stream.
    ``pipelined``: a keyed route's request follows the feed's in the same packet (as if the open feed could carry it
    past the key)."""
    request = f"GET {FEED}?fps={fps} HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
    if pipelined:
        request += f"GET {STATS} HTTP/1.1\r\nHost: {HOST}\r\n\r\n"
    received = b""
    try:
        with socket.create_connection((HOST, port), timeout=5) as connection:
            connection.sendall(request.encode())
            while len(received) < 300_000:
                chunk = connection.recv(1 << 16)
                if not chunk:
                    break
                received += chunk
    except OSError:
        return Answer("connection error" if not received else "dropped")
    status = received.split(b"\r\n", 1)[0].split()
    return Answer(status[1].decode("latin-1") if len(status) > 1 else "connection error")


@attack("feeds_dropped")
def feeds_dropped(server: Server) -> Outcome:
    """24 feeds at ?fps=60 and ?fps=1, half with a request pipelined behind, dropped mid-stream; then, after up to 5 s,
    how many feeds the server still counts besides the watcher's."""
    answers: list[Answer] = []
    clients = [threading.Thread(target=lambda f=fps, p=pipelined: answers.append(feed_and_leave(server.port, f, p)))
               for fps in (60, 1) for pipelined in (False, True) for _ in range(6)]
    for client in clients:
        client.start()
    for client in clients:
        client.join(30)
    deadline = time.monotonic() + 5
    while True:
        stats = server.request("GET", STATS, timeout=STATS_TIMEOUT_S).json()
        left = stats.get("viewers", 1) - 1 if isinstance(stats, dict) else -1
        if left <= 0 or time.monotonic() > deadline:
            return Outcome(summarize(answers), f"{left} feeds left behind")
        time.sleep(0.2)


@dataclass
class Result:
    name: str
    answer: str
    extra: str
    feed_before: float
    feed_during: float
    feed_after: float
    longest_gap_s: float
    answers: bool
    renders: bool
    peak_growth_mib: float | None
    notes: list[str] = field(default_factory=list)


def measure(name: str, repo: Path, engine: str = "real", after_s: float = AFTER_S) -> Result:
    """One attack against a fresh server, with the feed watched before, during and after it."""
    with running_server(repo, KEY if ATTACKS[name].needs_key else None, engine) as server:
        watcher = FeedWatcher(server.port)
        watcher.start()
        watcher.wait_first_part(60)
        time.sleep(BEFORE_S)
        peak_before = server.memory_mib("VmHWM")
        started = time.monotonic()
        outcome = ATTACKS[name].run(server)
        attack_end = time.monotonic()
        window_end = attack_end + after_s
        first = server.frames_rendered()
        time.sleep(max(AFTER_S, window_end - time.monotonic()))  # frames_rendered must grow over at least 3 s
        second = server.frames_rendered()
        peak_after = server.memory_mib("VmHWM")
        watcher.finish()
        notes = [text for text in (watcher.error, exit_note(server.process)) if text]
        return Result(
            name, outcome.answer, outcome.extra,
            feed_before=watcher.rate(started - BEFORE_S, started),
            feed_during=watcher.rate(started, window_end),
            feed_after=watcher.rate(attack_end, window_end),
            longest_gap_s=watcher.longest_gap(started, window_end),
            answers=first is not None,
            renders=first is not None and second is not None and second > first,
            peak_growth_mib=peak_after - peak_before if peak_after is not None and peak_before is not None else None,
            notes=notes)


def exit_note(process: subprocess.Popen) -> str | None:
    code = process.poll()
    return None if code is None else f"server exited with {code}"


def table(results: list[Result]) -> str:
    lines = [f"{'attack':16} {'answer':42} {'feed/s before→during→after':>27} {'gap s':>6} {'stats':>5} "
             f"{'renders':>7} {'+peak MiB':>9}  extra"]
    for r in results:
        peak = "-" if r.peak_growth_mib is None else f"{r.peak_growth_mib:.0f}"
        extra = "; ".join(text for text in (r.extra, *r.notes) if text)
        feed = f"{r.feed_before:.1f}→{r.feed_during:.1f}→{r.feed_after:.1f}"
        lines.append(f"{r.name:16} {r.answer:42} {feed:>27} {r.longest_gap_s:>6.2f} "
                     f"{'yes' if r.answers else 'no':>5} {'yes' if r.renders else 'no':>7} {peak:>9}  {extra}")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", type=Path, default=Path(__file__).resolve().parent.parent,
                        help="the project checkout whose server is attacked (default: this one)")
    parser.add_argument("--engine", choices=("real", "fake"), default="real",
                        help="THA3 (default) or the stand-in renderer of tests/fake_engine.py")
    parser.add_argument("--after", type=float, default=AFTER_S,
                        help=f"seconds the feed is watched after an attack (default {AFTER_S:g})")
    parser.add_argument("--serve-fake", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--api-key", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--only", default=None, help=f"comma-separated attacks (default: all: {', '.join(ATTACKS)})")
    parser.add_argument("--json", type=Path, default=None, help="also write the results as JSON here")
    args = parser.parse_args()
    if args.serve_fake:
        serve_fake(args.api_key)
        return 0
    names = args.only.split(",") if args.only else list(ATTACKS)
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        parser.error(f"unknown attacks {unknown}; known: {', '.join(ATTACKS)}")
    repo = args.repo.resolve()
    print(f"server code: {repo}", flush=True)
    results = []
    for name in names:
        results.append(measure(name, repo, args.engine, args.after))
        print(table(results[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps({"repo": str(repo), "results": [asdict(r) for r in results]}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
