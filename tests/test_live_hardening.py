"""Hostile and careless clients against a real live server over real HTTP (stand-in renderer behind it): every
attack gets a clear 4xx JSON answer, a viewer of the default feed keeps receiving ≥ 20 parts/s throughout, and the
session still answers afterwards."""

from __future__ import annotations

import contextlib
import functools
import io
import socket
import subprocess
import sys
import textwrap
import threading
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest
from PIL import Image

from talkinghead_nb.live import LiveServer
from talkinghead_nb.live.http import ServerLimits

from .fake_engine import FakePoser

ROOT = Path(__file__).resolve().parent.parent


class FeedWatcher:
    """Reads the default feed in a thread for the whole module and notes when each part arrived."""

    def __init__(self, url: str):
        self.url, self.arrived, self.stopping = url, [], False
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        marker, tail = b"--frame\r\n", b""
        with httpx.stream("GET", self.url, timeout=30) as response:
            for chunk in response.iter_bytes():
                data = tail + chunk  # a boundary may straddle two chunks
                self.arrived.extend([time.monotonic()] * data.count(marker))
                tail = data[-(len(marker) - 1):]
                if self.stopping:
                    return

    def worst_second(self, start: float, end: float) -> int:
        """The fewest parts that arrived in any whole second from ``start`` to ``end`` (all of them if shorter)."""
        windows = np.arange(start, end - 1, 0.25)
        if not len(windows):
            return sum(start <= t <= end for t in self.arrived)
        return min(sum(t0 <= t < t0 + 1 for t in self.arrived) for t0 in windows)

    def rate_since(self, start: float) -> float:
        """Parts per second from ``start`` to now, over at least 1 s."""
        time.sleep(max(0.0, start + 1.0 - time.monotonic()))
        end = time.monotonic()
        return sum(start <= t <= end for t in self.arrived) / (end - start)


@pytest.fixture(scope="module")
def server(character):
    limits = ServerLimits(max_sessions=3, max_feeds=6, max_json_kb=64)
    with LiveServer(character, poser=FakePoser(), port=0, seed=0, api_key="k3y", limits=limits) as live:
        yield live


@pytest.fixture(scope="module")
def watcher(server):
    watcher = FeedWatcher(server.feed_url())
    deadline = time.monotonic() + 30
    while len(watcher.arrived) < 5:
        assert time.monotonic() < deadline, "the feed did not start"
        time.sleep(0.05)
    yield watcher
    watcher.stopping = True


@pytest.fixture
def client(server, watcher):
    """An authorised client; after the test: the viewer kept its rate, the session answers and animates."""
    start = time.monotonic()
    with httpx.Client(base_url=server.url, timeout=30, headers={"Authorization": "Bearer k3y"}) as c:
        yield c
        assert watcher.rate_since(start) >= 20, "the other viewer's feed stalled"
        stats = c.get("/api/talkinghead/stats")
        assert stats.status_code == 200 and stats.json()["render_thread_alive"]
        assert c.post("/api/talkinghead/load_animator_settings", json={}).status_code == 200
        assert c.post("/api/talkinghead/load_emotion_templates", json={}).status_code == 200


def refused(answer: httpx.Response, status: int, *words: str) -> str:
    assert answer.status_code == status, answer.text
    message = answer.json()["error"]
    for word in words:
        assert word in message, message
    assert len(message) < 2000, "error messages stay short whatever was sent"
    return message


HANGING_SETTINGS = [
    ({"sway_interval_min": 1e-300, "sway_interval_max": 1e-300}, "sway_interval_min must be between 0.1 and 60"),
    ({"blink_interval_min": 1e-9, "blink_interval_max": 1e-9, "blink_duration": 1e-9}, "blink_interval_min"),
    ({"breathing_period": 1e-12}, "breathing_period must be between 0.5 and 60"),
    ({"target_fps": 1e-12}, "target_fps must be between 1 and 60"),
    ({"target_fps": 1e9}, "target_fps must be between 1 and 60"),
]


@pytest.mark.parametrize(("settings", "message"), HANGING_SETTINGS)
def test_settings_that_would_hang_or_flood_are_refused_by_name_and_range(server, client, settings, message):
    refused(client.post("/api/talkinghead/load_animator_settings", json=settings), 400, message)
    assert server.session().animator.settings == server.settings


BIG = "1" + "0" * 400
HUGE = "1" + "0" * 5000  # more digits than Python turns into an int from text


@pytest.mark.parametrize(("path", "body"), [
    ("load_animator_settings", f'{{"target_fps": {BIG}}}'),
    ("load_emotion_templates", f'{{"joy": {{"mouth_aaa_index": {BIG}}}}}'),
    ("load_emotion_templates", f'{{"joy": {{"mouth_aaa_index": -{BIG}.5e3}}}}'),
    ("load_animator_settings", f'{{"target_fps": {HUGE}}}'),
    ("set_emotion", f'{{"emotion_name": {BIG}}}'),
    ("record", f'{{"seconds": {BIG}}}'),
    ("record", f'{{"seconds": 2, "steps": [{{"at": {BIG}, "emotion": "joy"}}]}}'),
    ("speak", f'{{"timeline": {{"words": [{{"word": "hi", "start": 0, "end": {BIG}}}]}}}}'),
    ("load_animator_settings", "[" * 100_000 + "]" * 100_000),
])
def test_numbers_json_allows_and_python_does_not_get_a_4xx(client, path, body):
    answer = client.post(f"/api/talkinghead/{path}", content=body.encode(),
                         headers={"content-type": "application/json"})
    assert 400 <= answer.status_code < 500 and answer.headers["content-type"] == "application/json", answer.text
    assert answer.json()["error"]


JSON_ROUTES = ["set_emotion", "load_emotion_templates", "load_animator_settings", "load_effects", "record", "speak"]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("route", JSON_ROUTES)
@pytest.mark.parametrize("body", [
    f'{{"timeline": {nested(20_000)}}}',  # deeper than Python's parser goes: a RecursionError, a 500 on /speak
    f'{{"timeline": {nested(40)}, "emotion_name": {nested(40)}}}',  # parsed, but deeper than any request needs
], ids=["20000-deep", "40-deep"])
def test_deeply_nested_json_gets_a_400_that_says_so_on_every_json_route(client, route, body):
    for path in (f"/api/talkinghead/{route}", f"/api/sessions/default/{route}"):
        answer = client.post(path, content=body.encode(), headers={"content-type": "application/json"})
        refused(answer, 400, "nested more than 32 levels")


@functools.cache
def png_of_size(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGBA", (width, height)).save(out, "PNG", optimize=True)
    return out.getvalue()


@pytest.fixture(scope="module", autouse=True)
def _bomb_made_before_any_measurement() -> None:
    png_of_size(8192, 8192)  # seconds of CPU in this process, which also runs the server: not while measuring


@pytest.mark.parametrize("fit", [False, True])
def test_decompression_amplification_is_refused_from_the_header(client, fit):
    bomb = png_of_size(8192, 8192)
    assert len(bomb) < 300 * 1024
    refused(client.post(f"/api/talkinghead/load?fit={str(fit).lower()}", files={"file": ("b.png", bomb)}), 400,
            "8192×8192")


def test_only_png_is_decoded(client):
    out = io.BytesIO()
    Image.new("RGB", (512, 512)).save(out, "JPEG")
    refused(client.post("/api/talkinghead/load", files={"file": ("x.jpg", out.getvalue())}), 400, "JPEG", "PNG")


def test_uploads_queued_for_decoding_hold_no_thread_the_feeds_need(client, watcher):
    """45 uploads at once, decoded one at a time: they wait for their turn in the event loop, so the worker threads
    that feeds and routes share stay free. (Waiting in those threads, they starved the feed: 1 part in a second.)"""
    image = Image.new("RGBA", (3072, 3072))
    image.paste((200, 120, 90, 255), (768, 512, 2304, 3072))  # a figure on a transparent canvas
    out = io.BytesIO()
    image.save(out, "PNG", optimize=True)
    big = out.getvalue()
    start = time.monotonic()
    with ThreadPoolExecutor(45) as pool:
        answers = list(pool.map(lambda _: client.post("/api/talkinghead/load?fit=true", timeout=90,
                                                      files={"file": ("big.png", big, "image/png")}), range(45)))
    assert watcher.worst_second(start, time.monotonic()) >= 5  # starved, it got 0 or 1 in a second
    assert {answer.status_code for answer in answers} <= {200, 429}, {a.status_code: a.text for a in answers}
    assert sum(answer.status_code == 200 for answer in answers) >= 10
    assert client.get("/api/talkinghead/stats").status_code == 200


def test_hostile_uploads_keep_the_server_memory_bounded(tmp_path):
    """A fresh server process; four 8192×8192 PNGs (255 KiB each) at once, with fit=true: its peak memory grows by
    less than 300 MB (decoding one would take 256 MB, four at once 1 GB)."""
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT)!r})
        from talkinghead_nb.live import LiveServer
        from tests.fake_engine import FakePoser
        server = LiveServer("crypko_00", poser=FakePoser(), port=0).start()
        print(server.url, flush=True)
        sys.stdin.read()
        server.stop()
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                               text=True)
    try:
        url = process.stdout.readline().strip()

        def peak_kib() -> int:
            status = Path(f"/proc/{process.pid}/status").read_text()
            return int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM")))
        httpx.get(url + "/api/modules")
        before = peak_kib()
        bomb = png_of_size(8192, 8192)
        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda _: httpx.post(url + "/api/talkinghead/load?fit=true", timeout=60,
                                                         files={"file": ("b.png", bomb)}), range(4)))
        assert {a.status_code for a in answers} == {400}
        assert (peak_kib() - before) / 1024 < 300
    finally:
        process.stdin.close()
        process.wait(30)


def test_templates_are_capped_in_count_name_and_size(server, client):
    many = {f"e{i}": {"mouth_aaa_index": 0.5} for i in range(300)}
    refused(client.post("/api/talkinghead/load_emotion_templates", json=many), 400, "300 emotions", "256")
    refused(client.post("/api/talkinghead/load_emotion_templates", json={"x" * 65: {}}), 400,
            "not a usable emotion name")
    refused(client.post("/api/talkinghead/load_emotion_templates", json={"../../etc": {}}), 400,
            "not a usable emotion name")
    body = b'{"n": {"mouth_aaa_index": 0.5}, ' + b'"x": {}, ' * 1_000_000 + b'"z": {}}'  # 10 MB of templates
    refused(client.post("/api/talkinghead/load_emotion_templates", content=body,
                        headers={"content-type": "application/json"}), 413, "64 KiB")
    assert len(server.session().animator.templates.names) < 40


def test_unknown_emotion_error_lists_only_a_few_names(client):
    many = {f"emotion{i:03d}": {"mouth_aaa_index": 0.5} for i in range(200)}
    assert client.post("/api/talkinghead/load_emotion_templates", json=many).status_code == 200
    message = refused(client.post("/api/talkinghead/set_emotion", json={"emotion_name": "x" * 5000}), 400,
                      "unknown emotion", "more", "/api/classify/labels")
    assert message.count(",") < 12
    labels = client.get("/api/classify/labels").json()["labels"]
    assert "emotion199" in labels and "joy" in labels


def test_sessions_and_feeds_are_capped_with_a_429(server, client):
    created = []
    try:
        while len(server.sessions) < server.limits.max_sessions:
            created.append(client.post("/api/sessions").json()["id"])
        refused(client.post("/api/sessions"), 429, "max_sessions")
        with contextlib.ExitStack() as feeds:
            open_now = sum(s.pump.viewer_count for s in server.all_sessions())
            for _ in range(server.limits.max_feeds - open_now):
                feeds.enter_context(client.stream("GET", f"/api/sessions/{created[0]}/result_feed"))
            refused(client.get(f"/api/sessions/{created[0]}/result_feed"), 429, "max_feeds")
        deadline = time.monotonic() + 10
        while sum(s.pump.viewer_count for s in server.all_sessions()) > 1:  # the watcher's
            assert time.monotonic() < deadline, "closed feeds still counted"
            time.sleep(0.05)
    finally:
        for session_id in created:
            client.delete(f"/api/sessions/{session_id}")


def test_the_key_cannot_be_sidestepped(server, client):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
        raw.sendall(b"GET /api/talkinghead/stats HTTP/1.1\r\nHost: x/api/talkinghead/result_feed#\r\n"
                    b"Connection: close\r\n\r\n")
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 401"), answer[:200]
    for path in ("/api/talkinghead/stats", "/api/sessions", "/api/talkinghead/result_feed/../stats"):
        assert httpx.get(server.url + path).status_code in (401, 404)
    assert httpx.post(server.url + "/api/talkinghead/result_feed").status_code == 401
    session_id = client.post("/api/sessions").json()["id"]
    try:
        unknown = httpx.get(server.url + "/api/sessions/nope/result_feed")  # the feed is open, the ids are not
        assert unknown.status_code == 404 and session_id not in unknown.text and "default" not in unknown.text
    finally:
        client.delete(f"/api/sessions/{session_id}")


def test_binding_beyond_loopback_without_a_key_warns(character):
    server = LiveServer(character, poser=FakePoser(), host="0.0.0.0", port=0)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            server.start()
        assert any("WITHOUT an API key" in str(w.message) for w in caught)
    finally:
        server.stop()


def test_a_render_thread_that_dies_is_reported_and_restarted(server, client):
    class Fatal(BaseException):
        pass

    session = server.session()
    render = session.pump.render
    calls = {"n": 0}

    def dies_once(pose):
        calls["n"] += 1
        if calls["n"] == 1:
            raise Fatal("out of luck")
        return render(pose)
    session.pump.render = dies_once
    try:
        deadline = time.monotonic() + 10
        while client.get("/api/talkinghead/stats").json()["render_thread_restarts"] < 1:
            assert time.monotonic() < deadline, "the dead render thread was not restarted"
            time.sleep(0.05)
        rendered = client.get("/api/talkinghead/stats").json()["frames_rendered"]
        deadline = time.monotonic() + 30
        while client.get("/api/talkinghead/stats").json()["frames_rendered"] <= rendered:
            assert time.monotonic() < deadline, "the restarted render thread renders nothing"
            time.sleep(0.05)
    finally:
        session.pump.render = render


def test_reload_resumes_after_unload(server, client):
    assert client.get("/api/talkinghead/unload").json() == {"status": "ok"}
    assert server.session().pump.paused
    assert client.get("/api/talkinghead/reload").json() == {"status": "ok"}
    assert not server.session().pump.paused


def test_notebook_callers_get_python_errors_not_http_ones(server):
    from talkinghead_nb.live import SessionNotFound
    with pytest.raises(SessionNotFound, match="no session 'nope'"):
        server.session("nope")
    assert isinstance(SessionNotFound("x"), LookupError)


def test_every_limit_is_configurable_and_checked():
    with pytest.raises(ValueError, match="max_sessions must be above 0"):
        ServerLimits(max_sessions=0)
    with pytest.raises(ValueError, match="max_connections must be above max_feeds"):
        ServerLimits(max_feeds=200, max_connections=100)
    assert np.isclose(ServerLimits(max_upload_mb=1.5).max_upload_bytes, 1.5 * 2**20)
