"""The live server end to end with the real THA3 engine behind it (the protocol tests use a stand-in renderer)."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
from PIL import Image

from talkinghead_nb.character import example_path
from talkinghead_nb.live import LiveServer

from .live_client import read_feed


def test_real_engine_feed_emotion_and_upload(poser, character):
    with LiveServer(character, poser=poser, port=0, seed=0) as server, \
            httpx.Client(base_url=server.url, timeout=60) as client:
        reading = read_feed(server.feed_url(), 3.0, keep=1)
        assert reading.fps() >= 24.0, f"{reading.fps():.1f} parts/s"
        before = np.asarray(Image.open(io.BytesIO(reading.parts[-1])))
        assert before.shape == (512, 512, 4)
        stats = client.get("/api/talkinghead/stats").json()
        assert 0 < stats["frames_rendered"] < len(reading.arrived)  # CPU renders are slower: the latest is re-sent
        assert stats["render_thread_alive"] and stats["error"] is None

        assert client.post("/api/talkinghead/set_emotion", json={"emotion_name": "surprise"}).status_code == 200
        deadline = time.monotonic() + 60  # the transition (half-life 0.15 s) and renders after it, on a busy CPU
        while True:
            after = np.asarray(Image.open(io.BytesIO(read_feed(server.feed_url(), 1.0, keep=1).parts[-1])))
            if np.abs(after.astype(int) - before.astype(int)).max() > 60:
                break
            assert time.monotonic() < deadline, "the feed does not show the new emotion"

        upload = Image.open(example_path("crypko_01"))
        data = io.BytesIO()
        upload.save(data, "PNG")
        answer = client.post("/api/talkinghead/load", files={"file": ("crypko_01.png", data.getvalue(), "image/png")})
        assert answer.status_code == 200 and answer.json()["character"] == "crypko_01"
        rendered = client.get("/api/talkinghead/stats").json()["frames_rendered"]
        deadline = time.monotonic() + 60  # a busy CPU renders slowly; frames come only while someone watches
        while client.get("/api/talkinghead/stats").json()["frames_rendered"] <= rendered + 1:
            assert time.monotonic() < deadline, "no new frames of the uploaded character"
            read_feed(server.feed_url(), 1.0)
        assert server.session().character.name == "crypko_01"
