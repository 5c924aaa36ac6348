"""The multipart feed of one viewer: parts at a steady rate until the client leaves or the session ends, without
holding a worker thread while no frame exists yet."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

from starlette.concurrency import run_in_threadpool

from ..encoding import MEDIA_TYPES
from .pump import Viewer, async_ticks


async def feed_parts(viewer: Viewer, fmt: str, fps: Callable[[], float]) -> AsyncIterator[bytes]:
    """``--frame`` parts of ``multipart/x-mixed-replace`` at ``fps()`` per second; closes ``viewer`` at the end, and
    at the latest when the task that sends the parts ends.

    The latter matters when sending a part fails (the client left): the response stops pulling parts and leaves this
    generator suspended at its ``yield``, where only the garbage collector would close it (much later, when exception
    tracebacks hold it in a reference cycle); until then the pump would count a viewer that nobody watches."""
    header = f"--frame\r\nContent-Type: {MEDIA_TYPES[fmt]}\r\nContent-Length: ".encode()
    task = asyncio.current_task()
    if task is not None:
        task.add_done_callback(lambda _: viewer.close())
    try:
        async for _ in async_ticks(fps):
            if viewer.pump.closed:
                return
            if not viewer.pump.frame_ready():
                continue  # the first frame is still rendering: wait for the next tick here, not in a thread
            data = await run_in_threadpool(viewer.next_frame, 1.0)  # encodes at most once per frame and format
            if data is None:
                return
            yield header + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n"
    finally:
        viewer.close()
