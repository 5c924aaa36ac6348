"""Shared fixtures: the real engine with the embedded weights, example characters, a fake HuggingFace hub."""

from __future__ import annotations

import hashlib
import http.server
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import torch

from talkinghead_nb.character import Character, example_path, load_character
from talkinghead_nb.engine import Poser

from .local_http import serving


@pytest.fixture(scope="session")
def poser() -> Poser:
    return Poser("separable_float", "cpu")


@pytest.fixture(scope="session")
def character() -> Character:
    # Crypko characters are fine for tests (not for shipped figures).
    return load_character(example_path("crypko_00"))


@pytest.fixture(scope="session", autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)


@pytest.fixture(scope="session", autouse=True)
def _allocator_tuned() -> None:
    """The test run is an entry point like the CLI: it chooses the allocator tuning (≈ 1.7× faster CPU frames)."""
    from talkinghead_nb.engine.acceleration import retain_freed_memory
    retain_freed_memory()


@pytest.fixture(scope="module")
def fake_server(character):
    """A real live server on a free port with the stand-in renderer (tests/fake_engine.py) behind it."""
    from talkinghead_nb.live import LiveServer

    from .fake_engine import FakePoser
    with LiveServer(character, poser=FakePoser(), port=0, seed=0) as live:
        yield live


@dataclass
class FakeHub:
    """A small HTTP server that answers the requests huggingface_hub makes for ``hf_hub_download``."""

    repo: str
    files: dict[str, bytes]
    commit: str = "0123456789abcdef0123456789abcdef01234567"
    truncate_next_gets: int = 0          # that many GETs send half the body, then drop the connection
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    hub = FakeHub(repo="OktayAlpk/talking-head-anime-3", files={})

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            hub.requests.append((self.command, self.path))
            prefix = f"/{hub.repo}/resolve/main/"
            name = self.path[len(prefix):] if self.path.startswith(prefix) else None
            if name not in hub.files:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            data = hub.files[name]
            start = int(self.headers["Range"].split("=")[1].split("-")[0]) if body and self.headers["Range"] else 0
            self.send_response(206 if start else 200)
            digest = hashlib.sha256(data).hexdigest()
            self.send_header("X-Repo-Commit", hub.commit)
            self.send_header("ETag", f'"{digest}"')
            self.send_header("X-Linked-Etag", f'"{digest}"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Content-Length", str(len(data) - start))
            self.end_headers()
            if not body:
                return
            if hub.truncate_next_gets > 0:
                hub.truncate_next_gets -= 1
                self.wfile.write(data[start:start + (len(data) - start) // 2])
                self.wfile.flush()
                self.close_connection = True
                return
            self.wfile.write(data[start:])

    with serving(Handler) as hub.url:
        yield hub


ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


@pytest.fixture(scope="session")
def browser():
    """Debian's Chromium driven by Playwright (no browser download). `make browser` installs it."""
    if not Path(CHROMIUM).exists():
        pytest.skip("Chromium is not installed: run `make browser` (apt-get install chromium)")
    from playwright.sync_api import sync_playwright
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def artifacts() -> Path:
    """Screenshots and other things worth looking at after a run (git-ignored)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
