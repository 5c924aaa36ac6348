"""The frame pump's timing, with a stand-in animator that records the times it is asked for; and its viewers after
hostile feed traffic on a live server."""

from __future__ import annotations

import functools
import io
import socket
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import uvicorn
from PIL import Image

from talkinghead_nb.live import LiveServer
from talkinghead_nb.live.pump import MAX_LEAD_S, FramePump, ticks

from .fake_engine import FakePoser
from .live_client import read_feed
from .test_live_server import wait_for

RENDER_S = 0.12


class RecordingAnimator:
    settings = SimpleNamespace(target_fps=25.0)

    def __init__(self):
        self.asked: list[tuple[float, float]] = []  # (clock when asked, time asked for)

    def pose(self, t: float) -> np.ndarray:
        self.asked.append((time.monotonic(), t))
        return np.zeros(45, np.float32)


def slow_render(pose: np.ndarray) -> np.ndarray:
    time.sleep(RENDER_S)
    return np.zeros((512, 512, 4), np.uint8)


def test_each_frame_shows_the_pose_of_the_moment_it_is_ready():
    animator = RecordingAnimator()
    pump = FramePump(slow_render, animator)
    deadline = time.monotonic() + 30
    with pump.viewer() as viewer:
        while pump.frames_rendered < 6:  # taking the latest frame asks for the next one
            assert time.monotonic() < deadline, f"only {pump.frames_rendered} frames rendered"
            viewer.next_frame(timeout=10)
            time.sleep(0.02)
    pump.close()
    first_now, first_t = animator.asked[0]
    assert abs(first_t - first_now) < 0.01  # nothing measured yet: the pose of now
    leads = [t - now for now, t in animator.asked[3:]]  # the first two frames are not latency samples
    assert len(leads) >= 3 and all(RENDER_S * 0.9 <= lead <= MAX_LEAD_S for lead in leads), leads
    stats = pump.stats()
    assert stats["latency_ms"]["p50"] >= RENDER_S * 1e3 * 0.9 and stats["lead_ms"] >= RENDER_S * 1e3 * 0.9


def _watch(pump: FramePump, fps: float, seconds: float) -> list[int]:
    """Take frames at ``fps`` for ``seconds``; the value each frame was filled with, in the order taken."""
    values = []
    with pump.viewer() as viewer:
        for _, _ in zip(ticks(lambda: fps), range(int(fps * seconds)), strict=False):
            data = viewer.next_frame(timeout=10)
            values.append(int(np.asarray(Image.open(io.BytesIO(data)))[0, 0, 0]))
    pump.close()
    return values


def _counting_render(pump_box: list[FramePump], ahead: list[bool]):
    """A slow render that notes whether it started while the newest frame was not yet taken, and fills its frame
    with its number."""
    def render(pose: np.ndarray) -> np.ndarray:
        pump = pump_box[0]
        ahead.append(pump._latest is not None and pump._taken < pump._latest.number)
        time.sleep(RENDER_S)
        return np.full((512, 512, 4), len(ahead) % 256, np.uint8)
    return render


def test_a_render_slower_than_the_viewers_runs_back_to_back_and_no_frame_goes_unseen():
    box, ahead = [], []
    pump = FramePump(_counting_render(box, ahead), RecordingAnimator())
    box.append(pump)
    seen = set(_watch(pump, 25.0, 2.5))
    assert any(ahead)  # the next render began while the newest frame waited for the viewer's tick
    # Each rendered frame was shown, but for the last two when the viewer left: one waiting, one being rendered.
    assert set(range(1, pump.frames_rendered - 1)) <= seen


def test_viewers_slower_than_the_render_are_waited_for():
    box, ahead = [], []
    pump = FramePump(_counting_render(box, ahead), RecordingAnimator())
    box.append(pump)
    seen = _watch(pump, 3.0, 3.5)  # a 333 ms period against a 120 ms render
    assert not any(ahead)
    assert set(range(1, pump.frames_rendered)) <= set(seen)


def test_a_viewer_that_stops_taking_frames_shows_a_falling_rate():
    pump = FramePump(slow_render, RecordingAnimator())
    with pump.viewer() as viewer:
        now = time.monotonic()
        viewer._sent_at.extend([now - 2, now - 1, now])  # three takes a second apart: 1 per second
        assert viewer.fps > 0.5
        viewer._sent_at.clear()
        viewer._sent_at.extend([now - 22, now - 21, now - 20])  # the same takes, 20 s ago
        assert viewer.fps < 0.2
    pump.close()


def _feed_and_leave(port: int, fps: int, pipelined: bool) -> None:
    """Open the default feed at ``?fps=``, read a part or two and drop the connection. ``pipelined``: a second
    request follows the feed's in the same packet (a keyed route, as a client trying to slip it past the key would)."""
    request = f"GET /api/talkinghead/result_feed?fps={fps} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    if pipelined:
        request += "GET /api/talkinghead/stats HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as connection:
        connection.sendall(request.encode())
        received = 0
        while received < 300_000:
            chunk = connection.recv(1 << 16)
            if not chunk:
                break
            received += len(chunk)


@pytest.mark.parametrize("loop", [
    "auto",  # uvloop where it is installed: a write to a connection that is gone raises
    "asyncio",  # such writes are dropped silently: only h11 tells a pipelined feed that its client left
])
def test_feeds_dropped_mid_stream_leave_no_viewer_behind_and_the_feed_keeps_its_rate(character, loop, monkeypatch):
    """Clients that open feeds at extreme rates and drop them, some with a request pipelined behind the feed's:
    afterwards no viewer of theirs is left in the pump (one that stayed would take frames for nobody, or hold a feed
    slot, for the rest of the run), and a new viewer gets the default rate."""
    monkeypatch.setattr(uvicorn.Config, "__init__", functools.partialmethod(uvicorn.Config.__init__, loop=loop))
    with LiveServer(character, poser=FakePoser(), port=0, seed=0) as live:
        pump = live.session().pump
        clients = [threading.Thread(target=_feed_and_leave, args=(live.port, fps, pipelined))
                   for fps in (60, 1) for pipelined in (False, True) for _ in range(3)]
        for client in clients:
            client.start()
        for client in clients:
            client.join(60)
        wait_for(lambda: pump.viewer_count == 0, timeout=30)
        rates = []
        for _ in range(5):  # a loaded machine may slow one window; a lingering feed would slow them all
            rates.append(read_feed(live.feed_url(), 3.0).fps())
            if rates[-1] >= 22:
                break
        assert max(rates) >= 22, f"parts/s after the burst: {rates}"
