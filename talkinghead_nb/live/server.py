"""The live server: the SillyTavern-Extras talkinghead API (existing clients work unchanged) plus sessions for several
characters at once and a stats endpoint, served by uvicorn in a background thread.

    server = LiveServer(character).start()   # returns at once; shows the URL and the feed in a notebook
    server.stop()                            # frees the port, leaves no thread behind

The API description is at ``/openapi.json``; errors are JSON ``{"error": "<what is wrong and what to send>"}``.
"""

from __future__ import annotations

import hmac
import html
import logging
import os
import re
import socket
import threading
import time
import uuid
from typing import Annotated, Any, ClassVar

import uvicorn
from fastapi import Body, FastAPI, File, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..character import Character, CharacterError, example_path, load_character
from ..emotions import EmotionLibrary
from ..engine import Poser
from .encoding import MEDIA_TYPES, check_format
from .pump import async_ticks
from .session import CommandError, LiveSession
from .settings import AnimatorSettings, load_settings

log = logging.getLogger(__name__)

DEFAULT_SESSION = "default"
DEFAULT_PORT = 5100  # SillyTavern-Extras' port, so that clients configured for it find us
_SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FEED_PATHS = re.compile(r"^/api/(talkinghead|sessions/[^/]+)/result_feed$")


class SetEmotion(BaseModel):
    emotion_name: str


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class _BodyLimit:
    """Refuses request bodies over ``limit`` bytes with 413: by Content-Length when there is one, else by reading
    the body (up to the limit) before the app sees it."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        refusal = _error(413, f"request body is larger than the server's limit of {self.limit / 2**20:.0f} MiB; "
                              "send a 512×512 PNG (a few hundred KiB), or start the server with a larger "
                              "max_upload_mb")
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > self.limit:
                return await refusal(scope, receive, send)
            return await self.app(scope, receive, send)
        if headers.get(b"transfer-encoding") is None:
            return await self.app(scope, receive, send)
        events, size = [], 0
        while True:
            event = await receive()
            events.append(event)
            size += len(event.get("body", b""))
            if size > self.limit:
                return await refusal(scope, receive, send)
            if event["type"] != "http.request" or not event.get("more_body"):
                break

        async def replay():
            return events.pop(0) if events else await receive()
        return await self.app(scope, replay, send)


class LiveServer:
    """The live server for one process. Several sessions (characters) share one engine.

    ``character``: a :class:`Character`, a path, or an example name (default ``lambda_00``). ``settings``: a path of an
    animator JSON file, a dict of overrides, or None (defaults and the project's ``animator.json``).
    """

    _running: ClassVar[dict[tuple[str, int], LiveServer]] = {}
    _running_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, character: Character | str | os.PathLike | None = None, *, poser: Poser | None = None,
                 model: str = "auto", device: str = "auto", host: str = "127.0.0.1", port: int = DEFAULT_PORT,
                 api_key: str | None = None, settings: str | os.PathLike | dict | None = None,
                 emotions_dir: str | os.PathLike | None = None, max_upload_mb: float = 20, seed: int | None = None,
                 compile: bool = False):
        self.character = _as_character(character)
        self.poser = poser or Poser(model, device, compile=compile)
        self.host, self.port = host, port
        self.api_key = api_key
        if isinstance(settings, dict):
            self.settings, problems = load_settings(overrides=settings)
        else:
            self.settings, problems = load_settings(settings)
        for problem in problems:
            log.warning("animator settings: %s", problem)
        self.settings_problems = problems
        self.library = EmotionLibrary(emotions_dir)
        self.max_upload = int(max_upload_mb * 2**20)
        self.seed = seed
        self.sessions: dict[str, LiveSession] = {}
        self._sessions_lock = threading.Lock()
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.app = self._create_app()

    # ---- sessions -------------------------------------------------------------------------------------------------

    def new_session(self, character: Character | None = None, session_id: str | None = None) -> LiveSession:
        session_id = session_id or uuid.uuid4().hex[:12]
        session = LiveSession(session_id, self.poser, character or self.character, library=self.library,
                              settings=self.settings, seed=self.seed)
        with self._sessions_lock:
            old = self.sessions.pop(session_id, None)
            self.sessions[session_id] = session
        if old is not None:
            old.close()
        return session

    def session(self, session_id: str = DEFAULT_SESSION) -> LiveSession:
        with self._sessions_lock:
            session = self.sessions.get(session_id)
        if session is None:
            known = ", ".join(self.sessions) or "none"
            raise HTTPException(404, f"no session {session_id!r} (known: {known}); create one with POST /api/sessions")
        return session

    def close_session(self, session_id: str) -> None:
        with self._sessions_lock:
            session = self.sessions.pop(session_id, None)
        if session is None:
            raise HTTPException(404, f"no session {session_id!r}")
        session.close()

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

    def start(self, timeout: float = 30.0) -> LiveServer:
        """Start serving in a background thread and return once the port accepts connections. A server this process
        started earlier on the same host and port is stopped first (re-running a notebook cell replaces it)."""
        if self.running:
            return self
        with LiveServer._running_lock:
            previous = LiveServer._running.get((self.host, self.port))
        if previous is not None and previous is not self:
            previous.stop()
        self._socket = _bind(self.host, self.port)
        self.port = self._socket.getsockname()[1]
        if DEFAULT_SESSION not in self.sessions:
            self.new_session(session_id=DEFAULT_SESSION)
        config = uvicorn.Config(self.app, log_level="warning", timeout_graceful_shutdown=2, access_log=False,
                                lifespan="off")
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
        if not self.running:
            return f"<code>{html.escape(repr(self))}</code>"
        feed = html.escape(self.feed_url())
        preview = f"{feed}?fps=5"  # a preview in the notebook need not make the browser decode 25 PNGs a second
        return (f'<div>Live server at <a href="{html.escape(self.url)}/docs" target="_blank">'
                f'{html.escape(self.url)}</a> · feed: <a href="{feed}" target="_blank">{feed}</a></div>'
                f'<img src="{preview}" width="256" height="256" style="background:#888" alt="live feed"/>')

    # ---- the app --------------------------------------------------------------------------------------------------

    def _create_app(self) -> FastAPI:
        app = FastAPI(title="talkinghead-nb live server", version="1",
                      description="The SillyTavern-Extras talkinghead API, plus sessions for several characters. "
                                  "Classic routes act on the session 'default'.")
        self._add_error_handlers(app)
        self._add_routes(app)
        # Added last = outermost: CORS headers go on every answer, the refusals of the inner layers too.
        app.add_middleware(_BodyLimit, limit=self.max_upload)
        if self.api_key:
            app.middleware("http")(self._check_api_key)
        app.add_middleware(CORSMiddleware, allow_origins=["*"], allow_methods=["*"], allow_headers=["*"])
        return app

    async def _check_api_key(self, request: Request, call_next):
        if request.method == "OPTIONS" or FEED_PATHS.match(request.url.path):
            return await call_next(request)  # an <img> cannot send headers, and CORS preflights carry none
        sent = request.headers.get("authorization", "")
        if not hmac.compare_digest(sent.encode(), f"Bearer {self.api_key}".encode()):
            return _error(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'")
        return await call_next(request)

    def _add_error_handlers(self, app: FastAPI) -> None:
        @app.exception_handler(HTTPException)
        async def http_error(request: Request, exc: HTTPException):
            if exc.status_code == 405:
                allowed = exc.headers.get("Allow", "") if exc.headers else ""
                return _error(405, f"{request.method} is not allowed on {request.url.path}; use {allowed}")
            if exc.status_code == 404 and exc.detail == "Not Found":
                return _error(404, f"no such endpoint {request.url.path}; the API is described at /openapi.json")
            return _error(exc.status_code, str(exc.detail))

        @app.exception_handler(RequestValidationError)
        async def validation_error(request: Request, exc: RequestValidationError):
            messages = []
            for err in exc.errors():
                where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
                if err.get("type") == "json_invalid":
                    messages.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error', '')})")
                elif where == "body":
                    messages.append(f"the body must be a JSON object ({err.get('msg')}); send it with the header "
                                    "'Content-Type: application/json'")
                else:
                    messages.append(f"{where}: {err.get('msg')}")
            return _error(400 if any("JSON" in m for m in messages) else 422, "; ".join(messages))

        for kind, status in ((CommandError, 400), (CharacterError, 400)):
            app.add_exception_handler(kind, lambda request, exc, status=status: _error(status, str(exc)))

    def _add_routes(self, app: FastAPI) -> None:  # noqa: C901 — one flat list of endpoints reads best
        server = self

        @app.get("/api/modules", summary="The modules this server offers (SillyTavern-Extras)")
        def modules() -> dict[str, list[str]]:
            return {"modules": ["talkinghead"]}

        @app.post("/api/talkinghead/load", summary="Load the character image (multipart field 'file') and start")
        @app.post("/api/sessions/{session_id}/load", summary="Load a session's character image and start")
        async def load(file: Annotated[UploadFile, File(description="the character: 512×512 PNG with alpha")],
                       fit: Annotated[bool, Query(description="scale and pad an image of another size onto the "
                                                              "512×512 canvas")] = False,
                       session_id: str = DEFAULT_SESSION):
            session = server.session(session_id)
            data = await file.read()
            character = await run_in_threadpool(load_character, data, fit=fit, name=_stem(file.filename))
            session.load_character(character)
            return {"status": "ok", "character": character.name}

        def session_command(verb: str, summary: str) -> None:
            """``GET /api/talkinghead/<verb>`` and ``/api/sessions/{id}/<verb>``: call the session's method."""
            def command(session_id: str = DEFAULT_SESSION):
                getattr(server.session(session_id), verb)()
                return {"status": "ok"}
            app.get(f"/api/talkinghead/{verb}", summary=summary, name=verb)(command)
            app.get(f"/api/sessions/{{session_id}}/{verb}", summary=f"{summary} (one session)",
                    name=f"session_{verb}")(command)

        session_command("unload", "Pause the animation (the feed keeps the last frame)")
        session_command("start_talking", "Start the talking animation")
        session_command("stop_talking", "Stop the talking animation")

        @app.post("/api/talkinghead/set_emotion", summary="Switch to an emotion: {\"emotion_name\": \"joy\"}")
        @app.post("/api/sessions/{session_id}/set_emotion", summary="Switch a session to an emotion")
        def set_emotion(body: SetEmotion, session_id: str = DEFAULT_SESSION):
            server.session(session_id).set_emotion(body.emotion_name)
            return {"status": "ok", "emotion": body.emotion_name}

        @app.post("/api/talkinghead/load_emotion_templates",
                  summary="Replace emotion templates ({emotion: {pose key: value}}); {} restores the project's")
        @app.post("/api/sessions/{session_id}/load_emotion_templates", summary="Replace a session's templates")
        def load_emotion_templates(data: Annotated[Any, Body()], session_id: str = DEFAULT_SESSION):
            templates = server.session(session_id).load_emotion_templates(data)
            return {"status": "ok", "emotions": templates.names}

        @app.post("/api/talkinghead/load_animator_settings",
                  summary="Change animator settings ({name: value}); {} restores the server's")
        @app.post("/api/sessions/{session_id}/load_animator_settings", summary="Change a session's settings")
        def load_animator_settings(data: Annotated[Any, Body()], session_id: str = DEFAULT_SESSION):
            settings = server.session(session_id).load_animator_settings(data)
            return {"status": "ok", "settings": settings.to_json()}

        @app.get("/api/talkinghead/animator_settings", summary="The settings in force, and what each one means")
        @app.get("/api/sessions/{session_id}/animator_settings", summary="A session's settings in force")
        def animator_settings(session_id: str = DEFAULT_SESSION):
            docs = AnimatorSettings.documentation()
            current = server.session(session_id).animator.settings.to_json()
            return {name: {"value": current[name], "default": default, "doc": doc}
                    for name, (default, doc) in docs.items()}

        @app.get("/api/talkinghead/result_feed", summary="The live feed: multipart/x-mixed-replace, one image a part",
                 response_class=StreamingResponse)
        @app.get("/api/sessions/{session_id}/result_feed", summary="A session's live feed",
                 response_class=StreamingResponse)
        def result_feed(format: Annotated[str, Query(description="png (default), qoi or webp")] = "png",
                        fps: Annotated[float | None, Query(gt=0, le=60, description="parts per second for this "
                                                           "viewer (default: the animator's target_fps)")] = None,
                        session_id: str = DEFAULT_SESSION):
            session = server.session(session_id)
            try:
                fmt = check_format(format)
            except ValueError as e:
                raise HTTPException(400, str(e)) from None
            return StreamingResponse(_feed(session, fmt, fps),
                                     media_type="multipart/x-mixed-replace; boundary=frame")

        @app.get("/api/talkinghead/stats", summary="Render and encode times, frames rendered and sent, output FPS")
        @app.get("/api/sessions/{session_id}/stats", summary="A session's stats")
        def stats(session_id: str = DEFAULT_SESSION):
            return server.session(session_id).stats()

        @app.get("/api/sessions", summary="All sessions and their stats")
        def list_sessions():
            return {"sessions": [s.stats() for s in list(server.sessions.values())]}

        @app.post("/api/sessions", summary="Create a session, optionally with a character (multipart 'file')")
        async def create_session(file: Annotated[UploadFile | None, File()] = None, fit: bool = False):
            character = None
            if file is not None:
                character = await run_in_threadpool(load_character, await file.read(), fit=fit,
                                                    name=_stem(file.filename))
            session = server.new_session(character)
            return {"id": session.id, "feed": f"/api/sessions/{session.id}/result_feed"}

        @app.delete("/api/sessions/{session_id}", summary="Close a session and end its feeds")
        def delete_session(session_id: str):
            if session_id == DEFAULT_SESSION:
                raise HTTPException(400, "the default session stays; load another character into it instead")
            server.close_session(session_id)
            return {"status": "ok"}

        @app.middleware("http")
        async def check_session_id(request: Request, call_next):
            parts = request.url.path.split("/")
            if len(parts) > 3 and parts[1:3] == ["api", "sessions"] and not _SESSION_ID.match(parts[3]):
                return _error(400, "a session id is 1–64 letters, digits, '-' or '_'")
            return await call_next(request)


async def _feed(session: LiveSession, fmt: str, fps: float | None = None):
    """The parts of the multipart feed at ``fps`` (default: the session's target rate), until the client leaves or
    the session ends."""
    viewer = session.viewer(fmt)
    header = f"--frame\r\nContent-Type: {MEDIA_TYPES[fmt]}\r\nContent-Length: ".encode()
    try:
        async for _ in async_ticks(lambda: fps or session.animator.settings.target_fps):
            data = await run_in_threadpool(viewer.next_frame, 30.0)
            if data is None:
                return
            yield header + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n"
    finally:
        viewer.close()


def _stem(filename: str | None) -> str:
    stem = os.path.splitext(os.path.basename(filename or "upload"))[0]
    return re.sub(r"[^\w.-]", "_", stem)[:64] or "upload"


def _as_character(character: Character | str | os.PathLike | None) -> Character:
    if isinstance(character, Character):
        return character
    if character is None:
        return load_character(example_path("lambda_00"))
    path = os.fspath(character)
    return load_character(path if os.path.splitext(path)[1] else example_path(path))


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise RuntimeError(f"cannot listen on {host}:{port} ({e.strerror}); another program holds the port: "
                           f"pass another port=, or port=0 for any free one") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock
