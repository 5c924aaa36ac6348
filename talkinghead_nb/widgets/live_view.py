"""The live view: an ``ipywidgets.Image`` that a background thread updates in place from a session's frame pump, with
controls for emotion, talking, pause and frame rate, and a stats line. No ipycanvas, no ``clear_output`` per frame.

Widget updates from a thread need ipykernel ≥ 7.1 (7.0.0 dropped them).
"""

from __future__ import annotations

import html
import os
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import ipywidgets as W

from ..live.pump import ticks
from ..live.session import LiveSession
from ..recording import Script, frame_count

if TYPE_CHECKING:
    from ..recording import Recording

KEEPING_UP = 0.8  # rendering at less than this share of the view's rate counts as "cannot keep up"


class LiveView:
    """Shows ``session`` live. :meth:`start` (again) replaces the running loop; :meth:`stop` (or the view's stop
    button) ends it and :meth:`close` also removes the widgets.

    The image is shown at ``size`` pixels (default: the frame's 512) and shrinks with a narrower notebook, never
    clipped. The stats line tells new frames per second apart from the view's rate: on a CPU the view may show
    25 FPS while the engine renders one or two new frames a second, and then it says so, with the remedy.
    """

    _active: ClassVar[weakref.WeakValueDictionary[str, LiveView]] = weakref.WeakValueDictionary()

    def __init__(self, session: LiveSession, *, size: int = 512, fps: float | None = None):
        self.session = session
        self._following = False
        self.fps = fps or session.animator.settings.target_fps
        self.image = W.Image(format="png", layout=W.Layout(width=f"{size}px", max_width="100%", height="auto",
                                                            border="1px solid #ccc"))
        self.emotion = W.Dropdown(options=session.animator.templates.names, value=session.animator.emotion,
                                  description="emotion", layout=W.Layout(width="240px"))
        self.talking = W.ToggleButton(value=session.animator.talking, icon="comment",
                                      tooltip="start or stop the talking animation")
        self.paused = W.ToggleButton(value=session.pump.paused, icon="pause",
                                     tooltip="pause rendering (the view keeps the last frame)")
        self.stop_button = W.Button(description="stop view", icon="stop", tooltip="stop this view's updates; "
                                    "the server and other viewers go on (view.start() resumes)")
        self.rate = W.FloatSlider(value=self.fps, min=1, max=60, step=1, description="view FPS")
        self.stats = W.HTML()
        self.emotion.observe(self._on_emotion, "value")
        self.talking.observe(self._on_talking, "value")
        self.paused.observe(self._on_paused, "value")
        self.stop_button.on_click(lambda _: self.stop())
        self.rate.observe(lambda c: setattr(self, "fps", c["new"]), "value")
        self._label_toggles()
        self.widget = W.VBox([self.image, W.HBox([self.emotion, self.talking, self.paused, self.stop_button]),
                              self.rate, self.stats])
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_shown = 0

    def _on_emotion(self, change: dict) -> None:
        if not self._following and change["new"] != self.session.animator.emotion:
            self.session.set_emotion(change["new"])

    def _follow_session(self) -> None:
        """The emotion menu shows the session's emotion and templates, however they were set
        (``session.set_emotion``, the API), without setting them again."""
        names, current = self.session.animator.templates.names, self.session.animator.emotion
        self._following = True
        try:
            if list(self.emotion.options) != names:
                self.emotion.options = names
            if self.emotion.value != current:
                self.emotion.value = current
        finally:
            self._following = False

    def _on_talking(self, change: dict) -> None:
        self.session.start_talking() if change["new"] else self.session.stop_talking()
        self._label_toggles()

    def _on_paused(self, change: dict) -> None:
        self.session.unload() if change["new"] else self.session.resume()
        self._label_toggles()

    def _label_toggles(self) -> None:
        """The toggles say their state in words and colour, not only by a pressed look."""
        self.talking.description = "talking: on" if self.talking.value else "talking: off"
        self.talking.button_style = "success" if self.talking.value else ""
        self.paused.description = "paused" if self.paused.value else "pause"
        self.paused.button_style = "warning" if self.paused.value else ""

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
        self.stop_button.disabled = False
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout)
        self._thread = None
        self.stop_button.disabled = True
        self.stats.value = "view stopped (view.start() resumes it)"

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
                    self._follow_session()
                    self.stats.value = describe_rates(self.session.pump.stats(), viewer.fps, self.fps)

    def record(self, out: str | os.PathLike, seconds: float = 5.0, **options: Any) -> Recording:
        """Record what this view shows (its session, from the current emotion and talking state) into ``out``, with
        exact renders at a fixed rate and a progress bar; the result shows inline. ``options``: those of
        :meth:`LiveSession.record` (``script``, ``fps``, ``speech``, ``background``)."""
        fps = options.get("fps") or self.session.animator.settings.target_fps
        script = options.get("script")  # a script's JSON is checked by the recording: its length is known after
        length = seconds if script is None else script.seconds if isinstance(script, Script) else None
        return self.session.record(out, seconds, progress=recording_bar(length, fps), **options)

    def _ipython_display_(self) -> None:
        from IPython.display import display
        if not self.running:
            self.start()
        display(self.widget)


def recording_bar(seconds: float | None, fps: float) -> Callable[[Iterator], Iterator]:
    """A progress bar (a widget in Jupyter) for a recording ``seconds`` long at ``fps``: its frames out of the total,
    and the time left (None: a count without a total); pass it as ``progress`` to :meth:`LiveSession.record`."""
    from tqdm.auto import tqdm
    total = None if seconds is None else frame_count(seconds, fps)
    return lambda poses: tqdm(poses, total=total, desc="recording", unit="frame")


def describe_rates(stats: dict, shown_fps: float, wanted_fps: float) -> str:
    """The stats line: new frames per second (rendered) against frames shown per second, and what to do when the
    engine cannot keep up."""
    line = (f"<b>{stats['render_fps']:.1f} new frames/s</b> (render {stats['render_ms']:.0f} ms) · "
            f"shown {shown_fps:.1f} FPS · rendered {stats['frames_rendered']} / sent {stats['frames_sent']}")
    if stats["error"]:
        return line + f" · <span style='color:#c62828'>error: {html.escape(stats['error'])}</span>"
    if stats["paused"]:
        return line + " · paused: the last frame is shown again"
    if stats["frames_rendered"] > 2 and stats["render_fps"] < KEEPING_UP * min(wanted_fps, stats["target_fps"]):
        return (line + " · <span style='color:#b26a00'>the engine cannot keep up, so frames repeat: use a GPU "
                "(device='cuda'); on a CPU, the fastest path is backend='auto' (the default of LiveServer and "
                "serve), and a lower frame rate keeps up</span>")
    return line
