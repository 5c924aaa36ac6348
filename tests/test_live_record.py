"""Recording a live session from Python and over the API (POST …/record): the file comes back whole, bad requests
get a 4xx that says what to send, one recording runs at a time."""

from __future__ import annotations

import io
import json
import socket
import threading
import time

import httpx
import numpy as np
import pytest
from PIL import Image, ImageSequence

from talkinghead_nb.live import LiveServer
from talkinghead_nb.live.session import CommandError

from .fake_engine import FakePoser


def test_a_session_records_from_its_current_state(fake_server, tmp_path):
    session = fake_server.session()
    session.set_emotion("joy")
    recording = session.record(tmp_path / "clip.png", 1.0, fps=5)
    frames = list(ImageSequence.Iterator(Image.open(recording.path)))
    assert recording.frames == len(frames) == 5 and frames[0].mode == "RGBA"
    with pytest.raises(CommandError, match="seconds must be a number above 0 and at most 600"):
        session.record(tmp_path / "long.png", 1e6)


def test_the_api_answers_with_the_recording(fake_server):
    answer = httpx.post(f"{fake_server.url}/api/talkinghead/record", timeout=60,
                        json={"seconds": 1, "fps": 5, "format": "png", "steps": [{"at": 0.4, "emotion": "anger"}]})
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/apng"
    assert len(list(ImageSequence.Iterator(Image.open(io.BytesIO(answer.content))))) == 5
    created = httpx.post(f"{fake_server.url}/api/sessions", timeout=30).json()["id"]
    answer = httpx.post(f"{fake_server.url}/api/sessions/{created}/record", json={"seconds": 0.5, "format": "gif"},
                        timeout=60)
    assert answer.status_code == 200 and answer.content[:6] == b"GIF89a"


@pytest.mark.parametrize(("body", "words"), [
    ({"seconds": 40}, "at most 30"),
    ({"format": "avi"}, "format must be one of webp, png, gif, webm, mp4"),
    ({"fps": 1000}, "fps must be a number from 1 to 60"),
    ({"emotion": "jooy"}, "unknown emotion 'jooy'"),
    ({"steps": "joy"}, "steps: a list"),
    ([1], "send a JSON object"),
])
def test_bad_recording_requests_say_what_to_send(fake_server, body, words):
    answer = httpx.post(f"{fake_server.url}/api/talkinghead/record", json=body, timeout=60)
    assert answer.status_code == 400 and words in answer.json()["error"], answer.text


def test_one_recording_at_a_time(character):
    with LiveServer(character, poser=FakePoser(seconds_per_frame=0.05), port=0, seed=0) as live:
        answers = []

        def ask():
            answers.append(httpx.post(f"{live.url}/api/talkinghead/record", json={"seconds": 2, "fps": 10},
                                      timeout=60).status_code)
        threads = [threading.Thread(target=ask) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(answers) == [200, 429]
        assert httpx.get(f"{live.url}/api/talkinghead/stats", timeout=30).status_code == 200  # still answering


def wait_for(condition, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_a_recording_whose_client_left_stops_and_frees_the_slot(character):
    """A 30 s recording (at least 30 s of rendering here) whose client disconnects: it stops rendering, and the next
    recording is accepted within seconds instead of a 429 until the abandoned one is done."""
    poser = FakePoser(seconds_per_frame=0.05)
    with LiveServer(character, poser=poser, port=0, seed=0) as live:  # nobody watches: only recordings render
        body = json.dumps({"seconds": 30, "fps": 20}).encode()
        with socket.create_connection(("127.0.0.1", live.port), timeout=30) as raw:
            raw.sendall(b"POST /api/talkinghead/record HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            wait_for(lambda: poser.frames >= 5, 30, "the recording did not start rendering")
        answers = []

        def accepted() -> bool:
            answers.append(httpx.post(f"{live.url}/api/talkinghead/record", json={"seconds": 0.5, "fps": 10},
                                      timeout=60))
            return answers[-1].status_code != 429
        wait_for(accepted, 15, "the abandoned recording still holds the slot")
        assert answers[-1].status_code == 200, answers[-1].text
        rendered = poser.frames  # the abandoned recording stopped: only the next one renders now
        assert httpx.post(f"{live.url}/api/talkinghead/record", json={"seconds": 0.5, "fps": 10},
                          timeout=60).status_code == 200
        assert poser.frames == rendered + 5


def _frame(session, wanted=lambda frame: True, timeout: float = 20.0) -> np.ndarray:
    """The first frame of the feed, after half a second of watching (the first ones may predate a change), for
    which ``wanted`` holds; the last one seen when none does within ``timeout`` seconds."""
    with session.viewer("png") as viewer:
        start = time.monotonic()
        while True:
            frame = np.asarray(Image.open(io.BytesIO(viewer.next_frame(timeout=10))))
            settled = time.monotonic() - start > 0.5
            if (settled and wanted(frame)) or time.monotonic() - start > timeout:
                return frame


def test_effects_load_by_preset_or_chain_and_change_the_feed(fake_server):
    session = fake_server.session()
    plain = _frame(session)
    answer = httpx.post(f"{fake_server.url}/api/talkinghead/load_effects", json="crt", timeout=30)
    assert answer.status_code == 200 and [e["name"] for e in answer.json()["effects"]][0] == "scanlines"
    def styled_enough(frame):
        return (np.abs(frame.astype(int) - plain).max(axis=-1) > 30).mean() > 0.01
    styled = _frame(session, styled_enough)
    assert styled_enough(styled), session.stats()
    assert np.array_equal(styled[..., 3] == 0, plain[..., 3] == 0)  # the background stays transparent
    listed = httpx.get(f"{fake_server.url}/api/talkinghead/effects", timeout=30).json()
    assert listed["effects"] == answer.json()["effects"] and "crt" in listed["presets"]
    assert listed["documentation"]["bloom"]["parameters"]["strength"]["max"] > 0
    cleared = httpx.post(f"{fake_server.url}/api/talkinghead/load_effects", json=[], timeout=30).json()
    assert cleared["effects"] == [] and not session.effects


@pytest.mark.parametrize(("body", "words"), [
    ([{"name": "blom"}], "unknown effect 'blom'"),
    ([{"name": "bloom", "strength": 1e9}], "bloom.strength"),
    ("sparkle", "unknown preset 'sparkle'"),
    ({"effects": 3}, "an effect chain is a JSON list"),
])
def test_a_bad_effect_chain_changes_nothing_and_says_why(fake_server, body, words):
    fake_server.session().load_effects("noir")
    answer = httpx.post(f"{fake_server.url}/api/talkinghead/load_effects", json=body, timeout=30)
    assert answer.status_code == 400 and words in answer.json()["error"], answer.text
    assert fake_server.session().effects.to_json()[0]["name"] == "tint"  # still noir


def test_a_recording_carries_the_session_effects(fake_server, tmp_path):
    session = fake_server.session()
    session.load_effects([])
    plain = session.record(tmp_path / "plain.png", 0.4, fps=5)
    session.load_effects("noir")
    styled = session.record(tmp_path / "styled.png", 0.4, fps=5)
    first = [np.asarray(Image.open(r.path).convert("RGBA")).astype(int) for r in (plain, styled)]
    assert np.abs(first[0] - first[1]).max() > 30
