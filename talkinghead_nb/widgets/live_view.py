"""The live view: an ``ipywidgets.Image`` that a background thread updates in place from a session's frame pump, with
controls for emotion, talking, pause and frame rate, and a stats line. No ipycanvas, no ``clear_output`` per frame.

Widget updates from a thread need ipykernel ≥ 7.1 (7.0.0 dropped them).
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import ClassVar

import ipywidgets as W

from ..live.pump import ticks
from ..live.session import LiveSession


class LiveView:
    """Shows ``session`` live. :meth:`start` (again) replaces the running loop; :meth:`close` stops the thread."""

    _active: ClassVar[weakref.WeakValueDictionary[str, LiveView]] = weakref.WeakValueDictionary()

    def __init__(self, session: LiveSession, *, size: int = 384, fps: float | None = None):
        self.session = session
        self.fps = fps or session.animator.settings.target_fps
        self.image = W.Image(format="png", width=size, height=size,
                             layout=W.Layout(width=f"{size}px", height=f"{size}px", border="1px solid #ccc"))
        self.emotion = W.Dropdown(options=session.animator.templates.names, value=session.animator.emotion,
                                  description="emotion")
        self.talking = W.ToggleButton(value=session.animator.talking, description="talking", icon="comment")
        self.paused = W.ToggleButton(value=session.pump.paused, description="pause", icon="pause")
        self.rate = W.FloatSlider(value=self.fps, min=1, max=60, step=1, description="view FPS")
        self.stats = W.Label()
        self.emotion.observe(lambda c: session.set_emotion(c["new"]), "value")
        self.talking.observe(lambda c: session.start_talking() if c["new"] else session.stop_talking(), "value")
        self.paused.observe(lambda c: session.unload() if c["new"] else session.resume(), "value")
        self.rate.observe(lambda c: setattr(self, "fps", c["new"]), "value")
        self.widget = W.VBox([self.image, W.HBox([self.emotion, self.talking, self.paused]), self.rate, self.stats])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_shown = 0

    def start(self) -> LiveView:
        previous = LiveView._active.get(self.session.id)
        if previous is not None and previous is not self:
            previous.stop()
        self.stop()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, args=(self._stop,), daemon=True,
                                        name=f"talkinghead-view-{self.session.id}")
        self._thread.start()
        LiveView._active[self.session.id] = self
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None

    def close(self) -> None:
        """Stop the thread and remove the widgets."""
        self.stop()
        self.widget.close()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _loop(self, stop: threading.Event) -> None:
        last_stats = 0.0
        with self.session.viewer("png") as viewer:
            for _ in ticks(lambda: self.fps):
                if stop.is_set():
                    return
                data = viewer.next_frame(timeout=1.0)
                if data is None:
                    if self.session.pump.closed:
                        return
                    continue
                if data is not self.image.value:
                    self.image.value = data
                self.frames_shown += 1
                if time.monotonic() - last_stats > 0.5:
                    last_stats = time.monotonic()
                    s = self.session.pump.stats()
                    self.stats.value = (f"view {viewer.fps:.1f} FPS · render {s['render_ms']:.0f} ms · "
                                        f"encode {s['encode_ms'].get('png', 0):.1f} ms · rendered "
                                        f"{s['frames_rendered']} / sent {s['frames_sent']}"
                                        + (f" · error: {s['error']}" if s["error"] else ""))

    def _ipython_display_(self) -> None:
        from IPython.display import display
        if not self.running:
            self.start()
        display(self.widget)
