"""A reader of the live feed for tests: a real HTTP client that parses multipart/x-mixed-replace by Content-Length."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx


@dataclass
class FeedReading:
    parts: list[bytes] = field(default_factory=list)
    arrived: list[float] = field(default_factory=list)
    content_types: set[str] = field(default_factory=set)

    def fps(self, skip: int = 3) -> float:
        """Parts per second, not counting the first ``skip`` (the wait for the first render)."""
        times = self.arrived[skip:]
        return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


def read_feed(url: str, seconds: float, *, keep: int = 0, headers: dict | None = None) -> FeedReading:
    """Read the feed for ``seconds`` after its first part; keep the bytes of the last ``keep`` parts (all if 0)."""
    reading = FeedReading()
    buffer = b""
    started = None
    with httpx.stream("GET", url, timeout=60, headers=headers) as response:
        response.raise_for_status()
        assert response.headers["content-type"] == "multipart/x-mixed-replace; boundary=frame"
        for chunk in response.iter_bytes():
            buffer += chunk
            while True:
                head_end = buffer.find(b"\r\n\r\n")
                if head_end < 0:
                    break
                head = buffer[:head_end].decode().split("\r\n")
                assert head[0] == "--frame", head
                fields = dict(line.split(": ", 1) for line in head[1:])
                length = int(fields["Content-Length"])
                if len(buffer) < head_end + 4 + length + 2:
                    break
                part = buffer[head_end + 4:head_end + 4 + length]
                assert buffer[head_end + 4 + length:head_end + 6 + length] == b"\r\n"
                buffer = buffer[head_end + 6 + length:]
                reading.parts.append(part)
                reading.arrived.append(time.monotonic())
                reading.content_types.add(fields["Content-Type"])
                if keep:
                    del reading.parts[:-keep]
                started = started or time.monotonic()
            if started and time.monotonic() - started >= seconds:
                break
    return reading
