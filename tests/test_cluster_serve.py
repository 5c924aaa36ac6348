"""The live server on Ray Serve with a local Ray: 2 renderers, 4 sessions; each session's requests reach its
renderer, its feed streams back through the ingress at ≥ 20 parts/s, and deleting it frees it on its renderer. The
renderers hold the stand-in engine (tests/fake_engine.py): what is tested is the routing and the streaming, the
engine is tested elsewhere (and end to end on Ray in test_cluster_ray.py)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import io
import json
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pytest
from PIL import Image

from talkinghead_nb.cluster import serve as serve_module
from talkinghead_nb.cluster.asgi import HttpRequest
from talkinghead_nb.cluster.engines import EngineSpec
from talkinghead_nb.cluster.serve import LiveOptions, Renderer, serve_live
from talkinghead_nb.live.routes import DEFAULT_SESSION

from .cluster_fakes import CpuFakePoser, ctrl_c_allowed

ray = pytest.importorskip("ray")

REPLICA = "x-talkinghead-replica"
WINDOW_S = 8.0  # parts are counted over this long, after each feed's first part
STARTUP_S = 300.0  # only stops a hung command: Ray's start and the real engine's take well under this


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_line(process: subprocess.Popen, prefix: str, seconds: float) -> list[str]:
    """The lines ``process`` printed up to one that starts with ``prefix``; fails (instead of hanging) if that line
    does not come within ``seconds`` or the process ends first."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:  # goes on reading after the line came, so that the pipe never fills
        for line in process.stdout:
            lines.put(line)
        lines.put("")
    threading.Thread(target=read, daemon=True).start()
    seen, deadline = [], time.monotonic() + seconds
    while not seen or not seen[-1].startswith(prefix):
        try:
            line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            pytest.fail(f"no line starting with {prefix!r} in {seconds:g} s; it printed:\n{''.join(seen)}")
        assert line, f"the command ended ({process.wait()}) before {prefix!r}:\n{''.join(seen)}"
        seen.append(line)
    return seen


def test_serve_on_ray_command_with_the_real_engine(tmp_path):
    """``serve --ray local``: a feed part rendered by the real engine on its replica, and Ctrl-C stops it all."""
    port = free_port()
    command = [sys.executable, "-m", "talkinghead_nb.cli", "serve", "crypko_01", "--ray", "local", "--replicas", "1",
               "--port", str(port), "--device", "cpu", "--offline"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               preexec_fn=ctrl_c_allowed)
    try:
        wait_for_line(process, "serving on Ray with 1 renderer(s)", STARTUP_S)
        with httpx.stream("GET", f"http://127.0.0.1:{port}/api/talkinghead/result_feed", timeout=300) as feed:
            assert feed.headers[REPLICA] == "renderer-0"
            data = b""
            for chunk in feed.iter_bytes():
                data += chunk
                if data.count(b"--frame") >= 2:
                    break
        part = data.split(b"\r\n\r\n", 1)[1].split(b"\r\n--frame", 1)[0]
        image = Image.open(io.BytesIO(part))
        assert image.size == (512, 512) and np.asarray(image)[..., 3].any()
        process.send_signal(signal.SIGINT)
        assert process.wait(120) == 0
    finally:
        process.kill()


@pytest.fixture(scope="module")
def cluster(character):
    with serve_live(character, replicas=2, address="local", port=free_port(), api_key="sesame", seed=0,
                    engine=EngineSpec(make_poser=CpuFakePoser)) as live:
        yield live


@pytest.fixture(scope="module")
def client(cluster):
    with httpx.Client(base_url=cluster.url, headers={"Authorization": "Bearer sesame"}, timeout=60) as c:
        yield c


def count_parts(url: str, seconds: float, out: dict) -> None:
    """Parts of the feed at ``url`` in ``seconds`` from its first part, and the replica that sent them; whatever
    goes wrong (no part at all, an error) is put in ``out["error"]`` for the test to show."""
    try:
        with httpx.stream("GET", url, timeout=60) as response:
            out["replica"], seen, start = response.headers.get(REPLICA), 0, None
            for chunk in response.iter_bytes():
                seen += chunk.count(b"--frame\r\n")
                if start is None and seen:
                    start, seen = time.monotonic(), 0
                if start is not None and time.monotonic() - start >= seconds:
                    break
            if start is None:
                out["error"] = f"no part arrived (status {response.status_code})"
                return
            out["rate"] = seen / (time.monotonic() - start)
    except Exception as e:  # shown by the test, not lost in the thread
        out["error"] = f"{type(e).__name__}: {e}"


def test_sessions_live_on_their_replica_and_feed_through_the_ingress(cluster, client):
    assert client.get("/api/modules").json() == {"modules": ["talkinghead", "classify"]}
    assert httpx.get(f"{cluster.url}/api/sessions").status_code == 401  # the key is checked at the ingress

    created = [client.post("/api/sessions") for _ in range(4)]
    assert all(r.status_code == 200 for r in created), [r.text for r in created]
    home = {r.json()["id"]: r.headers[REPLICA] for r in created}
    assert set(home.values()) == {"renderer-0", "renderer-1"}  # spread over both

    for session, replica in home.items():
        answer = client.post(f"/api/sessions/{session}/set_emotion", json={"emotion_name": "joy"})
        assert answer.status_code == 200 and answer.headers[REPLICA] == replica
        stats = client.get(f"/api/sessions/{session}/stats")
        assert stats.json()["emotion"] == "joy" and stats.headers[REPLICA] == replica
    listed = client.get("/api/cluster").json()["replicas"]
    on = {r["name"]: set(r["sessions"]) for r in listed}
    assert all(session in on[replica] for session, replica in home.items())
    assert "default" in on["renderer-0"] and "default" not in on["renderer-1"]
    assert {s["id"]: s["replica"] for s in client.get("/api/sessions").json()["sessions"]} == {**home,
                                                                                              "default": "renderer-0"}

    feeds = {session: {} for session in home}
    threads = [threading.Thread(target=count_parts, args=(f"{cluster.feed_url(s)}?fps=30", WINDOW_S, feeds[s]))
               for s in home]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not any(t.is_alive() for t in threads), f"a feed was still being read after 120 s: {feeds}"
    assert not [f["error"] for f in feeds.values() if "error" in f], feeds
    assert all(feeds[s]["replica"] == home[s] for s in home), feeds
    assert all(feeds[s]["rate"] >= 20 for s in home), feeds

    gone, replica = next(iter(home.items()))
    deleted = client.delete(f"/api/sessions/{gone}")
    assert deleted.status_code == 200 and deleted.headers[REPLICA] == replica
    listed = {r["name"]: set(r["sessions"]) for r in client.get("/api/cluster").json()["replicas"]}
    assert gone not in listed[replica] and len(listed[replica]) == len(on[replica]) - 1
    assert client.get(f"/api/sessions/{gone}/stats").status_code == 404


def test_the_classic_api_acts_on_the_default_session_of_the_first_replica(client):
    answer = client.post("/api/talkinghead/set_emotion", json={"emotion_name": "anger"})
    assert answer.status_code == 200 and answer.headers[REPLICA] == "renderer-0"
    assert client.get("/api/talkinghead/emotions").json()["current"] == "anger"
    assert client.get("/api/sessions/nosuch/stats").status_code == 404
    assert client.get("/api/sessions/bad%20id/stats").status_code == 400  # refused at the ingress



def test_the_ingress_keeps_other_sites_pages_out_as_the_live_server_does(cluster, client):
    """The guards are the live server's own (one implementation): another site's page gets a 403 at the ingress,
    SillyTavern's origin its own origin back (never '*'), a forged Host no redirect, deep JSON a 400."""
    answer = client.post("/api/sessions", headers={"Origin": "http://evil.example"})
    assert answer.status_code == 403 and "--allow-origin" in answer.json()["error"]
    assert "access-control-allow-origin" not in answer.headers
    answer = client.get("/api/talkinghead/emotions", headers={"Origin": "http://127.0.0.1:8000"})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] == "http://127.0.0.1:8000"
    page = client.get("/sessions/default/", headers={"Host": "evil.example"})
    assert page.status_code == 200 and "location" not in page.headers and page.headers[REPLICA] == "renderer-0"
    deep = client.post("/api/talkinghead/speak", content=b'{"timeline": ' + b"[" * 20_000 + b"]" * 20_000 + b"}",
                       headers={"content-type": "application/json"})
    assert deep.status_code == 400 and "nested" in deep.json()["error"]


def test_concurrent_creations_spread_over_the_replicas(cluster, client):
    """Sessions created at the same moment are counted as they are placed, not only once created: they do not all
    land on the renderer that had the fewest before."""
    before = {r["name"]: len(r["sessions"]) for r in client.get("/api/cluster").json()["replicas"]}
    with ThreadPoolExecutor(4) as pool:
        created = list(pool.map(lambda _: client.post("/api/sessions"), range(4)))
    assert all(r.status_code == 200 for r in created), [r.text for r in created]
    placed = Counter(r.headers[REPLICA] for r in created)
    after = {name: before[name] + placed[name] for name in before}
    assert max(after.values()) - min(after.values()) <= 1, (before, placed)
    for r in created:
        assert client.delete(f"/api/sessions/{r.json()['id']}").status_code == 200


def test_a_renderer_listens_on_no_port_and_answers_through_its_app(character):
    """The ingress is the only door: the renderer's live server is never started (no socket, no key to bypass), yet
    its app answers, with the session ``default`` in place."""
    renderer = Renderer("renderer-0", LiveOptions(character, EngineSpec(make_poser=CpuFakePoser), seed=0))
    try:
        assert not renderer.server.running and renderer.server._socket is None
        assert [s["id"] for s in renderer.sessions()] == [DEFAULT_SESSION]

        async def ask() -> list:
            return [item async for item in renderer.handle(HttpRequest("GET", "/api/talkinghead/emotions"))]
        # In a thread of its own: an earlier test in the same process (Playwright's sync API) may leave an event loop
        # running in this one.
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            start, *body = pool.submit(asyncio.run, ask()).result(timeout=60)
        assert start.status == 200 and "current" in json.loads(b"".join(body))
    finally:
        renderer.server.stop()


def test_serve_live_on_another_address_without_a_key_warns(character, monkeypatch, caplog):
    def no_ray(*args):
        raise RuntimeError("stopped before Ray")
    monkeypatch.setattr(serve_module, "connect", no_ray)
    with pytest.warns(UserWarning, match="listens on 0.0.0.0, reachable from other machines, WITHOUT an API key"):
        with pytest.raises(RuntimeError, match="stopped before Ray"):
            serve_live(character, host="0.0.0.0", engine=EngineSpec(make_poser=CpuFakePoser))
    assert "WITHOUT an API key" in caplog.text
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(RuntimeError, match="stopped before Ray"):
            serve_live(character, host="0.0.0.0", api_key="sesame", engine=EngineSpec(make_poser=CpuFakePoser))
    with pytest.raises(ValueError, match="would let a page on any web site drive this server"):
        serve_live(character, allow_origins=["*"], engine=EngineSpec(make_poser=CpuFakePoser))  # before Ray starts
