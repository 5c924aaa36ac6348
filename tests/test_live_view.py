"""The live view widget without a kernel: the thread updates the Image in place; the controls drive the session."""

from __future__ import annotations

import io
import time

import pytest
from PIL import Image

from talkinghead_nb.live import LiveServer
from talkinghead_nb.widgets import LiveView
from talkinghead_nb.widgets.live_view import describe_rates

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
        wait_for(lambda: view.frames_shown >= shown + 15)  # the view goes on showing the last frame
        assert session.pump.frames_rendered <= rendered + 1  # at most the frame under way when it paused
        view.paused.value = False
        view.rate.value = 5
        shown, started = view.frames_shown, time.monotonic()
        wait_for(lambda: view.frames_shown >= shown + 6)
        # Five 0.2 s intervals after the first of them, less one interval the schedule may be behind: a bound that a
        # loaded machine (slower, never faster) cannot break.
        assert time.monotonic() - started >= 0.7
    finally:
        view.close()
    assert not view.running


def test_the_emotion_menu_follows_the_session(session):
    session.set_emotion("neutral")
    view = LiveView(session).start()
    try:
        assert view.emotion.value == "neutral"
        session.set_emotion("joy")  # as notebook 07 does, after the view is shown
        wait_for(lambda: view.emotion.value == "joy")
        assert session.animator.emotion == "joy"
        view.emotion.value = "anger"  # the menu still drives the session
        assert session.animator.emotion == "anger"
    finally:
        view.close()


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


def test_the_stats_line_tells_new_frames_from_repeated_ones():
    stats = {"render_fps": 1.2, "render_ms": 800.0, "frames_rendered": 40, "frames_sent": 800, "error": None,
             "paused": False, "target_fps": 25.0}
    slow = describe_rates(stats, shown_fps=25.0, wanted_fps=25.0)
    assert "1.2 new frames/s" in slow and "shown 25.0 FPS" in slow and "cannot keep up" in slow and "GPU" in slow
    assert "cannot keep up" not in describe_rates({**stats, "render_fps": 24.0}, 25.0, 25.0)
    assert "paused" in describe_rates({**stats, "paused": True, "render_fps": 0.0}, 25.0, 25.0)
    assert "error: boom" in describe_rates({**stats, "error": "boom"}, 25.0, 25.0)


def test_toggles_say_their_state_and_the_stop_button_stops_only_the_view(session):
    view = LiveView(session).start()
    try:
        view.talking.value = True
        assert view.talking.description == "talking: on" and session.animator.talking
        view.talking.value = False
        assert view.talking.description == "talking: off" and not session.animator.talking
        wait_for(lambda: view.frames_shown > 0)
        view.stop_button.click()
        assert not view.running and not session.pump.closed and "stopped" in view.stats.value
        view.start()
        wait_for(lambda: view.running)
    finally:
        view.close()
