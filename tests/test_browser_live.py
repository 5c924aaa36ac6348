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


def test_browser_shows_the_feed_and_it_follows_set_emotion(browser, poser, character, artifacts):
    with LiveServer(character, poser=poser, port=0, seed=0) as live:
        page = browser.new_page(viewport={"width": 600, "height": 600})
        page.set_content(f'<body style="margin:0;background:#3a5f8f">'
                         f'<img id="feed" src="{live.feed_url()}" width="512" height="512"></body>')
        page.wait_for_function("document.getElementById('feed').naturalWidth === 512", timeout=60_000)
        time.sleep(1.0)
        before = _shot(page, artifacts / "browser-feed-neutral.png")
        assert before.std() > 20  # a character, not an empty box
        httpx.post(live.url + "/api/talkinghead/set_emotion", json={"emotion_name": "surprise"}, timeout=30)
        time.sleep(3.0)  # transition plus a few renders on the CPU
        after = _shot(page, artifacts / "browser-feed-surprise.png")
        changed = np.abs(after - before).max(axis=2) > 40
        assert changed.mean() > 0.002, f"only {changed.mean():.4%} of the pixels changed"
        stats = live.session().stats()
        assert stats["viewers"] >= 1 and stats["frames_rendered"] >= 3
        page.close()
