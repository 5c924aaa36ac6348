"""A real browser (Debian's Chromium) shows the live feed in an <img>, and the picture changes with the emotion."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
from PIL import Image

from talkinghead_nb.live import LiveServer


def _shot(page, path) -> np.ndarray:
    data = page.locator("#feed").screenshot(path=str(path))
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGB")).astype(int)


def _wait_for_picture(page, path, accept, timeout: float = 90.0) -> np.ndarray:
    """Screenshots of the feed, taken until ``accept(shot)`` (a CPU render under a browser's load may take seconds);
    the accepted one is kept at ``path``."""
    deadline = time.monotonic() + timeout
    while True:
        shot = _shot(page, path)
        if accept(shot):
            return shot
        assert time.monotonic() < deadline, f"the feed did not show what was expected within {timeout:.0f} s"


def _changed(before: np.ndarray, after: np.ndarray) -> float:
    """The share of pixels that changed visibly."""
    return float((np.abs(after - before).max(axis=2) > 40).mean())


def test_browser_shows_the_feed_and_it_follows_set_emotion(browser, poser, character, artifacts):
    with LiveServer(character, poser=poser, port=0, seed=0) as live:
        page = browser.new_page(viewport={"width": 600, "height": 600})
        page.set_content(f'<body style="margin:0;background:#3a5f8f">'
                         f'<img id="feed" src="{live.feed_url()}" width="512" height="512"></body>')
        page.wait_for_function("document.getElementById('feed').naturalWidth === 512", timeout=60_000)
        before = _wait_for_picture(page, artifacts / "browser-feed-neutral.png",
                                   lambda shot: shot.std() > 20)  # a character, not an empty box
        rendered = live.session().pump.frames_rendered
        httpx.post(live.url + "/api/talkinghead/set_emotion", json={"emotion_name": "surprise"}, timeout=30)
        # The transition (half-life 0.15 s) and the renders after it, however slowly this machine renders.
        _wait_for_picture(page, artifacts / "browser-feed-surprise.png",
                          lambda shot: live.session().pump.frames_rendered >= rendered + 3
                          and _changed(before, shot) > 0.002)
        assert live.session().stats()["viewers"] >= 1
        page.close()
