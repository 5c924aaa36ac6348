"""Lip sync through the live server over real HTTP (stand-in renderer): text, audio and timelines start the mouth,
bad input gets a 4xx, and the page that speaks typed text works in Chromium."""

from __future__ import annotations

import io
import time
import wave

import httpx
import numpy as np
import pytest

from talkinghead_nb import pose as P
from talkinghead_nb.speech import MOUTH_KEYS, synthesize

MOUTH = [P.BY_KEY[k].index for k in MOUTH_KEYS]


@pytest.fixture
def server(fake_server):
    yield fake_server
    fake_server.session().stop_speaking()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def mouth_openness_over(server, seconds: float) -> np.ndarray:
    animator, deadline, values = server.session().animator, time.monotonic() + seconds, []
    while time.monotonic() < deadline:
        values.append(float(animator.pose(time.monotonic())[MOUTH].sum()))
        time.sleep(0.01)
    return np.array(values)


def test_text_comes_back_as_audio_and_the_mouth_speaks_it(server, client):
    answer = client.post("/api/talkinghead/speak", json={"text": "Hello, my name is Lambda.", "delay": 0.1})
    assert answer.status_code == 200 and answer.headers["content-type"] == "audio/wav"
    with wave.open(io.BytesIO(answer.content)) as audio:
        seconds = audio.getnframes() / audio.getframerate()
    assert seconds == pytest.approx(float(answer.headers["X-Speech-Duration"]), abs=0.05) and seconds > 1
    assert client.get("/api/talkinghead/stats").json()["speaking"]
    openness = mouth_openness_over(server, 1.0)
    assert openness.max() > 0.3 and openness.min() < 0.05  # it opens and closes, as speech does


def test_an_audio_upload_drives_the_mouth(server, client):
    speech = synthesize("Good morning to you all.")
    answer = client.post("/api/talkinghead/speak?delay=0", files={"file": ("hello.wav", speech.wav(), "audio/wav")})
    assert answer.status_code == 200, answer.text
    assert answer.json()["duration"] == pytest.approx(speech.duration, abs=0.05)
    assert mouth_openness_over(server, 0.8).max() > 0.3


def test_a_timeline_drives_the_mouth_and_stop_speaking_ends_it(server, client):
    timeline = {"words": [{"word": "mama", "start": 0.0, "end": 0.6, "phonemes": "mˈɑːmə"}]}
    answer = client.post("/api/talkinghead/speak", json={"timeline": timeline})
    assert answer.status_code == 200 and answer.json()["duration"] == pytest.approx(0.6, abs=0.01)
    assert client.get("/api/talkinghead/stop_speaking").status_code == 200
    assert not client.get("/api/talkinghead/stats").json()["speaking"]


def test_the_servers_viseme_table_shapes_the_mouth(character, tmp_path, caplog):
    """The table comes from the cascade (factory, project file, overrides): here a file that makes "ɑ" an "o", and
    a bad entry, which is logged and spoils nothing else."""
    from talkinghead_nb.live import LiveServer

    from .fake_engine import FakePoser
    table = tmp_path / "visemes.json"
    table.write_text('{"phonemes": {"ɑ": "ooo", "m": "oops"}}', encoding="utf-8")
    with LiveServer(character, poser=FakePoser(), port=0, seed=0, visemes=table) as live:
        assert any("'m'" in problem for problem in live.visemes_problems)
        assert any("viseme table" in record.message for record in caplog.records)
        timeline = {"words": [{"word": "ma", "start": 0.0, "end": 0.8, "phonemes": "mˈɑː"}]}
        with httpx.Client(base_url=live.url, timeout=30) as client:
            assert client.post("/api/sessions/default/speak", json={"timeline": timeline}).status_code == 200
        animator, deadline, poses = live.session().animator, time.monotonic() + 0.6, []
        while time.monotonic() < deadline:
            poses.append(animator.pose(time.monotonic()))
            time.sleep(0.01)
    poses = np.array(poses)
    assert poses[:, P.BY_KEY["mouth_ooo_index"].index].max() > 0.5
    assert poses[:, P.BY_KEY["mouth_aaa_index"].index].max() < 0.05


def _seconds_of_silence(seconds: float) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as audio:
        audio.setnchannels(1)
        audio.setsampwidth(2)
        audio.setframerate(8000)
        audio.writeframes(b"\0\0" * int(8000 * seconds))
    return out.getvalue()


BAD = [
    ({"json": {"text": ""}}, 400, "empty"),
    ({"json": {"text": "a" * 100_000}}, 400, "5000"),
    ({"json": {}}, 422, "either 'text'"),
    ({"json": {"text": "hi", "timeline": []}}, 422, "either 'text'"),
    ({"json": {"text": "hi", "rate": 5000}}, 422, "rate"),
    ({"json": {"text": "hi", "delay": 60}}, 422, "delay"),
    ({"json": {"timeline": [{"word": "x", "start": 2, "end": 1}]}}, 400, "end"),
    ({"json": {"timeline": "not a timeline"}}, 400, ""),
    ({"content": b"{oops", "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ({"files": {"file": ("x.wav", b"RIFF garbage", "audio/wav")}}, 400, "audio"),
    ({"files": {"file": ("long.wav", _seconds_of_silence(11 * 60), "audio/wav")}}, 400, "the limit is 600 s"),
    ({"files": {"other": ("x.wav", b"", "audio/wav")}}, 422, "'file'"),
]


@pytest.mark.parametrize(("kwargs", "status", "message"), BAD, ids=[f"{b[1]}-{i}" for i, b in enumerate(BAD)])
def test_bad_speech_input_gets_a_4xx_that_says_why(server, client, kwargs, status, message):
    answer = client.post("/api/talkinghead/speak", **kwargs)
    assert answer.status_code == status, answer.text
    assert message in answer.json()["error"]
    assert not server.session().animator.speaking(time.monotonic())


def test_the_speak_page_plays_the_audio_and_the_feed_in_chromium(server, browser, artifacts):
    page = browser.new_page(viewport={"width": 1100, "height": 800})
    page.goto(server.url + "/speak")
    page.wait_for_function("() => document.getElementById('feed').naturalWidth === 512", timeout=30_000)
    page.fill("#text", "Nice to meet you.")
    page.click("#go")
    page.wait_for_function("() => document.getElementById('status').textContent.startsWith('speaking')",
                           timeout=30_000)
    assert page.evaluate("() => document.getElementById('audio').src.startsWith('blob:')")
    assert mouth_openness_over(server, 1.0).max() > 0.3
    page.screenshot(path=str(artifacts / "speak-page.png"))
    page.close()


def test_a_json_timeline_gets_the_json_limit_and_only_a_multipart_upload_the_upload_one(server, client):
    """3 MB of timeline is JSON: over 256 KiB, whatever the route (it got the 20 MiB upload limit by its path)."""
    words = [{"word": "la", "start": i * 0.01, "end": i * 0.01 + 0.01} for i in range(60_000)]
    answer = client.post("/api/talkinghead/speak", json={"timeline": {"words": words}})
    assert answer.status_code == 413 and "256 KiB for a JSON body" in answer.json()["error"], answer.text[:300]
    not_json = client.post("/api/talkinghead/speak", content=b"x" * 300_000, headers={"content-type": "text/plain"})
    assert not_json.status_code == 413
    audio = client.post("/api/talkinghead/speak", files={"file": ("big.wav", b"RIFF" + b"\0" * 3_000_000)})
    assert audio.status_code == 400 and "audio" in audio.json()["error"]  # past the size check: 3 MB may be uploaded


def test_timelines_and_texts_wait_their_turn_with_the_decodes(server, client, monkeypatch):
    """Four timelines at once took 1.3 GB and starved a viewer: they (and texts to speak) share the decode slots."""
    from talkinghead_nb.live import server as server_module
    monkeypatch.setattr(server_module, "DECODE_WAIT_S", 0.5)  # a request gives up this soon on a busy server
    timeline = {"words": [{"word": "mama", "start": 0.0, "end": 0.6}]}
    assert server._decodes.acquire(timeout=30)  # an upload being decoded, as far as the server knows
    try:
        for body in ({"timeline": timeline}, {"text": "Hello."}):
            answer = client.post("/api/talkinghead/speak", json=body)
            assert answer.status_code == 429 and "max_decodes" in answer.json()["error"], answer.text
    finally:
        server._decodes.release()
    assert client.post("/api/talkinghead/speak", json={"timeline": timeline}).status_code == 200
