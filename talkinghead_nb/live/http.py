"""The HTTP concerns of the live server, apart from its routes and its thread: the limits a client cannot exceed,
request-body caps, the API key, which web pages may call it, and the translation of every error into a JSON
``{"error": "..."}`` answer. The plain server and the Ray ingress put the same layers in front of their routes
(:func:`add_guards`).

These are plain ASGI layers that decide on ``scope["path"]`` (the path of the request line), never on a URL rebuilt
from the ``Host`` header, which a client controls.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import re
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..character import CharacterError
from ..speech import EspeakUnavailable, SpeechError
from .session import CommandError, SessionNotFound

T = TypeVar("T")

log = logging.getLogger(__name__)

API_KEY_ENV = "TALKINGHEAD_NB_API_KEY"
MAX_JSON_DEPTH = 32  # nesting of a JSON body; the deepest the API reads (a timeline) is about 5
DISCONNECT_POLL_S = 0.1  # how often a long request (a recording) looks whether its client is still there
# Browser pages on this machine (SillyTavern's is http://127.0.0.1:8000), on any port: allowed by default.
LOOPBACK_ORIGINS = r"https?://(127\.0\.0\.1|localhost|\[::1\])(:[0-9]{1,5})?"
ORIGIN = re.compile(r"^(https?)://([a-z0-9.-]+|\[[0-9a-f:.]+\])(:[0-9]{1,5})?$")
SESSION_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
FEED_PATH = re.compile(r"^/api/(talkinghead|sessions/[A-Za-z0-9_-]{1,64})/result_feed$")
# Multipart bodies that may be large: a character image, or an audio file of speech.
UPLOAD_PATH = re.compile(r"^/api/(talkinghead/(load|speak)|sessions/[A-Za-z0-9_-]{1,64}/(load|speak)|sessions)$")
# Static pages: they carry no data, and a browser cannot send the key to open them.
PAGE_PATH = re.compile(r"^/(|speak|sessions/[A-Za-z0-9_-]{1,64}/?)$")


@dataclass(frozen=True)
class ServerLimits:
    """What one client can make the server hold or do. Beyond a limit the answer is a 4xx (413 for bodies, 429 for
    counts) that names the limit, and nothing else is affected."""

    max_upload_mb: float = 20      # a multipart upload (a character, speech audio); a 512×512 PNG is a few hundred KiB
    max_json_kb: float = 256       # any other request body (JSON: templates, settings, timelines)
    max_sessions: int = 8          # live characters at once, the default session included
    max_feeds: int = 32            # open feeds (viewers), all sessions together
    max_connections: int = 128     # open connections; uvicorn answers 503 beyond
    max_decodes: int = 1           # uploads, timelines and texts turned into pictures or speech at once (a fit=True
                                   # upload may decode to 64 MiB)

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


def is_multipart(content_type: str | bytes | None) -> bool:
    """Whether a Content-Type header announces a multipart form (how files are uploaded)."""
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    return (content_type or "").strip().lower().startswith("multipart/form-data")


def _headers(scope) -> dict[bytes, bytes]:
    return dict(scope["headers"])


async def _read_body(receive) -> list[dict]:
    """The request's ``receive`` events up to the end of its body (to be replayed with :func:`_replay`)."""
    events = []
    while True:
        event = await receive()
        events.append(event)
        if event["type"] != "http.request" or not event.get("more_body"):
            return events


def _replay(events: list[dict], receive):
    """A ``receive`` that gives ``events`` again, then what the client sends next (its disconnection)."""
    async def replay():
        return events.pop(0) if events else await receive()
    return replay


class BodyLimit:
    """Refuses request bodies over the limit with 413: a multipart upload on an upload route (a character, speech
    audio) may be ``max_upload_mb``, any other body (JSON) ``max_json_kb``. Decided by the Content-Type, since one
    route (``…/speak``) takes both. By Content-Length when there is one, else by reading the body (up to the limit)
    first."""

    def __init__(self, app, limits: ServerLimits):
        self.app, self.limits = app, limits

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = _headers(scope)
        upload = (scope["method"] == "POST" and UPLOAD_PATH.match(scope["path"]) is not None
                  and is_multipart(headers.get(b"content-type")))
        limit = self.limits.max_upload_bytes if upload else self.limits.max_json_bytes
        what = (f"{limit / 2**20:g} MiB for an upload; send a 512×512 PNG (a few hundred KiB), or start the server "
                "with a larger max_upload_mb") if upload else \
            (f"{limit / 2**10:g} KiB for a JSON body (only a multipart file upload may be larger); send less at a "
             "time (fewer templates, a shorter timeline), or start the server with a larger max_json_kb")
        refusal = error_response(413, f"request body too large: the server's limit is {what}")
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
        return await self.app(scope, _replay(events, receive), send)


def _nested_deeper(value, limit: int) -> bool:
    """Whether lists and objects in ``value`` (parsed JSON) nest more than ``limit`` levels; level by level, without
    recursion."""
    level = [value]  # the values at one depth: after the loop, those at depth limit + 1
    for _ in range(limit):
        level = [child for item in level if isinstance(item, (dict, list))
                 for child in (item.values() if isinstance(item, dict) else item)]
    return any(isinstance(item, (dict, list)) for item in level)


def json_nesting_problem(body: bytes) -> str | None:
    """What is wrong with ``body`` as JSON nested more than ``MAX_JSON_DEPTH`` levels deep, else None (also for a body
    that is no JSON at all: the route says what it expected)."""
    if body.count(b"[") + body.count(b"{") <= MAX_JSON_DEPTH:  # too few to nest that deep (most bodies)
        return None
    try:
        if not _nested_deeper(json.loads(body), MAX_JSON_DEPTH):
            return None
    except RecursionError:  # deeper than the parser goes: deeper than the limit too
        pass
    except ValueError:
        return None
    return (f"the JSON body is nested more than {MAX_JSON_DEPTH} levels deep (lists or objects within each other); "
            "no request of this API needs more than a few")


class JsonNesting:
    """Refuses (400) a body nested deeper than ``MAX_JSON_DEPTH``, for every route at once, before any route parses
    it (Python's parser and the code after it would fail with a ``RecursionError``). Multipart uploads are not JSON;
    anything else is checked whatever its Content-Type, since a route may parse it anyway. Sits behind
    :class:`BodyLimit`, which bounds what this reads."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if (scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS")
                or is_multipart(_headers(scope).get(b"content-type"))):
            return await self.app(scope, receive, send)
        events = await _read_body(receive)
        problem = json_nesting_problem(b"".join(e.get("body", b"") for e in events if e["type"] == "http.request"))
        if problem is not None:
            return await error_response(400, problem)(scope, receive, send)
        return await self.app(scope, _replay(events, receive), send)


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
            refusal = error_response(401, "wrong API key: check the key the server was started with" if sent else
                                     "no API key sent: this server needs one (a page asks for it; a program sends "
                                     "the header 'Authorization: Bearer <key>')")
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


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, IPv6 with or without brackets) is this machine only."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def parse_origins(origins: Iterable[str] | None) -> tuple[str, ...]:
    """The web origins a user allows (``allow_origins=``, ``--allow-origin``), checked and written as browsers send
    them (``http://192.168.1.20:8000``: lower case, no path, no default port). ``ValueError`` names a bad one."""
    if isinstance(origins, str):
        origins = [origins]
    parsed = []
    for origin in origins or ():
        text = str(origin).strip().rstrip("/").lower()
        match = ORIGIN.match(text)
        if text == "*" or match is None:
            why = ("'*' would let a page on any web site drive this server; name the origins" if text == "*" else
                   "write it as the browser's address bar shows the page, scheme://host[:port] without a path")
            raise ValueError(f"allowed origin {str(origin)[:100]!r}: {why}, such as http://192.168.1.20:8000 "
                             "(SillyTavern on another machine)")
        scheme, host, port = match.groups()
        default_port = {"http": ":80", "https": ":443"}[scheme]  # browsers leave it out of the Origin they send
        parsed.append(f"{scheme}://{host}{'' if port in (None, default_port) else port}")
    return tuple(dict.fromkeys(parsed))


class OriginGuard:
    """Keeps other web sites' pages from driving the server (and reading its answers), with or without a key.

    A request with an ``Origin`` header (browsers send it on a cross-origin ``fetch`` and on every POST) must come
    from this server's own pages (its ``Host``) or from an allowed origin: the loopback ones (any port) and those in
    ``allow_origins``; else 403. Browsers send no ``Origin`` on a GET of an ``<img>`` or a link: such a request from
    another site (``Sec-Fetch-Site: cross-site``) may open a page or a feed, nothing else under ``/api/``. Requests
    without those headers (curl, Python, OBS) pass. With ``loopback_host`` (a keyless server on loopback), the
    ``Host`` header must name this machine too: a page on a site whose name is made to point at 127.0.0.1 (DNS
    rebinding) would otherwise count as the server's own page."""

    def __init__(self, app, allowed: re.Pattern, loopback_host: bool):
        self.app, self.allowed, self.loopback_host = app, allowed, loopback_host
        self.reported: set[str] = set()

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        problem = self._problem(scope)
        if problem is not None:
            return await error_response(403, problem)(scope, receive, send)
        return await self.app(scope, receive, send)

    def _problem(self, scope) -> str | None:
        headers = _headers(scope)
        host = headers.get(b"host", b"").decode("latin-1").lower()
        if self.loopback_host and host and not is_loopback(_host_name(host)):
            return (f"Host {host[:100]!r} is not this machine: a server without an API key on a loopback address "
                    "answers only to 127.0.0.1, localhost or [::1] (a guard against DNS rebinding); open it by one of "
                    "those, or give it a key (--api-key) to reach it by another name")
        origin = headers.get(b"origin", b"").decode("latin-1").lower()
        if origin == "null":
            return ("a page without an origin (opened from a file, or in a sandboxed frame) may not call this server; "
                    "serve the page over http from this machine (http://127.0.0.1:<port>) or an allowed origin")
        if origin:
            if self.allowed.fullmatch(origin) or origin.split("://", 1)[-1] == host:
                return None
            if origin not in self.reported and len(self.reported) < 100:  # once per origin in the server's log
                self.reported.add(origin)
                log.warning("refused requests from the web page at %s; allow it with --allow-origin %s "
                            "(allow_origins=[...]) if it is yours", origin[:100], origin[:100])
            return (f"this server does not take requests from web pages at {origin[:100]!r}: it takes them from its "
                    "own pages, pages on this machine (http://127.0.0.1:<port>, http://localhost:<port>) and the "
                    f"origins it is started with; if that page is yours, restart it with --allow-origin "
                    f"{origin[:100]} (LiveServer(allow_origins=[...]))")
        path = scope["path"]
        if (headers.get(b"sec-fetch-site") == b"cross-site" and path.startswith("/api/")
                and FEED_PATH.match(path) is None):
            return (f"a page on another web site may show the feed (an <img>) or link to the pages, but not call "
                    f"{path[:100]}; call the API with fetch() from an allowed origin (--allow-origin)")
        return None


def _host_name(host: str) -> str:
    """The name in a ``Host`` header's value, without the port."""
    if host.startswith("["):
        return host[1:host.find("]")] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class MergeSlashes:
    """A path with repeated slashes gets a 308 to the same path with single ones (as SillyTavern-Extras' Flask did):
    SillyTavern 1.12 builds its feed and talking URLs as ``extras URL + '/api/…'``, so an Extras URL typed with a
    trailing slash asks for ``//api/talkinghead/result_feed``. The ``Location`` is relative (never built from the
    ``Host`` header), and the guards judge the redirected request like any other."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1") if scope["type"] == "http" else ""
        if "//" in path:  # as sent, still %-encoded: an encoded slash (%2F) is left alone
            query = scope.get("query_string", b"").decode("latin-1")
            location = re.sub("/{2,}", "/", path) + (f"?{query}" if query else "")  # never "//host": relative
            answer = error_response(308, f"this server's routes have single slashes: {location[:200]}")
            answer.headers["Location"] = location
            return await answer(scope, receive, send)
        await self.app(scope, receive, send)


def add_guards(app: FastAPI, *, limits: ServerLimits, api_key: str | None, allow_origins: tuple[str, ...],
               host: str) -> None:
    """Put the live server's layers in front of ``app``'s routes (the plain server's and the Ray ingress'), from the
    outside in: single slashes (:class:`MergeSlashes`), which web pages may call it (:class:`OriginGuard`), CORS
    headers for the allowed ones only (never ``*``), the key, the body limits, the session ids, the JSON nesting.
    ``host``: the address it listens on."""
    allowed = re.compile("|".join([LOOPBACK_ORIGINS, *map(re.escape, allow_origins)]))
    app.add_middleware(JsonNesting)
    app.add_middleware(SessionIdCheck)
    app.add_middleware(BodyLimit, limits=limits)
    if api_key:
        app.add_middleware(ApiKeyGuard, key=api_key)
    app.add_middleware(CORSMiddleware, allow_origin_regex=allowed.pattern, allow_methods=["*"], allow_headers=["*"])
    app.add_middleware(OriginGuard, allowed=allowed, loopback_host=not api_key and is_loopback(host))
    app.add_middleware(MergeSlashes)  # outermost: a redirected request meets every guard (the feed's key exemption)


async def while_connected(request: Request, work: Callable[[threading.Event], T]) -> T | None:
    """``work(cancel)`` in a worker thread, with ``cancel`` set when the client disconnects (or this request is
    cancelled), so that long work (a recording) stops instead of holding the engine for nobody. Returns its result,
    or None when the client left and the work stopped (its error then is the cancellation, not a failure)."""
    cancel = threading.Event()
    task = asyncio.ensure_future(run_in_threadpool(work, cancel))
    try:
        while not task.done():
            await asyncio.wait({task}, timeout=DISCONNECT_POLL_S)
            if not task.done() and not cancel.is_set() and await request.is_disconnected():
                cancel.set()
        if cancel.is_set() and task.exception() is not None:
            return None
        return task.result()
    finally:
        cancel.set()
        task.add_done_callback(lambda done: done.cancelled() or done.exception())  # no unretrieved-error warning


def resolve_api_key(key: str | None = None, key_file: str | os.PathLike | None = None) -> str | None:
    """The server's API key: ``key`` (``--api-key``), else the first line of ``key_file`` (``--api-key-file``,
    stripped), else the environment variable ``TALKINGHEAD_NB_API_KEY``; None (no key) when none is set. The file and
    the variable keep the key out of the process list (``ps``). ``ValueError`` names a key file that is missing,
    unreadable or empty, and a key given both ways."""
    if key and key_file is not None:
        raise ValueError("give the API key one way: --api-key or --api-key-file, not both")
    if key_file is None:
        return key or os.environ.get(API_KEY_ENV, "").strip() or None
    try:
        with open(key_file, encoding="utf-8") as file:
            line = file.readline(4096)
    except FileNotFoundError:
        raise ValueError(f"API key file {os.fspath(key_file)!r} does not exist; write the key on its first line, "
                         "or pass the right path to --api-key-file") from None
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
        raise ValueError(f"cannot read the API key file {os.fspath(key_file)!r} ({reason}); make it a readable text "
                         "file with the key on its first line") from None
    if not line.strip():
        raise ValueError(f"the API key file {os.fspath(key_file)!r} has no key on its first line; write it there")
    return line.strip()


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
