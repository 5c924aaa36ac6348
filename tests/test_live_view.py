"""The live view widget without a kernel: the thread updates the Image in place; the controls drive the session."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from talkinghead_nb.live import LiveServer
from talkinghead_nb.widgets import LiveView

from .test_live_server import wait_for


@pytest.fixture(scope="module")
def session(poser, character):
    with LiveServer(character, poser=poser, port=0, seed=0) as live:
        yield live.session()


def test_live_view_updates_in_place_and_controls_the_session(session):
    view = LiveView(session, size=256).start()
    try:
        wait_for(lambda: view.frames_shown >= 30)
        image = Image.open(io.BytesIO(view.image.value))
        assert image.size == (512, 512) and image.mode == "RGBA"
        assert "FPS" in view.stats.value and "render" in view.stats.value

        view.emotion.value = "joy"
        assert session.animator.emotion == "joy"
        view.talking.value = True
        assert session.animator.talking
        view.talking.value = False
        view.paused.value = True
        assert session.pump.paused
        rendered = session.pump.frames_rendered
        shown = view.frames_shown
        time.sleep(1.0)
        assert view.frames_shown >= shown + 15  # the view keeps its rate on the last frame
        assert session.pump.frames_rendered <= rendered + 1
        view.paused.value = False
        view.rate.value = 5
        shown = view.frames_shown
        time.sleep(2.0)
        assert 5 <= view.frames_shown - shown <= 13
    finally:
        view.close()
    assert not view.running


def test_starting_a_new_view_replaces_the_old_loop(session):
    first = LiveView(session).start()
    wait_for(lambda: first.frames_shown > 0)
    second = LiveView(session).start()
    try:
        assert not first.running and second.running
        wait_for(lambda: session.pump.stats()["viewers"] == 1)
    finally:
        second.close()
    wait_for(lambda: session.pump.stats()["viewers"] == 0)
