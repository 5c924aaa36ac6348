"""The HTTP concerns of the live server, apart from its routes and its thread: the limits a client cannot exceed,
request-body caps, the API key, and the translation of every error into a JSON ``{"error": "..."}`` answer.

These are plain ASGI layers that decide on ``scope["path"]`` (the path of the request line), never on a URL rebuilt
from the ``Host`` header, which a client controls.
"""

from __future__ import annotations

import hmac
import logging
import re
from dataclasses import dataclass

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from ..character import CharacterError
from ..speech import EspeakUnavailable, SpeechError
from .session import CommandError, SessionNotFound

log = logging.getLogger(__name__)

SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FEED_PATH = re.compile(r"^/api/(talkinghead|sessions/[A-Za-z0-9_-]{1,64})/result_feed$")
# Bodies that may be large: a character image, or speech (an audio file, or a long timeline).
UPLOAD_PATH = re.compile(r"^/api/(talkinghead/(load|speak)|sessions/[A-Za-z0-9_-]{1,64}/(load|speak)|sessions)$")
# Static pages: they carry no data, and a browser cannot send the key to open them.
PAGE_PATH = re.compile(r"^/(|speak|sessions/[A-Za-z0-9_-]{1,64}/?)$")


@dataclass(frozen=True)
class ServerLimits:
    """What one client can make the server hold or do. Beyond a limit the answer is a 4xx (413 for bodies, 429 for
    counts) that names the limit, and nothing else is affected."""

    max_upload_mb: float = 20      # a character upload (multipart); a 512×512 PNG is a few hundred KiB
    max_json_kb: float = 256       # any other request body (emotion templates, settings)
    max_sessions: int = 8          # live characters at once, the default session included
    max_feeds: int = 32            # open feeds (viewers), all sessions together
    max_connections: int = 128     # open connections; uvicorn answers 503 beyond
    max_decodes: int = 1           # uploads decoded at once (a fit=True upload may decode to 64 MiB)

    def __post_init__(self) -> None:
        for name in ("max_upload_mb", "max_json_kb", "max_sessions", "max_feeds", "max_connections", "max_decodes"):
            if not getattr(self, name) > 0:
                raise ValueError(f"ServerLimits.{name} must be above 0, got {getattr(self, name)}")
        if self.max_connections <= self.max_feeds:
            raise ValueError("ServerLimits.max_connections must be above max_feeds, or no request gets through "
                             "while every feed is open")

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 2**20)

    @property
    def max_json_bytes(self) -> int:
        return int(self.max_json_kb * 2**10)


class CapacityError(RuntimeError):
    """A limit of :class:`ServerLimits` is reached (too many sessions, feeds or uploads at once); nothing changed."""


def error_response(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


class BodyLimit:
    """Refuses request bodies over the limit with 413: uploads may be ``max_upload_mb``, everything else
    ``max_json_kb``. By Content-Length when there is one, else by reading the body (up to the limit) first."""

    def __init__(self, app, limits: ServerLimits):
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        upload = scope["method"] == "POST" and UPLOAD_PATH.match(scope["path"]) is not None
        limit = self.limits.max_upload_bytes if upload else self.limits.max_json_bytes
        what = (f"{limit / 2**20:g} MiB for an upload; send a 512×512 PNG (a few hundred KiB), or start the server "
                "with a larger max_upload_mb") if upload else \
            f"{limit / 2**10:g} KiB for a JSON body; send fewer templates at a time, or raise max_json_kb"
        refusal = error_response(413, f"request body too large: the server's limit is {what}")
        headers = dict(scope["headers"])
        length = headers.get(b"content-length")
        if length is not None:
            if not length.isdigit():
                return await error_response(400, "Content-Length must be a number of bytes")(scope, receive, send)
            if int(length) > limit:
                return await refusal(scope, receive, send)
            return await self.app(scope, receive, send)
        if headers.get(b"transfer-encoding") is None:
            return await self.app(scope, receive, send)
        events, size = [], 0
        while True:
            event = await receive()
            events.append(event)
            size += len(event.get("body", b""))
            if size > limit:
                return await refusal(scope, receive, send)
            if event["type"] != "http.request" or not event.get("more_body"):
                break

        async def replay():
            return events.pop(0) if events else await receive()
        return await self.app(scope, replay, send)


class ApiKeyGuard:
    """With a key set, every request but a CORS preflight, a feed (an ``<img>`` cannot send headers) and a static page
    must carry ``Authorization: Bearer <key>``. Decided on the request line's path, compared in constant time."""

    def __init__(self, app, key: str):
        self.app, self.expected = app, f"Bearer {key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or self._open(scope):
            return await self.app(scope, receive, send)
        sent = dict(scope["headers"]).get(b"authorization", b"")
        if not hmac.compare_digest(sent, self.expected):
            refusal = error_response(401, "missing or wrong API key: send the header 'Authorization: Bearer <key>'")
            return await refusal(scope, receive, send)
        return await self.app(scope, receive, send)

    @staticmethod
    def _open(scope) -> bool:
        method, path = scope["method"], scope["path"]
        return method == "OPTIONS" or (method in ("GET", "HEAD") and (FEED_PATH.match(path) is not None
                                                                      or PAGE_PATH.match(path) is not None))


class SessionIdCheck:
    """``/api/sessions/<id>/…`` with an id that could not be ours gets a 400 before any route sees it."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            parts = scope["path"].split("/")
            if len(parts) > 3 and parts[1:3] == ["api", "sessions"] and not SESSION_ID.match(parts[3]):
                refusal = error_response(400, "a session id is 1–64 letters, digits, '-' or '_'")
                return await refusal(scope, receive, send)
        return await self.app(scope, receive, send)


def add_error_handlers(app: FastAPI) -> None:
    """Every error a route can meet becomes a JSON answer with the right status; unexpected ones a 500 that says so
    (and is logged with its traceback)."""

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, exc: HTTPException):
        path = request.scope["path"]
        if exc.status_code == 405:
            allowed = exc.headers.get("Allow", "") if exc.headers else ""
            return error_response(405, f"{request.method} is not allowed on {path}; use {allowed}")
        if exc.status_code == 404 and exc.detail == "Not Found":
            return error_response(404, f"no such endpoint {path}; the API is described at /openapi.json")
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        messages = []
        for err in exc.errors()[:5]:
            where = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
            if err.get("type") == "json_invalid":
                messages.append(f"the body is not valid JSON ({err.get('ctx', {}).get('error', '')})")
            elif where == "body":
                messages.append(f"the body must be a JSON object ({err.get('msg')}); send it with the header "
                                "'Content-Type: application/json'")
            else:
                messages.append(f"{where[:80]}: {err.get('msg')}")
        return error_response(400 if any("JSON" in m for m in messages) else 422, "; ".join(messages))

    statuses = {CommandError: 400, CharacterError: 400, SpeechError: 400, SessionNotFound: 404, CapacityError: 429,
                EspeakUnavailable: 501}
    for kind, status in statuses.items():
        app.add_exception_handler(kind, lambda request, exc, status=status: error_response(status, str(exc)))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception):
        log.exception("unexpected error on %s %s", request.method, request.scope["path"])
        return error_response(500, f"internal error ({type(exc).__name__}); the server log has the details, "
                                   "please report it")
