"""The live server's protocol over real HTTP: a real uvicorn server with the fast stand-in renderer behind it
(tests/fake_engine.py), so that rates and pacing are the server's own. test_live_engine.py runs the real engine."""

from __future__ import annotations

import io
import socket
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image

from talkinghead_nb.character import example_path
from talkinghead_nb.live import LiveServer
from talkinghead_nb.live.server import PortInUse

from .fake_engine import FakePoser
from .live_client import read_feed


@pytest.fixture(scope="module")
def server(fake_server):
    return fake_server


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as c:
        yield c
    # leave the default session as the next test expects it
    c = httpx.Client(base_url=server.url, timeout=60)
    c.post("/api/talkinghead/load_emotion_templates", json={})
    c.post("/api/talkinghead/load_animator_settings", json={})
    c.post("/api/talkinghead/set_emotion", json={"emotion_name": "neutral"})
    c.get("/api/talkinghead/stop_talking")
    server.session().resume()
    c.close()


def png_bytes(image: Image.Image, fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def feed_in_background(url: str, seconds: float) -> tuple[threading.Thread, dict]:
    result: dict = {}
    thread = threading.Thread(target=lambda: result.update(reading=read_feed(url, seconds, keep=1)))
    thread.start()
    return thread, result


def wait_for(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_feed_is_steady_at_the_target_rate_with_valid_pngs(server):
    reading = read_feed(server.feed_url(), 2.0, keep=5)
    assert reading.fps() >= 24.0, f"{reading.fps():.1f} parts/s"
    assert reading.content_types == {"image/png"}
    for part in reading.parts:
        image = Image.open(io.BytesIO(part))
        assert image.format == "PNG" and image.mode == "RGBA" and image.size == (512, 512)


def test_a_viewer_can_ask_for_its_own_rate(server):
    assert read_feed(server.feed_url() + "?fps=5", 2.5).fps(skip=1) == pytest.approx(5, abs=0.6)


@pytest.mark.parametrize("fmt", ["qoi", "webp"])
def test_other_formats(server, fmt):
    reading = read_feed(server.feed_url() + f"?format={fmt}", 0.5, keep=1)
    assert reading.content_types == {f"image/{fmt}"}
    if fmt == "qoi":
        import qoi
        assert qoi.decode(reading.parts[-1]).shape == (512, 512, 4)
    else:
        assert Image.open(io.BytesIO(reading.parts[-1])).size == (512, 512)


def test_modules_and_api_description(client):
    assert client.get("/api/modules").json() == {"modules": ["talkinghead", "classify"]}
    spec = client.get("/openapi.json").json()
    for path in ("/api/talkinghead/load", "/api/talkinghead/set_emotion", "/api/talkinghead/result_feed",
                 "/api/sessions", "/api/sessions/{session_id}/result_feed"):
        assert path in spec["paths"], path


def test_set_emotion_changes_the_picture(server, client):
    before = np.asarray(Image.open(io.BytesIO(read_feed(server.feed_url(), 0.1, keep=1).parts[-1])))
    assert client.post("/api/talkinghead/set_emotion", json={"emotion_name": "surprise"}).status_code == 200

    def changed() -> bool:  # the transition (half-life 0.15 s), however slowly frames come
        after = np.asarray(Image.open(io.BytesIO(read_feed(server.feed_url(), 0.5, keep=1).parts[-1])))
        return np.abs(after.astype(int) - before.astype(int)).max() > 60
    wait_for(changed)
    assert client.get("/api/talkinghead/stats").json()["emotion"] == "surprise"


def test_talking_unload_and_load(server, client):
    assert client.get("/api/talkinghead/start_talking").status_code == 200
    assert server.session().animator.talking
    assert client.get("/api/talkinghead/stop_talking").status_code == 200
    assert not server.session().animator.talking

    assert client.get("/api/talkinghead/unload").status_code == 200
    read_feed(server.feed_url(), 0.5)
    rendered = client.get("/api/talkinghead/stats").json()["frames_rendered"]
    reading = read_feed(server.feed_url(), 1.5)
    assert reading.fps() >= 20  # paused: the last frame keeps coming
    assert client.get("/api/talkinghead/stats").json()["frames_rendered"] <= rendered + 1

    upload = png_bytes(Image.open(example_path("crypko_01")))
    answer = client.post("/api/talkinghead/load", files={"file": ("crypko_01.png", upload, "image/png")})
    assert answer.status_code == 200, answer.text
    assert answer.json()["character"] == "crypko_01"
    def rendered_while_watched() -> bool:  # frames are rendered only while someone watches
        read_feed(server.feed_url(), 0.5)
        return client.get("/api/talkinghead/stats").json()["frames_rendered"] > rendered + 1
    wait_for(rendered_while_watched)
    assert server.session().character.name == "crypko_01"


def test_emotion_templates_and_animator_settings(server, client):
    custom = {"joy": {"eyebrow_happy_left_index": 1.0}, "glee": {"mouth_aaa_index": 1.0}}
    answer = client.post("/api/talkinghead/load_emotion_templates", json=custom)
    assert answer.status_code == 200 and "glee" in answer.json()["emotions"]
    assert client.post("/api/talkinghead/set_emotion", json={"emotion_name": "glee"}).status_code == 200
    assert client.post("/api/talkinghead/load_emotion_templates", json={}).json()["emotions"].count("glee") == 0
    assert server.session().animator.emotion == "neutral"  # glee is gone: back to neutral

    answer = client.post("/api/talkinghead/load_animator_settings", json={"target_fps": 10, "blink_duration": 0.3})
    assert answer.status_code == 200 and answer.json()["settings"]["target_fps"] == 10
    assert read_feed(server.feed_url(), 2.0).fps() == pytest.approx(10, abs=1.0)
    assert client.post("/api/talkinghead/load_animator_settings", json={}).json()["settings"]["target_fps"] == 25
    described = client.get("/api/talkinghead/animator_settings").json()
    assert described["blink_duration"]["value"] == described["blink_duration"]["default"]
    assert "blink" in described["blink_duration"]["doc"]


BAD_REQUESTS = [
    ("post", "/api/talkinghead/set_emotion", {"json": {"emotion_name": "glee"}}, 400, "unknown emotion 'glee'"),
    ("post", "/api/talkinghead/set_emotion", {"json": {"emotion": "joy"}}, 422, "emotion_name: Field required"),
    ("post", "/api/talkinghead/set_emotion",
     {"content": b"{oops", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ("get", "/api/talkinghead/set_emotion", {}, 405, "use POST"),
    ("post", "/api/talkinghead/load_animator_settings", {"json": {"blink_duration": "long", "wobble": 1}}, 400,
     "blink_duration must be a number"),
    ("post", "/api/talkinghead/load_emotion_templates", {"json": {"joy": {"no_such_key": 1}}}, 400, "no_such_key"),
    ("post", "/api/talkinghead/load", {"files": {"file": ("x.png", b"\x89PNG\r\n\x1a\nbroken", "image/png")}}, 400,
     "PNG"),
    ("post", "/api/talkinghead/load", {"files": {"file": ("x.png", b"", "image/png")}}, 400, ""),
    ("post", "/api/talkinghead/load", {"data": {"not_file": "1"}}, 422, "file: Field required"),
    ("get", "/api/talkinghead/result_feed?format=gif", {}, 400, "unknown frame format 'gif'"),
    ("get", "/api/talkinghead/result_feed?fps=0.5", {}, 422, "fps: Input should be greater than or equal to 1"),
    ("get", "/api/sessions/nope/stats", {}, 404, "no session 'nope'"),
    ("get", "/api/sessions/..%2Fetc/stats", {}, 400, "session id"),
    ("get", "/api/nothing", {}, 404, "no such endpoint"),
]


@pytest.mark.parametrize(("method", "path", "kwargs", "status", "message"), BAD_REQUESTS,
                         ids=[f"{r[3]}-{r[1].rsplit('/', 1)[-1]}-{i}" for i, r in enumerate(BAD_REQUESTS)])
def test_bad_requests_get_a_clear_4xx_and_lose_nothing(server, client, method, path, kwargs, status, message):
    character, emotion = server.session().character, server.session().animator.emotion
    answer = getattr(client, method)(path, **kwargs)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert server.session().character is character and server.session().animator.emotion == emotion


def test_wrong_size_and_no_alpha_uploads_say_what_to_do(client):
    big = Image.open(example_path("crypko_01")).resize((600, 700))
    answer = client.post("/api/talkinghead/load", files={"file": ("big.png", png_bytes(big), "image/png")})
    assert answer.status_code == 400 and "512" in answer.json()["error"]
    fitted = client.post("/api/talkinghead/load?fit=true", files={"file": ("big.png", png_bytes(big), "image/png")})
    assert fitted.status_code == 200
    rgb = Image.open(example_path("crypko_01")).convert("RGB")
    answer = client.post("/api/talkinghead/load", files={"file": ("rgb.png", png_bytes(rgb), "image/png")})
    assert answer.status_code == 400 and "alpha" in answer.json()["error"]


def test_oversized_upload_is_refused_while_another_client_keeps_streaming(server, client):
    thread, result = feed_in_background(server.feed_url(), 2.0)
    huge = b"\0" * (server.limits.max_upload_bytes + 1)
    answer = client.post("/api/talkinghead/load", files={"file": ("huge.png", huge, "image/png")})
    assert answer.status_code == 413 and "MiB" in answer.json()["error"]

    def chunks():  # no Content-Length: the limit must hold while the body streams in
        for _ in range(2):
            yield b"\0" * 2**20
    answer = client.post("/api/talkinghead/load_animator_settings", content=chunks(),
                         headers={"content-type": "application/json"})
    assert answer.status_code == 413
    thread.join()
    assert result["reading"].fps() >= 24


def test_client_that_disconnects_mid_stream_leaves_nothing_behind(server):
    with httpx.stream("GET", server.feed_url(), timeout=60) as response:
        for _ in response.iter_bytes():
            break  # one chunk, then hang up
    wait_for(lambda: server.session().stats()["viewers"] == 0)
    assert read_feed(server.feed_url(), 1.0).fps() >= 20  # the server carries on


def test_two_concurrent_feeds_both_get_the_full_rate(server):
    threads = [feed_in_background(server.feed_url(), 2.0) for _ in range(2)]
    for thread, _ in threads:
        thread.join()
    for _, result in threads:
        assert result["reading"].fps() >= 24


def test_sessions_run_several_characters_at_once(server, client):
    upload = png_bytes(Image.open(example_path("crypko_02")))
    created = client.post("/api/sessions", files={"file": ("crypko_02.png", upload, "image/png")}).json()
    session_id = created["id"]
    try:
        assert client.post(f"/api/sessions/{session_id}/set_emotion", json={"emotion_name": "joy"}).status_code == 200
        thread, result = feed_in_background(server.feed_url(), 1.5)
        other = read_feed(server.url + created["feed"], 1.5, keep=1)
        thread.join()
        assert other.fps() >= 24 and result["reading"].fps() >= 24
        listed = {s["id"]: s for s in client.get("/api/sessions").json()["sessions"]}
        assert listed[session_id]["character"] == "crypko_02" and listed[session_id]["emotion"] == "joy"
        assert listed["default"]["emotion"] == "neutral"
    finally:
        assert client.delete(f"/api/sessions/{session_id}").status_code == 200
    assert client.get(f"/api/sessions/{session_id}/stats").status_code == 404
    assert client.delete("/api/sessions/default").status_code == 400


def test_cors_for_browser_clients(client):
    answer = client.options("/api/talkinghead/set_emotion",
                            headers={"Origin": "http://localhost:8000", "Access-Control-Request-Method": "POST"})
    assert answer.status_code == 200 and answer.headers["access-control-allow-origin"] in ("*", "http://localhost:8000")


def _threads() -> set[str]:
    return {t.name for t in threading.enumerate() if t.name.startswith("talkinghead")}


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_twenty_start_stop_cycles_leave_no_thread_or_port(character):
    before = _threads()
    port = None
    for _ in range(20):
        live = LiveServer(character, poser=FakePoser(), port=port or 0).start()
        port = live.port
        assert httpx.get(live.url + "/api/modules").status_code == 200
        live.stop()
        assert _port_is_free(port)
    assert _threads() == before


def test_stop_ends_open_feeds_and_starting_again_replaces_the_old_server(character):
    first = LiveServer(character, poser=FakePoser(), port=0).start()
    thread, result = feed_in_background(first.feed_url(), 30.0)
    wait_for(lambda: first.session().stats()["viewers"] == 1)
    second = LiveServer(character, poser=FakePoser(), port=first.port).start()  # the cell is run again
    try:
        thread.join(15)
        assert not thread.is_alive() and not first.running
        assert httpx.get(second.url + "/api/modules").status_code == 200
    finally:
        second.stop()


def test_port_held_by_another_program_is_reported(character):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        with pytest.raises(RuntimeError, match="another program holds the port"):
            LiveServer(character, poser=FakePoser(), port=holder.getsockname()[1]).start()


def test_notebooks_07_and_08_start_in_any_order_twice_in_one_kernel(character, capsys):
    """Their server cells' logic, 07 then 08 then both again: the kernel's own server on the port is replaced."""
    first = LiveServer(character, poser=FakePoser(), port=0).start(any_port_if_held=True)
    port, servers = first.port, [first]
    try:
        for _ in range(3):  # 08, then 07 and 08 again
            servers.append(LiveServer(character, poser=FakePoser(), port=port).start(any_port_if_held=True))
            assert servers[-1].port == port and not servers[-2].running
            assert httpx.get(servers[-1].url + "/api/modules").status_code == 200
        assert "held by another program" not in capsys.readouterr().out
    finally:
        servers[-1].stop()


def test_a_port_held_by_another_kernel_gives_way_to_a_free_one_that_is_named(character, capsys):
    with socket.socket() as holder:  # another notebook's kernel, still serving
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        held = holder.getsockname()[1]
        with pytest.raises(PortInUse, match="another program holds the port"):
            LiveServer(character, poser=FakePoser(), port=held).start()
        with LiveServer(character, poser=FakePoser(), port=held).start(any_port_if_held=True) as live:
            assert live.port != held and httpx.get(live.url + "/api/modules").status_code == 200
            said = capsys.readouterr().out
            assert f"port {held} is held by another program" in said and f"takes port {live.port}" in said


def test_backend_reaches_the_engine_and_a_wrong_one_is_named(character):
    with pytest.raises(ValueError, match="unknown backend 'openvino-bf'; choose one of: torch, openvino"):
        LiveServer(character, backend="openvino-bf", device="cpu", port=0)


def test_api_key_guards_every_route_but_the_feed(character):
    with LiveServer(character, poser=FakePoser(), port=0, api_key="s3cret") as live:
        assert httpx.get(live.url + "/api/modules").status_code == 401
        assert "no API key sent" in httpx.get(live.url + "/api/modules").json()["error"]
        wrong = httpx.get(live.url + "/api/modules", headers={"Authorization": "Bearer wrong"}).json()["error"]
        assert wrong.startswith("wrong API key")
        ok = httpx.get(live.url + "/api/modules", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert httpx.post(live.url + "/api/talkinghead/set_emotion", json={"emotion_name": "joy"},
                          headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert read_feed(live.feed_url(), 0.3).parts
