"""A background worker that only ever does the newest request (the panels' previews), and what those panels share.

While one request is being worked on, newer ones replace each other, so dragging a slider across 50 values costs
two or three renders, and the kernel stays free to receive the widget events meanwhile."""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any


class LatestOnly:
    """Runs ``work(request)`` in a daemon thread for the newest request. ``work`` reports its own errors (the
    thread survives any exception it lets through, which goes to ``on_error``)."""

    def __init__(self, work: Callable[[Any], None], on_error: Callable[[Exception], None], *, name: str):
        self._work, self._on_error = work, on_error
        self._cond = threading.Condition()
        self._pending: tuple[Any] | None = None  # a 1-tuple, so that None is a valid request
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, daemon=True, name=name)
        self._thread.start()

    def request(self, value: Any) -> None:
        with self._cond:
            self._pending = (value,)
            self._cond.notify_all()

    def wait(self, timeout: float) -> bool:
        """Block until every request so far has been worked on; False after ``timeout`` seconds."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and not self._busy, timeout)

    def close(self, timeout: float = 10.0) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._closed:
                    return
                (value,), self._pending = self._pending, None
                self._busy = True
            try:
                self._work(value)
            except Exception as e:  # noqa: BLE001 — reported by the owner; the thread must survive
                self._on_error(e)
            finally:
                with self._cond:
                    self._busy = False
                    self._cond.notify_all()


class PreviewPanel:
    """What the panels with a preview share: a status line (``self.status``, an HTML widget), the renderer
    (``self._renderer``), showing the panel (``self.widget``) and closing it."""

    def _say(self, text: str, error: bool = False) -> None:
        colour = "#c62828" if error else "#2e7d32"
        self.status.value = f"<span style='color:{colour}'>{html.escape(text)}</span>"

    def close(self) -> None:
        """Stop the preview thread and remove the widgets."""
        self._renderer.close()
        self.widget.close()

    def _ipython_display_(self) -> None:
        from IPython.display import display
        display(self.widget)
