"""The frame pump: renders a character's animation in a background thread, only as fast as viewers take frames,
and hands every viewer the latest frame at its own steady rate (re-sending it when rendering is slower).

Nothing is rendered while nobody watches or while the pump is paused. Encoded bytes are made once per frame and
format and shared by all viewers.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..encoding import DEFAULT_FORMAT, ENCODERS, check_format
from .animator import Animator

_EMA = 0.2  # weight of the newest sample in the running means of the stats
MAX_LEAD_S = 1.0  # the furthest ahead a frame's pose is taken (see FramePump)


@dataclass
class Frame:
    number: int
    rgba: np.ndarray
    encoded: dict[str, bytes] = field(default_factory=dict)


class Viewer:
    """One consumer of frames (a browser feed, a widget). Use as a context manager, or call :meth:`close`."""

    def __init__(self, pump: FramePump, fmt: str):
        self.pump = pump
        self.format = check_format(fmt)
        self.sent = 0
        self._sent_at: collections.deque[float] = collections.deque(maxlen=64)
        self.closed = False

    def next_frame(self, timeout: float = 5.0) -> bytes | None:
        """The newest frame, encoded (a frame already sent is sent again if no newer one is ready), or None if
        there has never been a frame within ``timeout`` seconds or the pump closed."""
        frame = self.pump._take(self, timeout)
        if frame is None:
            return None
        self.sent += 1
        self._sent_at.append(time.monotonic())
        return self.pump._encoded(frame, self.format)

    @property
    def fps(self) -> float:
        """Frames sent per second over the last (up to) 64 frames and the time since; it falls towards 0 when the
        viewer stops taking frames (a feed whose client is gone shows as such in ``stats``)."""
        times = list(self._sent_at)
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / max(1e-9, time.monotonic() - times[0])

    def recent_period(self, sends: int = 8) -> float | None:
        """Seconds between this viewer's takes lately: the mean over its last ``sends`` takes, or the time since its
        last take if that is longer (a viewer that stalls shows at once); None until it has taken that many."""
        times = list(self._sent_at)[-sends:]
        if len(times) < sends:
            return None
        return max((times[-1] - times[0]) / (sends - 1), time.monotonic() - times[-1])

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.pump._leave(self)

    def __enter__(self) -> Viewer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def ticks(fps: Callable[[], float]) -> Iterator[None]:
    """Yields at a steady rate of ``fps()`` per second; after falling behind by more than a frame it starts the
    schedule afresh instead of bursting to catch up."""
    next_at = time.monotonic()
    while True:
        yield
        next_at += 1.0 / fps()
        delay = next_at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        elif delay < -1.0 / fps():
            next_at = time.monotonic()


async def async_ticks(fps: Callable[[], float]) -> AsyncIterator[None]:
    """:func:`ticks` for an event loop."""
    loop = asyncio.get_running_loop()
    next_at = loop.time()
    while True:
        yield
        next_at += 1.0 / fps()
        delay = next_at - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            await asyncio.sleep(0)  # let the loop breathe even when behind
            if delay < -1.0 / fps():
                next_at = loop.time()


class FramePump:
    """``render(pose) -> (512, 512, 4) uint8`` driven by ``animator`` in a daemon thread, started with the first
    viewer.

    A frame takes the animator's pose for the moment it will be ready (now + the median time from the start of a
    render to its encoded frame, at most ``MAX_LEAD_S``), not for the moment its render starts: on a CPU that takes
    ~0.2 s, and without the lead the mouth would lag the speech audio by as much.
    """

    def __init__(self, render: Callable[[np.ndarray], np.ndarray], animator: Animator, *,
                 clock: Callable[[], float] = time.monotonic, name: str = "talkinghead-pump"):
        self.render = render
        self.animator = animator
        self.clock = clock
        self.name = name
        self._cond = threading.Condition()
        self._viewers: list[Viewer] = []
        self._latest: Frame | None = None
        self._taken = -1  # number of the newest frame any viewer has taken
        self._paused = False
        self._refresh = False  # render one frame even if paused (after a new character or emotion templates)
        self._closed = False
        self._thread: threading.Thread | None = None
        self.frames_rendered = 0
        self.restarts = 0  # times the render thread died and was started again
        self._rendered_at: collections.deque[float] = collections.deque(maxlen=32)
        self._latency: collections.deque[float] = collections.deque(maxlen=128)  # render start → encoded, seconds
        self.render_ms = 0.0
        self.encode_ms: dict[str, float] = {}
        self.error: str | None = None

    # ---- viewers ------------------------------------------------------------------------------------------------

    def viewer(self, fmt: str = DEFAULT_FORMAT) -> Viewer:
        viewer = Viewer(self, fmt)
        with self._cond:
            if self._closed:
                raise RuntimeError("this frame pump is closed")
            self._viewers.append(viewer)
            self._ensure_thread()
            self._cond.notify_all()
        return viewer

    @property
    def viewer_count(self) -> int:
        with self._cond:
            return len(self._viewers)

    def _leave(self, viewer: Viewer) -> None:
        with self._cond:
            if viewer in self._viewers:
                self._viewers.remove(viewer)
            self._cond.notify_all()

    def _take(self, viewer: Viewer, timeout: float) -> Frame | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            self._ensure_thread()
            while self._latest is None and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            if self._closed:
                return None
            frame = self._latest
            if frame.number > self._taken:
                self._taken = frame.number
                self._cond.notify_all()  # demand: the render thread may start the next frame
            return frame

    def _encoded(self, frame: Frame, fmt: str) -> bytes:
        data = frame.encoded.get(fmt)
        if data is None:  # two viewers may both encode a new format once; the result is the same
            start = time.perf_counter()
            data = frame.encoded.setdefault(fmt, ENCODERS[fmt](frame.rgba))
            self._note_encode(fmt, time.perf_counter() - start)
        return data

    def _note_encode(self, fmt: str, seconds: float) -> None:
        old = self.encode_ms.get(fmt)
        self.encode_ms[fmt] = seconds * 1e3 if old is None else (1 - _EMA) * old + _EMA * seconds * 1e3

    # ---- control --------------------------------------------------------------------------------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Stop rendering; viewers keep receiving the last frame."""
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    def invalidate(self) -> None:
        """Make the next frame come soon even when paused (after a new character, say): render one frame."""
        with self._cond:
            self._refresh = True
            self._cond.notify_all()

    def close(self, timeout: float = 10.0) -> None:
        """Stop the thread (after the frame in progress) and release every viewer."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)

    @property
    def closed(self) -> bool:
        return self._closed

    def frame_ready(self) -> bool:
        """Whether a viewer can take a frame without waiting (and, while viewers wait, a render thread that died is
        started again)."""
        with self._cond:
            self._ensure_thread()
            return self._latest is not None

    @property
    def render_fps(self) -> float:
        """New frames per second over the last (up to) 32 renders and the time since; 0 when none lately."""
        with self._cond:
            times = list(self._rendered_at)
        if len(times) < 2:
            return 0.0
        return (len(times) - 1) / max(1e-9, time.monotonic() - times[0])

    @property
    def lead_s(self) -> float:
        """How far ahead of the clock the next frame's pose is taken."""
        with self._cond:
            latency = list(self._latency)
        return min(MAX_LEAD_S, float(np.median(latency))) if latency else 0.0

    def latency_ms(self) -> dict[str, float]:
        """Percentiles of the time from a render's start to its encoded frame, over the last (up to) 128 frames."""
        with self._cond:
            latency = list(self._latency)
        if not latency:
            return {"p50": 0.0, "p99": 0.0}
        p50, p99 = np.percentile(latency, [50, 99]) * 1e3
        return {"p50": round(float(p50), 1), "p99": round(float(p99), 1)}

    def stats(self) -> dict:
        with self._cond:
            viewers = list(self._viewers)
        return {
            "viewers": len(viewers),
            "paused": self._paused,
            "frames_rendered": self.frames_rendered,
            "render_thread_alive": self._thread is not None and self._thread.is_alive(),
            "render_thread_restarts": self.restarts,
            "frames_sent": sum(v.sent for v in viewers),
            "render_ms": round(self.render_ms, 1),
            "render_fps": round(self.render_fps, 1),
            "encode_ms": {k: round(v, 2) for k, v in self.encode_ms.items()},
            "latency_ms": self.latency_ms(),
            "lead_ms": round(self.lead_s * 1e3, 1),
            "output_fps": [round(v.fps, 1) for v in viewers],
            "target_fps": self.animator.settings.target_fps,
            "error": self.error,
        }

    # ---- the render thread ----------------------------------------------------------------------------------------

    def _wanted(self) -> bool:
        if self._closed or not self._viewers:
            return False
        if self._refresh or self._latest is None:
            return True
        if self._paused:
            return False
        if self._taken >= self._latest.number:
            return True
        # The newest frame waits for a viewer. Start the next one already when the newest should be taken before the
        # next is ready: viewers keep up (the one before it was taken) and the median render (warm-up left out)
        # outlasts the fastest viewer's recent period. A CPU render (~0.1–0.5 s against a 40 ms tick) then runs back
        # to back instead of idling until the next tick. At most one frame is ahead; a viewer that slows down
        # suddenly can still miss one.
        if self._taken < self._latest.number - 1 or not self._latency:
            return False
        periods = [p for p in (viewer.recent_period() for viewer in self._viewers) if p is not None]
        return bool(periods) and float(np.median(self._latency)) >= min(periods)

    def _ensure_thread(self) -> None:
        """Start the render thread if viewers wait and it is not running (first viewer, or it died). Call with
        ``self._cond`` held."""
        if self._closed or (self._thread is not None and self._thread.is_alive()):
            return
        if self._thread is not None:
            self.restarts += 1
        self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self._render_loop()
        except BaseException as e:  # noqa: BLE001 — reported in stats; the next viewer request restarts the thread
            self.error = f"the render thread stopped ({type(e).__name__}: {e}); restarting it"
            with self._cond:
                self._cond.notify_all()

    def _render_loop(self) -> None:
        last_start = -float("inf")
        while True:
            with self._cond:
                while not self._closed and not self._wanted():
                    self._cond.wait()
                # No faster than viewers are served: a frame nobody will see is wasted work. The wait ends early
                # when the pump closes.
                while not self._closed:
                    wait = last_start + 1.0 / self.animator.settings.target_fps - time.monotonic()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._closed:
                    return
                self._refresh = False
            last_start = time.monotonic()
            try:
                rgba = self.render(self.animator.pose(self.clock() + self.lead_s))
                seconds = time.monotonic() - last_start
                self.render_ms = seconds * 1e3 if self.frames_rendered == 0 else \
                    (1 - _EMA) * self.render_ms + _EMA * seconds * 1e3
                frame = Frame(self.frames_rendered, rgba)
                self._encoded(frame, DEFAULT_FORMAT)
                self.error = None
            except Exception as e:  # noqa: BLE001 — keep the thread and the last good frame; report
                self.error = f"{type(e).__name__}: {e}"
                with self._cond:
                    self._cond.wait(0.5)
                continue
            with self._cond:
                self.frames_rendered += 1
                self._rendered_at.append(time.monotonic())
                if self.frames_rendered > 1:  # the first frame pays warm-ups (graphs, compilation): not a sample
                    self._latency.append(self._rendered_at[-1] - last_start)
                self._latest = frame
                self._cond.notify_all()
