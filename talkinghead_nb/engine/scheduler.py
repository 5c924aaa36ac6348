"""One forward pass for the frames of many live sessions: the render scheduler of a GPU server.

Each session's frame pump asks for its frames from its own thread; on a GPU one frame at a time leaves most of the
chip idle (at batch 1 a frame is launch-bound), so the scheduler collects the frames asked for while the previous
batch was rendering (and for ``gather_s`` after the first request) and renders them together with
:meth:`Poser.render_batch`, different characters in one batch. A pump then waits at most one batch for its frame.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field

import numpy as np
from torch import Tensor

from ..character import Character
from .poser import Poser

DEFAULT_MAX_BATCH = 16


@dataclass
class _Request:
    character: Character
    pose: np.ndarray
    done: threading.Event = field(default_factory=threading.Event)
    frame: Tensor | None = None
    error: BaseException | None = None


class RenderScheduler:
    """``render(character, pose)`` from any thread; frames asked for at about the same time share a forward pass.

    ``max_batch``: the most frames in one pass (bounds the memory and the CUDA graphs captured: one per power of two
    up to the first one ≥ ``max_batch``). ``gather_s``: how long the first request of a batch waits for others (0:
    take only what is already waiting). Its thread starts with the first request; :meth:`close` ends it (failing what
    waits) and :meth:`start` opens the scheduler again. A batch that fails is rendered again frame by frame, so that
    only the frame at fault fails.
    """

    def __init__(self, poser: Poser, *, max_batch: int = DEFAULT_MAX_BATCH, gather_s: float = 0.002):
        if max_batch < 1:
            raise ValueError(f"max_batch={max_batch}: at least 1 frame per pass")
        self.poser = poser
        self.max_batch = max_batch
        self.gather_s = gather_s
        self._pending: deque[_Request] = deque()
        self._cond = threading.Condition()
        self._closed = False
        self._thread: threading.Thread | None = None
        self.batches = 0
        self.frames = 0
        self.batch_sizes: deque[int] = deque(maxlen=256)

    def start(self) -> RenderScheduler:
        """Open the scheduler (again, after :meth:`close`) and start its thread."""
        with self._cond:
            self._closed = False
            self._ensure_thread()
        return self

    def _ensure_thread(self) -> None:
        """Call with ``self._cond`` held."""
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="talkinghead-render-scheduler", daemon=True)
            self._thread.start()

    def render(self, character: Character, pose: np.ndarray, timeout: float = 60.0) -> Tensor:
        """(1, 4, 512, 512) on the poser's device: ``character`` in ``pose``, rendered in the next batch."""
        request = _Request(character, np.asarray(pose, np.float32))
        with self._cond:
            if self._closed:
                raise RuntimeError("this render scheduler is closed")
            self._pending.append(request)
            self._ensure_thread()
            self._cond.notify_all()
        if not request.done.wait(timeout):
            raise TimeoutError(f"no frame within {timeout:g} s: the render scheduler is stuck or overloaded")
        if request.error is not None:
            raise request.error
        return request.frame

    def stats(self) -> dict:
        sizes = list(self.batch_sizes)
        return {"batches": self.batches, "frames": self.frames,
                "mean_batch": round(float(np.mean(sizes)), 2) if sizes else 0.0,
                "max_batch_seen": max(sizes, default=0)}

    def close(self, timeout: float = 10.0) -> None:
        """Finish the batch in progress, fail the requests still waiting, and end the thread."""
        with self._cond:
            self._closed = True
            left, self._pending = list(self._pending), deque()
            self._cond.notify_all()
        for request in left:
            request.error = RuntimeError("the render scheduler closed before this frame was rendered")
            request.done.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    def __enter__(self) -> RenderScheduler:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def _next_batch(self) -> list[_Request] | None:
        """The next requests to render together (at least one), or None once closed."""
        with self._cond:
            while not self._pending and not self._closed:
                self._cond.wait()
            deadline = time.monotonic() + self.gather_s
            while len(self._pending) < self.max_batch and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            if self._closed:  # close() failed whatever was waiting
                return None
            count = min(self.max_batch, len(self._pending))
            return [self._pending.popleft() for _ in range(count)]

    def _render(self, batch: list[_Request]) -> None:
        frames = self.poser.render_batch([r.character for r in batch], np.stack([r.pose for r in batch]))
        for i, request in enumerate(batch):
            request.frame = frames[i:i + 1]

    def _run(self) -> None:
        while (batch := self._next_batch()) is not None:
            try:
                self._render(batch)
            except Exception:  # noqa: BLE001 — find the frame that fails: the others still get theirs
                for request in batch:
                    try:
                        self._render([request])
                    except Exception as e:  # noqa: BLE001 — its pump reports the error in its stats
                        request.error = e
            self.batches += 1
            self.frames += len(batch)
            self.batch_sizes.append(len(batch))
            for request in batch:
                request.done.set()
