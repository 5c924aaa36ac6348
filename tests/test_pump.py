"""The frame pump's timing, with a stand-in animator that records the times it is asked for."""

from __future__ import annotations

import io
import time
from types import SimpleNamespace

import numpy as np
from PIL import Image

from talkinghead_nb.live.pump import MAX_LEAD_S, FramePump, ticks

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
