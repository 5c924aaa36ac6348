"""The live server on Ray Serve: many sessions over several engines, one HTTP API.

    cluster = serve_live("lambda_00", replicas=2, address="local")   # or "auto", or "ray://head:10001"
    cluster.url                                                     # the same API as LiveServer's
    cluster.stop()

Rendering runs in ``replicas`` renderers, each a live server (its own engine, sessions, pumps and routes) in a Serve
deployment of one replica, with one GPU where the cluster has GPUs. In front, an ingress deployment takes every
request, checks the web origin, the key and the body limits as the live server does, and forwards it to the renderer
that holds its session: ``POST /api/sessions`` places a new session on the renderer with the fewest, and every later
request for it (``/api/sessions/<id>/…``, its viewer page, its feed, ``DELETE``) goes to that renderer; the classic
routes and the session ``default`` live on the first. A feed's parts stream back through the ingress at the
session's own rate. Each answer names its renderer in the ``X-Talkinghead-Replica`` header; ``GET /api/cluster``
lists the renderers and their sessions.

The routing is explicit (a table in the ingress, rebuilt from the renderers when it misses), not Serve's model
multiplexing, which prefers a replica but may load the "model" on another under load: a session is state (its
animator, its viewers), and must not be created twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import warnings
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

from ..character import Character, load_character
from ..live.http import ServerLimits, add_error_handlers, add_guards, error_response, is_loopback, parse_origins
from ..live.routes import DEFAULT_SESSION
from .asgi import HttpRequest, HttpStart, call_app
from .engines import EngineSpec
from .ray_setup import Connection, check_capacity, connect, plan_engines, require_ray

APP_NAME = "talkinghead"
REPLICA_HEADER = b"x-talkinghead-replica"
CORS_HEADERS = (b"access-control-", b"vary")
# Judged by the ingress's guards, not forwarded: the renderer's own guards would judge them again against its own
# (unbound, loopback) address.
JUDGED_HEADERS = (b"host", b"origin", b"sec-fetch-site")
METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LiveOptions:
    """What every renderer is built from. All of it travels to the renderers: the character's pixels and the
    animator settings and the viseme table (read here), so that they need no copy of those files."""

    character: Character
    engine: EngineSpec
    limits: ServerLimits = field(default_factory=ServerLimits)
    settings: dict | None = None
    emotions_dir: str | None = None  # read on each renderer's machine (None: the installed project's emotions/)
    effects: Any = None              # an effect chain for the default session
    seed: int | None = None
    visemes: dict | None = None


class Renderer:
    """One engine and its sessions: a :class:`LiveServer` in this replica, its app called in-process. The server is
    never started: it listens on no port, so that nothing reaches it but through the ingress (its key and limits);
    what ``start`` would do for the app (the default session, the render scheduler) is done here."""

    def __init__(self, name: str, options: LiveOptions):
        from ..live import LiveServer
        self.name = name
        self.server = LiveServer(options.character, poser=options.engine.build(), settings=options.settings,
                                 visemes=options.visemes, emotions_dir=options.emotions_dir, limits=options.limits,
                                 seed=options.seed)
        if self.server.scheduler is not None:
            self.server.scheduler.start()
        session = self.server.new_session(session_id=DEFAULT_SESSION)
        if options.effects is not None:
            session.effects = options.effects

    async def handle(self, request: HttpRequest) -> AsyncIterator[HttpStart | bytes]:
        async for item in call_app(self.server.app, request):
            yield item

    def sessions(self) -> list[dict]:
        return [session.stats() for session in self.server.all_sessions()]

    def __del__(self) -> None:
        self.server.stop()  # closes the sessions (their pumps) and the scheduler; there is no port to free


class Router:
    """Which renderer holds which session, and the forwarding of a request to it."""

    def __init__(self, renderers: list, names: list[str]):
        self.renderers, self.names = renderers, names
        self.streams = [r.options(method_name="handle", stream=True) for r in renderers]
        self.owner: dict[str, int] = {DEFAULT_SESSION: 0}
        self.placing = [0] * len(renderers)  # sessions being created on each renderer, not yet in ``owner``

    def reserve(self, tried: set[int]) -> int:
        """The renderer with the fewest sessions (those being created included) among those not ``tried``, counted
        as placing one more at once: concurrent creations spread out instead of all picking the same one. The
        caller calls :meth:`release` when the creation is over."""
        counts = list(self.placing)
        for index in self.owner.values():
            counts[index] += 1
        index = min((i for i in range(len(counts)) if i not in tried), key=lambda i: counts[i])
        self.placing[index] += 1
        return index

    def release(self, index: int) -> None:
        self.placing[index] -= 1

    async def create(self, request: HttpRequest) -> tuple[int, HttpStart, bytes]:
        """``POST /api/sessions`` on the least loaded renderer; one that is full (429) hands it to the next."""
        tried: set[int] = set()
        while True:
            index = self.reserve(tried)
            try:
                start, body = await self.open(index, request)
                content = b"".join([chunk async for chunk in body])
                if start.status == 200:
                    self.owner[json.loads(content)["id"]] = index
            finally:
                self.release(index)
            tried.add(index)
            if start.status != 429 or len(tried) == len(self.renderers):
                return index, start, content

    async def sessions(self) -> list[list[dict]]:
        """Each renderer's sessions (the session ``default`` is the first renderer's: the others' are idle)."""
        answers = await asyncio.gather(*(r.options(method_name="sessions").remote() for r in self.renderers))
        return [[s for s in found if i == 0 or s["id"] != DEFAULT_SESSION] for i, found in enumerate(answers)]

    async def owner_of(self, session_id: str) -> int:
        """The renderer of ``session_id``; one the table does not know (the ingress restarted) is looked up."""
        if session_id not in self.owner:
            for index, found in enumerate(await self.sessions()):
                self.owner.update({s["id"]: index for s in found})
        return self.owner.get(session_id, 0)  # unknown everywhere: the first renderer answers 404

    async def open(self, index: int, request: HttpRequest) -> tuple[HttpStart, AsyncIterator[bytes]]:
        stream = self.streams[index].remote(request)
        start = await stream.__anext__()

        async def body() -> AsyncIterator[bytes]:
            try:
                async for chunk in stream:
                    yield chunk
            finally:
                stream.cancel()  # the client left: the renderer's feed ends and frees its viewer
        return start, body()


def proxy_app(router: Router, limits: ServerLimits, api_key: str | None, allow_origins: tuple[str, ...], host: str):
    """The ingress's app: the live server's guards (web origins, CORS, key, body limits, session ids, error answers;
    ``host`` is the address Serve listens on), then every request forwarded to its session's renderer."""
    from ray.serve.exceptions import BackPressureError  # a renderer's queue is full (max_queued_requests)
    app = FastAPI(title="talkinghead-nb live server on Ray Serve", openapi_url=None, docs_url=None, redoc_url=None,
                  redirect_slashes=False)
    add_error_handlers(app)

    @app.get("/api/cluster")
    async def cluster():
        found = await router.sessions()
        return {"replicas": [{"name": name, "sessions": [s["id"] for s in sessions]}
                             for name, sessions in zip(router.names, found, strict=True)]}

    @app.api_route("/{path:path}", methods=METHODS)
    async def forward(request: Request, path: str):
        method, path = request.method, request.scope["path"]
        if path == "/api/sessions" and method == "GET":
            found = await router.sessions()
            return JSONResponse({"sessions": [{**s, "replica": name} for name, sessions in
                                              zip(router.names, found, strict=True) for s in sessions]})
        parts = path.split("/")
        headers = [(k, v) for k, v in request.scope["headers"] if k not in JUDGED_HEADERS]
        forwarded = HttpRequest(method, path, request.scope["query_string"], headers, await request.body(),
                                request.scope.get("client") or ("127.0.0.1", 0))
        index, creating = 0, path == "/api/sessions" and method == "POST"
        try:
            if creating:
                index, start, content = await router.create(forwarded)
                response = Response(content, status_code=start.status)
            else:
                if path.startswith("/api/sessions/") or path.startswith("/sessions/"):
                    index = await router.owner_of(parts[3] if path.startswith("/api/") else parts[2])
                start, body = await router.open(index, forwarded)
                if method == "DELETE" and start.status == 200:
                    content = b"".join([chunk async for chunk in body])
                    router.owner.pop(parts[3], None)
                    response = Response(content, status_code=start.status)
                else:
                    response = StreamingResponse(body, status_code=start.status)
        except Exception as e:
            which = "the renderer chosen for it" if creating else f"the renderer {router.names[index]}"
            if isinstance(e, BackPressureError):  # its queue is full
                return error_response(503, f"{which} is busy (every request it may hold is taken, feeds included): "
                                           "try again in a moment, or close a feed")
            # the replica died (its sessions with it) or cannot be reached
            return error_response(503, f"{which} did not answer ({type(e).__name__}); its sessions are lost if it "
                                       "restarted: create a new session")
        headers = [(k, v) for k, v in start.headers if not k.startswith(CORS_HEADERS)]  # the ingress adds its own
        headers.append((REPLICA_HEADER, router.names[index].encode()))
        response.raw_headers = headers
        return response

    add_guards(app, limits=limits, api_key=api_key, allow_origins=allow_origins, host=host)
    app.add_middleware(ClientGone)
    return app


class ClientGone:
    """Serve tells the ingress that a client left (a closed feed) by raising ``TaskCancelledError`` from
    ``receive()``; the app hears an ordinary ``http.disconnect`` instead, so that its stream ends quietly rather
    than as an unexpected error with a traceback in the log."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        from ray.exceptions import TaskCancelledError

        async def calm_receive():
            try:
                return await receive()
            except TaskCancelledError:
                return {"type": "http.disconnect"}
        await self.app(scope, calm_receive, send)


class Ingress:
    """The HTTP face: one replica (it only forwards), with the table of which renderer holds which session."""

    def __init__(self, renderers: list, names: list[str], limits: ServerLimits, api_key: str | None,
                 allow_origins: tuple[str, ...], host: str):
        self.router = Router(renderers, names)
        self.limits, self.api_key, self.allow_origins, self.host = limits, api_key, allow_origins, host

    def __serve_build_asgi_app__(self):
        return proxy_app(self.router, self.limits, self.api_key, self.allow_origins, self.host)


def _serve():
    require_ray()
    from ray import serve
    return serve


def live_app(options: LiveOptions, plan, api_key: str | None, allow_origins: tuple[str, ...], host: str):
    """The Serve application: ``plan.engines`` renderers (each one replica with ``plan.cpus`` CPUs, ``plan.gpus``
    GPUs) behind one ingress. Every open feed is a request that lasts: a renderer holds ``max_connections`` at once,
    the ingress as many as all renderers together; beyond those, ``max_connections`` more wait in each queue and the
    rest get a 503 at once instead of waiting without end."""
    serve = _serve()
    options = replace(options, engine=replace(options.engine, threads=plan.threads))
    names = [f"renderer-{i}" for i in range(plan.engines)]
    each = options.limits.max_connections
    renderers = [serve.deployment(Renderer, name=name, num_replicas=1, max_ongoing_requests=each,
                                  max_queued_requests=each,
                                  ray_actor_options=options.engine.actor_options(plan.cpus, plan.gpus))
                 .bind(name, options) for name in names]
    ingress = serve.deployment(serve.ingress()(Ingress), name="ingress", num_replicas=1,
                               max_ongoing_requests=each * plan.engines, max_queued_requests=each,
                               ray_actor_options={"num_cpus": 0})
    return ingress.bind(renderers, names, options.limits, api_key, allow_origins, host)


@dataclass
class LiveCluster:
    """A running Serve deployment of the live server; :meth:`stop` removes it (and a Ray it started)."""

    url: str
    replicas: int
    connection: Connection

    def feed_url(self, session_id: str = DEFAULT_SESSION) -> str:
        if session_id == DEFAULT_SESSION:
            return f"{self.url}/api/talkinghead/result_feed"
        return f"{self.url}/api/sessions/{session_id}/result_feed"

    def stop(self) -> None:
        """Remove the application (Serve itself stays on a cluster this joined; a Ray this started is shut down)."""
        _serve().delete(APP_NAME)
        self.connection.close()

    def __enter__(self) -> LiveCluster:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _read_json(source: str | os.PathLike | dict | None) -> dict | None:
    """A settings file's content (a dict or None passes through), to travel to the renderers."""
    if not isinstance(source, (str, os.PathLike)):
        return source
    data = json.loads(Path(source).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{source}: expected a JSON object of settings, got a {type(data).__name__}")
    return data


def serve_live(character: Character | str | os.PathLike | None = None, *, replicas: int | None = None,
               address: str = "auto", host: str = "127.0.0.1", port: int = 5100, api_key: str | None = None,
               limits: ServerLimits | None = None, settings: str | os.PathLike | dict | None = None,
               emotions_dir: str | os.PathLike | None = None, effects: Any = None, seed: int | None = None,
               engine: EngineSpec | None = None, visemes: str | os.PathLike | dict | None = None,
               allow_origins: Iterable[str] | None = None) -> LiveCluster:
    """Deploy the live server on Ray Serve with ``replicas`` renderers (default: one per GPU, else as many as this
    machine's CPUs allow) and return once it answers at ``host:port``. ``address``: ``local``, ``auto`` or a
    cluster's (see :func:`connect`). ``limits`` apply per renderer (``max_sessions`` counts its sessions);
    ``settings`` and ``visemes`` (each a JSON file or overrides) are read here; ``emotions_dir`` is read by each
    renderer. ``allow_origins``: the web pages allowed to call it besides its own and this machine's, as for
    :class:`LiveServer`."""
    origins = parse_origins(allow_origins)
    if not api_key and not is_loopback(host):
        message = (f"the live server on Ray Serve listens on {host}, reachable from other machines, WITHOUT an API "
                   "key: anyone who can reach this port can load images and change the animation. Pass api_key= "
                   "(CLI: --api-key), and put TLS in front of it (docs/security.md).")
        log.warning(message)
        warnings.warn(message, stacklevel=2)
    options = LiveOptions(character if isinstance(character, Character) else load_character(character or "lambda_00"),
                          engine or EngineSpec(), limits or ServerLimits(), _read_json(settings),
                          None if emotions_dir is None else os.fspath(emotions_dir), effects, seed,
                          _read_json(visemes))
    connection = connect(address, replicas or 1)
    try:
        plan = plan_engines(replicas, options.engine.device)
        check_capacity(plan)
        serve = _serve()
        logging.getLogger("ray.serve").setLevel(logging.WARNING)
        serve.start(http_options={"host": host, "port": port}, logging_config={"log_level": "WARNING"})
        serve.run(live_app(options, plan, api_key, origins, host), name=APP_NAME, route_prefix="/",
                  logging_config={"log_level": "WARNING"})
    except BaseException:
        connection.close()
        raise
    shown = f"[{host}]" if ":" in host else host
    return LiveCluster(f"http://{shown}:{port}", plan.engines, connection)
