"""An HTTP request as plain data, and an ASGI app called with one in this process: how a Serve replica runs the live
server's own app (routes, limits, errors) for a request that its ingress received."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field


@dataclass(frozen=True)
class HttpRequest:
    method: str
    path: str
    query: bytes = b""
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes = b""
    client: tuple[str, int] = ("127.0.0.1", 0)


@dataclass(frozen=True)
class HttpStart:
    """The first thing an answer yields: status and headers; then come the body's chunks as bytes."""

    status: int
    headers: list[tuple[bytes, bytes]]


async def call_app(app, request: HttpRequest) -> AsyncIterator[HttpStart | bytes]:
    """Run ``app`` on ``request``: yields an :class:`HttpStart`, then the body's chunks as the app sends them (a feed
    goes on until the app ends it). Closing the iterator is the client leaving: the app sees ``http.disconnect`` and
    is cancelled, so a feed's viewer is closed."""
    scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
             "method": request.method, "scheme": "http", "path": request.path, "raw_path": request.path.encode(),
             "query_string": request.query, "root_path": "", "headers": request.headers, "client": request.client,
             "server": ("127.0.0.1", 80)}
    messages: asyncio.Queue = asyncio.Queue()
    gone = asyncio.Event()
    body_sent = False

    async def receive() -> dict:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": request.body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        await messages.put(message)

    task = asyncio.ensure_future(app(scope, receive, send))
    task.add_done_callback(lambda _: messages.put_nowait(None))
    try:
        while True:
            message = await messages.get()
            if message is None:  # the app returned (or failed) without finishing its answer
                task.result()
                return
            if message["type"] == "http.response.start":
                yield HttpStart(message["status"], list(message.get("headers", [])))
            elif message["type"] == "http.response.body":
                if message.get("body"):
                    yield message["body"]
                if not message.get("more_body"):
                    return
    finally:
        gone.set()
        if not task.done():
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
