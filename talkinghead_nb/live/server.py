"""The live server: a FastAPI app on uvicorn in a background thread, with several sessions (characters) sharing one
engine.

    server = LiveServer(character).start()   # returns at once; shows the URL and the feed in a notebook
    server.stop()                            # frees the port, leaves no thread behind

The endpoints are in ``routes.py``, the limits, key and error answers in ``http.py``. Called from Python (a notebook),
the methods here raise plain errors: ``SessionNotFound``, ``CapacityError``, ``CharacterError``.
"""

from __future__ import annotations

import asyncio
import errno
import html
import logging
import os
import re
import socket
import tempfile
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import uvicorn
from fastapi import FastAPI
from starlette.concurrency import run_in_threadpool

from ..character import Character, load_character
from ..emotions import EmotionLibrary
from ..engine import Poser
from ..engine.scheduler import RenderScheduler
from ..messages import short_repr
from ..speech import Speech, Track, load_visemes, synthesize, track_from_audio, track_from_timeline
from .http import CapacityError, ServerLimits, add_error_handlers, add_guards, is_loopback, parse_origins
from .pump import Viewer
from .routes import DEFAULT_SESSION, add_routes
from .session import CommandError, LiveSession, SessionNotFound
from .settings import load_settings

T = TypeVar("T")

log = logging.getLogger(__name__)

DEFAULT_PORT = 5100  # SillyTavern-Extras' port, so that clients configured for it find us
DECODE_WAIT_S = 30.0  # an upload (or a timeline, a text) waits this long for its turn to be decoded, then gets a 429
DECODE_POLL_S = 0.02  # how often a waiting upload looks for its turn
API_RECORD_SECONDS = 30.0  # the longest recording a client may ask for (each frame is an exact render)
MAX_RECORD_FPS = 60
RECORD_TYPES = {"webp": "image/webp", "png": "image/apng", "gif": "image/gif", "webm": "video/webm",
                "mp4": "video/mp4"}


def _file_or_overrides(source: str | os.PathLike | dict | None) -> tuple[str | os.PathLike | None, dict | None]:
    """A settings argument (a file, a dict of overrides or None) as ``(project_file, overrides)`` for a cascade."""
    return (None, source) if isinstance(source, dict) else (source, None)


class LiveServer:
    """The live server for one process. Several sessions (characters) share one engine.

    ``character``: a :class:`Character`, a path, or an example name (default ``lambda_00``). ``settings``: a path of an
    animator JSON file, a dict of overrides, or None (defaults and the project's ``animator.json``); ``visemes``, the
    same for the lip-sync viseme table (the project's ``visemes.json``). ``limits``: what a
    client may make the server hold (:class:`ServerLimits`; ``max_upload_mb`` is a shortcut for its upload limit).
    ``allow_origins``: the web pages, besides its own and those on this machine (``http://127.0.0.1:<any port>``,
    ``localhost``, ``[::1]``: SillyTavern's by default), that may call the API from a browser, such as
    ``["http://192.168.1.20:8000"]`` for a SillyTavern on another machine; other sites' pages get a 403, with or
    without ``api_key``.
    ``batch_sessions`` (default: on a GPU): the frames that the sessions ask for at about the same time are rendered in
    one forward pass (:class:`~talkinghead_nb.engine.scheduler.RenderScheduler`). ``model``, ``device``, ``compile``
    and ``backend`` build the engine unless ``poser`` is given (see :class:`Poser`): ``backend="auto"`` (the default)
    takes the fastest path that stays faithful here (on a GPU separable_half with CUDA graphs, on a CPU OpenVINO,
    bf16 where the CPU has bf16 units: about 4× the new frames of the exact path; ``self.poser.backend_reason`` says
    which and why); ``backend="torch"`` is the exact path.
    """

    _running: ClassVar[dict[tuple[str, int], LiveServer]] = {}
    _running_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, character: Character | str | os.PathLike | None = None, *, poser: Poser | None = None,
                 model: str = "auto", device: str = "auto", host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 api_key: str | None = None, settings: str | os.PathLike | dict | None = None,
                 emotions_dir: str | os.PathLike | None = None, limits: ServerLimits | None = None,
                 max_upload_mb: float | None = None, seed: int | None = None, compile: bool = False,
                 backend: str = "auto", batch_sessions: bool | None = None,
                 visemes: str | os.PathLike | dict | None = None, allow_origins: Iterable[str] | None = None):
        self.limits = limits or ServerLimits()
        if max_upload_mb is not None:
            self.limits = ServerLimits(**{**self.limits.__dict__, "max_upload_mb": max_upload_mb})
        self.character = character if isinstance(character, Character) else load_character(character or "lambda_00")
        self.poser = poser or Poser(model, device, compile=compile, backend=backend,
                                    character_cache_size=max(8, self.limits.max_sessions))
        if poser is None:
            log.info("engine: %s", self.poser.backend_reason)
        if batch_sessions is None:  # measured: batching pays on a GPU; on a CPU a batch is slower per frame
            batch_sessions = self.poser.device.type == "cuda"
        self.scheduler = RenderScheduler(self.poser, max_batch=self.limits.max_sessions) if batch_sessions else None
        self.host, self.port = host, port
        self.api_key = api_key or None
        self.allow_origins = parse_origins(allow_origins)
        self.settings, problems = load_settings(*_file_or_overrides(settings))
        for problem in problems:
            log.warning("animator settings: %s", problem)
        self.settings_problems = problems
        self.visemes, problems = load_visemes(*_file_or_overrides(visemes))
        for problem in problems:
            log.warning("viseme table: %s", problem)
        self.visemes_problems = problems
        self.library = EmotionLibrary(emotions_dir)
        self.seed = seed
        self.sessions: dict[str, LiveSession] = {}
        self._sessions_lock = threading.Lock()
        self._decodes = threading.BoundedSemaphore(self.limits.max_decodes)
        self._recordings = threading.BoundedSemaphore(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.app = self._create_app()

    # ---- sessions -------------------------------------------------------------------------------------------------

    def new_session(self, character: Character | None = None, session_id: str | None = None) -> LiveSession:
        """A new session (or a fresh one in place of ``session_id``); ``CapacityError`` at ``max_sessions``."""
        session_id = session_id or uuid.uuid4().hex[:12]
        with self._sessions_lock:
            if session_id not in self.sessions and len(self.sessions) >= self.limits.max_sessions:
                raise CapacityError(f"this server already runs {len(self.sessions)} sessions, its limit "
                                    "(max_sessions): close one with DELETE /api/sessions/<id> first")
            session = LiveSession(session_id, self.poser, character or self.character, library=self.library,
                                  settings=self.settings, seed=self.seed, scheduler=self.scheduler)
            old = self.sessions.pop(session_id, None)
            self.sessions[session_id] = session
        if old is not None:
            old.close()
        return session

    def session(self, session_id: str = DEFAULT_SESSION) -> LiveSession:
        with self._sessions_lock:
            session = self.sessions.get(session_id)
        if session is None:
            raise SessionNotFound(f"no session {session_id[:64]!r}; GET /api/sessions lists them (with the key), "
                                  "POST /api/sessions creates one")
        return session

    def all_sessions(self) -> list[LiveSession]:
        with self._sessions_lock:
            return list(self.sessions.values())

    def close_session(self, session_id: str) -> None:
        with self._sessions_lock:
            session = self.sessions.pop(session_id, None)
        if session is None:
            raise SessionNotFound(f"no session {session_id[:64]!r}")
        session.close()

    def open_viewer(self, session: LiveSession, fmt: str) -> Viewer:
        """A viewer of ``session`` for a feed; ``CapacityError`` when ``max_feeds`` viewers are open already (all
        sessions, live views included)."""
        with self._sessions_lock:
            open_feeds = sum(s.pump.viewer_count for s in self.sessions.values())
            if open_feeds >= self.limits.max_feeds:
                raise CapacityError(f"{open_feeds} feeds are open, this server's limit (max_feeds); close one, or "
                                    "start the server with a larger max_feeds")
            return session.viewer(fmt)

    async def decode_upload(self, data: bytes, fit: bool, filename: str | None) -> Character:
        """Decode an uploaded character (the header is checked before any pixel is decoded, see
        ``load_character``)."""
        return await self._decoding(lambda: load_character(data, fit=fit, name=_stem(filename)))

    async def decode_speech_audio(self, data: bytes) -> Track:
        """The viseme track of an uploaded audio file (WAV, FLAC, OGG; at most ``speech.MAX_SECONDS`` long)."""
        return await self._decoding(lambda: track_from_audio(data, table=self.visemes))

    async def speech_from_timeline(self, timeline: Any, voice: str) -> Track:
        """The viseme track of a TTS engine's timeline (see ``track_from_timeline``), in turn with the decodes."""
        return await self._decoding(lambda: track_from_timeline(timeline, voice=voice, table=self.visemes))

    async def speech_from_text(self, text: str, voice: str, rate: int) -> Speech:
        """``text`` spoken by eSpeak NG (its audio and viseme track), in turn with the decodes."""
        return await self._decoding(lambda: synthesize(text, voice, rate, table=self.visemes))

    async def _decoding(self, decode: Callable[[], T]) -> T:
        """``decode()`` in a worker thread, with at most ``max_decodes`` uploads, timelines and texts being decoded
        at once (each may take tens of MB and a core; four timelines at once took 1.3 GB and starved the feeds). A
        request waits for its turn in the event loop, not in a worker thread: the feeds and the other routes share
        those threads, and queued requests must not hold them."""
        deadline = time.monotonic() + DECODE_WAIT_S
        while not self._decodes.acquire(blocking=False):
            if time.monotonic() >= deadline:
                raise CapacityError("too many uploads, timelines or texts are being decoded at once (the server's "
                                    "max_decodes); try again in a moment")
            await asyncio.sleep(DECODE_POLL_S)
        try:
            return await run_in_threadpool(decode)
        finally:
            self._decodes.release()

    def record_clip(self, session: LiveSession, data: Any,
                    cancel: threading.Event | None = None) -> tuple[bytes, str]:
        """A recording of ``session`` for a client: ``{"format": "webp", "fps": 25, "seconds": 3, "emotion": …,
        "talking": …, "steps": […]}`` (the script's fields, at most ``API_RECORD_SECONDS`` long) → the file's bytes
        and media type. One recording at a time per server (each keeps the engine busy); ``cancel`` set (the client
        left) stops it at the next frame, with ``RecordingCancelled``, and frees the slot."""
        if not isinstance(data, dict):
            raise CommandError("send a JSON object such as {\"seconds\": 3, \"format\": \"webp\"}")
        fmt = data.get("format", "webp")
        if fmt not in RECORD_TYPES:
            raise CommandError(f"format must be one of {', '.join(RECORD_TYPES)}, got {short_repr(fmt)}")
        fps = data.get("fps", session.animator.settings.target_fps)
        if isinstance(fps, bool) or not isinstance(fps, (int, float)) or not 1 <= fps <= MAX_RECORD_FPS:
            raise CommandError(f"fps must be a number from 1 to {MAX_RECORD_FPS}, got {short_repr(fps)}")
        script = {"seconds": 3.0, "emotion": session.animator.emotion, "talking": session.animator.talking,
                  **{k: v for k, v in data.items() if k not in ("format", "fps")}}
        if not self._recordings.acquire(blocking=False):
            raise CapacityError("a recording is being made already; try again when it is done")
        try:
            with tempfile.TemporaryDirectory(prefix="talkinghead-record-") as folder:
                out = Path(folder) / f"clip.{fmt}"
                session.record(out, script=script, fps=float(fps), max_seconds=API_RECORD_SECONDS, cancel=cancel)
                return out.read_bytes(), RECORD_TYPES[fmt]
        finally:
            self._recordings.release()

    # ---- lifecycle ------------------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def feed_url(self, session_id: str = DEFAULT_SESSION) -> str:
        if session_id == DEFAULT_SESSION:
            return f"{self.url}/api/talkinghead/result_feed"
        return f"{self.url}/api/sessions/{session_id}/result_feed"

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, timeout: float = 30.0, *, any_port_if_held: bool = False) -> LiveServer:
        """Start serving in a background thread and return once the port accepts connections. A server this process
        started earlier on the same host and port is stopped first (re-running a notebook cell, or another notebook's
        cell in the same kernel, replaces it). A port that another program holds (another notebook's kernel) raises
        :class:`PortInUse`; with ``any_port_if_held``, the server takes a free port instead and prints which."""
        if self.running:
            return self
        with LiveServer._running_lock:
            previous = LiveServer._running.get((self.host, self.port))
        if previous is not None and previous is not self:
            previous.stop()
        if not self.api_key and not is_loopback(self.host):
            message = (f"the live server listens on {self.host}, reachable from other machines, WITHOUT an API key: "
                       "anyone who can reach this port can load images and change the animation. Pass api_key= "
                       "(CLI: --api-key), and put TLS in front of it (README, 'Security').")
            log.warning(message)
            warnings.warn(message, stacklevel=2)
        try:
            self._socket = _bind(self.host, self.port)
        except PortInUse:
            if not any_port_if_held:
                raise
            self._socket = _bind(self.host, 0)
            print(f"port {self.port} is held by another program (another notebook's server?): this server takes "
                  f"port {self._socket.getsockname()[1]} instead")
        if self.scheduler is not None:
            self.scheduler.start()
        self.port = self._socket.getsockname()[1]
        if DEFAULT_SESSION not in self.sessions:
            self.new_session(session_id=DEFAULT_SESSION)
        # h11: httptools tells only the newest of pipelined requests that the client left, so a feed with a request
        # pipelined behind it would run on for nobody (on the asyncio loop).
        config = uvicorn.Config(self.app, http="h11", log_level="warning", timeout_graceful_shutdown=2,
                                access_log=False, lifespan="off", limit_concurrency=self.limits.max_connections)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]},
                                        name=f"talkinghead-server-{self.port}", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the live server did not start on {self.url}; see the log above")
            time.sleep(0.02)
        with LiveServer._running_lock:
            LiveServer._running[(self.host, self.port)] = self
        return self

    def stop(self, timeout: float = 10.0) -> None:
        """Close every session (ending their feeds), stop uvicorn, free the port, join the thread."""
        with self._sessions_lock:
            sessions, self.sessions = list(self.sessions.values()), {}
        for session in sessions:
            session.close()
        if self.scheduler is not None:
            self.scheduler.close()
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                self._server.force_exit = True
                self._thread.join(timeout)
        if self._socket is not None:
            self._socket.close()
        with LiveServer._running_lock:
            if LiveServer._running.get((self.host, self.port)) is self:
                del LiveServer._running[(self.host, self.port)]
        self._server = self._thread = self._socket = None

    def __enter__(self) -> LiveServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LiveServer({self.url}, {state}, {len(self.sessions)} session(s), {self.poser})"

    def _repr_html_(self) -> str:
        """Links only: a live ``<img>`` here would compete with the live view for the engine and the browser."""
        if not self.running:
            return f"<code>{html.escape(repr(self))}</code>"
        feed, url = html.escape(self.feed_url()), html.escape(self.url)
        key = " (API key required for every route but the feed)" if self.api_key else ""
        return (f'<div>Live server at <b>{url}</b>{key} · <a href="{url}/" target="_blank">viewer page</a> · '
                f'<a href="{feed}" target="_blank">feed</a> · <a href="{url}/openapi.json" target="_blank">API</a> · '
                f"{len(self.sessions)} session(s). Watch it with <code>LiveView(server.session())</code>.</div>")

    # ---- the app --------------------------------------------------------------------------------------------------

    def _create_app(self) -> FastAPI:
        # No redirect to add or drop a trailing slash: Starlette builds its URL from the Host header, which a client
        # forges (GET /sessions/default/ with "Host: evil.example" answered a redirect to evil.example).
        app = FastAPI(title="talkinghead-nb live server", version="1", redirect_slashes=False,
                      description="The SillyTavern-Extras talkinghead API, plus sessions for several characters. "
                                  "Classic routes act on the session 'default'.")
        add_error_handlers(app)
        add_routes(app, self)
        add_guards(app, limits=self.limits, api_key=self.api_key, allow_origins=self.allow_origins, host=self.host)
        return app


def _stem(filename: str | None) -> str:
    stem = os.path.splitext(os.path.basename(filename or "upload"))[0]
    return re.sub(r"[^\w.-]", "_", stem)[:64] or "upload"


class PortInUse(RuntimeError):
    """The port is held by another program (not by a server of this process, which ``start`` replaces)."""


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        error = PortInUse if e.errno == errno.EADDRINUSE else RuntimeError
        raise error(f"cannot listen on {host}:{port} ({e.strerror}); another program holds the port: "
                    f"pass another port=, or port=0 for any free one") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
