"""The frame pump's timing, with a stand-in animator that records the times it is asked for."""

from __future__ import annotations

import time
from types import SimpleNamespace

import numpy as np

from talkinghead_nb.live.pump import MAX_LEAD_S, FramePump

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
