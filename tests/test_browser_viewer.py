"""The viewer page (`GET /`, `/sessions/{id}`) in a real browser: it shows the feed, its background is transparent
(or the colour asked for) outside the character, an emotion button changes the picture, and a server with a key
gets it from the URL fragment or from the page's form."""

from __future__ import annotations

import io
import time

import httpx
import numpy as np
from PIL import Image

from talkinghead_nb.live import LiveServer

from .fake_engine import FakePoser

OUTSIDE = (300, 5)  # row, column of the feed: transparent in crypko_00, below the stand-in renderer's pose bars


def _feed_pixels(page, artifacts, name: str) -> np.ndarray:
    """The feed as the page shows it, with the page's own background (transparent where nothing is drawn)."""
    page.wait_for_function("document.getElementById('feed').naturalWidth === 512", timeout=30_000)
    box = page.locator("#feed").bounding_box()
    data = page.screenshot(clip=box, omit_background=True, path=str(artifacts / name))
    return np.asarray(Image.open(io.BytesIO(data)).convert("RGBA")).astype(int)


def test_the_page_shows_the_feed_on_a_transparent_or_chosen_background(browser, fake_server, artifacts):
    assert f'href="{fake_server.url}/"' in fake_server._repr_html_()  # the notebook links to the page
    page = browser.new_page(viewport={"width": 700, "height": 700})
    page.goto(f"{fake_server.url}/?controls=0")
    pixels = _feed_pixels(page, artifacts, "viewer-transparent.png")
    assert pixels[..., 3].max() == 255 and pixels[OUTSIDE][3] == 0  # the character, and nothing around it
    assert not page.locator("#controls").is_visible()  # bare: an OBS Browser Source
    page.goto(f"{fake_server.url}/?controls=0&background=%2300ff00")
    assert tuple(_feed_pixels(page, artifacts, "viewer-green.png")[OUTSIDE]) == (0, 255, 0, 255)
    page.goto(f"{fake_server.url}/?controls=0&background=checker&size=256")
    assert page.locator("#feed").bounding_box()["width"] == 256
    page.close()


def test_an_emotion_button_changes_the_picture_and_the_stats_say_what_is_rendered(browser, fake_server, artifacts):
    page = browser.new_page(viewport={"width": 700, "height": 900})
    page.goto(f"{fake_server.url}/")
    page.locator("#emotions button", has_text="surprise").wait_for(timeout=30_000)
    before = _feed_pixels(page, artifacts, "viewer-before.png")
    page.locator("#emotions button", has_text="surprise").click()
    page.wait_for_function("document.querySelector('#emotions button.current').textContent === 'surprise'",
                           timeout=30_000)
    deadline = time.monotonic() + 30  # the transition, then the feed's next frames (slow on a loaded machine)
    while True:
        after = _feed_pixels(page, artifacts, "viewer-surprise.png")
        if (np.abs(after - before).max(axis=-1) > 40).sum() > 100:
            break
        assert time.monotonic() < deadline, "the picture did not change to surprise"
        page.wait_for_timeout(200)
    assert fake_server.session().animator.emotion == "surprise"
    page.locator("#talking").click()
    page.wait_for_function("document.getElementById('talking').textContent === 'talking: on'", timeout=30_000)
    assert fake_server.session().animator.talking
    assert "new frames/s rendered" in page.locator("#stats").inner_text()
    page.screenshot(path=str(artifacts / "viewer-controls.png"))
    page.close()


def test_a_session_has_its_own_page_and_an_unknown_one_is_a_404(browser, fake_server):
    created = httpx.post(f"{fake_server.url}/api/sessions", timeout=30).json()
    page = browser.new_page()
    page.goto(f"{fake_server.url}/sessions/{created['id']}")
    page.locator("#emotions button", has_text="joy").click()
    page.wait_for_function("document.querySelector('#emotions button.current')?.textContent === 'joy'",
                           timeout=30_000)
    assert fake_server.session(created["id"]).animator.emotion == "joy"
    assert fake_server.session().animator.emotion != "joy"
    assert httpx.get(f"{fake_server.url}/sessions/nobody", timeout=30).status_code == 404
    page.close()


def test_with_a_key_the_page_takes_it_from_the_fragment_or_asks_for_it(browser, character):
    with LiveServer(character, poser=FakePoser(), port=0, seed=0, api_key="s3cret-key") as live:
        assert httpx.get(f"{live.url}/", timeout=30).status_code == 200  # the page itself is open
        page = browser.new_page()
        page.goto(f"{live.url}/#key=s3cret-key")
        page.locator("#emotions button", has_text="joy").wait_for(timeout=30_000)
        assert "key" not in page.url  # the key left the address bar
        page.close()
        page = browser.new_page()
        page.goto(f"{live.url}/")
        page.locator("#key-input").wait_for(state="visible", timeout=30_000)
        assert "API key" in page.locator("#problem").inner_text()
        page.fill("#key-input", "s3cret-key")
        page.get_by_role("button", name="use it").click()
        page.locator("#emotions button", has_text="anger").click()
        page.wait_for_function("document.querySelector('#emotions button.current')?.textContent === 'anger'",
                               timeout=30_000)
        assert live.session().animator.emotion == "anger"
        page.close()


def test_the_key_leaves_the_address_bar_and_survives_a_reload_on_both_pages(browser, character):
    with LiveServer(character, poser=FakePoser(), port=0, seed=0, api_key="s3cret-key") as live:
        page = browser.new_page()
        page.goto(f"{live.url}/#key=s3cret-key")
        page.locator("#emotions button", has_text="joy").wait_for(timeout=30_000)
        assert "s3cret" not in page.url
        page.reload()
        page.locator("#emotions button", has_text="joy").click()  # no key form: the tab kept the key
        page.wait_for_function("document.querySelector('#emotions button.current')?.textContent === 'joy'",
                               timeout=30_000)
        assert not page.locator("#key-input").is_visible()
        page.close()

        page = browser.new_page()
        page.goto(f"{live.url}/speak#key=s3cret-key")
        page.wait_for_function("document.getElementById('feed').naturalWidth === 512", timeout=30_000)
        assert "s3cret" not in page.url
        page.reload()
        page.fill("#text", "Hi.")
        page.click("#go")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('speaking')",
                               timeout=30_000)
        assert "s3cret" not in page.url
        page.close()


def test_the_speak_page_asks_for_a_missing_or_wrong_key(browser, character):
    with LiveServer(character, poser=FakePoser(), port=0, seed=0, api_key="s3cret-key") as live:
        page = browser.new_page()
        page.goto(f"{live.url}/speak")
        page.fill("#text", "Hi.")
        page.click("#go")
        page.locator("#key-input").wait_for(state="visible", timeout=30_000)
        assert "needs its API key" in page.locator("#status").inner_text()
        assert "Authorization" not in page.locator("#status").inner_text()
        page.fill("#key-input", "wrong-key")
        page.get_by_role("button", name="use it").click()
        page.click("#go")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('wrong API key')",
                               timeout=30_000)
        page.fill("#key-input", "s3cret-key")
        page.get_by_role("button", name="use it").click()
        page.click("#go")
        page.wait_for_function("document.getElementById('status').textContent.startsWith('speaking')",
                               timeout=30_000)
        assert not page.locator("#key-input").is_visible()
        page.close()


def test_a_slow_engine_is_named_with_the_backend_flag(browser, fake_server):
    page = browser.new_page()
    slow = {"emotion": "neutral", "talking": False, "paused": False, "output_fps": [3.0], "frames_rendered": 50,
            "render_fps": 3.0, "target_fps": 25.0, "latency_ms": {"p50": 300.0}, "viewers": 1, "error": None}
    page.route("**/stats", lambda route: route.fulfill(json=slow))
    page.goto(f"{fake_server.url}/")
    page.locator("#stats .slow").wait_for(timeout=30_000)
    line = page.locator("#stats .slow").inner_text()
    assert "cannot keep up" in line and "--backend" in line and "--device cuda" in line
    page.close()


def test_the_emotion_buttons_are_the_28_and_zero_is_the_rest_pose_apart(browser, fake_server):
    page = browser.new_page()
    page.goto(f"{fake_server.url}/")
    page.locator("#emotions button", has_text="joy").wait_for(timeout=30_000)
    emotions = page.locator("#emotions button:not(.rest)").all_inner_texts()
    assert len(emotions) == 28 and "zero" not in emotions
    rest = page.locator("#emotions button.rest")
    assert rest.inner_text() == "rest pose" and rest.get_attribute("data-emotion") == "zero"
    rest.click()
    page.wait_for_function("document.querySelector('#emotions button.current')?.dataset.emotion === 'zero'",
                           timeout=30_000)
    assert fake_server.session().animator.emotion == "zero"
    page.close()


def test_the_viewer_tells_a_wrong_key_from_a_missing_one(browser, character):
    with LiveServer(character, poser=FakePoser(), port=0, seed=0, api_key="s3cret-key") as live:
        page = browser.new_page()
        page.goto(f"{live.url}/#key=wrong-key")
        page.locator("#key-input").wait_for(state="visible", timeout=30_000)
        assert page.locator("#problem").inner_text().startswith("wrong API key")
        page.close()
